// Mamba (selective SSM) mixer with the parameterisation of mamba_ssm / Hugging Face
// MambaMixer; with `bcdt_norm` it is Jamba's Mamba layer (RMSNorm on dt, B and C).
//
// Parameters (HF names under "mixer."):        shapes (global)
//   in_proj.weight  [2E, D] rows [x | z]       conv1d.weight [E, 1, K], conv1d.bias [E]
//   x_proj.weight   [R+2N, E] rows [dt|B|C]    dt_proj.weight [E, R], dt_proj.bias [E]
//   A_log [E, N]    D [E]                       out_proj.weight [D, E]
//   (jamba) dt_layernorm.weight [R], b_layernorm.weight [N], c_layernorm.weight [N]
//
// Tensor parallelism splits d_inner: in_proj is column-parallel (segments x, z), conv1d,
// dt_proj (column), A_log and D hold this rank's E/tp channels, x_proj is row-parallel and
// out_proj row-parallel. x_proj's output [dt|B|C] is summed over the ranks (tp_reduce),
// normalised (Jamba) while replicated, and enters the local channels through tp_copy, whose
// backward sums the ranks' contributions to its gradient.
#pragma once
#include <optional>

#include "framework/config/recipe.h"
#include "framework/nn/layers.h"
#include "framework/nn/mixer.h"

namespace ssm::nn {

class MambaMixer : public Mixer {
 public:
  MambaMixer(const config::ModelConfig& cfg, Init& init, bool bcdt_norm);
  Tensor forward(const Tensor& x, MixerContext& ctx) override;
  Tensor step(const Tensor& x, LayerState& state) override;

 private:
  int64_t d_model_, d_inner_, d_state_, dt_rank_, d_conv_;  // D, E (local), N, R, K
  double norm_eps_;
  Linear* in_proj_;
  Parameter* conv_w_;  // (E, 1, K)
  Parameter* conv_b_ = nullptr;
  Linear* x_proj_;
  Linear* dt_proj_;
  Parameter* A_log_;
  Parameter* D_;
  Linear* out_proj_;
  RmsNorm *dt_norm_ = nullptr, *b_norm_ = nullptr, *c_norm_ = nullptr;
  TpPlacement tp_;
};

// dt bias init shared by Mamba and Mamba-2: softplus⁻¹ of dt ~ logU(dt_min, dt_max),
// floored at dt_init_floor.
Tensor dt_bias_init(Init& init, int64_t n, double dt_min, double dt_max, double floor);

}  // namespace ssm::nn
