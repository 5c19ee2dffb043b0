// Device math shared by the CUDA kernels: the compute type of each storage dtype and
// accurate single-precision functions.
//
//   using Acc = acc_t<bf16>;             // float: bf16 is loaded, computed in fp32, rounded on store
//   Acc y = dmath::exp(Acc(x));          // within ~2 ulp for every x, also under --use_fast_math
//
// Why not plain expf/logf: kernels/ is compiled with --use_fast_math, which turns expf,
// logf, powf and `/` into hardware approximations (__expf's error grows with |x|,
// __logf has 2^-21 absolute error near 1, where log itself is ~0). The CPU reference is
// the oracle, so these functions range-reduce first or use the explicitly rounded
// intrinsics (__fdiv_rn, __fsqrt_rn), which the flag leaves alone. Double precision is
// unaffected by the flag and uses the library functions.
#pragma once
#include <cstdint>

#include "kernels/common/dtype.h"

namespace ssm::kernels::cuda {

template <class T> struct AccOf { using type = float; };   // f32 and bf16 compute in fp32
template <> struct AccOf<double> { using type = double; };
template <class T> using acc_t = typename AccOf<T>::type;

// Storage <-> compute conversions (bf16 rounds to nearest even, like the CPU kernels).
template <class T> __device__ __forceinline__ acc_t<T> load_acc(const T* p) { return acc_t<T>(*p); }
template <> __device__ __forceinline__ float load_acc<bf16>(const bf16* p) { return bf16::to_float(p->bits); }
template <class T> __device__ __forceinline__ void store_acc(T* p, acc_t<T> v) { *p = T(v); }
template <> __device__ __forceinline__ void store_acc<bf16>(bf16* p, float v) { p->bits = bf16::from_float(v); }

namespace dmath {

// ---- single precision, accurate under --use_fast_math --------------------------------------

__device__ __forceinline__ float div(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ float rcp(float a) { return __frcp_rn(a); }
__device__ __forceinline__ float sqrt(float a) { return __fsqrt_rn(a); }

// exp(x) = 2^k · exp(r), r = x - k·ln2 in [-ln2/2, ln2/2] (Cody-Waite split of ln2, exact
// for |k| < 2^9), where __expf is accurate to 2 ulp. 2^k (k in [-150, 128], more than one
// float exponent holds) is applied as two exact power-of-two factors: cheaper than ldexpf.
__device__ __forceinline__ float exp(float x) {
  if (x != x) return x;
  if (x > 88.8f) return __int_as_float(0x7f800000);  // +inf
  if (x < -104.f) return 0.f;
  float k = rintf(x * 1.44269504088896341f);
  float r = fmaf(k, -0.693145751953125f, x);
  r = fmaf(k, -1.428606765330187e-06f, r);
  int k1 = int(k) / 2, k2 = int(k) - k1;
  return __expf(r) * __int_as_float((k1 + 127) << 23) * __int_as_float((k2 + 127) << 23);
}

// log1pf is accurate near 1 (where log is small); elsewhere __logf is within 3 ulp.
__device__ __forceinline__ float log(float x) { return (x > 0.5f && x < 2.f) ? log1pf(x - 1.f) : __logf(x); }

// tanh = expm1(2x) / (expm1(2x) + 2): no cancellation near 0; saturates beyond |x| = 9.
__device__ __forceinline__ float tanh(float x) {
  float ax = fabsf(x);
  if (ax > 9.f) return copysignf(1.f, x);
  float e = expm1f(2.f * ax);
  return copysignf(__fdiv_rn(e, e + 2.f), x);
}

__device__ __forceinline__ float erf(float x) { return erff(x); }
__device__ __forceinline__ float log1p(float x) { return log1pf(x); }
__device__ __forceinline__ float pow(float a, float b) { return float(::pow(double(a), double(b))); }

// ---- double precision: library functions (not touched by the fast-math flag) ------------

__device__ __forceinline__ double div(double a, double b) { return a / b; }
__device__ __forceinline__ double rcp(double a) { return 1.0 / a; }
__device__ __forceinline__ double sqrt(double a) { return ::sqrt(a); }
__device__ __forceinline__ double exp(double x) { return ::exp(x); }
__device__ __forceinline__ double log(double x) { return ::log(x); }
__device__ __forceinline__ double tanh(double x) { return ::tanh(x); }
__device__ __forceinline__ double erf(double x) { return ::erf(x); }
__device__ __forceinline__ double log1p(double x) { return ::log1p(x); }
__device__ __forceinline__ double pow(double a, double b) { return ::pow(a, b); }

template <class A> __device__ __forceinline__ A sigmoid(A x) { return rcp(A(1) + exp(-x)); }
template <class A> __device__ __forceinline__ A softplus(A x) { return x > A(20) ? x : log1p(exp(x)); }

}  // namespace dmath
}  // namespace ssm::kernels::cuda
