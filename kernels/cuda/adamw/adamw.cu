// Multi-tensor AdamW and sum of squares (see adamw.h). Block b handles chunk
// b - first_block[k] of tensor k, where first_block is the prefix sum of the chunk counts.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cuda/adamw/adamw.h"
#include "kernels/cuda/common/launch.cuh"
#include "kernels/cuda/common/math.cuh"

namespace ssm::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kChunk = 4096;
constexpr int kTotThreads = 1024;

size_t align(size_t n) { return (n + 255) / 256 * 256; }

struct Layout {
  size_t list = 0, starts = 0, parts = 0, total = 0;
  int64_t blocks = 0;
};

Layout layout(int64_t n, const AdamwTensor* ts) {
  Layout l;
  for (int64_t k = 0; k < n; ++k) l.blocks += (ts[k].numel + kChunk - 1) / kChunk;
  l.list = 0;
  l.starts = align(size_t(n) * sizeof(AdamwTensor));
  l.parts = l.starts + align(size_t(n + 1) * sizeof(int64_t));
  l.total = l.parts + align(size_t(l.blocks) * sizeof(double));
  return l;
}

// Copies the descriptors and the block prefix to the device workspace.
Status upload(int64_t n, const AdamwTensor* ts, const Layout& l, void* ws, cudaStream_t s) {
  std::vector<char> host(l.parts);
  std::copy_n(reinterpret_cast<const char*>(ts), size_t(n) * sizeof(AdamwTensor), host.data());
  int64_t* starts = reinterpret_cast<int64_t*>(host.data() + l.starts);
  starts[0] = 0;
  for (int64_t k = 0; k < n; ++k) starts[k + 1] = starts[k] + (ts[k].numel + kChunk - 1) / kChunk;
  // Pageable source: the call returns once the bytes are staged, so `host` may die after it.
  SSM_KERNEL_TRY_CUDA(cudaMemcpyAsync(ws, host.data(), host.size(), cudaMemcpyHostToDevice, s));
  return Status::success();
}

__device__ __forceinline__ int64_t tensor_of(const int64_t* starts, int64_t n, int64_t b) {
  int64_t lo = 0, hi = n - 1;  // the last k with starts[k] <= b
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (starts[mid] <= b) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    adamw_kernel(const AdamwTensor* ts, const int64_t* starts, int64_t n, T lr, T b1, T b2, T eps, T step_size,
                 T inv_sqrt_bc2) {
  const int64_t b = blockIdx.x, k = tensor_of(starts, n, b);
  const AdamwTensor a = ts[k];
  const int64_t i0 = (b - starts[k]) * kChunk, i1 = min(a.numel, i0 + kChunk);
  T* w = static_cast<T*>(a.param);
  const T* g = static_cast<const T*>(a.grad);
  T* m = static_cast<T*>(a.exp_avg);
  T* v = static_cast<T*>(a.exp_avg_sq);
  const T decay = T(1) - lr * T(a.weight_decay);
  for (int64_t i = i0 + threadIdx.x; i < i1; i += kThreads) {
    const T gi = g[i];
    const T mi = b1 * m[i] + (T(1) - b1) * gi;
    const T vi = b2 * v[i] + (T(1) - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] = w[i] * decay - dmath::div(step_size * mi, dmath::sqrt(vi) * inv_sqrt_bc2 + eps);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    sumsq_kernel(const AdamwTensor* ts, const int64_t* starts, int64_t n, double* parts) {
  __shared__ double red[kThreads / kWarp];
  const int64_t b = blockIdx.x, k = tensor_of(starts, n, b);
  const int64_t i0 = (b - starts[k]) * kChunk, i1 = min(ts[k].numel, i0 + kChunk);
  const T* g = static_cast<const T*>(ts[k].grad);
  double s = 0;
  for (int64_t i = i0 + threadIdx.x; i < i1; i += kThreads) {
    const double x = double(load_acc(g + i));
    s += x * x;
  }
  s = block_sum<kThreads>(s, red);
  if (threadIdx.x == 0) parts[b] = s;
}

__global__ void __launch_bounds__(kTotThreads) combine_kernel(int64_t blocks, const double* parts, double* out) {
  __shared__ double red[kTotThreads / kWarp];
  double s = 0;
  for (int64_t i = threadIdx.x; i < blocks; i += kTotThreads) s += parts[i];
  s = block_sum<kTotThreads>(s, red);
  if (threadIdx.x == 0) *out = s;
}

}  // namespace

size_t multi_tensor_workspace(int64_t n, const AdamwTensor* ts) { return layout(n, ts).total; }

Status adamw_step(DType t, const AdamwParams& p, void* ws, size_t ws_bytes, cudaStream_t s) {
  const Layout l = layout(p.num_tensors, p.tensors);
  if (l.blocks == 0) return Status::success();
  if (ws_bytes < l.total) return {"adamw_step", "workspace too small (use multi_tensor_workspace)", -1};
  Status st = upload(p.num_tensors, p.tensors, l, ws, s);
  if (!st.ok()) return st;
  const AdamwTensor* ts = reinterpret_cast<const AdamwTensor*>(static_cast<char*>(ws) + l.list);
  const int64_t* starts = reinterpret_cast<const int64_t*>(static_cast<char*>(ws) + l.starts);
  const double bc1 = 1.0 - std::pow(p.beta1, double(p.step)), bc2 = 1.0 - std::pow(p.beta2, double(p.step));
  auto launch = [&](auto tag) {
    using T = decltype(tag);
    adamw_kernel<T><<<unsigned(l.blocks), kThreads, 0, s>>>(ts, starts, p.num_tensors, T(p.lr), T(p.beta1),
                                                            T(p.beta2), T(p.eps), T(p.lr / bc1),
                                                            T(1.0 / std::sqrt(bc2)));
    return Status::last_launch();
  };
  switch (t) {
    case DType::f32: return launch(float{});
    case DType::f64: return launch(double{});
    default: return {"dtype dispatch", "AdamW master weights must be f32 or f64", -1};
  }
}

Status sum_squares(DType t, int64_t n, const AdamwTensor* tensors, void* ws, size_t ws_bytes, double* sumsq,
                   cudaStream_t s) {
  const Layout l = layout(n, tensors);
  if (ws_bytes < l.total) return {"sum_squares", "workspace too small (use multi_tensor_workspace)", -1};
  double* parts = reinterpret_cast<double*>(static_cast<char*>(ws) + l.parts);
  if (l.blocks > 0) {
    Status st = upload(n, tensors, l, ws, s);
    if (!st.ok()) return st;
    const AdamwTensor* ts = reinterpret_cast<const AdamwTensor*>(static_cast<char*>(ws) + l.list);
    const int64_t* starts = reinterpret_cast<const int64_t*>(static_cast<char*>(ws) + l.starts);
    auto launch = [&](auto tag) {
      sumsq_kernel<decltype(tag)><<<unsigned(l.blocks), kThreads, 0, s>>>(ts, starts, n, parts);
      return Status::last_launch();
    };
    switch (t) {
      case DType::f32: st = launch(float{}); break;
      case DType::bf16: st = launch(bf16{}); break;
      case DType::f64: st = launch(double{}); break;
      default: return {"dtype dispatch", "sum_squares expects f32, bf16 or f64 gradients", -1};
    }
    if (!st.ok()) return st;
  }
  combine_kernel<<<1, kTotThreads, 0, s>>>(l.blocks, parts, sumsq);
  return Status::last_launch();
}

}  // namespace ssm::kernels::cuda
