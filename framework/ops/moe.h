// Mixture-of-experts SwiGLU feed-forward block (Jamba / Mixtral), one fused op.
//
//   // x (T, D) tokens; X experts of width F; Jamba routes each token to k = 2 experts.
//   MoeOutput m = ssm::moe_ffn(x, router_w, w_gate, w_up, w_down, /*top_k=*/2,
//                              /*aux_coef=*/0.001, /*z_coef=*/0.0);
//   Tensor loss = add(task_loss(m.out), m.aux_loss);   // both outputs are differentiable
//   log("expert load", m.counts);                      // tokens per expert, sums to T*k
//
// Per token t (probs = softmax(router_w · x_t), top-k experts e with weight w = probs[e],
// not renormalised, as Hugging Face Jamba):
//   out[t] = sum_{(e, w)} w * down_e · (silu(gate_e · x_t) ∘ (up_e · x_t))
// aux_loss = aux_coef * X * sum_x (n_x / T) * P_x  +  z_coef * mean_t logsumexp(logits_t)^2,
// with n_x the tokens routed to expert x and P_x the mean router probability of x.
// No token is dropped (no capacity factor). Each expert's tokens are gathered into one
// contiguous block and run through GEMMs; results do not depend on the thread count.
#pragma once
#include <cstdint>
#include <vector>

#include "framework/core/tensor.h"

namespace ssm {

struct MoeOutput {
  Tensor out;                   // (T, D)
  Tensor aux_loss;              // () aux_coef * balance_loss + z_coef * z_loss, x's dtype
  std::vector<int64_t> counts;  // (X) tokens routed to each expert; sums to T * top_k
  double balance_loss = 0.0;    // unscaled load-balancing loss (perfect balance gives top_k)
  double z_loss = 0.0;          // unscaled router z-loss
};

// x (T, D), router_w (X, D), w_gate (X, F, D), w_up (X, F, D), w_down (X, D, F).
// Gradients flow from both out and aux_loss to x and every weight (the top-k choice itself
// is piecewise constant and gets none).
MoeOutput moe_ffn(const Tensor& x, const Tensor& router_w, const Tensor& w_gate, const Tensor& w_up,
                  const Tensor& w_down, int64_t top_k, double aux_coef = 0.0, double z_coef = 0.0);

}  // namespace ssm
