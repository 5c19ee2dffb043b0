#include "framework/nn/mlp.h"

#include "framework/ops/ops.h"

namespace ssm::nn {

GatedMlp::GatedMlp(Init& init, int64_t d, int64_t f, double std) : tp_(init.tp()) {
  SSM_CHECK(f % tp_.size == 0, "mlp: intermediate size {} is not divisible by tensor parallel size {}", f, tp_.size);
  gate_ = &add_module("gate_proj", std::make_unique<Linear>(init, init.normal({f, d}, std), Tensor(), TpSplit::column));
  up_ = &add_module("up_proj", std::make_unique<Linear>(init, init.normal({f, d}, std), Tensor(), TpSplit::column));
  down_ = &add_module("down_proj", std::make_unique<Linear>(init, init.normal({d, f}, std), Tensor(), TpSplit::row));
}

FfnOutput GatedMlp::forward(const Tensor& x) {
  const Tensor xc = tp_copy(x, tp_);  // shared by gate and up: one all-reduce in backward
  return {down_->forward(mul(silu(gate_->forward_local(xc)), up_->forward_local(xc))), Tensor(), {}};
}

MoeMlp::MoeMlp(const config::ModelConfig& cfg, Init& init) : tp_(init.tp()) {
  const int64_t X = cfg.num_experts, D = cfg.d_model, F = cfg.resolved_intermediate_size();
  SSM_CHECK(F % tp_.size == 0, "moe: expert intermediate size {} is not divisible by tensor parallel size {}", F,
            tp_.size);
  top_k_ = cfg.num_experts_per_tok;
  aux_coef_ = cfg.router_aux_loss_coef;
  z_coef_ = cfg.router_z_loss_coef;
  double std = cfg.initializer_range;
  router_ = &add_param("router.weight", init.normal({X, D}, std), init);
  gate_ = &add_param("experts.gate_proj", init.normal({X, F, D}, std), init, {1, {}});
  up_ = &add_param("experts.up_proj", init.normal({X, F, D}, std), init, {1, {}});
  down_ = &add_param("experts.down_proj", init.normal({X, D, F}, std), init, {2, {}});
}

// Under TP every rank routes identically (replicated router, replicated x) and runs its F/tp
// slice of each expert; the outputs are partial sums, reduced once. Gradients:
//  - expert weights: local, exact (each rank owns its slice);
//  - router and x: the routing-weight gradient ⟨dout, expert output⟩ is a partial sum per
//    rank (the expert outputs are), so the router weight enters through tp_copy (its
//    backward sums the ranks' router gradients) like x does;
//  - the aux/z losses are functions of the replicated routing alone: their gradient is
//    full on every rank, so only tp rank 0 puts them in its graph (the sum over ranks then
//    counts them once); the other ranks add the same value as a constant so that every rank
//    reports the same loss.
FfnOutput MoeMlp::forward(const Tensor& x) {
  const int64_t B = x.shape()[0], L = x.shape()[1], D = x.shape()[2];
  const bool owns_aux = tp_.rank == 0;
  const Tensor xc = tp_copy(reshape(x, {B * L, D}), tp_);
  const Tensor router = tp_copy(compute_view(*router_, x), tp_);
  MoeOutput m = moe_ffn(xc, router, compute_view(*gate_, x), compute_view(*up_, x), compute_view(*down_, x), top_k_,
                        owns_aux ? aux_coef_ : 0.0, owns_aux ? z_coef_ : 0.0);
  Tensor aux = m.aux_loss;
  if (!owns_aux) {
    // The value rank 0 computes (moe_ffn forms it in x's dtype from the unscaled losses).
    NoGradGuard ng;
    aux = Tensor::scalar(aux_coef_ * m.balance_loss + z_coef_ * m.z_loss, x.dtype(), x.device());
  }
  return {reshape(tp_reduce(m.out, tp_), {B, L, D}), aux, m.counts};
}

}  // namespace ssm::nn
