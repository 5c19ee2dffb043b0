// CPU reference for the causal depthwise conv1d (float, double); see conv1d_params.h for the
// definition. Parallel over (batch, channel) rows in the forward and over channels in the
// backward, so every reduction (dweight, dbias over batch and length) runs in one fixed order
// and results are bitwise independent of the thread count.
//
//   // x: (B=2, D=3, L=5) contiguous, K = 4, SiLU
//   Conv1dParams p;
//   p.batch = 2; p.dim = 3; p.seqlen = 5; p.width = 4; p.silu = true;
//   p.x = x;      p.x_batch_stride = 15; p.x_d_stride = 5; p.x_l_stride = 1;
//   p.weight = w; p.weight_d_stride = 4; p.weight_k_stride = 1;
//   p.out = out;  p.out_batch_stride = 15; p.out_d_stride = 5; p.out_l_stride = 1;
//   causal_conv1d_fwd<float>(p);
#pragma once
#include "kernels/common/conv1d_params.h"

namespace ssm::kernels::cpu {

// out (and final_states when set) from x, weight, bias, seq_idx, initial_states.
template <class T>
void causal_conv1d_fwd(const Conv1dParams& p);

// dx, dweight, dbias, dinitial_states (each optional) from dout and dfinal_states.
// The pre-activation is recomputed, nothing from the forward needs to be saved.
template <class T>
void causal_conv1d_bwd(const Conv1dBwdParams& p);

// One token: conv_state (B, D, K) rolls left by one and takes x; out = act(bias + w · state).
template <class T>
void causal_conv1d_step(const Conv1dStepParams& p);

}  // namespace ssm::kernels::cpu
