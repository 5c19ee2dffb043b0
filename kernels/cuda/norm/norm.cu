// Row normalisations (see norm.h). The naive loops each kernel replaces, per row r and
// group g of m = group_size channels (h = x, x + residual or x·silu(z)):
//   rstd = 1 / sqrt(Σ_g h² / m + eps);  y = h·rstd·w (·silu(z) when gating after the norm)
//   LayerNorm: mean, rstd over the row; y = (x - mean)·rstd·w + b
// Backward (n = h·rstd): dn = dy·w·gate, dh = rstd·(dn - n·mean_g(dn·n)); LayerNorm
// dx = rstd·(dx̂ - mean(dx̂) - x̂·mean(dx̂·x̂)).
#include <cstdint>

#include "kernels/cuda/common/launch.cuh"
#include "kernels/cuda/common/math.cuh"
#include "kernels/cuda/norm/norm.h"

namespace ssm::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / kWarp;
constexpr int64_t kRowChunk = 32;  // rows per dweight partial

int64_t row_chunks(int64_t rows) { return (rows + kRowChunk - 1) / kRowChunk; }

template <class A>
__device__ __forceinline__ A silu(A v) {
  return v * dmath::sigmoid(v);
}
template <class A>
__device__ __forceinline__ A silu_grad(A v) {
  A s = dmath::sigmoid(v);
  return s * (A(1) + v * (A(1) - s));
}

// h of the RMSNorm at (row r, column c): x, x + residual (rounded to T, as stored in
// residual_out) or x·silu(z) when gating first.
template <class T>
__device__ __forceinline__ acc_t<T> rms_h(const NormParams& p, int64_t r, int64_t c) {
  using A = acc_t<T>;
  A h = load_acc(static_cast<const T*>(p.x) + r * p.x_row_stride + c);
  if (p.residual) {
    T s;
    store_acc(&s, h + load_acc(static_cast<const T*>(p.residual) + r * p.residual_row_stride + c));
    h = load_acc(&s);
  } else if (p.z && !p.norm_before_gate) {
    h *= silu(load_acc(static_cast<const T*>(p.z) + r * p.z_row_stride + c));
  }
  return h;
}

template <class T>
__device__ __forceinline__ acc_t<T> weight_at(const void* w, int64_t c) {
  return w ? load_acc(static_cast<const T*>(w) + c) : acc_t<T>(1);
}

template <class T>
__global__ void __launch_bounds__(kThreads) rms_fwd_kernel(NormParams p) {
  using A = acc_t<T>;
  __shared__ A red[kWarps];
  const int64_t r = blockIdx.x, gs = p.group_size, G = p.cols / gs;
  const bool gate_after = p.z && p.norm_before_gate;
  for (int64_t g = 0; g < G; ++g) {
    A ss = 0;
    for (int64_t c = g * gs + threadIdx.x; c < (g + 1) * gs; c += kThreads) {
      A h = rms_h<T>(p, r, c);
      if (p.residual) store_acc(static_cast<T*>(p.residual_out) + r * p.residual_out_row_stride + c, h);
      ss += h * h;
    }
    ss = block_sum<kThreads>(ss, red);
    const A rs = dmath::rcp(dmath::sqrt(dmath::div(ss, A(gs)) + A(p.eps)));
    if (threadIdx.x == 0) static_cast<A*>(p.rstd)[r * G + g] = rs;
    for (int64_t c = g * gs + threadIdx.x; c < (g + 1) * gs; c += kThreads) {
      A y = rms_h<T>(p, r, c) * rs * weight_at<T>(p.weight, c);
      if (gate_after) y *= silu(load_acc(static_cast<const T*>(p.z) + r * p.z_row_stride + c));
      store_acc(static_cast<T*>(p.y) + r * p.y_row_stride + c, y);
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) rms_bwd_kernel(NormBwdParams p) {
  using A = acc_t<T>;
  __shared__ A red[kWarps];
  const int64_t r = blockIdx.x, gs = p.group_size, G = p.cols / gs;
  const T* z = static_cast<const T*>(p.z);
  const bool gate_first = z && !p.norm_before_gate, gate_after = z && p.norm_before_gate;
  const T* dy = static_cast<const T*>(p.dy) + r * p.dy_row_stride;
  for (int64_t g = 0; g < G; ++g) {
    const A rs = static_cast<const A*>(p.rstd)[r * G + g];
    A dot = 0;
    for (int64_t c = g * gs + threadIdx.x; c < (g + 1) * gs; c += kThreads) {
      const A n = rms_h<T>(p, r, c) * rs, wc = weight_at<T>(p.weight, c);
      A dn = load_acc(dy + c) * wc;
      if (gate_after) {
        const A zc = load_acc(z + r * p.z_row_stride + c);
        if (p.dz) store_acc(static_cast<T*>(p.dz) + r * p.dz_row_stride + c, dn * n * silu_grad(zc));
        dn *= silu(zc);
      }
      dot += dn * n;
    }
    dot = block_sum<kThreads>(dot, red);
    if (!p.dx && !(p.dz && gate_first)) continue;
    const A mdot = dmath::div(dot, A(gs));
    for (int64_t c = g * gs + threadIdx.x; c < (g + 1) * gs; c += kThreads) {
      const A h = rms_h<T>(p, r, c), wc = weight_at<T>(p.weight, c);
      A dn = load_acc(dy + c) * wc;
      if (gate_after) dn *= silu(load_acc(z + r * p.z_row_stride + c));
      const A dh = rs * (dn - h * rs * mdot);
      if (gate_first) {
        const A zc = load_acc(z + r * p.z_row_stride + c);
        const A xc = load_acc(static_cast<const T*>(p.x) + r * p.x_row_stride + c);
        if (p.dx) store_acc(static_cast<T*>(p.dx) + r * p.dx_row_stride + c, dh * silu(zc));
        if (p.dz) store_acc(static_cast<T*>(p.dz) + r * p.dz_row_stride + c, dh * xc * silu_grad(zc));
      } else if (p.dx) {
        A v = dh;
        if (p.dresidual_out) v += load_acc(static_cast<const T*>(p.dresidual_out) + r * p.dresidual_out_row_stride + c);
        store_acc(static_cast<T*>(p.dx) + r * p.dx_row_stride + c, v);
      }
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) ln_fwd_kernel(NormParams p) {
  using A = acc_t<T>;
  __shared__ A red[kWarps];
  const int64_t r = blockIdx.x, D = p.cols;
  const T* x = static_cast<const T*>(p.x) + r * p.x_row_stride;
  A s = 0;
  for (int64_t c = threadIdx.x; c < D; c += kThreads) s += load_acc(x + c);
  const A mean = dmath::div(block_sum<kThreads>(s, red), A(D));
  A v = 0;  // two passes: the variance of (x - mean) has no cancellation
  for (int64_t c = threadIdx.x; c < D; c += kThreads) {
    const A d = load_acc(x + c) - mean;
    v += d * d;
  }
  const A rs = dmath::rcp(dmath::sqrt(dmath::div(block_sum<kThreads>(v, red), A(D)) + A(p.eps)));
  if (threadIdx.x == 0) {
    static_cast<A*>(p.mean)[r] = mean;
    static_cast<A*>(p.rstd)[r] = rs;
  }
  for (int64_t c = threadIdx.x; c < D; c += kThreads) {
    A y = (load_acc(x + c) - mean) * rs * weight_at<T>(p.weight, c);
    if (p.bias) y += load_acc(static_cast<const T*>(p.bias) + c);
    store_acc(static_cast<T*>(p.y) + r * p.y_row_stride + c, y);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) ln_bwd_kernel(NormBwdParams p) {
  using A = acc_t<T>;
  __shared__ A red[kWarps];
  const int64_t r = blockIdx.x, D = p.cols;
  const T* x = static_cast<const T*>(p.x) + r * p.x_row_stride;
  const T* dy = static_cast<const T*>(p.dy) + r * p.dy_row_stride;
  const A mean = static_cast<const A*>(p.mean)[r], rs = static_cast<const A*>(p.rstd)[r];
  A s1 = 0, s2 = 0;
  for (int64_t c = threadIdx.x; c < D; c += kThreads) {
    const A dxh = load_acc(dy + c) * weight_at<T>(p.weight, c), xh = (load_acc(x + c) - mean) * rs;
    s1 += dxh;
    s2 += dxh * xh;
  }
  const A m1 = dmath::div(block_sum<kThreads>(s1, red), A(D));
  const A m2 = dmath::div(block_sum<kThreads>(s2, red), A(D));
  for (int64_t c = threadIdx.x; c < D; c += kThreads) {
    const A dxh = load_acc(dy + c) * weight_at<T>(p.weight, c), xh = (load_acc(x + c) - mean) * rs;
    store_acc(static_cast<T*>(p.dx) + r * p.dx_row_stride + c, rs * (dxh - m1 - xh * m2));
  }
}

// dweight / dbias partials: thread = column c, block (column tile, row chunk k) sums its
// kRowChunk rows in order into part_w[k, c], part_b[k, c].
template <class T, bool kLayer>
__global__ void __launch_bounds__(kThreads) param_partial_kernel(NormBwdParams p, acc_t<T>* part_w, acc_t<T>* part_b) {
  using A = acc_t<T>;
  const int64_t c = int64_t(blockIdx.y) * kThreads + threadIdx.x, k = blockIdx.x, D = p.cols;
  if (c >= D) return;
  const int64_t r1 = min(p.rows, (k + 1) * kRowChunk);
  const T* z = static_cast<const T*>(p.z);
  A sw = 0, sb = 0;
  for (int64_t r = k * kRowChunk; r < r1; ++r) {
    const A dy = load_acc(static_cast<const T*>(p.dy) + r * p.dy_row_stride + c);
    if constexpr (kLayer) {
      const A xh = (load_acc(static_cast<const T*>(p.x) + r * p.x_row_stride + c) - static_cast<const A*>(p.mean)[r]) *
                   static_cast<const A*>(p.rstd)[r];
      sw += dy * xh;
      sb += dy;
    } else {
      const int64_t G = D / p.group_size;
      A n = rms_h<T>(p, r, c) * static_cast<const A*>(p.rstd)[r * G + c / p.group_size];
      if (z && p.norm_before_gate) n *= silu(load_acc(z + r * p.z_row_stride + c));
      sw += dy * n;
    }
  }
  if (p.dweight) part_w[k * D + c] = sw;
  if (p.dbias) part_b[k * D + c] = sb;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    combine_kernel(int64_t chunks, int64_t D, const acc_t<T>* part_w, const acc_t<T>* part_b, T* dw, T* db) {
  using A = acc_t<T>;
  const int64_t c = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (c >= D) return;
  A sw = 0, sb = 0;
  for (int64_t k = 0; k < chunks; ++k) {
    if (dw) sw += part_w[k * D + c];
    if (db) sb += part_b[k * D + c];
  }
  if (dw) store_acc(dw + c, sw);
  if (db) store_acc(db + c, sb);
}

template <class T, bool kLayer>
Status param_grads(const NormBwdParams& p, void* ws, cudaStream_t s) {
  using A = acc_t<T>;
  if (!p.dweight && !p.dbias) return Status::success();
  const int64_t chunks = row_chunks(p.rows);
  A* pw = static_cast<A*>(ws);
  A* pb = pw + chunks * p.cols;
  dim3 grid(unsigned(chunks), grid_for(p.cols, kThreads));  // chunks on x: no 65535 cap
  param_partial_kernel<T, kLayer><<<grid, kThreads, 0, s>>>(p, pw, pb);
  Status st = Status::last_launch();
  if (!st.ok()) return st;
  combine_kernel<T><<<grid_for(p.cols, kThreads), kThreads, 0, s>>>(chunks, p.cols, pw, pb, static_cast<T*>(p.dweight),
                                                                    static_cast<T*>(p.dbias));
  return Status::last_launch();
}

template <class F>
Status dispatch(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::bf16: return f(bf16{});
    case DType::f64: return f(double{});
    default: return {"dtype dispatch", "unsupported dtype for a CUDA norm (expected f32, bf16 or f64)", -1};
  }
}

}  // namespace

size_t norm_bwd_workspace(DType t, const NormBwdParams& p) {
  if (!p.dweight && !p.dbias) return 0;
  return size_t(2 * row_chunks(p.rows) * p.cols) * (t == DType::f64 ? sizeof(double) : sizeof(float));
}

Status rms_norm_fwd(DType t, const NormParams& p, cudaStream_t s) {
  if (p.rows == 0) return Status::success();
  return dispatch(t, [&](auto tag) {
    rms_fwd_kernel<decltype(tag)><<<unsigned(p.rows), kThreads, 0, s>>>(p);
    return Status::last_launch();
  });
}

Status rms_norm_bwd(DType t, const NormBwdParams& p, void* ws, cudaStream_t s) {
  if (p.rows == 0) return Status::success();
  return dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    if (p.dx || p.dz) {
      rms_bwd_kernel<T><<<unsigned(p.rows), kThreads, 0, s>>>(p);
      Status st = Status::last_launch();
      if (!st.ok()) return st;
    }
    return param_grads<T, false>(p, ws, s);
  });
}

Status layer_norm_fwd(DType t, const NormParams& p, cudaStream_t s) {
  if (p.rows == 0) return Status::success();
  return dispatch(t, [&](auto tag) {
    ln_fwd_kernel<decltype(tag)><<<unsigned(p.rows), kThreads, 0, s>>>(p);
    return Status::last_launch();
  });
}

Status layer_norm_bwd(DType t, const NormBwdParams& p, void* ws, cudaStream_t s) {
  if (p.rows == 0) return Status::success();
  return dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    if (p.dx) {
      ln_bwd_kernel<T><<<unsigned(p.rows), kThreads, 0, s>>>(p);
      Status st = Status::last_launch();
      if (!st.ok()) return st;
    }
    return param_grads<T, true>(p, ws, s);
  });
}

}  // namespace ssm::kernels::cuda
