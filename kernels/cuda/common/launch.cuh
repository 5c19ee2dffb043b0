// Launch-shape constants and deterministic warp/block reductions for the CUDA kernels.
//
//   float s = warp_sum(x);                          // every lane gets the same sum
//   float t = block_sum<kThreads>(x, smem);         // thread 0 (and all threads) get the block sum
//
// The reductions are fixed butterfly/tree orders: the same inputs in the same launch shape
// always give bit-identical results (no atomics), which is what "deterministic" means here.
#pragma once
#include <cstdint>

namespace ssm::kernels::cuda {

constexpr int kWarp = 32;

template <class A>
__device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over a block of kThreads threads; `smem` holds kThreads / 32 values. Returns the
// total in every thread. Synchronises the block (call it from all threads).
template <int kThreads, class A>
__device__ __forceinline__ A block_sum(A v, A* smem) {
  constexpr int kWarps = kThreads / kWarp;
  int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  v = warp_sum(v);
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  A t = lane < kWarps ? smem[lane] : A(0);
  t = warp_sum(t);
  __syncthreads();  // smem may be reused by the caller right away
  return t;
}

inline unsigned grid_for(int64_t work_items, int64_t items_per_block) {
  return unsigned((work_items + items_per_block - 1) / items_per_block);
}

}  // namespace ssm::kernels::cuda
