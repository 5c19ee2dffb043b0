// The selective scans of Mamba-1 and Mamba-2 (SSD), each one fused autograd node with a
// hand-written backward that recomputes states from saved chunk-boundary states, plus the
// one-token steps used in generation.
//
//   // Mamba-1: xc (B, E, L) from the conv, delta (B, L, E) from dt_proj, x_dbl (B, L, R + 2N)
//   // from x_proj, z the second half of in_proj's (B, L, 2E) output.
//   SelectiveScanArgs a;
//   a.delta_bias = dt_bias;  a.D = D;  a.z = transpose(narrow(xz, -1, E, E), 1, 2);
//   a.return_final_state = true;
//   Tensor Bm = unsqueeze(transpose(narrow(x_dbl, -1, R, N), 1, 2), 1);      // (B, 1, N, L) view
//   Tensor Cm = unsqueeze(transpose(narrow(x_dbl, -1, R + N, N), 1, 2), 1);  // (B, 1, N, L) view
//   ScanResult r = ssm::selective_scan(xc, transpose(delta, 1, 2), A /*(E, N)*/, Bm, Cm, a);
//   // r.y (B, E, L); r.final_state (B, E, N), the h0 of the sequence's next chunk (detach it
//   // before a backward() frees the graph that produced it).
//
//   // Mamba-2: x (B, L, H, P), dt (B, L, H), Bm/Cm (B, L, G, N), all views of one projection.
//   SsdArgs s;
//   s.D = D;  s.dt_bias = dt_bias;  s.dt_min = 0.0;  s.dt_max = 0.1;  s.chunk_size = 256;
//   ScanResult q = ssm::ssd_scan(x, dt, A /*(H)*/, Bm, Cm, s);   // q.y (B, L, H, P)
//
//   // Generation (under NoGradGuard): state updated in place, one token at a time.
//   Tensor y_t = ssm::ssd_step(state /*(B, H, P, N)*/, x_t, dt_t, A, Bm_t, Cm_t, s);
//
// Semantics (mamba_ssm's selective_scan_ref / mamba_chunk_scan_combined), per batch row:
//   Mamba-1, channel e, group g = e / (E / G):
//     dt_t = softplus?(delta_t + delta_bias),  h_t = exp(dt_t A) h_{t-1} + dt_t Bm_t u_t  (N values)
//     y_t = <h_t, Cm_t> + D u_t,  out_t = y_t * silu(z_t)
//   Mamba-2, head h, group g = h / (H / G):
//     dt_t = clamp(softplus?(dt_t + dt_bias), dt_min, dt_max)  -- the clamp is applied even
//            without softplus, so with the default dt_min = 0 a negative dt becomes 0;
//     h_t = exp(dt_t A_h) h_{t-1} + dt_t x_t Bm_tᵀ  (P x N),  y_t = h_t Cm_t + D x_t,
//     out_t = y_t * silu(z_t)
// Both clamp the exponent at 0 (exp(min(dt A, 0))), so a positive dt A never grows the state.
// With seq_idx the state restarts from zero where the document id changes; h0 feeds only the
// document at t = 0, and the final state is that of the last document.
//
// Every tensor may be a strided view (transposed, permuted, narrowed out of a fused
// projection); the kernels read it in place. Outputs are contiguous. Floating inputs share
// one dtype (f32 or f64 on the cpu) and one device; seq_idx is i32. Results do not depend on
// the number of threads.
#pragma once
#include <cstdint>
#include <limits>

#include "framework/core/tensor.h"

namespace ssm {

struct ScanResult {
  Tensor y;            // output
  Tensor final_state;  // undefined unless requested
};

// ---- Mamba-1 --------------------------------------------------------------------------------

struct SelectiveScanArgs {
  Tensor delta_bias;           // (E) optional
  bool delta_softplus = true;
  Tensor D;                    // (E) optional
  Tensor z;                    // (B, E, L) optional gate: y * silu(z)
  Tensor h0;                   // (B, E, N) optional initial state
  Tensor seq_idx;              // (B, L) i32 optional: packed documents (state resets where it changes)
  bool return_final_state = false;  // -> ScanResult::final_state (B, E, N)
};

// Mamba-1. u, delta (B, E, L) (any strides: e.g. transposed views of (B, L, E));
// A (E, N); Bm, Cm (B, G, N, L) (any strides: e.g. permuted views of (B, L, G, N) or (B, L, N)
// unsqueezed); G divides E. Returns y (B, E, L) and, when asked, final_state (B, E, N).
// Gradients flow to u, delta, A, Bm, Cm, D, z, delta_bias and h0, from y and final_state.
ScanResult selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                          const Tensor& Cm, const SelectiveScanArgs& args = {});

// One token (generation, no autograd: call under NoGradGuard when weights require grad):
// state (B, E, N) updated in place; u, delta, z (B, E); Bm, Cm (B, G, N). Returns y (B, E).
// Uses delta_bias, delta_softplus, D and z of args; h0, seq_idx and return_final_state must be
// left unset (the state argument is both).
Tensor selective_scan_step(const Tensor& state, const Tensor& u, const Tensor& delta, const Tensor& A,
                           const Tensor& Bm, const Tensor& Cm, const SelectiveScanArgs& args = {});

// ---- Mamba-2 (SSD) --------------------------------------------------------------------------

struct SsdArgs {
  Tensor D;                    // (H) or (H, P) optional
  Tensor z;                    // (B, L, H, P) optional gate
  Tensor dt_bias;              // (H) optional
  bool dt_softplus = true;
  double dt_min = 0.0, dt_max = std::numeric_limits<double>::infinity();  // clamp after softplus
  Tensor h0;                   // (B, H, P, N) optional
  Tensor seq_idx;              // (B, L) i32 optional
  int64_t chunk_size = 256;    // spacing of the states saved for the backward (>= 1)
  bool return_final_state = false;  // (B, H, P, N)
};

// Mamba-2. x (B, L, H, P), dt (B, L, H), A (H), Bm, Cm (B, L, G, N), G divides H; any strides
// (views of a fused projection work without the caller copying). Returns y (B, L, H, P) and,
// when asked, final_state (B, H, P, N). Gradients flow to x, dt, A, Bm, Cm, D, z, dt_bias and
// h0, from y and final_state; dt gets zero gradient where the clamp is active.
ScanResult ssd_scan(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm, const Tensor& Cm,
                    const SsdArgs& args = {});

// One token (no autograd): state (B, H, P, N) in place; x (B, H, P), dt (B, H), Bm/Cm (B, G, N),
// z (B, H, P) → y (B, H, P). Uses D, z, dt_bias, dt_softplus, dt_min and dt_max of args; h0,
// seq_idx and return_final_state must be left unset, chunk_size is ignored.
Tensor ssd_step(const Tensor& state, const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                const Tensor& Cm, const SsdArgs& args = {});

}  // namespace ssm
