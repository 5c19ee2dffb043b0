// Fused cross-entropy (see xent.h). Naive loop per row r with target t_r:
//   lse_r = log Σ_j exp(x_rj);  loss_r = lse_r - x_r,t_r;  correct_r = (first argmax == t_r)
//   loss = Σ_valid loss_r / count;  dx_rj = dloss / count · (exp(x_rj - lse_r) - [j == t_r])
#include <cstdint>
#include <limits>

#include "kernels/cuda/common/launch.cuh"
#include "kernels/cuda/common/math.cuh"
#include "kernels/cuda/xent/xent.h"

namespace ssm::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / kWarp;
constexpr int kTotThreads = 1024;

// Running (max m, Σ exp(x - m)) and the first argmax (value bv at index bi).
template <class A>
struct Online {
  A m, s, bv;
  int64_t bi;
};

template <class A>
__device__ __forceinline__ void merge(Online<A>& a, const Online<A>& b) {
  const A m = max(a.m, b.m);
  if (m != -std::numeric_limits<A>::infinity()) {
    a.s = a.s * dmath::exp(a.m - m) + b.s * dmath::exp(b.m - m);
    a.m = m;
  }
  if (b.bv > a.bv || (b.bv == a.bv && b.bi < a.bi)) {
    a.bv = b.bv;
    a.bi = b.bi;
  }
}

template <class A>
__device__ __forceinline__ void warp_merge(Online<A>& v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o >>= 1) {
    Online<A> w{__shfl_xor_sync(0xffffffffu, v.m, o), __shfl_xor_sync(0xffffffffu, v.s, o),
                __shfl_xor_sync(0xffffffffu, v.bv, o), __shfl_xor_sync(0xffffffffu, v.bi, o)};
    merge(v, w);
  }
}

__device__ __forceinline__ int64_t target_of(const XentParams& p, int64_t r) {
  return p.targets_i64 ? static_cast<const int64_t*>(p.targets)[r] : int64_t(static_cast<const int32_t*>(p.targets)[r]);
}

// Per row: lse[r]; row_loss[r] (0 when ignored); row_flag[r] = valid + 2·correct.
template <class T>
__global__ void __launch_bounds__(kThreads) xent_rows_kernel(XentParams p, double* row_loss, int* row_flag) {
  using A = acc_t<T>;
  __shared__ Online<A> red[kWarps];
  const int64_t r = blockIdx.x, V = p.vocab;
  const T* x = static_cast<const T*>(p.logits) + r * p.logits_row_stride;
  constexpr A kNegInf = -std::numeric_limits<A>::infinity();
  Online<A> o{kNegInf, A(0), kNegInf, std::numeric_limits<int64_t>::max()};
  for (int64_t j = threadIdx.x; j < V; j += kThreads) {
    const A v = load_acc(x + j);
    if (v > o.m) {
      o.s = o.s * dmath::exp(o.m - v) + A(1);
      o.m = v;
    } else {
      o.s += dmath::exp(v - o.m);
    }
    if (v > o.bv) {  // j increases: a tie keeps the earlier index
      o.bv = v;
      o.bi = j;
    }
  }
  warp_merge(o);
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  if (lane == 0) red[warp] = o;
  __syncthreads();
  if (warp != 0) return;
  o = lane < kWarps ? red[lane] : Online<A>{kNegInf, A(0), kNegInf, std::numeric_limits<int64_t>::max()};
  warp_merge(o);
  if (lane != 0) return;
  const A lse = o.m + dmath::log(o.s);
  static_cast<A*>(p.lse)[r] = lse;
  const int64_t t = target_of(p, r);
  if (t == p.ignore_index) {
    row_loss[r] = 0;
    row_flag[r] = 0;
  } else if (t < 0 || t >= V) {  // the op validates targets only when it copies stats to the host
    row_loss[r] = __longlong_as_double(0x7ff8000000000000LL);
    row_flag[r] = 1;
  } else {
    row_loss[r] = double(lse - load_acc(x + t));
    row_flag[r] = 1 + (o.bi == t ? 2 : 0);
  }
}

// One block: totals = {Σ row_loss, count, correct} in a fixed order; loss = Σ / count.
template <class T>
__global__ void __launch_bounds__(kTotThreads)
    xent_totals_kernel(int64_t rows, const double* row_loss, const int* row_flag, double* totals, T* loss) {
  __shared__ double red[kTotThreads / kWarp];
  double s = 0, n = 0, c = 0;
  for (int64_t r = threadIdx.x; r < rows; r += kTotThreads) {
    s += row_loss[r];
    n += row_flag[r] & 1;
    c += row_flag[r] >> 1;
  }
  s = block_sum<kTotThreads>(s, red);
  n = block_sum<kTotThreads>(n, red);
  c = block_sum<kTotThreads>(c, red);
  if (threadIdx.x == 0) {
    totals[0] = s;
    totals[1] = n;
    totals[2] = c;
    store_acc(loss, acc_t<T>(n > 0 ? s / n : 0.0));
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) xent_bwd_kernel(XentBwdCuda b) {
  using A = acc_t<T>;
  const XentParams& p = b.p;
  const int64_t r = blockIdx.x, V = p.vocab;  // rows on x: up to 2^31 - 1 of them
  const int64_t j = int64_t(blockIdx.y) * kThreads + threadIdx.x;
  if (j >= V) return;
  const int64_t t = target_of(p, r);
  T* out = static_cast<T*>(p.dlogits) + r * p.dlogits_row_stride + j;
  const double count = b.totals[1];
  if (t == p.ignore_index || count == 0) {
    store_acc(out, A(0));
    return;
  }
  const A scale = A(double(load_acc(static_cast<const T*>(b.dloss))) / count);
  const A lse = static_cast<const A*>(p.lse)[r];
  const A pj = dmath::exp(load_acc(static_cast<const T*>(p.logits) + r * p.logits_row_stride + j) - lse);
  store_acc(out, scale * (j == t ? pj - A(1) : pj));
}

template <class F>
Status dispatch(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::bf16: return f(bf16{});
    case DType::f64: return f(double{});
    default: return {"dtype dispatch", "unsupported dtype for CUDA cross-entropy (expected f32, bf16 or f64)", -1};
  }
}

}  // namespace

size_t xent_fwd_workspace(const XentParams& p) { return size_t(p.rows) * (sizeof(double) + sizeof(int)); }

Status xent_fwd(DType t, const XentParams& p, void* ws, double* totals, void* loss, cudaStream_t s) {
  return dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    double* row_loss = static_cast<double*>(ws);
    int* row_flag = reinterpret_cast<int*>(row_loss + p.rows);
    if (p.rows > 0) {
      xent_rows_kernel<T><<<unsigned(p.rows), kThreads, 0, s>>>(p, row_loss, row_flag);
      Status st = Status::last_launch();
      if (!st.ok()) return st;
    }
    xent_totals_kernel<T><<<1, kTotThreads, 0, s>>>(p.rows, row_loss, row_flag, totals, static_cast<T*>(loss));
    return Status::last_launch();
  });
}

Status xent_bwd(DType t, const XentBwdCuda& b, cudaStream_t s) {
  if (b.p.rows == 0) return Status::success();
  return dispatch(t, [&](auto tag) {
    dim3 grid(unsigned(b.p.rows), grid_for(b.p.vocab, kThreads));
    xent_bwd_kernel<decltype(tag)><<<grid, kThreads, 0, s>>>(b);
    return Status::last_launch();
  });
}

}  // namespace ssm::kernels::cuda
