#include "framework/ops/norm.h"

#include "framework/autograd/tape.h"
#include "framework/ops/dispatch.h"
#include "framework/ops/view.h"
#include "kernels/cpu/norm.h"
#if defined(SSM_WITH_CUDA)
#include "kernels/cuda/norm/norm.h"
#endif

namespace ssm {
namespace {

// x seen as (R, D) rows with a unit-stride last dim: x itself when its leading dims
// collapse to a single row stride (narrowed or row-strided views), else a contiguous copy.
struct Rows {
  Tensor t;
  int64_t stride = 0;  // elements between consecutive rows
};

Rows as_rows(const Tensor& x) {
  const int r = x.dim();
  const int64_t D = x.shape()[r - 1];
  bool ok = x.strides()[r - 1] == 1 || D == 1;
  int64_t stride = D, next = -1;
  for (int i = r - 2; i >= 0 && ok; --i) {
    if (x.shape()[i] == 1) continue;
    if (next >= 0 && x.strides()[i] != next) ok = false;
    if (next < 0) stride = x.strides()[i];
    next = x.strides()[i] * x.shape()[i];
  }
  if (ok) return {x, stride};
  NoGradGuard raw;  // an internal copy, not a recorded op
  return {contiguous(x), D};
}

using ops_detail::contiguous_raw;

void check_param(const char* op, const char* what, const Tensor& p, const Tensor& x) {
  if (!p.defined()) return;
  SSM_CHECK(p.dim() == 1 && p.shape()[0] == x.shape()[x.dim() - 1],
            "{}: {} {} does not match the last dim of x {}", op, what, p.describe(), x.describe());
}

void check_input(const char* op, const Tensor& x, std::initializer_list<const Tensor*> all, double eps) {
  ops_detail::check_float(op, x);
  ops_detail::check_same_device(op, all);
  ops_detail::check_same_dtype(op, all);
  SSM_CHECK(x.dim() >= 1 && x.shape()[x.dim() - 1] > 0, "{}: x {} needs a non-empty last dim", op, x.describe());
  SSM_CHECK(eps >= 0, "{}: eps must be >= 0, got {}", op, eps);
}

// Saved statistics: the CPU keeps them in T, the CUDA kernels in their compute dtype (fp32
// for bf16, so the backward does not renormalise with a rounded rstd).
DType stat_dtype(const Tensor& x) { return x.dtype() == DType::bf16 ? DType::f32 : x.dtype(); }

// Runs a CUDA norm backward with its dweight/dbias partials in a scratch block (stream order
// keeps it valid after it goes back to the cache).
void norm_bwd_cuda(const char* op, bool layer, const kernels::NormBwdParams& b, DType t, Device d) {
#if defined(SSM_WITH_CUDA)
  const size_t ws = kernels::cuda::norm_bwd_workspace(t, b);
  Tensor scratch = ws ? Tensor::empty(Dims{int64_t((ws + 7) / 8)}, DType::i64, d) : Tensor();
  void* wsp = ws ? scratch.raw_data() : nullptr;
  SSM_CUDA_LAUNCH(op, d,
                  layer ? kernels::cuda::layer_norm_bwd(t, b, wsp, stream) : kernels::cuda::rms_norm_bwd(t, b, wsp, stream));
#else
  (void)layer, (void)b, (void)t;
  SSM_CUDA_LAUNCH(op, d, 0);
#endif
}

// Shared by rms_norm, rms_norm_gated and add_rms_norm: z and residual may be undefined.
NormedResidual rms_norm_impl(const char* op, const Tensor& x, const Tensor& z, const Tensor& residual,
                             const Tensor& weight, double eps, int64_t group_size, bool norm_before_gate) {
  check_input(op, x, {&x, &z, &residual, &weight}, eps);
  for (const Tensor* t : {&z, &residual})
    SSM_CHECK(!t->defined() || t->shape() == x.shape(), "{}: {} {} does not match x {}", op,
              t == &z ? "gate z" : "residual", t->describe(), x.describe());
  check_param(op, "weight", weight, x);
  const int64_t D = x.shape()[x.dim() - 1], R = x.numel() / D;
  const int64_t gs = group_size == 0 ? D : group_size;
  SSM_CHECK(gs > 0 && D % gs == 0, "{}: group_size {} does not divide the last dim of x {}", op, group_size,
            x.describe());

  const Rows xr = as_rows(x);
  const Rows zr = z.defined() ? as_rows(z) : Rows{};
  const Rows rr = residual.defined() ? as_rows(residual) : Rows{};
  const Tensor w = contiguous_raw(weight);
  NormedResidual out;
  out.normed = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (residual.defined()) out.residual = Tensor::empty(x.shape(), x.dtype(), x.device());
  const Tensor rstd = Tensor::empty(Dims{R, D / gs}, stat_dtype(x), x.device());  // (R, G)

  kernels::NormParams p;
  p.rows = R;
  p.cols = D;
  p.group_size = gs;
  p.eps = eps;
  p.norm_before_gate = norm_before_gate;
  p.x = xr.t.raw_data();
  p.x_row_stride = xr.stride;
  if (z.defined()) {
    p.z = zr.t.raw_data();
    p.z_row_stride = zr.stride;
  }
  if (residual.defined()) {
    p.residual = rr.t.raw_data();
    p.residual_row_stride = rr.stride;
    p.residual_out = out.residual.raw_data();
    p.residual_out_row_stride = D;
  }
  if (w.defined()) p.weight = w.raw_data();
  p.y = out.normed.raw_data();
  p.y_row_stride = D;
  p.rstd = rstd.raw_data();
  if (x.device().is_cuda())
    SSM_CUDA_LAUNCH(op, x.device(), kernels::cuda::rms_norm_fwd(x.dtype(), p, stream));
  else
    ops_detail::dispatch_float(op, x.dtype(), [&]<class T>() { kernels::cpu::rms_norm_fwd<T>(p); });

  if (autograd::needs_grad({&x, &z, &residual, &weight})) {
    // The backward normalises h again: the saved sum for add_rms_norm, else x.
    const Rows h = residual.defined() ? Rows{out.residual.detach(), D} : xr;
    const Dims shape = x.shape();
    autograd::record(op, {&x, &z, &residual, &weight}, {&out.normed, &out.residual},
                     [op, p, h, zr, w, rstd, shape](autograd::BackwardCtx& g) {
                       kernels::NormBwdParams b;
                       static_cast<kernels::NormParams&>(b) = p;
                       b.x = h.t.raw_data();
                       b.x_row_stride = h.stride;
                       b.residual = nullptr;
                       const Rows dy = as_rows(g.grad_out(0));
                       b.dy = dy.t.raw_data();
                       b.dy_row_stride = dy.stride;
                       Rows dro;
                       if (p.residual) {
                         dro = as_rows(g.grad_out(1));
                         b.dresidual_out = dro.t.raw_data();
                         b.dresidual_out_row_stride = dro.stride;
                       }
                       const DType dt = h.t.dtype();
                       const Device dev = h.t.device();
                       Tensor dx, dz, dw;
                       if (g.needs(0) || g.needs(2)) {
                         dx = Tensor::empty(shape, dt, dev);
                         b.dx = dx.raw_data();
                         b.dx_row_stride = p.cols;
                       }
                       if (g.needs(1)) {
                         dz = Tensor::empty(shape, dt, dev);
                         b.dz = dz.raw_data();
                         b.dz_row_stride = p.cols;
                       }
                       if (g.needs(3)) {
                         dw = Tensor::empty(Dims{p.cols}, dt, dev);
                         b.dweight = dw.raw_data();
                       }
                       if (dev.is_cuda())
                         norm_bwd_cuda(op, false, b, dt, dev);
                       else
                         ops_detail::dispatch_float(op, dt, [&]<class T>() { kernels::cpu::rms_norm_bwd<T>(b); });
                       g.set(0, dx);
                       g.set(1, dz);
                       g.set(2, dx);  // d(x + residual)/d(residual) = 1
                       g.set(3, dw);
                     });
  }
  return out;
}

}  // namespace

// ---- RMSNorm ----------------------------------------------------------------------------

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  return rms_norm_impl("rms_norm", x, Tensor(), Tensor(), weight, eps, 0, false).normed;
}

Tensor rms_norm_gated(const Tensor& x, const Tensor& z, const Tensor& weight, double eps, int64_t group_size,
                      bool norm_before_gate) {
  SSM_CHECK(z.defined(), "rms_norm_gated: the gate z is undefined (use rms_norm for no gate); x {}",
            x.describe());
  return rms_norm_impl("rms_norm_gated", x, z, Tensor(), weight, eps, group_size, norm_before_gate).normed;
}

NormedResidual add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps) {
  SSM_CHECK(residual.defined(), "add_rms_norm: the residual is undefined; x {}", x.describe());
  return rms_norm_impl("add_rms_norm", x, Tensor(), residual, weight, eps, 0, false);
}

// ---- LayerNorm --------------------------------------------------------------------------

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "layer_norm";
  check_input(op, x, {&x, &weight, &bias}, eps);
  check_param(op, "weight", weight, x);
  check_param(op, "bias", bias, x);
  const int64_t D = x.shape()[x.dim() - 1], R = x.numel() / D;
  const Rows xr = as_rows(x);
  const Tensor w = contiguous_raw(weight), bb = contiguous_raw(bias);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  const Tensor mean = Tensor::empty(Dims{R}, stat_dtype(x), x.device());
  const Tensor rstd = Tensor::empty(Dims{R}, stat_dtype(x), x.device());

  kernels::NormParams p;
  p.rows = R;
  p.cols = D;
  p.group_size = D;
  p.eps = eps;
  p.x = xr.t.raw_data();
  p.x_row_stride = xr.stride;
  if (w.defined()) p.weight = w.raw_data();
  if (bb.defined()) p.bias = bb.raw_data();
  p.y = y.raw_data();
  p.y_row_stride = D;
  p.mean = mean.raw_data();
  p.rstd = rstd.raw_data();
  if (x.device().is_cuda())
    SSM_CUDA_LAUNCH(op, x.device(), kernels::cuda::layer_norm_fwd(x.dtype(), p, stream));
  else
    ops_detail::dispatch_float(op, x.dtype(), [&]<class T>() { kernels::cpu::layer_norm_fwd<T>(p); });

  if (autograd::needs_grad({&x, &weight, &bias})) {
    const Dims shape = x.shape();
    autograd::record(op, {&x, &weight, &bias}, {&y}, [op, p, xr, w, mean, rstd, shape](autograd::BackwardCtx& g) {
      kernels::NormBwdParams b;
      static_cast<kernels::NormParams&>(b) = p;
      const Rows dy = as_rows(g.grad_out());
      b.dy = dy.t.raw_data();
      b.dy_row_stride = dy.stride;
      const DType dt = xr.t.dtype();
      const Device dev = xr.t.device();
      Tensor dx, dw, db;
      if (g.needs(0)) {
        dx = Tensor::empty(shape, dt, dev);
        b.dx = dx.raw_data();
        b.dx_row_stride = p.cols;
      }
      if (g.needs(1)) {
        dw = Tensor::empty(Dims{p.cols}, dt, dev);
        b.dweight = dw.raw_data();
      }
      if (g.needs(2)) {
        db = Tensor::empty(Dims{p.cols}, dt, dev);
        b.dbias = db.raw_data();
      }
      if (dev.is_cuda())
        norm_bwd_cuda(op, true, b, dt, dev);
      else
        ops_detail::dispatch_float(op, dt, [&]<class T>() { kernels::cpu::layer_norm_bwd<T>(b); });
      g.set(0, dx);
      g.set(1, dw);
      g.set(2, db);
    });
  }
  return y;
}

}  // namespace ssm
