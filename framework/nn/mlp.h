// Feed-forward layers placed after a mixer: a dense SwiGLU MLP and the mixture-of-experts
// SwiGLU MLP of Jamba. HF names under "feed_forward.": gate_proj/up_proj [F, D],
// down_proj [D, F]; MoE: router.weight [X, D] and experts stored fused here as
// experts.gate_proj [X, F, D], experts.up_proj [X, F, D], experts.down_proj [X, D, F]
// (the exporter writes HF's per-expert keys).
//
// Tensor parallelism splits the FFN width F: dense gate/up column-parallel and down
// row-parallel; MoE experts keep all X experts on every rank with F/tp of each one's width
// (gate/up split on dim 1, down on dim 2), and the router is replicated.
#pragma once
#include "framework/config/recipe.h"
#include "framework/nn/layers.h"

namespace ssm::nn {

struct FfnOutput {
  Tensor y;                      // (B, L, D)
  Tensor aux_loss;               // () MoE router losses (already scaled), undefined for dense
  std::vector<int64_t> counts;   // MoE tokens per expert
};

class Ffn : public Module {
 public:
  virtual FfnOutput forward(const Tensor& x) = 0;
};

class GatedMlp : public Ffn {
 public:
  GatedMlp(Init& init, int64_t d_model, int64_t hidden, double std);
  FfnOutput forward(const Tensor& x) override;

 private:
  Linear *gate_, *up_, *down_;
  TpPlacement tp_;
};

class MoeMlp : public Ffn {
 public:
  MoeMlp(const config::ModelConfig& cfg, Init& init);
  FfnOutput forward(const Tensor& x) override;

 private:
  int64_t top_k_;
  double aux_coef_, z_coef_;
  Parameter *router_, *gate_, *up_, *down_;
  TpPlacement tp_;
};

}  // namespace ssm::nn
