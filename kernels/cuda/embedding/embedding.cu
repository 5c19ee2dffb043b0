// Embedding gather / deterministic scatter-add (see embedding.h). Naive loops:
//   out[n, :] = weight[ids[n], :];   dweight[v, :] = Σ_{n : ids[n] = v, n ascending} dout[n, :]
#include <cub/device/device_radix_sort.cuh>
#include <cstdint>

#include "kernels/cuda/common/launch.cuh"
#include "kernels/cuda/common/math.cuh"
#include "kernels/cuda/embedding/embedding.h"

namespace ssm::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ int64_t id_at(const void* ids, bool i64, int64_t n) {
  return i64 ? static_cast<const int64_t*>(ids)[n] : int64_t(static_cast<const int32_t*>(ids)[n]);
}

template <class T>
__global__ void __launch_bounds__(kThreads) gather_kernel(EmbeddingParams p) {
  const int64_t total = p.num_ids * p.dim;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < total; i += int64_t(gridDim.x) * kThreads) {
    const int64_t n = i / p.dim, d = i - n * p.dim, v = id_at(p.ids, p.ids_i64, n);
    T* o = static_cast<T*>(p.out) + n * p.out_row_stride + d;
    if (v < 0 || v >= p.vocab) store_acc(o, acc_t<T>(__longlong_as_double(0x7ff8000000000000LL)));
    else *o = static_cast<const T*>(p.weight)[v * p.weight_row_stride + d];
  }
}

// keys = id (V for an out-of-range id: sorts last, owned by nobody), values = position.
__global__ void keys_kernel(EmbeddingBwdParams p, int32_t* keys, int32_t* pos) {
  const int64_t n = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (n >= p.num_ids) return;
  const int64_t v = id_at(p.ids, p.ids_i64, n);
  keys[n] = (v < 0 || v >= p.vocab) ? int32_t(p.vocab) : int32_t(v);
  pos[n] = int32_t(n);
}

// Segment bounds of each id in the sorted keys (start = end = 0 for absent ids).
__global__ void bounds_kernel(int64_t n_ids, int64_t vocab, const int32_t* keys, int32_t* start, int32_t* end) {
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= n_ids) return;
  const int32_t k = keys[i];
  if (k >= vocab) return;
  if (i == 0 || keys[i - 1] != k) start[k] = int32_t(i);
  if (i == n_ids - 1 || keys[i + 1] != k) end[k] = int32_t(i + 1);
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    segment_sum_kernel(EmbeddingBwdParams p, const int32_t* pos, const int32_t* start, const int32_t* end) {
  using A = acc_t<T>;
  const int64_t v = blockIdx.x, d = int64_t(blockIdx.y) * kThreads + threadIdx.x;
  if (d >= p.dim) return;
  A s = 0;
  for (int32_t i = start[v]; i < end[v]; ++i)
    s += load_acc(static_cast<const T*>(p.dout) + int64_t(pos[i]) * p.dout_row_stride + d);
  store_acc(static_cast<T*>(p.dweight) + v * p.dim + d, s);
}

int key_bits(int64_t vocab) {
  int b = 1;
  while ((int64_t(1) << b) <= vocab) ++b;  // keys are in [0, V]
  return b;
}

size_t align8(size_t n) { return (n + 255) / 256 * 256; }

size_t cub_bytes(const EmbeddingBwdParams& p) {
  size_t bytes = 0;
  cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr),
                                  static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr),
                                  int(p.num_ids), 0, key_bits(p.vocab));
  return bytes;
}

template <class F>
Status dispatch(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::bf16: return f(bf16{});
    case DType::f64: return f(double{});
    default: return {"dtype dispatch", "unsupported dtype for a CUDA embedding (expected f32, bf16 or f64)", -1};
  }
}

}  // namespace

Status embedding_fwd(DType t, const EmbeddingParams& p, cudaStream_t s) {
  if (p.num_ids * p.dim == 0) return Status::success();
  const unsigned blocks = unsigned(std::min<int64_t>(grid_for(p.num_ids * p.dim, kThreads), 1 << 16));
  return dispatch(t, [&](auto tag) {
    gather_kernel<decltype(tag)><<<blocks, kThreads, 0, s>>>(p);
    return Status::last_launch();
  });
}

size_t embedding_bwd_workspace(const EmbeddingBwdParams& p) {
  const size_t n = align8(size_t(p.num_ids) * 4), v = align8(size_t(p.vocab) * 4);
  return 4 * n + 2 * v + (p.num_ids > 0 ? cub_bytes(p) : 0);
}

Status embedding_bwd(DType t, const EmbeddingBwdParams& p, void* ws, size_t ws_bytes, cudaStream_t s) {
  if (p.vocab * p.dim == 0) return Status::success();
  const size_t n = align8(size_t(p.num_ids) * 4), v = align8(size_t(p.vocab) * 4);
  char* w = static_cast<char*>(ws);
  int32_t* keys_in = reinterpret_cast<int32_t*>(w);
  int32_t* keys_out = reinterpret_cast<int32_t*>(w + n);
  int32_t* pos_in = reinterpret_cast<int32_t*>(w + 2 * n);
  int32_t* pos_out = reinterpret_cast<int32_t*>(w + 3 * n);
  int32_t* start = reinterpret_cast<int32_t*>(w + 4 * n);
  int32_t* end = reinterpret_cast<int32_t*>(w + 4 * n + v);
  SSM_KERNEL_TRY_CUDA(cudaMemsetAsync(start, 0, 2 * v, s));
  if (p.num_ids > 0) {
    keys_kernel<<<grid_for(p.num_ids, kThreads), kThreads, 0, s>>>(p, keys_in, pos_in);
    Status st = Status::last_launch();
    if (!st.ok()) return st;
    size_t tmp = ws_bytes - 4 * n - 2 * v;
    SSM_KERNEL_TRY_CUDA(cub::DeviceRadixSort::SortPairs(w + 4 * n + 2 * v, tmp, keys_in, keys_out, pos_in, pos_out,
                                                        int(p.num_ids), 0, key_bits(p.vocab), s));
    bounds_kernel<<<grid_for(p.num_ids, kThreads), kThreads, 0, s>>>(p.num_ids, p.vocab, keys_out, start, end);
    st = Status::last_launch();
    if (!st.ok()) return st;
  }
  return dispatch(t, [&](auto tag) {
    dim3 grid(unsigned(p.vocab), grid_for(p.dim, kThreads));
    segment_sum_kernel<decltype(tag)><<<grid, kThreads, 0, s>>>(p, pos_out, start, end);
    return Status::last_launch();
  });
}

}  // namespace ssm::kernels::cuda
