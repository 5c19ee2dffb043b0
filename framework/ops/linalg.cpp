#include "framework/ops/linalg.h"

#include "framework/autograd/tape.h"
#include "framework/ops/dispatch.h"
#include "framework/ops/elementwise.h"
#include "framework/ops/view.h"
#include "kernels/cpu/gemm.h"

namespace ssm {
namespace {

// A matrix operand as the GEMM kernel wants it: unit stride along one of the last two
// axes (else copied), and batch axes collapsible to a single stride.
struct MatOperand {
  Tensor t;
  bool trans = false;
  int64_t ld = 0, batch_stride = 0;
};

// The batch axes (all but the last two) address memory as one strided axis when each
// non-trivial axis steps exactly over the next inner one. Returns that stride, or -1.
int64_t collapsed_batch_stride(const Tensor& t) {
  int64_t stride = 0, expect = -1;
  for (int i = t.dim() - 3; i >= 0; --i) {
    if (t.shape()[i] == 1) continue;
    if (expect >= 0 && t.strides()[i] != expect) return -1;
    if (expect < 0) stride = t.strides()[i];
    expect = t.strides()[i] * t.shape()[i];
  }
  return stride;
}

MatOperand prepare(const Tensor& x, bool trans) {
  MatOperand m{x, trans};
  int r = x.dim();
  int64_t rows = x.shape()[r - 2], cols = x.shape()[r - 1];
  bool row_major = x.strides()[r - 1] == 1 && x.strides()[r - 2] >= std::max<int64_t>(cols, 1);
  bool col_major = x.strides()[r - 2] == 1 && x.strides()[r - 1] >= std::max<int64_t>(rows, 1);
  if (!(row_major || col_major) || collapsed_batch_stride(x) < 0) {
    NoGradGuard raw;
    m.t = contiguous(x);
    row_major = true;
  }
  if (row_major) {
    m.ld = m.t.strides()[r - 2];
  } else {
    m.trans = !trans;  // a column-major (rows, cols) matrix is a row-major (cols, rows) one
    m.ld = m.t.strides()[r - 1];
  }
  m.batch_stride = collapsed_batch_stride(m.t);
  return m;
}

Tensor matmul_raw(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const char* name = "matmul";
  ops_detail::check_same_device(name, {&a, &b});
  ops_detail::check_same_dtype(name, {&a, &b});
  ops_detail::check_float(name, a);
  SSM_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: operands must be at least 2-D, got {} and {}", a.describe(),
            b.describe());
  int ra = a.dim(), rb = b.dim();
  int64_t M = ta ? a.shape()[ra - 1] : a.shape()[ra - 2];
  int64_t K = ta ? a.shape()[ra - 2] : a.shape()[ra - 1];
  int64_t Kb = tb ? b.shape()[rb - 1] : b.shape()[rb - 2];
  int64_t N = tb ? b.shape()[rb - 2] : b.shape()[rb - 1];
  SSM_CHECK(K == Kb, "matmul: inner dimensions differ: {}{} vs {}{}", a.describe(), ta ? " (transposed)" : "",
            b.describe(), tb ? " (transposed)" : "");
  SSM_CHECK(rb == 2 || rb == ra, "matmul: b must be 2-D or have a's batch dims: {} vs {}", a.describe(),
            b.describe());
  int64_t batch = 1;
  Dims out_shape;
  for (int i = 0; i < ra - 2; ++i) {
    if (rb > 2)
      SSM_CHECK(a.shape()[i] == b.shape()[i], "matmul: batch dims differ: {} vs {}", a.describe(), b.describe());
    batch *= a.shape()[i];
    out_shape.push_back(a.shape()[i]);
  }
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor c = Tensor::empty(out_shape, a.dtype(), a.device());
  if (!a.device().is_cpu()) ops_detail::no_cuda_kernel(name, a);
  MatOperand A = prepare(a, ta), B = prepare(b, tb);
  kernels::GemmParams p;
  p.batch = batch;
  p.M = M;
  p.N = N;
  p.K = K;
  p.trans_a = A.trans;
  p.trans_b = B.trans;
  p.lda = A.ld;
  p.ldb = B.ld;
  p.ldc = N;
  p.stride_a = A.batch_stride;
  p.stride_b = rb > 2 ? B.batch_stride : 0;
  p.stride_c = M * N;
  p.a = A.t.raw_data();
  p.b = B.t.raw_data();
  p.c = c.raw_data();
  ops_detail::dispatch_float(name, a.dtype(), [&]<class T>() { kernels::cpu::gemm<T>(p); });
  return c;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  // A batched a times a shared 2-D b: fold the batch into M so dB needs no batch reduction.
  if (a.dim() > 2 && b.dim() == 2 && !ta) {
    Dims out = a.shape();
    Tensor y = matmul(reshape(a, Dims{-1, a.shape()[a.dim() - 1]}), b, false, tb);
    out[out.size() - 1] = y.shape()[1];
    return reshape(y, out);
  }
  if (a.dim() > 2 && b.dim() == 2) return matmul(a, expand(b, [&] {
                                                   Dims s = a.shape();
                                                   s[s.size() - 2] = b.shape()[0];
                                                   s[s.size() - 1] = b.shape()[1];
                                                   return s;
                                                 }()),
                                                 ta, tb);
  Tensor c = matmul_raw(a, b, ta, tb);
  if (autograd::needs_grad({&a, &b}))
    autograd::record("matmul", {&a, &b}, {&c}, [a, b, ta, tb](autograd::BackwardCtx& g) {
      const Tensor& dc = g.grad_out();
      if (g.needs(0)) g.set(0, ta ? matmul(b, dc, tb, true) : matmul(dc, b, false, !tb));
      if (g.needs(1)) g.set(1, tb ? matmul(dc, a, true, ta) : matmul(a, dc, !ta, false));
    });
  return c;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  SSM_CHECK(w.dim() == 2 && x.dim() >= 1 && x.shape()[x.dim() - 1] == w.shape()[1],
            "linear: input {} does not match weight {} (out, in)", x.describe(), w.describe());
  Tensor x2 = x.dim() == 1 ? unsqueeze(x, 0) : x;
  Tensor y = matmul(x2, w, false, true);
  if (x.dim() == 1) y = squeeze(y, 0);
  if (bias.defined()) y = add(y, bias);
  return y;
}

}  // namespace ssm
