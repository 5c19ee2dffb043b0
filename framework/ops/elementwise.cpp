#include "framework/ops/elementwise.h"

#include "framework/autograd/tape.h"
#include "framework/ops/dispatch.h"
#include "framework/ops/reduce.h"
#include "kernels/cpu/elementwise.h"

#if defined(SSM_WITH_CUDA)
#include "kernels/cuda/elementwise/elementwise.h"
#endif

namespace ssm {

using kernels::BinaryOp;
using kernels::UnaryOp;
using ops_detail::dispatch_float;
using ops_detail::make_params;

namespace {

Tensor unary_raw(const char* name, UnaryOp op, const Tensor& x, double alpha = 1.0, double beta = 0.0) {
  ops_detail::check_float(name, x);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  auto p = make_params(y, {&x});
  p.alpha = alpha;
  p.beta = beta;
  if (x.device().is_cuda()) {
    SSM_CUDA_LAUNCH(name, x.device(), kernels::cuda::unary(x.dtype(), op, p, stream));
    return y;
  }
  dispatch_float(name, x.dtype(), [&]<class T>() { kernels::cpu::unary<T>(op, p); });
  return y;
}

Tensor binary_raw(const char* name, BinaryOp op, const Tensor& a, const Tensor& b) {
  ops_detail::check_same_device(name, {&a, &b});
  ops_detail::check_same_dtype(name, {&a, &b});
  ops_detail::check_float(name, a);
  Tensor y = Tensor::empty(broadcast_shapes(a.shape(), b.shape()), a.dtype(), a.device());
  auto p = make_params(y, {&a, &b});
  if (a.device().is_cuda()) {
    SSM_CUDA_LAUNCH(name, a.device(), kernels::cuda::binary(a.dtype(), op, p, stream));
    return y;
  }
  dispatch_float(name, a.dtype(), [&]<class T>() { kernels::cpu::binary<T>(op, p); });
  return y;
}

// dy * op'(x)
Tensor unary_grad(const char* name, UnaryOp op, const Tensor& x, const Tensor& dy) {
  Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
  auto p = make_params(dx, {&x, &dy});
  if (x.device().is_cuda()) {
    SSM_CUDA_LAUNCH(name, x.device(), kernels::cuda::unary_bwd(x.dtype(), op, p, stream));
    return dx;
  }
  dispatch_float(name, x.dtype(), [&]<class T>() { kernels::cpu::unary_bwd<T>(op, p); });
  return dx;
}

Tensor unary(const char* name, UnaryOp op, const Tensor& x) {
  Tensor y = unary_raw(name, op, x);
  if (autograd::needs_grad({&x}))
    autograd::record(name, {&x}, {&y}, [name, op, x](autograd::BackwardCtx& g) {
      g.set(0, unary_grad(name, op, x, g.grad_out()));
    });
  return y;
}

}  // namespace

// ---- binary -------------------------------------------------------------------------

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = binary_raw("add", BinaryOp::add, a, b);
  if (autograd::needs_grad({&a, &b})) {
    Dims sa = a.shape(), sb = b.shape();
    autograd::record("add", {&a, &b}, {&y}, [sa, sb](autograd::BackwardCtx& g) {
      if (g.needs(0)) g.set(0, sum_to_shape(g.grad_out(), sa));
      if (g.needs(1)) g.set(1, sum_to_shape(g.grad_out(), sb));
    });
  }
  return y;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor y = binary_raw("sub", BinaryOp::sub, a, b);
  if (autograd::needs_grad({&a, &b})) {
    Dims sa = a.shape(), sb = b.shape();
    autograd::record("sub", {&a, &b}, {&y}, [sa, sb](autograd::BackwardCtx& g) {
      if (g.needs(0)) g.set(0, sum_to_shape(g.grad_out(), sa));
      if (g.needs(1)) g.set(1, neg(sum_to_shape(g.grad_out(), sb)));
    });
  }
  return y;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = binary_raw("mul", BinaryOp::mul, a, b);
  if (autograd::needs_grad({&a, &b}))
    autograd::record("mul", {&a, &b}, {&y}, [a, b](autograd::BackwardCtx& g) {
      if (g.needs(0)) g.set(0, sum_to_shape(mul(g.grad_out(), b), a.shape()));
      if (g.needs(1)) g.set(1, sum_to_shape(mul(g.grad_out(), a), b.shape()));
    });
  return y;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor y = binary_raw("div", BinaryOp::div, a, b);
  if (autograd::needs_grad({&a, &b}))
    autograd::record("div", {&a, &b}, {&y}, [a, b, y](autograd::BackwardCtx& g) {
      Tensor gb = div(g.grad_out(), b);  // dL/da = g / b
      if (g.needs(0)) g.set(0, sum_to_shape(gb, a.shape()));
      if (g.needs(1)) g.set(1, sum_to_shape(neg(mul(gb, y)), b.shape()));  // -g a / b^2 = -(g/b) y
    });
  return y;
}

Tensor add(const Tensor& a, double s) {
  Tensor y = unary_raw("add_scalar", UnaryOp::identity, a, 1.0, s);
  if (autograd::needs_grad({&a}))
    autograd::record("add_scalar", {&a}, {&y}, [](autograd::BackwardCtx& g) { g.set(0, g.grad_out()); });
  return y;
}

Tensor mul(const Tensor& a, double s) {
  Tensor y = unary_raw("mul_scalar", UnaryOp::identity, a, s, 0.0);
  if (autograd::needs_grad({&a}))
    autograd::record("mul_scalar", {&a}, {&y}, [s](autograd::BackwardCtx& g) { g.set(0, mul(g.grad_out(), s)); });
  return y;
}

// ---- unary --------------------------------------------------------------------------

Tensor neg(const Tensor& x) { return unary("neg", UnaryOp::neg, x); }
Tensor exp(const Tensor& x) { return unary("exp", UnaryOp::exp, x); }
Tensor log(const Tensor& x) { return unary("log", UnaryOp::log, x); }
Tensor sqrt(const Tensor& x) { return unary("sqrt", UnaryOp::sqrt, x); }
Tensor rsqrt(const Tensor& x) { return unary("rsqrt", UnaryOp::rsqrt, x); }
Tensor tanh(const Tensor& x) { return unary("tanh", UnaryOp::tanh, x); }
Tensor sigmoid(const Tensor& x) { return unary("sigmoid", UnaryOp::sigmoid, x); }
Tensor silu(const Tensor& x) { return unary("silu", UnaryOp::silu, x); }
Tensor softplus(const Tensor& x) { return unary("softplus", UnaryOp::softplus, x); }
Tensor gelu(const Tensor& x) { return unary("gelu", UnaryOp::gelu, x); }
Tensor square(const Tensor& x) { return unary("square", UnaryOp::square, x); }
Tensor relu(const Tensor& x) { return unary("relu", UnaryOp::relu, x); }

// ---- where ----------------------------------------------------------------------------

static Tensor where_raw(const Tensor& cond, const Tensor& a, const Tensor& b) {
  ops_detail::check_same_device("where", {&cond, &a, &b});
  ops_detail::check_same_dtype("where", {&cond, &a, &b});
  Dims s = broadcast_shapes(broadcast_shapes(a.shape(), b.shape()), cond.shape());
  Tensor y = Tensor::empty(s, a.dtype(), a.device());
  auto p = make_params(y, {&a, &b, &cond});
  if (a.device().is_cuda()) {
    SSM_CUDA_LAUNCH("where", a.device(), kernels::cuda::where(a.dtype(), p, stream));
    return y;
  }
  dispatch_float("where", a.dtype(), [&]<class T>() { kernels::cpu::where<T>(p); });
  return y;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  Tensor y = where_raw(cond, a, b);
  if (autograd::needs_grad({&a, &b})) {
    Dims sa = a.shape(), sb = b.shape();
    autograd::record("where", {&a, &b}, {&y}, [cond, sa, sb](autograd::BackwardCtx& g) {
      const Tensor& go = g.grad_out();
      Tensor zero = Tensor::zeros(Dims{}, go.dtype(), go.device());
      if (g.needs(0)) g.set(0, sum_to_shape(where_raw(cond, go, zero), sa));
      if (g.needs(1)) g.set(1, sum_to_shape(where_raw(cond, zero, go), sb));
    });
  }
  return y;
}

// ---- in place ---------------------------------------------------------------------------

void add_(const Tensor& dst, const Tensor& src, double alpha) {
  ops_detail::check_same_device("add_", {&dst, &src});
  ops_detail::check_same_dtype("add_", {&dst, &src});
  SSM_CHECK(broadcast_shapes(dst.shape(), src.shape()) == dst.shape(), "add_: cannot add {} into {}",
            src.describe(), dst.describe());
  auto p = make_params(dst, {&src});
  p.alpha = alpha;
  if (dst.device().is_cuda()) {
    ops_detail::check_float("add_", dst);
    SSM_CUDA_LAUNCH("add_", dst.device(), kernels::cuda::axpy(dst.dtype(), p, stream));
    return;
  }
  dispatch_float("add_", dst.dtype(), [&]<class T>() { kernels::cpu::axpy<T>(p); });
}

void fill_(const Tensor& dst, double value) {
  auto p = make_params(dst, {});
  p.alpha = value;
  if (dst.device().is_cuda()) {
    SSM_CUDA_LAUNCH("fill_", dst.device(), kernels::cuda::fill(dst.dtype(), p, stream));
    return;
  }
  switch (dst.dtype()) {
    case DType::f32: kernels::cpu::fill<float>(p); break;
    case DType::f64: kernels::cpu::fill<double>(p); break;
    case DType::i32: kernels::cpu::fill<int32_t>(p); break;
    case DType::i64: kernels::cpu::fill<int64_t>(p); break;
    case DType::bf16: {
      Tensor tmp = Tensor::empty(dst.shape(), DType::f32, dst.device());
      fill_(tmp, value);
      auto q = make_params(dst, {&tmp});
      kernels::cpu::cast(DType::bf16, DType::f32, q);
      break;
    }
  }
}

void mul_(const Tensor& dst, double s) {
  auto p = make_params(dst, {&dst});
  p.alpha = s;
  if (dst.device().is_cuda()) {
    ops_detail::check_float("mul_", dst);
    SSM_CUDA_LAUNCH("mul_", dst.device(), kernels::cuda::unary(dst.dtype(), UnaryOp::identity, p, stream));
    return;
  }
  dispatch_float("mul_", dst.dtype(), [&]<class T>() { kernels::cpu::unary<T>(UnaryOp::identity, p); });
}

}  // namespace ssm
