#include "framework/nn/lm.h"

#include "framework/nn/attention.h"
#include "framework/nn/mamba.h"
#include "framework/nn/mamba2.h"
#include "framework/nn/s4.h"
#include "framework/dist/vocab_parallel.h"
#include "framework/ops/ops.h"

namespace ssm::nn {

using config::ModelFamily;

std::vector<LayerPlan> layer_plan(const config::ModelConfig& cfg) {
  std::vector<LayerPlan> plan;
  for (int i = 0; i < cfg.n_layers; ++i) {
    LayerPlan p{LayerKind::mamba, LayerPlan::Ffn::none};
    switch (cfg.family) {
      case ModelFamily::mamba: p.mixer = LayerKind::mamba; break;
      case ModelFamily::mamba2: p.mixer = LayerKind::mamba2; break;
      case ModelFamily::s4d: p.mixer = LayerKind::s4d; break;
      case ModelFamily::s5: p.mixer = LayerKind::s5; break;
      case ModelFamily::jamba:
        p.mixer = i % cfg.attn_layer_period == cfg.attn_layer_offset ? LayerKind::attention : LayerKind::mamba;
        p.ffn = i % cfg.expert_layer_period == cfg.expert_layer_offset ? LayerPlan::Ffn::moe : LayerPlan::Ffn::dense;
        break;
    }
    if (cfg.family != ModelFamily::jamba && cfg.d_intermediate > 0) p.ffn = LayerPlan::Ffn::dense;
    plan.push_back(p);
  }
  return plan;
}

void check_tp_layout(const config::ModelConfig& cfg, int tp) {
  SSM_CHECK(tp >= 1, "parallel.tp = {} must be >= 1", tp);
  if (tp == 1) return;
  auto divides = [tp](int64_t n, const char* key, const char* why) {
    SSM_CHECK(n % tp == 0, "parallel.tp = {}: {} = {} is not divisible by tp ({})", tp, key, n, why);
  };
  if (cfg.family == ModelFamily::s4d) divides(cfg.d_model, "model.d_model", "S4D channels are split across ranks");
  if (cfg.family == ModelFamily::s5) divides(cfg.d_state, "model.d_state", "S5 states are split across ranks");
  if (cfg.vocab_size > 0)
    divides(cfg.vocab_size, "model.vocab_size",
            "the embedding and LM head are split by vocab: set a multiple of tp, the extra rows are never targets");
  if (cfg.family == ModelFamily::mamba || cfg.family == ModelFamily::jamba)
    divides(cfg.d_inner(), "d_inner = model.expand × model.d_model", "each rank owns d_inner / tp channels");
  if (cfg.family == ModelFamily::mamba2) {
    divides(cfg.ssd_heads(), "the Mamba-2 heads = model.expand × model.d_model / model.headdim",
            "each rank owns whole heads");
    divides(cfg.n_groups, "model.n_groups", "each rank owns whole B/C groups, so the grouped norm stays local");
  }
  if (cfg.family == ModelFamily::jamba) {
    divides(cfg.n_heads, "model.n_heads", "each rank owns whole attention heads");
    divides(cfg.resolved_kv_heads(), "model.n_kv_heads", "each rank owns whole key/value heads");
    divides(cfg.resolved_intermediate_size(), "model.intermediate_size",
            "the dense and expert FFN widths are split across ranks");
  } else if (cfg.d_intermediate > 0) {
    divides(cfg.d_intermediate, "model.d_intermediate", "the MLP width is split across ranks");
  }
}

Block::Block(const config::ModelConfig& cfg, Init& init, const LayerPlan& plan) {
  norm_ = &add_module("norm", std::make_unique<RmsNorm>(init, cfg.d_model, cfg.norm_eps));
  switch (plan.mixer) {
    case LayerKind::mamba:
      mixer_ = &add_module("mixer", std::make_unique<MambaMixer>(cfg, init, cfg.family == ModelFamily::jamba && cfg.bcdt_norm));
      break;
    case LayerKind::mamba2: mixer_ = &add_module("mixer", std::make_unique<Mamba2Mixer>(cfg, init)); break;
    case LayerKind::s4d: mixer_ = &add_module("mixer", std::make_unique<S4dMixer>(cfg, init)); break;
    case LayerKind::s5: mixer_ = &add_module("mixer", std::make_unique<S5Mixer>(cfg, init)); break;
    case LayerKind::attention: mixer_ = &add_module("mixer", std::make_unique<AttentionMixer>(cfg, init)); break;
  }
  if (plan.ffn != LayerPlan::Ffn::none) {
    ffn_norm_ = &add_module("ffn_norm", std::make_unique<RmsNorm>(init, cfg.d_model, cfg.norm_eps));
    int64_t f = cfg.family == ModelFamily::jamba ? cfg.resolved_intermediate_size() : cfg.d_intermediate;
    if (plan.ffn == LayerPlan::Ffn::moe)
      ffn_ = &add_module("ffn", std::make_unique<MoeMlp>(cfg, init));
    else
      ffn_ = &add_module("ffn", std::make_unique<GatedMlp>(init, cfg.d_model, f, cfg.initializer_range));
  }
}

Tensor Block::forward(const Tensor& h, MixerContext& ctx, Tensor* aux, std::vector<int64_t>* expert_counts) {
  Tensor out = add(h, mixer_->forward(norm_->forward(h), ctx));
  if (ffn_) {
    FfnOutput f = ffn_->forward(ffn_norm_->forward(out));
    out = add(out, f.y);
    if (f.aux_loss.defined()) *aux = aux->defined() ? add(*aux, f.aux_loss) : f.aux_loss;
    if (!f.counts.empty()) {
      if (expert_counts->empty()) expert_counts->assign(f.counts.size(), 0);
      for (size_t e = 0; e < f.counts.size() && e < expert_counts->size(); ++e) (*expert_counts)[e] += f.counts[e];
    }
  }
  return out;
}

Tensor Block::step(const Tensor& h, LayerState& st) {
  Tensor out = add(h, mixer_->step(norm_->forward(h), st));
  if (ffn_) {
    Tensor x = unsqueeze(ffn_norm_->forward(out), 1);  // (B, 1, D): the FFNs take sequences
    out = add(out, squeeze(ffn_->forward(x).y, 1));
  }
  return out;
}

LanguageModel::LanguageModel(const config::ModelConfig& cfg, Init& init) : cfg_(cfg), tp_(init.tp()) {
  SSM_CHECK(cfg.vocab_size > 0, "model: vocab_size must be set (got {})", cfg.vocab_size);
  SSM_CHECK(cfg.d_model > 0 && cfg.n_layers > 0, "model: d_model ({}) and n_layers ({}) must be positive", cfg.d_model,
            cfg.n_layers);
  check_tp_layout(cfg, tp_.size);
  // Vocab-parallel: rank r owns token rows [r·V/tp, (r+1)·V/tp) of the embedding and LM head.
  embedding_ = &add_param("embedding.weight", init.normal({cfg.vocab_size, cfg.d_model}, cfg.initializer_range), init,
                          {0, {}});
  std::vector<LayerPlan> plan = layer_plan(cfg);
  for (size_t i = 0; i < plan.size(); ++i)
    blocks_.push_back(&add_module("layers." + std::to_string(i), std::make_unique<Block>(cfg, init, plan[i])));
  norm_f_ = &add_module("norm_f", std::make_unique<RmsNorm>(init, cfg.d_model, cfg.norm_eps));
  if (!cfg.tie_embeddings)
    lm_head_ = &add_param("lm_head.weight", init.normal({cfg.vocab_size, cfg.d_model}, cfg.initializer_range), init,
                          {0, {}});
}

Tensor LanguageModel::hidden(const Tensor& ids, const Tensor& seq_idx, std::vector<LayerState>* states,
                             bool want_state, Tensor* aux, std::vector<int64_t>* expert_counts) {
  SSM_CHECK(ids.dim() == 2, "model: token ids must be (B, L), got {}", ids.describe());
  if (states)
    SSM_CHECK(states->size() == blocks_.size(), "model: {} layer states for {} layers", states->size(), blocks_.size());
  Tensor h = embed_tokens(embedding_->value, ids, tp_);  // (B, L, D)
  for (size_t i = 0; i < blocks_.size(); ++i) {
    MixerContext ctx{seq_idx, states ? &(*states)[i] : nullptr, want_state};
    h = blocks_[i]->forward(h, ctx, aux, expert_counts);
  }
  return h;
}

Tensor LanguageModel::head(const Tensor& h) const {
  Tensor hn = norm_f_->forward(h);
  const Parameter& w = lm_head_ ? *lm_head_ : *embedding_;
  return matmul(tp_copy(hn, tp_), compute_view(w, hn), false, true);  // (..., V/tp)
}

LmResult LanguageModel::forward(const LmBatch& batch) {
  LmResult r;
  Tensor aux;
  Tensor h = hidden(batch.ids, batch.seq_idx, batch.states, batch.states != nullptr, &aux, &r.expert_counts);
  Tensor logits = head(h);
  if (!batch.targets.defined()) {
    r.logits = tp_gather(logits, tp_, -1);
    return r;
  }
  SSM_CHECK(batch.targets.shape() == batch.ids.shape(), "model: targets {} do not match ids {}",
            batch.targets.describe(), batch.ids.describe());
  CrossEntropyStats stats;
  r.ce = tp_.size == 1 ? cross_entropy(logits, batch.targets, -1, &stats)
                       : dist::vocab_parallel_cross_entropy(logits, batch.targets, tp_.comm, -1, &stats);
  r.count = stats.count;
  r.correct = stats.correct;
  r.aux = aux;
  r.loss = aux.defined() ? add(r.ce, aux) : r.ce;
  return r;
}

Tensor LanguageModel::prefill(const Tensor& ids, std::vector<LayerState>& states) {
  NoGradGuard ng;
  Tensor aux;
  std::vector<int64_t> counts;
  Tensor h = hidden(ids, Tensor(), &states, true, &aux, &counts);
  int64_t L = h.shape()[1];
  return tp_gather(head(contiguous(select(h, 1, L - 1))), tp_, -1);  // (B, V)
}

Tensor LanguageModel::step(const Tensor& ids, std::vector<LayerState>& states) {
  NoGradGuard ng;
  SSM_CHECK(ids.dim() == 1, "model.step: ids must be (B), got {}", ids.describe());
  Tensor h = embed_tokens(embedding_->value, ids, tp_);  // (B, D)
  for (size_t i = 0; i < blocks_.size(); ++i) h = blocks_[i]->step(h, states[i]);
  return tp_gather(head(h), tp_, -1);  // (B, V)
}

}  // namespace ssm::nn
