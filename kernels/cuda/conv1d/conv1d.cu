// Causal depthwise conv1d (see conv1d.h). The naive loops the kernels replace, per row (b, d)
// with xpad = [initial_states (K-1) | x (L)] and same(i, j) = "xpad entries i, j are in one
// document" (always true without seq_idx):
//   pre[t] = bias + Σ_k [same(t+k, pad+t)] w[k]·xpad[t+k];   out[t] = act(pre[t])
//   dpre[t] = dout[t]·act'(pre[t]);   dxpad[i] = Σ_{t+k=i} [same] w[k]·dpre[t] (+ dfinal)
//   dw[k] = Σ_{b,t} [same] dpre[t]·xpad[t+k];   dbias = Σ_{b,t} dpre[t]
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/common/launch.cuh"
#include "kernels/cuda/common/math.cuh"
#include "kernels/cuda/conv1d/conv1d.h"

namespace ssm::kernels::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kTile = kThreads;  // outputs per block, one per thread
constexpr int kPadMax = kConv1dMaxWidth - 1;
constexpr int kParts = kConv1dMaxWidth + 1;  // dweight[0..K) and dbias per partial

int64_t tiles(int64_t L) { return L > 0 ? (L + kTile - 1) / kTile : 1; }

// xpad at x position s (s < 0: the initial state, zeros without one; s >= L: zero, unused).
template <class T>
__device__ __forceinline__ acc_t<T> load_xpad(const Conv1dParams& p, int64_t b, int64_t d, int64_t s, int pad) {
  if (s < 0) {
    if (!p.initial_states) return acc_t<T>(0);
    return load_acc(static_cast<const T*>(p.initial_states) + b * p.initial_states_batch_stride +
                    d * p.initial_states_d_stride + (pad + s) * p.initial_states_k_stride);
  }
  if (s >= p.seqlen) return acc_t<T>(0);
  return load_acc(static_cast<const T*>(p.x) + b * p.x_batch_stride + d * p.x_d_stride + s * p.x_l_stride);
}

// Document of x position s; the initial state belongs to the first document. -1 past the end.
__device__ __forceinline__ int32_t doc_at(const Conv1dParams& p, int64_t b, int64_t s) {
  if (!p.seq_idx || s >= p.seqlen) return -1;
  return p.seq_idx[b * p.seq_idx_batch_stride + (s < 0 ? 0 : s) * p.seq_idx_l_stride];
}

template <class T, int kK>
__device__ __forceinline__ void load_weights(const Conv1dParams& p, int64_t d, int K, acc_t<T>* w) {
#pragma unroll
  for (int k = 0; k < kConv1dMaxWidth; ++k)
    w[k] = k < K ? load_acc(static_cast<const T*>(p.weight) + d * p.weight_d_stride + k * p.weight_k_stride)
                 : acc_t<T>(0);
}

// Pre-activation of the output whose window starts at xs[i] (its own input is xs[i + pad]).
template <class A, int kK>
__device__ __forceinline__ A pre_act(const A* w, A bias, const A* xs, const int32_t* ds, bool seq, int i, int K) {
  A acc = bias;
  const int pad = K - 1;
#pragma unroll
  for (int k = 0; k < (kK ? kK : kConv1dMaxWidth); ++k) {
    if (k < K && (!seq || ds[i + k] == ds[i + pad])) acc += w[k] * xs[i + k];
  }
  return acc;
}

// Block (row bd = b·D + d, tile y): xs/ds hold x positions t0 - pad .. t0 + kTile - 1.
template <class T, int kK>
__global__ void __launch_bounds__(kThreads) fwd_kernel(Conv1dParams p) {
  using A = acc_t<T>;
  __shared__ A xs[kTile + kPadMax];
  __shared__ int32_t ds[kTile + kPadMax];
  const int K = kK ? kK : int(p.width), pad = K - 1;
  const int64_t D = p.dim, L = p.seqlen, bd = blockIdx.x, b = bd / D, d = bd % D;
  const int64_t t0 = int64_t(blockIdx.y) * kTile;
  const bool seq = p.seq_idx != nullptr;
  for (int i = threadIdx.x; i < kTile + pad; i += kThreads) {
    xs[i] = load_xpad<T>(p, b, d, t0 - pad + i, pad);
    if (seq) ds[i] = doc_at(p, b, t0 - pad + i);
  }
  __syncthreads();
  A w[kConv1dMaxWidth];
  load_weights<T, kK>(p, d, K, w);
  const A bias = p.bias ? load_acc(static_cast<const T*>(p.bias) + d) : A(0);
  const int i = threadIdx.x;
  const int64_t t = t0 + i;
  if (t < L) {
    A v = pre_act<A, kK>(w, bias, xs, ds, seq, i, K);
    if (p.silu) v *= dmath::sigmoid(v);
    store_acc(static_cast<T*>(p.out) + b * p.out_batch_stride + d * p.out_d_stride + t * p.out_l_stride, v);
  }
  // final_states[j] = x position L - pad + j, which the last tile (or the only one, L = 0) holds.
  if (p.final_states && blockIdx.y == gridDim.y - 1 && i < pad) {
    const int64_t s = L - pad + i;
    A v = xs[s - (t0 - pad)];
    if (seq && doc_at(p, b, s) != doc_at(p, b, L - 1)) v = A(0);
    store_acc(static_cast<T*>(p.final_states) + b * p.final_states_batch_stride + d * p.final_states_d_stride +
                  i * p.final_states_k_stride,
              v);
  }
}

// Block (row bd, tile y): xs/ds hold x positions t0 - pad .. t0 + kTile + pad - 1, gs the
// pre-activation gradient at t0 .. t0 + kTile + pad - 1 (zero past L). part: (D, B·tiles, kParts).
template <class T, int kK>
__global__ void __launch_bounds__(kThreads) bwd_kernel(Conv1dBwdParams p, acc_t<T>* part) {
  using A = acc_t<T>;
  __shared__ A xs[kTile + 2 * kPadMax];
  __shared__ int32_t ds[kTile + 2 * kPadMax];
  __shared__ A gs[kTile + kPadMax];
  __shared__ A red[kThreads / kWarp];
  const int K = kK ? kK : int(p.width), pad = K - 1;
  const int64_t D = p.dim, L = p.seqlen, bd = blockIdx.x, b = bd / D, d = bd % D;
  const int64_t t0 = int64_t(blockIdx.y) * kTile;
  const bool seq = p.seq_idx != nullptr;
  const Conv1dParams& fp = p;
  for (int i = threadIdx.x; i < kTile + 2 * pad; i += kThreads) {
    xs[i] = load_xpad<T>(fp, b, d, t0 - pad + i, pad);
    if (seq) ds[i] = doc_at(fp, b, t0 - pad + i);
  }
  A w[kConv1dMaxWidth];
  load_weights<T, kK>(fp, d, K, w);
  const A bias = p.bias ? load_acc(static_cast<const T*>(p.bias) + d) : A(0);
  __syncthreads();
  const T* dout = static_cast<const T*>(p.dout) + b * p.dout_batch_stride + d * p.dout_d_stride;
  for (int i = threadIdx.x; i < kTile + pad; i += kThreads) {
    const int64_t t = t0 + i;
    A g = A(0);
    if (t < L) {
      g = load_acc(dout + t * p.dout_l_stride);
      if (p.silu) {
        const A v = pre_act<A, kK>(w, bias, xs, ds, seq, i, K);
        const A s = dmath::sigmoid(v);
        g *= s * (A(1) + v * (A(1) - s));
      }
    }
    gs[i] = g;
  }
  __syncthreads();
  const int i = threadIdx.x;
  const int64_t s = t0 + i;  // x position of this thread's dx; output t = s + pad - k reads it via tap k
  const T* dfin = static_cast<const T*>(p.dfinal_states);
  const int32_t last_doc = (seq && L > 0) ? doc_at(fp, b, L - 1) : -1;
  if (p.dx && s < L) {
    A acc = A(0);
#pragma unroll
    for (int k = 0; k < (kK ? kK : kConv1dMaxWidth); ++k) {
      if (k < K && (!seq || ds[i + pad] == ds[i + 2 * pad - k])) acc += w[k] * gs[i + pad - k];
    }
    if (dfin && s >= L - pad && (!seq || ds[i + pad] == last_doc))
      acc += load_acc(dfin + b * p.dfinal_states_batch_stride + d * p.dfinal_states_d_stride +
                      (pad + s - L) * p.dfinal_states_k_stride);
    store_acc(static_cast<T*>(p.dx) + b * p.dx_batch_stride + d * p.dx_d_stride + s * p.dx_l_stride, acc);
  }
  // dinitial_states[j] is xpad index j (x position j - pad), read by outputs t = j - k.
  if (p.dinitial_states && blockIdx.y == 0 && i < pad) {
    const int32_t d0 = seq ? ds[0] : -1;  // the initial state's document (seq_idx[b, 0])
    A acc = A(0);
    for (int k = 0; k <= i; ++k) {
      const int t = i - k;  // < pad <= kTile + pad: inside gs, zero past L
      if (!seq || ds[t + pad] == d0) acc += w[k] * gs[t];
    }
    if (dfin && i >= L && (!seq || d0 == last_doc))
      acc += load_acc(dfin + b * p.dfinal_states_batch_stride + d * p.dfinal_states_d_stride +
                      (i - L) * p.dfinal_states_k_stride);
    store_acc(static_cast<T*>(p.dinitial_states) + b * p.dinitial_states_batch_stride +
                  d * p.dinitial_states_d_stride + i * p.dinitial_states_k_stride,
              acc);
  }
  if (!part) return;  // uniform across the block
  // This block's share of dw[k] (outputs t0 + i) and dbias, summed in a fixed tree order.
  const int64_t nb = int64_t(gridDim.y) * p.batch, j = b * gridDim.y + blockIdx.y;
  A* out = part + (d * nb + j) * kParts;
  const bool live = s < L;
  for (int k = 0; k < K; ++k) {
    A v = (live && (!seq || ds[i + pad] == ds[i + k])) ? gs[i] * xs[i + k] : A(0);
    v = block_sum<kThreads>(v, red);
    if (i == 0) out[k] = v;
  }
  A v = block_sum<kThreads>(gs[i], red);  // gs is zero past L
  if (i == 0) out[kConv1dMaxWidth] = v;
}

// dweight[d, k] and dbias[d]: the partials of d added in (b, tile) order.
template <class T>
__global__ void __launch_bounds__(kThreads) combine_kernel(Conv1dBwdParams p, int64_t nb, const acc_t<T>* part) {
  using A = acc_t<T>;
  const int64_t d = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (d >= p.dim) return;
  const int K = int(p.width);
  A acc[kParts] = {};
  for (int64_t j = 0; j < nb; ++j) {
    const A* q = part + (d * nb + j) * kParts;
    for (int k = 0; k < K; ++k) acc[k] += q[k];
    acc[kConv1dMaxWidth] += q[kConv1dMaxWidth];
  }
  if (p.dweight)
    for (int k = 0; k < K; ++k)
      store_acc(static_cast<T*>(p.dweight) + d * p.dweight_d_stride + k * p.dweight_k_stride, acc[k]);
  if (p.dbias) store_acc(static_cast<T*>(p.dbias) + d, acc[kConv1dMaxWidth]);
}

template <class T>
__global__ void __launch_bounds__(kThreads) step_kernel(Conv1dStepParams p) {
  using A = acc_t<T>;
  const int64_t bd = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (bd >= p.batch * p.dim) return;
  const int64_t b = bd / p.dim, d = bd % p.dim, sk = p.conv_state_k_stride;
  const int K = int(p.width);
  T* st = static_cast<T*>(p.conv_state) + b * p.conv_state_batch_stride + d * p.conv_state_d_stride;
  const T* w = static_cast<const T*>(p.weight) + d * p.weight_d_stride;
  A acc = p.bias ? load_acc(static_cast<const T*>(p.bias) + d) : A(0);
  // The state is stored in T and shifted exactly (plain copies), as on the CPU.
  for (int k = 0; k + 1 < K; ++k) {
    st[k * sk] = st[(k + 1) * sk];
    acc += load_acc(w + k * p.weight_k_stride) * load_acc(st + k * sk);
  }
  const T xv = static_cast<const T*>(p.x)[b * p.x_batch_stride + d * p.x_d_stride];
  st[(K - 1) * sk] = xv;
  acc += load_acc(w + (K - 1) * p.weight_k_stride) * load_acc(&xv);
  if (p.silu) acc *= dmath::sigmoid(acc);
  store_acc(static_cast<T*>(p.out) + b * p.out_batch_stride + d * p.out_d_stride, acc);
}

// f(T{}, std::integral_constant<int, kK>{}) for the dtype and width: K = 2, 3, 4 compiled as
// constants for f32/bf16, everything else (and all of f64) through the generic kK = 0.
template <class F>
Status dispatch(DType t, int64_t width, F&& f) {
  auto by_width = [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, double>) {
      switch (width) {
        case 2: return f(tag, std::integral_constant<int, 2>{});
        case 3: return f(tag, std::integral_constant<int, 3>{});
        case 4: return f(tag, std::integral_constant<int, 4>{});
        default: break;
      }
    }
    return f(tag, std::integral_constant<int, 0>{});
  };
  switch (t) {
    case DType::f32: return by_width(float{});
    case DType::bf16: return by_width(bf16{});
    case DType::f64: return by_width(double{});
    default: return {"dtype dispatch", "unsupported dtype for the CUDA conv1d (expected f32, bf16 or f64)", -1};
  }
}

Status check_sizes(int64_t width, int64_t L) {
  if (width < 1 || width > kConv1dMaxWidth) return {"causal_conv1d", "width K must be in 1..8", -1};
  if (tiles(L) > 65535) return {"causal_conv1d", "seqlen too long for the grid (more than 65535 tiles of 128)", -1};
  return Status::success();
}

}  // namespace

Status causal_conv1d_fwd(DType t, const Conv1dParams& p, cudaStream_t s) {
  Status st = check_sizes(p.width, p.seqlen);
  if (!st.ok() || p.batch * p.dim == 0) return st;
  if (p.seqlen == 0 && !p.final_states) return Status::success();
  dim3 grid(unsigned(p.batch * p.dim), unsigned(tiles(p.seqlen)));
  return dispatch(t, p.width, [&](auto tag, auto kk) {
    fwd_kernel<decltype(tag), decltype(kk)::value><<<grid, kThreads, 0, s>>>(p);
    return Status::last_launch();
  });
}

size_t causal_conv1d_bwd_workspace(DType t, const Conv1dBwdParams& p) {
  if (!p.dweight && !p.dbias) return 0;
  return size_t(p.dim * p.batch * tiles(p.seqlen) * kParts) * (t == DType::f64 ? sizeof(double) : sizeof(float));
}

Status causal_conv1d_bwd(DType t, const Conv1dBwdParams& p, void* ws, cudaStream_t s) {
  Status st = check_sizes(p.width, p.seqlen);
  if (!st.ok()) return st;
  const bool params = p.dweight || p.dbias;
  if (params && !ws && p.batch * p.dim > 0) return {"causal_conv1d_bwd", "missing workspace for dweight/dbias", -1};
  const int64_t nt = tiles(p.seqlen), nb = p.batch * nt;
  return dispatch(t, p.width, [&](auto tag, auto kk) {
    using T = decltype(tag);
    using A = acc_t<T>;
    A* part = params ? static_cast<A*>(ws) : nullptr;
    if (p.batch * p.dim > 0 && (p.dx || p.dinitial_states || params)) {
      dim3 grid(unsigned(p.batch * p.dim), unsigned(nt));
      bwd_kernel<T, decltype(kk)::value><<<grid, kThreads, 0, s>>>(p, part);
      Status e = Status::last_launch();
      if (!e.ok()) return e;
    }
    if (params && p.dim > 0) {
      if (p.batch == 0) {  // nothing to sum: zeros, through the same combine with nb = 0
        combine_kernel<T><<<grid_for(p.dim, kThreads), kThreads, 0, s>>>(p, 0, part);
      } else {
        combine_kernel<T><<<grid_for(p.dim, kThreads), kThreads, 0, s>>>(p, nb, part);
      }
      return Status::last_launch();
    }
    return Status::success();
  });
}

Status causal_conv1d_step(DType t, const Conv1dStepParams& p, cudaStream_t s) {
  Status st = check_sizes(p.width, 0);
  if (!st.ok() || p.batch * p.dim == 0) return st;
  switch (t) {
    case DType::f32: step_kernel<float><<<grid_for(p.batch * p.dim, kThreads), kThreads, 0, s>>>(p); break;
    case DType::bf16: step_kernel<bf16><<<grid_for(p.batch * p.dim, kThreads), kThreads, 0, s>>>(p); break;
    case DType::f64: step_kernel<double><<<grid_for(p.batch * p.dim, kThreads), kThreads, 0, s>>>(p); break;
    default: return {"dtype dispatch", "unsupported dtype for the CUDA conv1d step (expected f32, bf16 or f64)", -1};
  }
  return Status::last_launch();
}

}  // namespace ssm::kernels::cuda
