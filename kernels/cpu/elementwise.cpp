#include "kernels/cpu/elementwise.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace ssm::kernels::cpu {
namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per task; fixed so results never depend on threads

// Calls f(i_out, i_a, i_b, i_c) (element offsets) for every element. The innermost axis is
// a tight loop; the outer axes are enumerated per row, rows split across threads.
template <class F>
void for_each(const ElementwiseParams& p, F&& f) {
  int nd = p.ndim;
  if (nd == 0) {
    f(0, 0, 0, 0);
    return;
  }
  int64_t inner = p.shape[nd - 1];
  int64_t rows = 1;
  for (int d = 0; d < nd - 1; ++d) rows *= p.shape[d];
  if (inner == 0 || rows == 0) return;
  const int64_t so = p.out.strides[nd - 1], sa = p.a.strides[nd - 1], sb = p.b.strides[nd - 1],
                sc = p.c.strides[nd - 1];
  auto row_offsets = [&](int64_t r, int64_t* off) {
    off[0] = off[1] = off[2] = off[3] = 0;
    for (int d = nd - 2; d >= 0; --d) {
      int64_t i = r % p.shape[d];
      r /= p.shape[d];
      off[0] += i * p.out.strides[d];
      off[1] += i * p.a.strides[d];
      off[2] += i * p.b.strides[d];
      off[3] += i * p.c.strides[d];
    }
  };
  // Split long rows into chunks so a 1-row tensor still parallelises.
  int64_t chunks_per_row = CEIL_DIV(inner, kGrain);
  int64_t tasks = rows * chunks_per_row;
  int64_t total = rows * inner;
#pragma omp parallel for schedule(static) if (total > kGrain)
  for (int64_t t = 0; t < tasks; ++t) {
    int64_t r = t / chunks_per_row, j0 = (t % chunks_per_row) * kGrain;
    int64_t j1 = std::min(inner, j0 + kGrain);
    int64_t off[4];
    row_offsets(r, off);
    for (int64_t j = j0; j < j1; ++j) f(off[0] + j * so, off[1] + j * sa, off[2] + j * sb, off[3] + j * sc);
  }
}

template <class T>
T softplus(T x) {
  return x > T(20) ? x : std::log1p(std::exp(x));
}
template <class T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

template <class T>
T apply_unary(UnaryOp op, T x) {
  switch (op) {
    case UnaryOp::identity: return x;
    case UnaryOp::neg: return -x;
    case UnaryOp::exp: return std::exp(x);
    case UnaryOp::log: return std::log(x);
    case UnaryOp::sqrt: return std::sqrt(x);
    case UnaryOp::rsqrt: return T(1) / std::sqrt(x);
    case UnaryOp::tanh: return std::tanh(x);
    case UnaryOp::sigmoid: return sigmoid(x);
    case UnaryOp::silu: return x * sigmoid(x);
    case UnaryOp::softplus: return softplus(x);
    case UnaryOp::gelu: return T(0.5) * x * (T(1) + std::erf(x * T(kInvSqrt2)));  // exact (erf) GELU
    case UnaryOp::abs: return std::abs(x);
    case UnaryOp::square: return x * x;
    case UnaryOp::reciprocal: return T(1) / x;
    case UnaryOp::relu: return x > T(0) ? x : T(0);
  }
  return x;
}

// d op(x) / dx
template <class T>
T derivative(UnaryOp op, T x) {
  switch (op) {
    case UnaryOp::identity: return T(1);
    case UnaryOp::neg: return T(-1);
    case UnaryOp::exp: return std::exp(x);
    case UnaryOp::log: return T(1) / x;
    case UnaryOp::sqrt: return T(0.5) / std::sqrt(x);
    case UnaryOp::rsqrt: return T(-0.5) / (x * std::sqrt(x));
    case UnaryOp::tanh: {
      T t = std::tanh(x);
      return T(1) - t * t;
    }
    case UnaryOp::sigmoid: {
      T s = sigmoid(x);
      return s * (T(1) - s);
    }
    case UnaryOp::silu: {
      T s = sigmoid(x);
      return s * (T(1) + x * (T(1) - s));
    }
    case UnaryOp::softplus: return sigmoid(x);
    case UnaryOp::gelu: {
      T cdf = T(0.5) * (T(1) + std::erf(x * T(kInvSqrt2)));
      return cdf + x * T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
    }
    case UnaryOp::abs: return x > T(0) ? T(1) : x < T(0) ? T(-1) : T(0);
    case UnaryOp::square: return T(2) * x;
    case UnaryOp::reciprocal: return T(-1) / (x * x);
    case UnaryOp::relu: return x > T(0) ? T(1) : T(0);
  }
  return T(0);
}

template <class T>
T apply_binary(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
    case BinaryOp::maximum: return a > b ? a : b;
    case BinaryOp::minimum: return a < b ? a : b;
    case BinaryOp::pow: return std::pow(a, b);
  }
  return a;
}

template <class D, class S>
void cast_typed(const ElementwiseParams& p) {
  D* o = static_cast<D*>(p.out.data);
  const S* a = static_cast<const S*>(p.a.data);
  for_each(p, [&](int64_t io, int64_t ia, int64_t, int64_t) {
    if constexpr (std::is_same_v<D, bf16>) {
      o[io] = bf16(float(a[ia]));
    } else if constexpr (std::is_same_v<S, bf16>) {
      o[io] = D(float(a[ia]));
    } else {
      o[io] = D(a[ia]);
    }
  });
}

template <class D>
void cast_from(DType src, const ElementwiseParams& p) {
  switch (src) {
    case DType::f32: return cast_typed<D, float>(p);
    case DType::f64: return cast_typed<D, double>(p);
    case DType::bf16: return cast_typed<D, bf16>(p);
    case DType::i32: return cast_typed<D, int32_t>(p);
    case DType::i64: return cast_typed<D, int64_t>(p);
  }
}

}  // namespace

template <class T>
void unary(UnaryOp op, const ElementwiseParams& p) {
  T* o = static_cast<T*>(p.out.data);
  const T* a = static_cast<const T*>(p.a.data);
  T alpha = T(p.alpha), beta = T(p.beta);
  for_each(p, [&](int64_t io, int64_t ia, int64_t, int64_t) { o[io] = alpha * apply_unary(op, a[ia]) + beta; });
}

template <class T>
void binary(BinaryOp op, const ElementwiseParams& p) {
  T* o = static_cast<T*>(p.out.data);
  const T* a = static_cast<const T*>(p.a.data);
  const T* b = static_cast<const T*>(p.b.data);
  for_each(p, [&](int64_t io, int64_t ia, int64_t ib, int64_t) { o[io] = apply_binary(op, a[ia], b[ib]); });
}

template <class T>
void unary_bwd(UnaryOp op, const ElementwiseParams& p) {
  T* o = static_cast<T*>(p.out.data);
  const T* a = static_cast<const T*>(p.a.data);
  const T* b = static_cast<const T*>(p.b.data);
  for_each(p, [&](int64_t io, int64_t ia, int64_t ib, int64_t) { o[io] = b[ib] * derivative(op, a[ia]); });
}

template <class T>
void where(const ElementwiseParams& p) {
  T* o = static_cast<T*>(p.out.data);
  const T* a = static_cast<const T*>(p.a.data);
  const T* b = static_cast<const T*>(p.b.data);
  const T* c = static_cast<const T*>(p.c.data);
  for_each(p, [&](int64_t io, int64_t ia, int64_t ib, int64_t ic) { o[io] = c[ic] != T(0) ? a[ia] : b[ib]; });
}

template <class T>
void fill(const ElementwiseParams& p) {
  T* o = static_cast<T*>(p.out.data);
  T v = T(p.alpha);
  for_each(p, [&](int64_t io, int64_t, int64_t, int64_t) { o[io] = v; });
}

template <class T>
void axpy(const ElementwiseParams& p) {
  T* o = static_cast<T*>(p.out.data);
  const T* a = static_cast<const T*>(p.a.data);
  T alpha = T(p.alpha);
  for_each(p, [&](int64_t io, int64_t ia, int64_t, int64_t) { o[io] += alpha * a[ia]; });
}

void cast(DType dst, DType src, const ElementwiseParams& p) {
  switch (dst) {
    case DType::f32: return cast_from<float>(src, p);
    case DType::f64: return cast_from<double>(src, p);
    case DType::bf16: return cast_from<bf16>(src, p);
    case DType::i32: return cast_from<int32_t>(src, p);
    case DType::i64: return cast_from<int64_t>(src, p);
  }
}

#define SSM_INSTANTIATE(T)                                          \
  template void unary<T>(UnaryOp, const ElementwiseParams&);        \
  template void binary<T>(BinaryOp, const ElementwiseParams&);      \
  template void unary_bwd<T>(UnaryOp, const ElementwiseParams&);    \
  template void where<T>(const ElementwiseParams&);                 \
  template void fill<T>(const ElementwiseParams&);                  \
  template void axpy<T>(const ElementwiseParams&);
SSM_INSTANTIATE(float)
SSM_INSTANTIATE(double)
#undef SSM_INSTANTIATE
template void fill<int32_t>(const ElementwiseParams&);
template void fill<int64_t>(const ElementwiseParams&);

}  // namespace ssm::kernels::cpu
