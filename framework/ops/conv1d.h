// Causal depthwise conv1d (the short convolution in front of the Mamba scans), one fused
// autograd node with a hand-written backward, plus the one-token step used in generation.
//
//   // xbc (B, L, C) from a projection; the conv reads it as (B, C, L) without a copy.
//   Conv1dArgs a;
//   a.bias = conv_b;                 // (C)
//   a.silu = true;
//   a.initial_state = carry;         // (B, C, K-1) from the previous chunk (TBPTT), optional
//   a.return_final_state = true;
//   ConvResult r = ssm::causal_conv1d(ssm::transpose(xbc, 1, 2), conv_w /*(C, K)*/, a);
//   // r.y (B, C, L) contiguous, r.final_state (B, C, K-1): the carry for the next chunk.
//
//   // Generation: window (B, C, K) holds the last K inputs, oldest first.
//   Tensor y = ssm::causal_conv1d_step(window, x_t /*(B, C)*/, conv_w, conv_b, true);
//
//   y[b,c,t] = act(bias[c] + sum_{k<K} weight[c,k] * xpad[b,c,t-(K-1)+k]),  act = SiLU or identity,
// where xpad is x preceded by the K-1 columns of initial_state (zeros when undefined). With
// seq_idx (packed documents) an output only mixes inputs of its own document; the initial
// state belongs to the document of position 0.
#pragma once
#include "framework/core/tensor.h"

namespace ssm {

struct ConvResult {
  Tensor y;            // (B, C, L)
  Tensor final_state;  // (B, C, K-1); defined when Conv1dArgs::return_final_state
};

struct Conv1dArgs {
  Tensor bias{};                     // (C) optional
  bool silu = false;                 // y = SiLU(pre-activation)
  Tensor seq_idx{};                  // (B, L) i32 document ids, optional
  Tensor initial_state{};            // (B, C, K-1) optional
  bool return_final_state = false;   // fill ConvResult::final_state (B, C, K-1)
};

// x (B, C, L) any strides (e.g. a transposed view of (B, L, C)); weight (C, K), K in 1..8.
// Gradients flow to x, weight, bias and initial_state, and from y and final_state. With
// seq_idx, final_state columns that belong to a document other than the one at t = L-1 are
// zero (they must not leak into that document's continuation).
ConvResult causal_conv1d(const Tensor& x, const Tensor& weight, const Conv1dArgs& args = {});

// One token, no autograd (call under NoGradGuard when the weights require grad):
// conv_state (B, C, K) is shifted left by one in place and x (B, C) written into its last
// column; returns y (B, C) = act(bias + sum_k weight[:, k] * conv_state[:, :, k]).
// bias (C) may be undefined.
Tensor causal_conv1d_step(const Tensor& conv_state, const Tensor& x, const Tensor& weight, const Tensor& bias,
                          bool silu);

}  // namespace ssm
