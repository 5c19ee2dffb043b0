#include "kernels/cpu/norm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/common/macros.h"

namespace ssm::kernels::cpu {
namespace {

constexpr int64_t kGrain = 1 << 14;     // elements below which a call stays single-threaded
constexpr int64_t kMaxChunks = 64;      // row chunks of a weight-gradient reduction
constexpr int64_t kMinChunkRows = 8;

template <class T>
T sigmoid(T v) {
  return T(1) / (T(1) + std::exp(-v));
}
template <class T>
T silu(T v) {
  return v * sigmoid(v);
}
template <class T>
T silu_grad(T v) {  // d/dv v·σ(v) = σ(v)·(1 + v·(1 - σ(v)))
  T s = sigmoid(v);
  return s * (T(1) + v * (T(1) - s));
}

// Row chunks for the parameter-gradient reductions: boundaries depend only on R.
struct Chunks {
  int64_t rows_per = 0, count = 0;
};
Chunks row_chunks(int64_t rows) {
  Chunks c;
  c.rows_per = std::max(kMinChunkRows, CEIL_DIV(rows, kMaxChunks));
  c.count = CEIL_DIV(rows, c.rows_per);
  return c;
}

// out[j] = sum over chunks c (in order) of part[c, j].
template <class T>
void combine_chunks(const std::vector<double>& part, int64_t count, int64_t n, T* out) {
  for (int64_t j = 0; j < n; ++j) {
    double s = 0;
    for (int64_t c = 0; c < count; ++c) s += part[size_t(c * n + j)];
    out[j] = T(s);
  }
}

}  // namespace

// ---- RMSNorm ------------------------------------------------------------------------------

template <class T>
void rms_norm_fwd(const NormParams& p) {
  const int64_t R = p.rows, D = p.cols, gs = p.group_size, G = D / gs;
  const T* x = static_cast<const T*>(p.x);
  const T* z = static_cast<const T*>(p.z);
  const T* res = static_cast<const T*>(p.residual);
  const T* w = static_cast<const T*>(p.weight);
  T* y = static_cast<T*>(p.y);
  T* rout = static_cast<T*>(p.residual_out);
  T* rstd = static_cast<T*>(p.rstd);
  const bool gate_first = z && !p.norm_before_gate;  // normalise x * silu(z)
  const bool gate_after = z && p.norm_before_gate;   // norm(x) * silu(z)

#pragma omp parallel for schedule(static) if (R * D > kGrain)
  for (int64_t r = 0; r < R; ++r) {
    const T* xr = x + r * p.x_row_stride;
    const T* zr = z ? z + r * p.z_row_stride : nullptr;
    T* yr = y + r * p.y_row_stride;
    // Stage h (the normalised input) in y, then scale it in place group by group.
    if (res) {
      const T* rr = res + r * p.residual_row_stride;
      T* ro = rout + r * p.residual_out_row_stride;
      for (int64_t j = 0; j < D; ++j) yr[j] = ro[j] = xr[j] + rr[j];
    } else if (gate_first) {
      for (int64_t j = 0; j < D; ++j) yr[j] = xr[j] * silu(zr[j]);
    } else {
      for (int64_t j = 0; j < D; ++j) yr[j] = xr[j];
    }
    for (int64_t g = 0; g < G; ++g) {
      T* hg = yr + g * gs;
      double ss = 0;
      for (int64_t j = 0; j < gs; ++j) ss += double(hg[j]) * double(hg[j]);
      const T rs = T(1.0 / std::sqrt(ss / double(gs) + p.eps));
      rstd[r * G + g] = rs;
      for (int64_t j = 0; j < gs; ++j) {
        const int64_t c = g * gs + j;
        T v = hg[j] * rs;
        if (w) v *= w[c];
        if (gate_after) v *= silu(zr[c]);
        hg[j] = v;
      }
    }
  }
}

// With n = h·r (r = rstd of h's group, m = group size):
//   dn = dy · w (· silu(z) when gating after the norm)
//   dh = r · (dn - n · mean_group(dn · n))
//   dw = Σ_rows dy · n (· silu(z))
// and the chain rule through h = x·silu(z) or through the gate after the norm.
template <class T>
void rms_norm_bwd(const NormBwdParams& p) {
  const int64_t R = p.rows, D = p.cols, gs = p.group_size, G = D / gs;
  const T* x = static_cast<const T*>(p.x);
  const T* z = static_cast<const T*>(p.z);
  const T* w = static_cast<const T*>(p.weight);
  const T* rstd = static_cast<const T*>(p.rstd);
  const T* dy = static_cast<const T*>(p.dy);
  const T* dro = static_cast<const T*>(p.dresidual_out);
  T* dx = static_cast<T*>(p.dx);
  T* dz = static_cast<T*>(p.dz);
  const bool gate_first = z && !p.norm_before_gate;
  const bool gate_after = z && p.norm_before_gate;
  const Chunks ch = row_chunks(R);
  std::vector<double> part(p.dweight ? size_t(ch.count * D) : 0);  // (chunks, D) partial dw

#pragma omp parallel if (R * D > kGrain)
  {
    std::vector<T> h(static_cast<size_t>(D)), dn(static_cast<size_t>(D));  // (D) per-thread scratch
#pragma omp for schedule(static)
    for (int64_t c = 0; c < ch.count; ++c) {
      double* pw = p.dweight ? part.data() + c * D : nullptr;
      const int64_t r1 = std::min(R, (c + 1) * ch.rows_per);
      for (int64_t r = c * ch.rows_per; r < r1; ++r) {
        const T* xr = x + r * p.x_row_stride;
        const T* zr = z ? z + r * p.z_row_stride : nullptr;
        const T* dyr = dy + r * p.dy_row_stride;
        T* dzr = dz ? dz + r * p.dz_row_stride : nullptr;
        for (int64_t j = 0; j < D; ++j) h[j] = gate_first ? xr[j] * silu(zr[j]) : xr[j];
        for (int64_t g = 0; g < G; ++g) {
          const T rs = rstd[r * G + g];
          double dot = 0;
          for (int64_t c0 = g * gs; c0 < (g + 1) * gs; ++c0) {
            const T n = h[c0] * rs;
            const T gate = gate_after ? silu(zr[c0]) : T(1);
            const T wc = w ? w[c0] : T(1);
            dn[c0] = dyr[c0] * wc * gate;
            dot += double(dn[c0]) * double(n);
            if (pw) pw[c0] += double(dyr[c0]) * double(n * gate);
            if (dzr && gate_after) dzr[c0] = dyr[c0] * wc * n * silu_grad(zr[c0]);
          }
          if (!dx && !(dzr && gate_first)) continue;
          const T mdot = T(dot / double(gs));
          for (int64_t c0 = g * gs; c0 < (g + 1) * gs; ++c0) {
            const T dh = rs * (dn[c0] - h[c0] * rs * mdot);
            if (gate_first) {
              if (dx) dx[r * p.dx_row_stride + c0] = dh * silu(zr[c0]);
              if (dzr) dzr[c0] = dh * xr[c0] * silu_grad(zr[c0]);
            } else if (dx) {
              dx[r * p.dx_row_stride + c0] = dro ? dh + dro[r * p.dresidual_out_row_stride + c0] : dh;
            }
          }
        }
      }
    }
  }
  if (p.dweight) combine_chunks(part, ch.count, D, static_cast<T*>(p.dweight));
}

// ---- LayerNorm ----------------------------------------------------------------------------

template <class T>
void layer_norm_fwd(const NormParams& p) {
  const int64_t R = p.rows, D = p.cols;
  const T* x = static_cast<const T*>(p.x);
  const T* w = static_cast<const T*>(p.weight);
  const T* b = static_cast<const T*>(p.bias);
  T* y = static_cast<T*>(p.y);
  T* mean = static_cast<T*>(p.mean);
  T* rstd = static_cast<T*>(p.rstd);
#pragma omp parallel for schedule(static) if (R * D > kGrain)
  for (int64_t r = 0; r < R; ++r) {
    const T* xr = x + r * p.x_row_stride;
    T* yr = y + r * p.y_row_stride;
    double s = 0;
    for (int64_t j = 0; j < D; ++j) s += double(xr[j]);
    const double mu = s / double(D);
    double var = 0;  // two passes: no cancellation for rows with a large mean
    for (int64_t j = 0; j < D; ++j) var += (double(xr[j]) - mu) * (double(xr[j]) - mu);
    const T m = T(mu), rs = T(1.0 / std::sqrt(var / double(D) + p.eps));
    mean[r] = m;
    rstd[r] = rs;
    for (int64_t j = 0; j < D; ++j) {
      T v = (xr[j] - m) * rs;
      if (w) v *= w[j];
      if (b) v += b[j];
      yr[j] = v;
    }
  }
}

// x̂ = (x - mean)·rstd, dx̂ = dy·w:  dx = rstd·(dx̂ - mean(dx̂) - x̂·mean(dx̂·x̂)),
// dw = Σ_rows dy·x̂, db = Σ_rows dy.
template <class T>
void layer_norm_bwd(const NormBwdParams& p) {
  const int64_t R = p.rows, D = p.cols;
  const T* x = static_cast<const T*>(p.x);
  const T* w = static_cast<const T*>(p.weight);
  const T* mean = static_cast<const T*>(p.mean);
  const T* rstd = static_cast<const T*>(p.rstd);
  const T* dy = static_cast<const T*>(p.dy);
  T* dx = static_cast<T*>(p.dx);
  const Chunks ch = row_chunks(R);
  std::vector<double> pw(p.dweight ? size_t(ch.count * D) : 0), pb(p.dbias ? size_t(ch.count * D) : 0);

#pragma omp parallel if (R * D > kGrain)
  {
    std::vector<T> xh(static_cast<size_t>(D)), dxh(static_cast<size_t>(D));  // (D) per-thread scratch
#pragma omp for schedule(static)
    for (int64_t c = 0; c < ch.count; ++c) {
      const int64_t r1 = std::min(R, (c + 1) * ch.rows_per);
      for (int64_t r = c * ch.rows_per; r < r1; ++r) {
        const T* xr = x + r * p.x_row_stride;
        const T* dyr = dy + r * p.dy_row_stride;
        double s1 = 0, s2 = 0;
        for (int64_t j = 0; j < D; ++j) {
          xh[j] = (xr[j] - mean[r]) * rstd[r];
          dxh[j] = w ? dyr[j] * w[j] : dyr[j];
          s1 += double(dxh[j]);
          s2 += double(dxh[j]) * double(xh[j]);
          if (p.dweight) pw[size_t(c * D + j)] += double(dyr[j]) * double(xh[j]);
          if (p.dbias) pb[size_t(c * D + j)] += double(dyr[j]);
        }
        if (!dx) continue;
        const T m1 = T(s1 / double(D)), m2 = T(s2 / double(D));
        T* dxr = dx + r * p.dx_row_stride;
        for (int64_t j = 0; j < D; ++j) dxr[j] = rstd[r] * (dxh[j] - m1 - xh[j] * m2);
      }
    }
  }
  if (p.dweight) combine_chunks(pw, ch.count, D, static_cast<T*>(p.dweight));
  if (p.dbias) combine_chunks(pb, ch.count, D, static_cast<T*>(p.dbias));
}

template void rms_norm_fwd<float>(const NormParams&);
template void rms_norm_fwd<double>(const NormParams&);
template void rms_norm_bwd<float>(const NormBwdParams&);
template void rms_norm_bwd<double>(const NormBwdParams&);
template void layer_norm_fwd<float>(const NormParams&);
template void layer_norm_fwd<double>(const NormParams&);
template void layer_norm_bwd<float>(const NormBwdParams&);
template void layer_norm_bwd<double>(const NormBwdParams&);

}  // namespace ssm::kernels::cpu
