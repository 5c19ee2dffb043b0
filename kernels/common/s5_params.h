// Params for S5 (Smith et al. 2023, "Simplified State Space Layers for Sequence Modeling"):
// one MIMO diagonal SSM with N complex states shared by all H input/output channels.
// Notation: H model width (the paper's H), N state size (the paper's P).
//
//   abar = exp(dt Lambda)  (zoh) or (1 + dt Lambda/2)/(1 - dt Lambda/2)  (bilinear), per state
//   Bbar = f (.) Btilde, row n scaled by f[n] = (abar - 1)/Lambda or dt/(1 - dt Lambda/2)
//   x_t  = abar (.) x_{t-1} + Bbar u_t                    (complex, N)
//   y_t  = scale * Re(Ctilde x_t) + D (.) u_t             (real, H)
// scale = 1, or 2 with conj_sym (each state stands for itself and its conjugate, as in the
// paper's conjugate-symmetric parameterisation). dt = exp(log_dt[n]) per state.
//
// Complex parameters are split into _re / _im planes, contiguous; states are (B, N, 2) with
// (re, im) adjacent. cplx, Discretization and lti_discretize come from s4d_params.h.
#pragma once
#include <cstdint>

#include "kernels/common/s4d_params.h"

namespace ssm::kernels {

struct S5Weights {
  const void* Lambda_re = nullptr;  // (N)  < 0 for stability
  const void* Lambda_im = nullptr;  // (N)
  const void* log_dt = nullptr;     // (N)
  const void* B_re = nullptr;       // (N, H)  Btilde
  const void* B_im = nullptr;       // (N, H)
  const void* C_re = nullptr;       // (H, N)  Ctilde
  const void* C_im = nullptr;       // (H, N)
  const void* D = nullptr;          // (H), optional (null = 0)
};

// Gradients of S5Weights; each optional and overwritten.
struct S5WeightGrads {
  void* dLambda_re = nullptr;  // (N)
  void* dLambda_im = nullptr;  // (N)
  void* dlog_dt = nullptr;     // (N)
  void* dB_re = nullptr;       // (N, H)
  void* dB_im = nullptr;       // (N, H)
  void* dC_re = nullptr;       // (H, N)
  void* dC_im = nullptr;       // (H, N)
  void* dD = nullptr;          // (H)
};

constexpr int64_t kS5DefaultChunk = 64;

struct S5Params {
  int64_t batch = 0, seqlen = 0, dim = 0, dstate = 0;  // B, L, H, N
  bool conj_sym = false;                               // y = 2 Re(C x)
  Discretization disc = Discretization::zoh;
  // Length of the scan chunks of the parallel forward/backward. Part of the problem, not of
  // the machine: it fixes the rounding, so results never depend on the thread count.
  int64_t chunk_size = kS5DefaultChunk;
  S5Weights w;

  const void* u = nullptr;  // (B, L, H)
  int64_t u_batch_stride = 0, u_l_stride = 0, u_h_stride = 0;
  void* y = nullptr;  // (B, L, H)
  int64_t y_batch_stride = 0, y_l_stride = 0, y_h_stride = 0;

  // TBPTT carry, optional: the state before u[:, 0] (zeros when null) and after u[:, L-1].
  const void* h0 = nullptr;  // (B, N, 2)
  int64_t h0_batch_stride = 0;
  void* hT = nullptr;  // (B, N, 2)
  int64_t hT_batch_stride = 0;
};

struct S5BwdParams : S5Params {
  const void* dy = nullptr;  // (B, L, H)
  int64_t dy_batch_stride = 0, dy_l_stride = 0, dy_h_stride = 0;
  const void* dhT = nullptr;  // (B, N, 2), optional upstream gradient of hT
  int64_t dhT_batch_stride = 0;

  void* du = nullptr;  // (B, L, H), optional
  int64_t du_batch_stride = 0, du_l_stride = 0, du_h_stride = 0;
  S5WeightGrads g;
  void* dh0 = nullptr;  // (B, N, 2), optional
  int64_t dh0_batch_stride = 0;
};

// One generation step: state (B, N, 2) advanced in place by u (B, H), y (B, H) written.
struct S5StepParams {
  int64_t batch = 0, dim = 0, dstate = 0;  // B, H, N
  bool conj_sym = false;
  Discretization disc = Discretization::zoh;
  S5Weights w;

  const void* u = nullptr;  // (B, H)
  int64_t u_batch_stride = 0, u_h_stride = 0;
  void* y = nullptr;  // (B, H)
  int64_t y_batch_stride = 0, y_h_stride = 0;
  void* state = nullptr;  // (B, N, 2)
  int64_t state_batch_stride = 0;
};

}  // namespace ssm::kernels
