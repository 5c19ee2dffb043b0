// Mamba-2 (SSD) mixer with the parameterisation of mamba_ssm Mamba2 / HF Mamba2Mixer.
//
// Parameters (HF names under "mixer."):              shapes (global)
//   in_proj.weight [2E + 2GN + H, D] rows [z | x | B | C | dt]     (segments, for TP/export)
//   conv1d.weight  [E + 2GN, 1, K] channels [x | B | C], conv1d.bias [E + 2GN]
//   dt_bias [H], A_log [H], D [H], norm.weight [E] (grouped gated RMSNorm), out_proj.weight [D, E]
// Under tensor parallelism every segment is split across ranks (H/tp heads and G/tp groups
// per rank), so the grouped norm needs no communication (anchors.md §4).
#pragma once
#include "framework/config/recipe.h"
#include "framework/nn/layers.h"
#include "framework/nn/mixer.h"

namespace ssm::nn {

class Mamba2Mixer : public Mixer {
 public:
  Mamba2Mixer(const config::ModelConfig& cfg, Init& init);
  Tensor forward(const Tensor& x, MixerContext& ctx) override;
  Tensor step(const Tensor& x, LayerState& state) override;

 private:
  int64_t d_inner_, heads_, headdim_, groups_, d_state_, d_conv_, chunk_;  // local E, H, P, G, N, K, C
  double dt_min_, dt_max_, norm_eps_;
  Linear* in_proj_;
  Parameter* conv_w_;
  Parameter* conv_b_ = nullptr;
  Parameter* dt_bias_;
  Parameter* A_log_;
  Parameter* D_;
  Parameter* norm_w_;
  Linear* out_proj_;
};

}  // namespace ssm::nn
