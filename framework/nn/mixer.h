// The sequence-mixer interface shared by Mamba, Mamba-2, S4D, S5 and attention layers, and
// the per-layer recurrent state used for truncated BPTT (`train.state: carry`) and for
// generation.
//
//   nn::LayerState st;                       // empty: start from zero state
//   nn::MixerContext ctx{seq_idx, &st, true};
//   Tensor y = mixer.forward(x, ctx);        // x (B, L, D); st now holds the final state
//   st.detach();                             // next window continues from here (TBPTT)
//   Tensor y1 = mixer.step(x_tok, st);       // one token (B, D), no autograd
#pragma once
#include <memory>

#include "framework/nn/module.h"
#include "framework/ops/attention.h"

namespace ssm::nn {

struct LayerState {
  Tensor conv;    // (B, C, K-1): the conv inputs that precede the next position
  Tensor ssm;     // Mamba (B, E, N); Mamba-2 (B, H, P, N); S4D (B, H, N) / S5 (B, P) real part
  Tensor ssm_im;  // S4D / S5 imaginary part
  std::shared_ptr<KvCache> kv;  // attention layers
  bool empty() const { return !conv.defined() && !ssm.defined() && !kv; }
  // Cuts the autograd history so the next window starts from these values as constants.
  void detach();
};

struct MixerContext {
  Tensor seq_idx;                 // (B, L) i32 packed-document ids, or undefined
  LayerState* state = nullptr;    // in: initial state (fields may be undefined); out: final state
  bool want_state = false;        // fill *state with the final state
};

class Mixer : public Module {
 public:
  // x (B, L, D) -> (B, L, D)
  virtual Tensor forward(const Tensor& x, MixerContext& ctx) = 0;
  // x (B, D) -> (B, D) for one new token; `state` is updated in place. No autograd.
  virtual Tensor step(const Tensor& x, LayerState& state) = 0;
};

// Conv state helpers shared by the mixers' step functions: with `conv` (B, C, K-1) holding
// the previous inputs, returns silu?(bias + Σ w·[conv | x]) and shifts x into `conv`.
Tensor conv_step(LayerState& st, const Tensor& x, const Tensor& weight, const Tensor& bias, bool silu);

}  // namespace ssm::nn
