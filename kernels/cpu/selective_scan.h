// CPU reference of the Mamba-1 selective scan (float, double): the float64 oracle for the
// CUDA kernels and the CPU training path. Semantics: mamba_ssm's selective_scan_ref, plus
// packed documents (seq_idx) and saved chunk states; see selective_scan_params.h.
//
//   SelectiveScanParams p = ...;          // sizes, strides, u/delta/A/Bm/Cm/out, chunk_len 64
//   std::vector<double> saved(p.batch * p.dim * p.n_chunks() * p.dstate);
//   p.chunk_states = saved.data();
//   selective_scan_fwd<double>(p);        // out, hT, chunk_states
//
//   SelectiveScanBwdParams g;
//   static_cast<SelectiveScanParams&>(g) = p;
//   g.dout = dout; g.du = du; g.dA = dA; ...   // only the gradients you need
//   selective_scan_bwd<double>(g);
//
// Work is split over (batch, group, block of 16 channels) items and, in the backward, over
// chunks in lock step; the split depends only on sizes and every reduction over batch or
// channels is summed in a fixed order, so results are bitwise independent of the number of
// OpenMP threads. Invalid sizes throw std::invalid_argument.
#pragma once
#include "kernels/common/selective_scan_params.h"

namespace ssm::kernels::cpu {

// out (B, E, L), hT and chunk_states (B, E, n_chunks, N) when requested.
template <class T>
void selective_scan_fwd(const SelectiveScanParams& p);

// Gradients of sum(out * dout) + sum(hT * dhT). States are recomputed chunk by chunk from
// p.chunk_states (never all L of them), then the adjoint recurrence runs backwards.
template <class T>
void selective_scan_bwd(const SelectiveScanBwdParams& p);

// One token for generation: state (B, E, N) updated in place, out (B, E).
template <class T>
void selective_scan_step(const SelectiveScanStepParams& p);

}  // namespace ssm::kernels::cpu
