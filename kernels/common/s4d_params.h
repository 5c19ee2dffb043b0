// Params for S4D (Gu et al. 2022, "On the Parameterization and Initialization of Diagonal State
// Space Models") plus the pieces S4D and S5 share: a tiny complex type usable on host and
// device, and the ZOH / bilinear discretisation of one diagonal mode with its derivatives.
//
// Per channel h of H and mode n of N (complex diagonal A, step dt = exp(log_dt[h])):
//   abar = exp(dt A)                  (zoh)    or (1 + dt A/2) / (1 - dt A/2)   (bilinear)
//   bbar = (abar - 1) / A * B         (zoh)    or dt / (1 - dt A/2) * B         (bilinear)
//   h_t[n] = abar[n] h_{t-1}[n] + bbar[n] u_t
//   y_t    = scale * Re(sum_n C[n] h_t[n]) + D u_t
// scale = 2 in the conjugate-pair mode (each complex mode stands for itself and its conjugate)
// and 1 in the real mode (S4D-Real: A, B, C real, the *_im planes are not read).
//
// Conventions: complex parameters are split into _re / _im planes of shape (H, N), contiguous;
// complex states are (..., N, 2) with (re, im) pairs adjacent. The gradient of a real loss with
// respect to a complex z = x + iy is carried as the complex number dL/dx + i dL/dy.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/common/macros.h"

namespace ssm::kernels {

enum class Discretization : uint8_t { zoh = 0, bilinear = 1 };

// Trivial (no default member initialisers) so that it can live in CUDA shared memory;
// value-initialise (`cplx<R>{}`) for zero.
template <class R>
struct cplx {
  R re, im;
};
template <class R>
SSM_HD cplx<R> operator+(cplx<R> a, cplx<R> b) { return {a.re + b.re, a.im + b.im}; }
template <class R>
SSM_HD cplx<R> operator-(cplx<R> a, cplx<R> b) { return {a.re - b.re, a.im - b.im}; }
template <class R>
SSM_HD cplx<R> operator*(cplx<R> a, cplx<R> b) {
  return {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}
template <class R>
SSM_HD cplx<R> operator*(cplx<R> a, R s) { return {a.re * s, a.im * s}; }
template <class R>
SSM_HD cplx<R> operator*(R s, cplx<R> a) { return {a.re * s, a.im * s}; }
template <class R>
SSM_HD cplx<R>& operator+=(cplx<R>& a, cplx<R> b) { a.re += b.re; a.im += b.im; return a; }
template <class R>
SSM_HD cplx<R> conj(cplx<R> a) { return {a.re, -a.im}; }
template <class R>
SSM_HD cplx<R> cdiv(cplx<R> a, cplx<R> b) {
  R den = b.re * b.re + b.im * b.im;
  return {(a.re * b.re + a.im * b.im) / den, (a.im * b.re - a.re * b.im) / den};
}
template <class To, class R>
SSM_HD cplx<To> cplx_cast(cplx<R> a) { return {To(a.re), To(a.im)}; }

// exp(z) and exp(z) - 1, the latter without cancellation for small |z| (it is the numerator
// of the ZOH input matrix, and dt*A is tiny for slow modes).
template <class R>
SSM_HD cplx<R> cexp(cplx<R> z) {
  R m = std::exp(z.re);
  return {m * std::cos(z.im), m * std::sin(z.im)};
}
template <class R>
SSM_HD cplx<R> cexpm1(cplx<R> z) {
  // e^x cos y - 1 = expm1(x) cos y - 2 sin^2(y/2)
  R s = std::sin(z.im / R(2));
  return {std::expm1(z.re) * std::cos(z.im) - R(2) * s * s, std::exp(z.re) * std::sin(z.im)};
}

// One discretised mode: abar and the factor f with bbar = f * B.
template <class R>
struct LtiMode {
  cplx<R> abar, f;
};

// Below this |dt A|^2 the ZOH factors use their Taylor series; the closed forms lose
// ~eps/|dt A| digits there and are undefined at A = 0 (the series covers A -> 0 too).
constexpr double kZohSeriesZ2 = 1e-10;

template <class R>
SSM_HD LtiMode<R> lti_discretize(Discretization m, R dt, cplx<R> a) {
  cplx<R> z = a * dt;
  if (m == Discretization::zoh) {
    cplx<R> f;
    if (z.re * z.re + z.im * z.im < R(kZohSeriesZ2)) {  // f = dt (1 + z/2 + z^2/6)
      cplx<R> one{R(1), R(0)};
      f = (one + z * R(0.5) + z * z * R(1.0 / 6.0)) * dt;
    } else {
      f = cdiv(cexpm1(z), a);
    }
    return {cexp(z), f};
  }
  cplx<R> q{R(1) - z.re / R(2), -z.im / R(2)};  // 1 - dt A/2
  cplx<R> p{R(1) + z.re / R(2), z.im / R(2)};   // 1 + dt A/2
  return {cdiv(p, q), cdiv(cplx<R>{dt, R(0)}, q)};
}

// Chain rule through lti_discretize: from the gradients of abar and f to those of A and dt.
template <class R>
SSM_HD void lti_discretize_bwd(Discretization m, R dt, cplx<R> a, cplx<R> g_abar, cplx<R> g_f,
                               cplx<R>* g_a, R* g_dt) {
  cplx<R> dabar_da, dabar_ddt, df_da, df_ddt;  // holomorphic derivatives
  if (m == Discretization::zoh) {
    cplx<R> z = a * dt;
    LtiMode<R> md = lti_discretize(m, dt, a);
    dabar_da = md.abar * dt;
    dabar_ddt = a * md.abar;
    df_ddt = md.abar;
    if (z.re * z.re + z.im * z.im < R(kZohSeriesZ2)) {  // df/dA = dt^2 (1/2 + z/3 + z^2/8)
      cplx<R> half{R(0.5), R(0)};
      df_da = (half + z * R(1.0 / 3.0) + z * z * R(0.125)) * (dt * dt);
    } else {
      df_da = cdiv(md.abar * dt - md.f, a);
    }
  } else {
    cplx<R> q{R(1) - a.re * dt / R(2), -a.im * dt / R(2)};
    cplx<R> inv_q2 = cdiv(cplx<R>{R(1), R(0)}, q * q);
    dabar_da = inv_q2 * dt;
    dabar_ddt = a * inv_q2;
    df_da = inv_q2 * (dt * dt / R(2));
    df_ddt = inv_q2;
  }
  // For w = g(z) holomorphic, the carried gradient maps as g_z = conj(g'(z)) g_w; for a real
  // parameter it is Re(conj(dw/dt) g_w).
  *g_a = conj(dabar_da) * g_abar + conj(df_da) * g_f;
  *g_dt = (conj(dabar_ddt) * g_abar).re + (conj(df_ddt) * g_f).re;
}

// ---- S4D ----------------------------------------------------------------------------------

struct S4dWeights {
  const void* A_re = nullptr;    // (H, N)  < 0 for stability
  const void* A_im = nullptr;    // (H, N)  not read when is_real
  const void* B_re = nullptr;    // (H, N)
  const void* B_im = nullptr;    // (H, N)  not read when is_real
  const void* C_re = nullptr;    // (H, N)
  const void* C_im = nullptr;    // (H, N)  not read when is_real
  const void* log_dt = nullptr;  // (H)
  const void* D = nullptr;       // (H) skip, optional (null = 0)
};

// Gradients of S4dWeights; each optional and overwritten. In the real mode the *_im
// gradients are written as zero when given.
struct S4dWeightGrads {
  void* dA_re = nullptr;    // (H, N)
  void* dA_im = nullptr;    // (H, N)
  void* dB_re = nullptr;    // (H, N)
  void* dB_im = nullptr;    // (H, N)
  void* dC_re = nullptr;    // (H, N)
  void* dC_im = nullptr;    // (H, N)
  void* dlog_dt = nullptr;  // (H)
  void* dD = nullptr;       // (H)
};

struct S4dParams {
  int64_t batch = 0, dim = 0, seqlen = 0, dstate = 0;  // B, H, L, N
  bool is_real = false;                                // S4D-Real: scale 1, no *_im
  Discretization disc = Discretization::zoh;
  S4dWeights w;

  const void* u = nullptr;  // (B, H, L)
  int64_t u_batch_stride = 0, u_h_stride = 0, u_l_stride = 0;
  void* y = nullptr;  // (B, H, L)
  int64_t y_batch_stride = 0, y_h_stride = 0, y_l_stride = 0;

  // TBPTT carry, optional: the state before u[:, :, 0] (zeros when null) and after u[:, :, L-1].
  const void* h0 = nullptr;  // (B, H, N, 2)
  int64_t h0_batch_stride = 0, h0_h_stride = 0;
  void* hT = nullptr;  // (B, H, N, 2)
  int64_t hT_batch_stride = 0, hT_h_stride = 0;

  // Convolution-kernel form: written by s4d_kernel_fwd, read by s4d_conv_fwd / s4d_conv_bwd.
  void* kernel = nullptr;  // (H, L) contiguous
};

struct S4dBwdParams : S4dParams {
  const void* dy = nullptr;  // (B, H, L)
  int64_t dy_batch_stride = 0, dy_h_stride = 0, dy_l_stride = 0;
  const void* dhT = nullptr;  // (B, H, N, 2), optional upstream gradient of hT
  int64_t dhT_batch_stride = 0, dhT_h_stride = 0;

  void* du = nullptr;  // (B, H, L), optional
  int64_t du_batch_stride = 0, du_h_stride = 0, du_l_stride = 0;
  S4dWeightGrads g;
  void* dh0 = nullptr;  // (B, H, N, 2), optional
  int64_t dh0_batch_stride = 0, dh0_h_stride = 0;

  // Gradient of the convolution kernel: written by s4d_conv_bwd, read by s4d_kernel_bwd.
  void* dkernel = nullptr;  // (H, L) contiguous
};

// One generation step: state (B, H, N, 2) advanced in place by u (B, H), y (B, H) written.
struct S4dStepParams {
  int64_t batch = 0, dim = 0, dstate = 0;  // B, H, N
  bool is_real = false;
  Discretization disc = Discretization::zoh;
  S4dWeights w;

  const void* u = nullptr;  // (B, H)
  int64_t u_batch_stride = 0, u_h_stride = 0;
  void* y = nullptr;  // (B, H)
  int64_t y_batch_stride = 0, y_h_stride = 0;
  void* state = nullptr;  // (B, H, N, 2)
  int64_t state_batch_stride = 0, state_h_stride = 0;
};

}  // namespace ssm::kernels
