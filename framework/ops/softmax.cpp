#include "framework/ops/softmax.h"

#include "framework/autograd/tape.h"
#include "framework/ops/dispatch.h"
#include "framework/ops/view.h"
#include "kernels/cpu/softmax.h"
#if defined(SSM_WITH_CUDA)
#include "kernels/cuda/softmax/softmax.h"
#endif

namespace ssm {
namespace {

// Collapses dims [begin, end) of t into one axis: (size, stride), or false when their
// strides do not step over each other (then the caller copies).
bool collapse(const Tensor& t, int begin, int end, int64_t* stride) {
  int64_t next = -1;
  *stride = 0;
  for (int i = end - 1; i >= begin; --i) {
    if (t.shape()[i] == 1) continue;
    if (next >= 0 && t.strides()[i] != next) return false;
    if (next < 0) *stride = t.strides()[i];
    next = t.strides()[i] * t.shape()[i];
  }
  return true;
}

// t seen as (O, N, I) around `dim`; copies t when the outer or inner dims do not collapse.
struct Lines {
  Tensor t;
  kernels::SoftmaxStrides s;
};
Lines as_lines(const Tensor& x, int dim) {
  Lines l{x, {}};
  bool ok = collapse(x, 0, dim, &l.s.outer) && collapse(x, dim + 1, x.dim(), &l.s.inner);
  if (!ok) {
    NoGradGuard raw;  // an internal copy, not a recorded op
    l.t = contiguous(x);
    collapse(l.t, 0, dim, &l.s.outer);
    collapse(l.t, dim + 1, l.t.dim(), &l.s.inner);
  }
  l.s.axis = l.t.strides()[dim];
  return l;
}

Tensor softmax_impl(const char* op, const Tensor& x, int dim_in, bool log) {
  ops_detail::check_float(op, x);
  SSM_CHECK(x.dim() >= 1, "{}: x {} must have at least one dim", op, x.describe());
  SSM_CHECK(dim_in >= -x.dim() && dim_in < x.dim(), "{}: dim {} out of range for x {}", op, dim_in, x.describe());
  const int dim = wrap_dim(dim_in, x.dim());
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < dim; ++i) outer *= x.shape()[i];
  for (int i = dim + 1; i < x.dim(); ++i) inner *= x.shape()[i];

  const Lines xl = as_lines(x, dim);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  const Lines yl = as_lines(y, dim);
  kernels::SoftmaxParams p;
  p.outer = outer;
  p.n = x.shape()[dim];
  p.inner = inner;
  p.log = log;
  p.x = xl.t.raw_data();
  p.x_strides = xl.s;
  p.y = y.raw_data();
  p.y_strides = yl.s;
  if (x.device().is_cuda())
    SSM_CUDA_LAUNCH(op, x.device(), kernels::cuda::softmax_fwd(x.dtype(), p, stream));
  else
    ops_detail::dispatch_float(op, x.dtype(), [&]<class T>() { kernels::cpu::softmax_fwd<T>(p); });

  if (autograd::needs_grad({&x})) {
    const Tensor ys = y.detach();  // saved output (the node must not own its own output's grad slot)
    autograd::record(op, {&x}, {&y}, [op, p, dim, ys](autograd::BackwardCtx& g) {
      kernels::SoftmaxParams b = p;
      const Lines dy = as_lines(g.grad_out(), dim);
      Tensor dx = Tensor::empty(ys.shape(), ys.dtype(), ys.device());
      b.y = ys.raw_data();
      b.dy = dy.t.raw_data();
      b.dy_strides = dy.s;
      b.dx = dx.raw_data();
      b.dx_strides = as_lines(dx, dim).s;
      if (ys.device().is_cuda())
        SSM_CUDA_LAUNCH(op, ys.device(), kernels::cuda::softmax_bwd(ys.dtype(), b, stream));
      else
        ops_detail::dispatch_float(op, ys.dtype(), [&]<class T>() { kernels::cpu::softmax_bwd<T>(b); });
      g.set(0, dx);
    });
  }
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x, int dim) { return softmax_impl("softmax", x, dim, false); }
Tensor log_softmax(const Tensor& x, int dim) { return softmax_impl("log_softmax", x, dim, true); }

}  // namespace ssm
