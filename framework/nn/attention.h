// Causal grouped-query self-attention (Jamba's attention layer: no positional encoding, no
// bias). HF names under "self_attn.": q_proj [nh*hd, D], k_proj [nkv*hd, D],
// v_proj [nkv*hd, D], o_proj [D, nh*hd]. Under tensor parallelism each rank owns nh/tp query
// heads and nkv/tp key/value heads (q/k/v column-parallel, o_proj row-parallel).
#pragma once
#include "framework/config/recipe.h"
#include "framework/nn/layers.h"
#include "framework/nn/mixer.h"

namespace ssm::nn {

class AttentionMixer : public Mixer {
 public:
  AttentionMixer(const config::ModelConfig& cfg, Init& init);
  // With ctx.want_state the keys/values are appended to the layer's KV cache (prefill).
  // Attention keeps no state across training windows: in `carry` mode it attends within
  // the current window only.
  Tensor forward(const Tensor& x, MixerContext& ctx) override;
  Tensor step(const Tensor& x, LayerState& state) override;

 private:
  int64_t heads_, kv_heads_, head_dim_;  // local
  Linear *q_proj_, *k_proj_, *v_proj_, *o_proj_;
  TpPlacement tp_;
};

}  // namespace ssm::nn
