// S4D and S5 sequence layers (linear time-invariant SSMs), each followed by GELU and a
// gated linear output (GLU), as in the S4D and S5 reference models.
//
// S4 with its DPLR/NPLR kernel is not implemented: S4D (diagonal A) matches S4 on the
// benchmarks it was evaluated on (Gu et al. 2022) with far simpler and cheaper kernels, and
// is what the model families here build on. Configs asking for S4 use S4D.
//
// S4D parameters: log_dt [H], log_A_real [H, N], A_imag [H, N], B [H, N, 2] as (re, im)
// pairs in B_re/B_im, C_re/C_im [H, N], D [H], out.weight [2H, H], out.bias [2H].
// S5 parameters: Lambda_re/Lambda_im [P], log_dt [P], B_re/B_im [P, H], C_re/C_im [H, P],
// D [H], out.weight [2H, H], out.bias [2H].
#pragma once
#include "framework/config/recipe.h"
#include "framework/nn/layers.h"
#include "framework/nn/mixer.h"
#include "framework/ops/s4.h"

namespace ssm::nn {

class S4dMixer : public Mixer {
 public:
  S4dMixer(const config::ModelConfig& cfg, Init& init);
  Tensor forward(const Tensor& x, MixerContext& ctx) override;
  Tensor step(const Tensor& x, LayerState& state) override;

 private:
  S4dWeights weights(const Tensor& like) const;
  Tensor local_channels(const Tensor& x) const;
  TpPlacement tp_;
  int64_t local_ = 0;  // channels on this tp rank
  bool complex_;
  S4Discretization disc_;
  int64_t d_model_, modes_;
  Parameter *log_dt_, *log_A_re_, *A_im_ = nullptr, *B_re_, *B_im_ = nullptr, *C_re_, *C_im_ = nullptr, *D_;
  Linear* out_;
};

class S5Mixer : public Mixer {
 public:
  S5Mixer(const config::ModelConfig& cfg, Init& init);
  Tensor forward(const Tensor& x, MixerContext& ctx) override;
  Tensor step(const Tensor& x, LayerState& state) override;

 private:
  S5Weights weights(const Tensor& like) const;
  TpPlacement tp_;
  int64_t d_model_, states_;  // H, P on this tp rank
  Parameter *log_lambda_re_, *lambda_im_, *log_dt_, *B_re_, *B_im_, *C_re_, *C_im_, *D_;
  Linear* out_;
};

}  // namespace ssm::nn
