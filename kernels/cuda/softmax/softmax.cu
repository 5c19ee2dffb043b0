// Softmax along a strided axis (see softmax.h). Naive loop per line:
//   m = max_k x_k;  s = Σ_k exp(x_k - m);  y_k = exp(x_k - m) / s   (log: x_k - m - log s)
//   backward: dx = y·(dy - Σ dy·y)   (log: dx = dy - exp(y)·Σ dy)
#include <cstdint>
#include <limits>

#include "kernels/cuda/common/launch.cuh"
#include "kernels/cuda/common/math.cuh"
#include "kernels/cuda/softmax/softmax.h"

namespace ssm::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / kWarp;

template <class A>
__device__ __forceinline__ A block_max(A v, A* smem) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
#pragma unroll
  for (int o = kWarp / 2; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  A t = lane < kWarps ? smem[lane] : smem[0];
#pragma unroll
  for (int o = kWarp / 2; o > 0; o >>= 1) t = max(t, __shfl_xor_sync(0xffffffffu, t, o));
  __syncthreads();
  return t;
}

template <class T>
__global__ void __launch_bounds__(kThreads) softmax_fwd_kernel(SoftmaxParams p) {
  using A = acc_t<T>;
  __shared__ A red[kWarps];
  const int64_t l = blockIdx.x, o = l / p.inner, i = l % p.inner, N = p.n;
  const T* x = static_cast<const T*>(p.x) + o * p.x_strides.outer + i * p.x_strides.inner;
  T* y = static_cast<T*>(p.y) + o * p.y_strides.outer + i * p.y_strides.inner;
  const int64_t xs = p.x_strides.axis, ys = p.y_strides.axis;
  A m = -std::numeric_limits<A>::infinity();
  for (int64_t k = threadIdx.x; k < N; k += kThreads) m = max(m, load_acc(x + k * xs));
  m = block_max(m, red);
  A s = 0;
  for (int64_t k = threadIdx.x; k < N; k += kThreads) s += dmath::exp(load_acc(x + k * xs) - m);
  s = block_sum<kThreads>(s, red);
  if (p.log) {
    const A ls = dmath::log(s);
    for (int64_t k = threadIdx.x; k < N; k += kThreads) store_acc(y + k * ys, load_acc(x + k * xs) - m - ls);
  } else {
    const A inv = dmath::rcp(s);
    for (int64_t k = threadIdx.x; k < N; k += kThreads) store_acc(y + k * ys, dmath::exp(load_acc(x + k * xs) - m) * inv);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) softmax_bwd_kernel(SoftmaxParams p) {
  using A = acc_t<T>;
  __shared__ A red[kWarps];
  const int64_t l = blockIdx.x, o = l / p.inner, i = l % p.inner, N = p.n;
  const T* y = static_cast<const T*>(p.y) + o * p.y_strides.outer + i * p.y_strides.inner;
  const T* dy = static_cast<const T*>(p.dy) + o * p.dy_strides.outer + i * p.dy_strides.inner;
  T* dx = static_cast<T*>(p.dx) + o * p.dx_strides.outer + i * p.dx_strides.inner;
  const int64_t ys = p.y_strides.axis, gs = p.dy_strides.axis, ds = p.dx_strides.axis;
  A s = 0;
  for (int64_t k = threadIdx.x; k < N; k += kThreads)
    s += p.log ? load_acc(dy + k * gs) : load_acc(dy + k * gs) * load_acc(y + k * ys);
  s = block_sum<kThreads>(s, red);
  for (int64_t k = threadIdx.x; k < N; k += kThreads) {
    const A g = load_acc(dy + k * gs), yk = load_acc(y + k * ys);
    store_acc(dx + k * ds, p.log ? g - dmath::exp(yk) * s : yk * (g - s));
  }
}

template <class F>
Status dispatch(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::bf16: return f(bf16{});
    case DType::f64: return f(double{});
    default: return {"dtype dispatch", "unsupported dtype for a CUDA softmax (expected f32, bf16 or f64)", -1};
  }
}

}  // namespace

Status softmax_fwd(DType t, const SoftmaxParams& p, cudaStream_t s) {
  if (p.outer * p.inner == 0 || p.n == 0) return Status::success();
  return dispatch(t, [&](auto tag) {
    softmax_fwd_kernel<decltype(tag)><<<unsigned(p.outer * p.inner), kThreads, 0, s>>>(p);
    return Status::last_launch();
  });
}

Status softmax_bwd(DType t, const SoftmaxParams& p, cudaStream_t s) {
  if (p.outer * p.inner == 0 || p.n == 0) return Status::success();
  return dispatch(t, [&](auto tag) {
    softmax_bwd_kernel<decltype(tag)><<<unsigned(p.outer * p.inner), kThreads, 0, s>>>(p);
    return Status::last_launch();
  });
}

}  // namespace ssm::kernels::cuda
