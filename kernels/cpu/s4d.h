// CPU reference for S4D (float, double); the model is defined in kernels/common/s4d_params.h.
// Two equivalent forward forms:
//   * the recurrent scan (s4d_fwd / s4d_bwd / s4d_step), which also carries a state for TBPTT;
//   * the convolution-kernel form: s4d_kernel_fwd builds K[h,l] = scale * Re(sum_n C bbar abar^l)
//     and s4d_conv_fwd applies y = causal_conv(u, K) + D u (direct O(L^2) loop, a reference for
//     the FFT convolution the GPU path uses; no initial state in this form).
// Discretisation parameters are computed in double; the scans run in T; reductions into
// parameter gradients accumulate in double, per channel, in a fixed order, so results are
// bitwise independent of the thread count.
//
// S4 proper (DPLR / NPLR A = Lambda - P Q*, with its Cauchy kernel and Woodbury correction) is
// out of scope: S4D with the S4D-Lin / S4D-Inv inits matches it in practice (Gu et al. 2022,
// Tables 4-6) and is what the models here use.
//
//   // H = 4 channels, N = 32 complex modes, u: (B=2, H=4, L=100) contiguous
//   S4dParams p;
//   p.batch = 2; p.dim = 4; p.seqlen = 100; p.dstate = 32;
//   p.w.A_re = a_re; p.w.A_im = a_im; p.w.B_re = b_re; p.w.B_im = b_im;
//   p.w.C_re = c_re; p.w.C_im = c_im; p.w.log_dt = log_dt; p.w.D = d;
//   p.u = u; p.u_batch_stride = 400; p.u_h_stride = 100; p.u_l_stride = 1;
//   p.y = y; p.y_batch_stride = 400; p.y_h_stride = 100; p.y_l_stride = 1;
//   s4d_fwd<double>(p);
#pragma once
#include <cstdint>

#include "kernels/common/s4d_params.h"

namespace ssm::kernels::cpu {

// y (and hT when set) by the recurrence.
template <class T>
void s4d_fwd(const S4dParams& p);

// du, every weight gradient in p.g and dh0 (each optional) from dy and dhT. States are
// recomputed one mode at a time, so the extra memory is one length-L row per thread.
template <class T>
void s4d_bwd(const S4dBwdParams& p);

// One token: p.state advanced in place, y written. Equals s4d_fwd token by token.
template <class T>
void s4d_step(const S4dStepParams& p);

// p.kernel (H, L) from the weights (D is not part of the kernel).
template <class T>
void s4d_kernel_fwd(const S4dParams& p);

// p.g gradients of A, B, C, log_dt from p.dkernel (H, L); dD and du are not touched.
template <class T>
void s4d_kernel_bwd(const S4dBwdParams& p);

// y = causal_conv(u, p.kernel) + D u.
template <class T>
void s4d_conv_fwd(const S4dParams& p);

// du, p.dkernel (H, L) and p.g.dD (each optional) from dy.
template <class T>
void s4d_conv_bwd(const S4dBwdParams& p);

// ---- initialisation (pure functions: randomness comes in as arrays) ------------------------

enum class S4dInit : uint8_t {
  lin,   // A = -1/2 + i pi n
  inv,   // A = -1/2 + i (2N/pi) (2N/(2n+1) - 1), N complex modes = half the real state size
  real,  // A = -(n+1), real mode
};

struct S4dInitParams {
  S4dInit kind = S4dInit::lin;
  int64_t dim = 0, dstate = 0;  // H, N
  double dt_min = 1e-3, dt_max = 1e-1;
  const double* normals = nullptr;   // (H, N, 2) standard normals for C
  const double* uniforms = nullptr;  // (H) U[0, 1) for log_dt
  // Outputs, contiguous; the *_im ones may be null for S4dInit::real (else written as 0).
  void* A_re = nullptr;    // (H, N)
  void* A_im = nullptr;    // (H, N)
  void* B_re = nullptr;    // (H, N)  = 1
  void* B_im = nullptr;    // (H, N)  = 0
  void* C_re = nullptr;    // (H, N)
  void* C_im = nullptr;    // (H, N)
  void* log_dt = nullptr;  // (H)  log dt_min + U (log dt_max - log dt_min)
};

// C = (z0 + i z1) / sqrt(2) in the complex modes (unit complex variance), C = z0 in the real
// mode, with (z0, z1) = normals[h, n, :]. D is left to the caller.
template <class T>
void s4d_init(const S4dInitParams& p);

}  // namespace ssm::kernels::cpu
