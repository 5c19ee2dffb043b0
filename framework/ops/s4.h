// Linear time-invariant SSM layers with diagonal state matrices, each one fused autograd node
// (hand-written backward that recomputes the states), plus one-token steps for generation.
//
//   // S4D: H independent channels, N complex modes each; u (B, H, L), e.g. transpose(x, 1, 2).
//   S4dWeights w;
//   w.log_dt = log_dt;                         // (H)
//   w.A_re = neg(exp(log_A_re)); w.A_im = A_im;  // (H, N)
//   w.B_re = B_re; w.B_im = B_im; w.C_re = C_re; w.C_im = C_im;  // (H, N)
//   w.D = D;                                   // (H)
//   S4Result r = ssm::s4d(u, w, h0_re, h0_im, /*return_final_state=*/true);
//   // r.y (B, H, L); r.final_state_re / _im (B, H, N): the carry into the next chunk.
//
//   // S5: one MIMO system with P complex states shared by the H channels; u (B, L, H).
//   S4Result s = ssm::s5(x, s5_weights);       // s.y (B, L, H)
//
// S4D, per channel h and mode n (dt = exp(log_dt[h])):
//   abar = exp(dt A)  (zoh)  or (1 + dt A/2) / (1 - dt A/2)  (bilinear)
//   bbar = (abar - 1) / A * B  (zoh)  or dt / (1 - dt A/2) * B  (bilinear)
//   h_t = abar h_{t-1} + bbar u_t,   y_t = scale Re(sum_n C h_t) + D u_t
// with scale 2 for complex modes (each mode stands for a conjugate pair) and 1 for S4D-Real.
// S5 is the same recurrence with x_t = abar (.) x_{t-1} + (f (.) B) u_t, x (P) complex,
// y_t = scale Re(C x_t) + D (.) u_t, dt = exp(log_dt[p]) per state.
// Complex values travel as separate real / imaginary tensors; states start at zero when h0 is
// undefined. Computed on the cpu in the input dtype (f32 or f64), discretisation in double.
#pragma once
#include "framework/core/tensor.h"

namespace ssm {

enum class S4Discretization { zoh, bilinear };

struct S4dWeights {  // per channel h of H, N modes
  Tensor log_dt;     // (H)
  Tensor A_re, A_im;  // (H, N); A_re < 0 (callers pass -exp(log_A_re))
  Tensor B_re, B_im;  // (H, N)
  Tensor C_re, C_im;  // (H, N)
  Tensor D;           // (H) optional
  bool complex = true;  // false: S4D-Real (A_im, B_im, C_im ignored/undefined; scale 1)
  S4Discretization disc = S4Discretization::zoh;
};

struct S4Result {
  Tensor y;                               // S4D (B, H, L); S5 (B, L, H)
  Tensor final_state_re, final_state_im;  // S4D (B, H, N); S5 (B, P); when requested
};

// u (B, H, L) any strides → y (B, H, L). h0_re / h0_im (B, H, N) optional (an undefined one
// is zero). Gradients flow to u, every weight and h0, and from y and the final state.
S4Result s4d(const Tensor& u, const S4dWeights& w, const Tensor& h0_re = {}, const Tensor& h0_im = {},
             bool return_final_state = false);

// One token, no autograd: state_re / state_im (B, H, N) advanced in place by u (B, H);
// returns y (B, H). Equals s4d() token by token.
Tensor s4d_step(const Tensor& state_re, const Tensor& state_im, const Tensor& u, const S4dWeights& w);

struct S5Weights {
  Tensor lambda_re, lambda_im;  // (P); lambda_re < 0
  Tensor log_dt;                // (P)
  Tensor B_re, B_im;            // (P, H)
  Tensor C_re, C_im;            // (H, P)
  Tensor D;                     // (H) optional
  bool conj_sym = true;         // y = 2 Re(C x) when true, Re(C x) otherwise
  S4Discretization disc = S4Discretization::zoh;
};

// u (B, L, H) any strides → y (B, L, H); h0_re / h0_im (B, P) optional (an undefined one is
// zero). A chunked parallel scan; the chunk length is fixed, so results do not depend on the
// thread count.
S4Result s5(const Tensor& u, const S5Weights& w, const Tensor& h0_re = {}, const Tensor& h0_im = {},
            bool return_final_state = false);

// One token, no autograd: state_re / state_im (B, P) advanced in place by u (B, H); returns
// y (B, H).
Tensor s5_step(const Tensor& state_re, const Tensor& state_im, const Tensor& u /*(B, H)*/, const S5Weights& w);

}  // namespace ssm
