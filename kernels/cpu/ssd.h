// CPU reference of the Mamba-2 scan (state space duality, "SSD"), float and double: the
// float64 oracle for the CUDA kernels and the CPU training path. Semantics: mamba_ssm's
// mamba_chunk_scan_combined (dt bias, softplus, clamp, D, z gate, h0/hT, seq_idx); see
// ssd_params.h.
//
//   SsdParams p = ...;                    // sizes, strides, x/dt/A/Bm/Cm/out, chunk_size
//   std::vector<float> saved(p.batch * p.n_chunks() * p.nheads * p.headdim * p.dstate);
//   p.chunk_states = saved.data();
//   ssd_fwd<float>(p);                    // chunked algorithm: out, hT, chunk_states
//
//   SsdBwdParams g;
//   static_cast<SsdParams&>(g) = p;
//   g.dout = dout; g.dx = dx; g.ddt = ddt; ...   // only the gradients you need
//   ssd_bwd<float>(g);
//
// Work splits depend only on sizes and every reduction over batch, heads or head dim is summed
// in a fixed order, so results are bitwise independent of the OpenMP thread count. Invalid
// sizes throw std::invalid_argument.
#pragma once
#include "kernels/common/ssd_params.h"

namespace ssm::kernels::cpu {

// Chunked (SSD) forward. Within a chunk of C steps the output is the masked quadratic form
//   y_intra[i] = sum_{j <= i} exp(segsum(min(dt A, 0))[j+1 .. i]) (Cm_i · Bm_j) dt_j x_j
// (each step's exponent clamped, as in the recurrence), each chunk's end state is computed as if it started from zero, the states are passed from
// chunk to chunk (a short sequential loop over chunks), and finally every position adds
// Cm_i · (decayed state entering its chunk). Writes out, hT and chunk_states when requested.
template <class T>
void ssd_fwd(const SsdParams& p);

// The plain recurrence, one step at a time: the definition the chunked form must reproduce.
// Same outputs as ssd_fwd (chunk_states included), so either may feed ssd_bwd. On a CPU it
// is the faster of the two (about 2x at P = 64, N = 64, C = 128: O(L P N) against the chunked
// form's extra O(L C P)); ssd_fwd is the algorithm the GPU kernels implement.
template <class T>
void ssd_fwd_sequential(const SsdParams& p);

// Gradients of sum(out * dout) + sum(hT * dhT). For each chunk, last to first, the states of
// the chunk are recomputed from p.chunk_states and the adjoint recurrence runs backwards one
// step at a time (C x P x N per head and chunk). We chose the sequential adjoint over the
// chunked quadratic form on purpose: it costs O(L P N) like the forward recurrence, needs no
// second masked product, and is easy to check; the CUDA backward is checked against it.
template <class T>
void ssd_bwd(const SsdBwdParams& p);

// One token for generation: state (B, H, P, N) updated in place, out (B, H, P).
template <class T>
void ssd_step(const SsdStepParams& p);

}  // namespace ssm::kernels::cpu
