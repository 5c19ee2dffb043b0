// Row reductions (see reduce.h). The naive loop each kernel replaces:
//   for r: out[r] = scale * (sum_j in[r, j]   or   max_j in[r, j], argmax[r] = first j of the max)
// Max semantics: NaN beats every number (so NaN propagates, unlike a bare `>` scan) and
// ties go to the smallest index; that order is associative, so any tree gives the first
// maximum exactly.
#include <cstdint>
#include <limits>

#include "kernels/cuda/common/launch.cuh"
#include "kernels/cuda/common/math.cuh"
#include "kernels/cuda/reduce/reduce.h"

namespace ssm::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / kWarp;
constexpr int64_t kWarpRowMaxCols = 1024;  // up to here a warp per row
constexpr int64_t kChunkCols = 16384;      // columns per block when long rows are split
constexpr int64_t kSplitBelowRows = 1024;  // split only when rows alone cannot fill the GPU

// Bytes of the partial values in the workspace, rounded so the int64 indices after them align.
size_t values_bytes(int64_t n, size_t acc_size) { return (size_t(n) * acc_size + 7) / 8 * 8; }

int64_t num_chunks(const ReduceParams& p) {
  if (p.cols <= kWarpRowMaxCols || p.rows >= kSplitBelowRows || p.cols <= kChunkCols) return 1;
  return (p.cols + kChunkCols - 1) / kChunkCols;
}

template <class A>
__device__ __forceinline__ A lowest() {
  return -std::numeric_limits<A>::infinity();
}
constexpr int64_t kNoIndex = std::numeric_limits<int64_t>::max();

// Is (v, i) preferred over (bv, bi)? NaN first, then larger, then smaller index.
template <class A>
__device__ __forceinline__ bool better(A v, int64_t i, A bv, int64_t bi) {
  bool vn = v != v, bn = bv != bv;
  if (vn || bn) return vn && (!bn || i < bi);
  return v > bv || (v == bv && i < bi);
}

template <class A>
__device__ __forceinline__ void warp_best(A& v, int64_t& i) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o >>= 1) {
    A ov = __shfl_xor_sync(0xffffffffu, v, o);
    int64_t oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (better(ov, oi, v, i)) {
      v = ov;
      i = oi;
    }
  }
}

template <class T>
__device__ __forceinline__ void write_result(ReduceOp op, acc_t<T> v, int64_t i, acc_t<T> scale, T* out,
                                             int64_t* argmax, int64_t r) {
  store_acc(out + r, scale * v);
  if (op == ReduceOp::max && argmax) argmax[r] = i;
}

// One warp per row. kPartials: the row is a list of chunk partials (value + index) from
// block_rows_kernel instead of raw input.
template <class T, bool kPartials>
__global__ void __launch_bounds__(kThreads)
    warp_rows_kernel(ReduceOp op, const void* in, const int64_t* in_idx, int64_t rows, int64_t cols,
                     acc_t<T> scale, T* out, int64_t* argmax) {
  using A = acc_t<T>;
  const int lane = threadIdx.x % kWarp;
  const int64_t r = int64_t(blockIdx.x) * kWarps + threadIdx.x / kWarp;
  if (r >= rows) return;  // uniform per warp
  auto value = [&](int64_t j) -> A {
    if constexpr (kPartials) return static_cast<const A*>(in)[r * cols + j];
    else return load_acc(static_cast<const T*>(in) + r * cols + j);
  };
  if (op == ReduceOp::sum) {
    A acc = 0;
    for (int64_t j = lane; j < cols; j += kWarp) acc += value(j);
    acc = warp_sum(acc);
    if (lane == 0) write_result<T>(op, acc, 0, scale, out, argmax, r);
    return;
  }
  A bv = lowest<A>();
  int64_t bi = kNoIndex;
  for (int64_t j = lane; j < cols; j += kWarp) {
    A v = value(j);
    int64_t i = kPartials ? in_idx[r * cols + j] : j;
    if (better(v, i, bv, bi)) {
      bv = v;
      bi = i;
    }
  }
  warp_best(bv, bi);
  if (lane == 0) write_result<T>(op, bv, bi, scale, out, argmax, r);
}

// One block per (row, chunk). With a single chunk it writes the result, else a partial.
template <class T>
__global__ void __launch_bounds__(kThreads)
    block_rows_kernel(ReduceOp op, const T* in, int64_t cols, int64_t chunks, acc_t<T> scale, T* out,
                      int64_t* argmax, acc_t<T>* part_v, int64_t* part_i) {
  using A = acc_t<T>;
  __shared__ A sv[kWarps];
  __shared__ int64_t si[kWarps];
  const int64_t b = blockIdx.x, r = b / chunks, c = b % chunks;
  const int64_t j0 = c * kChunkCols, j1 = chunks > 1 ? min(cols, j0 + kChunkCols) : cols;
  const T* row = in + r * cols;
  A v;
  int64_t vi = 0;
  if (op == ReduceOp::sum) {
    A acc = 0;
    for (int64_t j = j0 + threadIdx.x; j < j1; j += kThreads) acc += load_acc(row + j);
    v = block_sum<kThreads>(acc, sv);
  } else {
    A bv = lowest<A>();
    int64_t bi = kNoIndex;
    for (int64_t j = j0 + threadIdx.x; j < j1; j += kThreads) {
      A x = load_acc(row + j);
      if (better(x, j, bv, bi)) {
        bv = x;
        bi = j;
      }
    }
    warp_best(bv, bi);
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    if (lane == 0) {
      sv[warp] = bv;
      si[warp] = bi;
    }
    __syncthreads();
    bv = lane < kWarps ? sv[lane] : lowest<A>();
    bi = lane < kWarps ? si[lane] : kNoIndex;
    warp_best(bv, bi);
    v = bv;
    vi = bi;
  }
  if (threadIdx.x != 0) return;
  if (chunks == 1) {
    write_result<T>(op, v, vi, scale, out, argmax, r);
  } else {
    part_v[b] = v;
    part_i[b] = vi;
  }
}

template <class T>
__global__ void argmax_scatter_kernel(int64_t rows, int64_t cols, const T* go, const int64_t* am, T* gi) {
  const int64_t n = rows * cols;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = i / cols, j = i - r * cols;
    gi[i] = j == am[r] ? go[r] : T(0.f);
  }
}

template <class T>
Status reduce_typed(ReduceOp op, const ReduceParams& p, void* workspace, cudaStream_t s) {
  using A = acc_t<T>;
  const T* in = static_cast<const T*>(p.in);
  T* out = static_cast<T*>(p.out);
  const A scale = A(p.scale);
  if (p.cols <= kWarpRowMaxCols) {
    warp_rows_kernel<T, false><<<grid_for(p.rows, kWarps), kThreads, 0, s>>>(op, in, nullptr, p.rows, p.cols,
                                                                            scale, out, p.argmax);
    return Status::last_launch();
  }
  const int64_t chunks = num_chunks(p);
  A* part_v = chunks > 1 ? static_cast<A*>(workspace) : nullptr;  // (rows, chunks) partials
  int64_t* part_i =
      chunks > 1 ? reinterpret_cast<int64_t*>(static_cast<char*>(workspace) + values_bytes(p.rows * chunks, sizeof(A)))
                 : nullptr;
  block_rows_kernel<T><<<unsigned(p.rows * chunks), kThreads, 0, s>>>(op, in, p.cols, chunks, scale, out, p.argmax,
                                                                      part_v, part_i);
  Status st = Status::last_launch();
  if (!st.ok() || chunks == 1) return st;
  // Partials are unscaled (the first pass applies `scale` only when it writes the result).
  warp_rows_kernel<T, true><<<grid_for(p.rows, kWarps), kThreads, 0, s>>>(op, part_v, part_i, p.rows, chunks,
                                                                         scale, out, p.argmax);
  return Status::last_launch();
}

template <class F>
Status dispatch(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::bf16: return f(bf16{});
    case DType::f64: return f(double{});
    default: return {"dtype dispatch", "unsupported dtype for a CUDA reduction (expected f32, bf16 or f64)", -1};
  }
}

}  // namespace

size_t reduce_rows_workspace(DType t, const ReduceParams& p) {
  int64_t chunks = num_chunks(p);
  if (chunks == 1) return 0;
  size_t acc = t == DType::f64 ? sizeof(double) : sizeof(float);
  return values_bytes(p.rows * chunks, acc) + size_t(p.rows * chunks) * sizeof(int64_t);
}

Status reduce_rows(DType t, ReduceOp op, const ReduceParams& p, void* workspace, cudaStream_t s) {
  if (p.rows == 0) return Status::success();
  return dispatch(t, [&](auto tag) { return reduce_typed<decltype(tag)>(op, p, workspace, s); });
}

Status argmax_scatter(DType t, const ArgmaxScatterParams& p, cudaStream_t s) {
  if (p.rows == 0 || p.cols == 0) return Status::success();
  unsigned blocks = unsigned(std::min<int64_t>(grid_for(p.rows * p.cols, kThreads), 65536));
  return dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    argmax_scatter_kernel<T><<<blocks, kThreads, 0, s>>>(p.rows, p.cols, static_cast<const T*>(p.grad_out), p.argmax,
                                                        static_cast<T*>(p.grad_in));
    return Status::last_launch();
  });
}

}  // namespace ssm::kernels::cuda
