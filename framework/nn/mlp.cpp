#include "framework/nn/mlp.h"

#include "framework/ops/ops.h"

namespace ssm::nn {

GatedMlp::GatedMlp(Init& init, int64_t d, int64_t f, double std) {
  gate_ = &add_module("gate_proj", std::make_unique<Linear>(init, init.normal({f, d}, std), Tensor(), TpSplit::column));
  up_ = &add_module("up_proj", std::make_unique<Linear>(init, init.normal({f, d}, std), Tensor(), TpSplit::column));
  down_ = &add_module("down_proj", std::make_unique<Linear>(init, init.normal({d, f}, std), Tensor(), TpSplit::row));
}

FfnOutput GatedMlp::forward(const Tensor& x) {
  return {down_->forward(mul(silu(gate_->forward(x)), up_->forward(x))), Tensor(), {}};
}

MoeMlp::MoeMlp(const config::ModelConfig& cfg, Init& init) {
  SSM_CHECK(init.tp().size == 1 || cfg.num_experts % init.tp().size == 0,
            "moe: num_experts {} is not divisible by tensor parallel size {}", cfg.num_experts, init.tp().size);
  const int64_t X = cfg.num_experts, D = cfg.d_model, F = cfg.resolved_intermediate_size();
  top_k_ = cfg.num_experts_per_tok;
  aux_coef_ = cfg.router_aux_loss_coef;
  z_coef_ = cfg.router_z_loss_coef;
  double std = cfg.initializer_range;
  router_ = &add_param("router.weight", init.normal({X, D}, std), init);
  gate_ = &add_param("experts.gate_proj", init.normal({X, F, D}, std), init);
  up_ = &add_param("experts.up_proj", init.normal({X, F, D}, std), init);
  down_ = &add_param("experts.down_proj", init.normal({X, D, F}, std), init);
}

FfnOutput MoeMlp::forward(const Tensor& x) {
  const int64_t B = x.shape()[0], L = x.shape()[1], D = x.shape()[2];
  MoeOutput m = moe_ffn(reshape(x, {B * L, D}), compute_view(*router_, x), compute_view(*gate_, x),
                        compute_view(*up_, x), compute_view(*down_, x), top_k_, aux_coef_, z_coef_);
  return {reshape(m.out, {B, L, D}), m.aux_loss, m.counts};
}

}  // namespace ssm::nn
