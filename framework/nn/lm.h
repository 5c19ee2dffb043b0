// Language models for every family: token embedding, N pre-norm residual blocks
// (mixer, then an optional MLP or MoE), final RMSNorm, tied or untied LM head.
//
//   config::ModelConfig cfg;  cfg.family = config::ModelFamily::mamba2; cfg.d_model = 64; ...
//   nn::Init init(/*seed=*/1);
//   nn::LanguageModel lm(cfg, init);
//   nn::LmBatch batch{ids, targets};                  // (B, L) i32; targets -1 = ignored
//   nn::LmResult r = lm.forward(batch);               // r.loss: mean CE (+ MoE aux losses)
//   ssm::backward(r.loss);
//
// Generation runs the recurrent form: prefill() the prompt, then step() one token at a
// time with constant memory per SSM layer (a KV cache for attention layers).
//
// Tensor parallelism (Init built with nn::TpPlacement::over(grid.tp())): every layer splits
// its own width (see each mixer), the embedding and the LM head are vocab-parallel (the
// loss is dist::vocab_parallel_cross_entropy, equal to the single-rank loss), logits for
// generation are gathered; block norms and residuals stay replicated.
//
// Which layer is what (Jamba): attention iff i % attn_layer_period == attn_layer_offset,
// MoE iff i % expert_layer_period == expert_layer_offset; other families have no attention
// and a dense MLP only when d_intermediate > 0.
#pragma once
#include <memory>
#include <vector>

#include "framework/config/recipe.h"
#include "framework/nn/mixer.h"
#include "framework/nn/mlp.h"

namespace ssm::nn {

enum class LayerKind { mamba, mamba2, s4d, s5, attention };
struct LayerPlan {
  LayerKind mixer;
  enum class Ffn { none, dense, moe } ffn;
};
// The per-layer plan a config implies (also used by the exporter).
std::vector<LayerPlan> layer_plan(const config::ModelConfig& cfg);

// Throws, naming the recipe keys, unless every width the model splits across `tp` ranks is
// divisible by tp (vocab, d_inner, Mamba-2 heads and groups, attention heads, FFN widths).
void check_tp_layout(const config::ModelConfig& cfg, int tp);

class Block : public Module {
 public:
  Block(const config::ModelConfig& cfg, Init& init, const LayerPlan& plan);
  // h (B, L, D) -> h + mixer(norm(h)) [+ ffn(norm2(...))]; adds MoE aux losses to *aux.
  Tensor forward(const Tensor& h, MixerContext& ctx, Tensor* aux, std::vector<int64_t>* expert_counts);
  Tensor step(const Tensor& h, LayerState& st);  // h (B, D)
  Mixer& mixer() { return *mixer_; }

 private:
  RmsNorm* norm_;
  Mixer* mixer_;
  RmsNorm* ffn_norm_ = nullptr;
  Ffn* ffn_ = nullptr;
};

struct LmBatch {
  Tensor ids;      // (B, L) i32
  Tensor targets;  // (B, L) i32, -1 = ignored; undefined = logits only
  Tensor seq_idx;  // (B, L) i32 packed-document ids, optional
  std::vector<LayerState>* states = nullptr;  // carried recurrent state (TBPTT), optional
};

struct LmResult {
  Tensor loss;            // () cross-entropy mean over counted targets + aux
  Tensor ce;              // () cross-entropy alone
  Tensor aux;             // () MoE aux losses, undefined without MoE
  Tensor logits;          // (B, L, V) when no targets were given (gathered under TP)
  int64_t count = 0;      // targets counted
  int64_t correct = 0;    // argmax predictions equal to the target
  std::vector<int64_t> expert_counts;  // summed over MoE layers
};

class LanguageModel : public Module {
 public:
  LanguageModel(const config::ModelConfig& cfg, Init& init);
  LmResult forward(const LmBatch& batch);
  // Recurrent inference (no autograd): states from new_states(); prefill returns the
  // logits (B, V) of the last prompt position, step the logits after one more token.
  std::vector<LayerState> new_states() const { return std::vector<LayerState>(blocks_.size()); }
  Tensor prefill(const Tensor& ids, std::vector<LayerState>& states);
  Tensor step(const Tensor& ids /*(B) i32*/, std::vector<LayerState>& states);

  const config::ModelConfig& config() const { return cfg_; }
  int64_t num_layers() const { return int64_t(blocks_.size()); }

 private:
  Tensor hidden(const Tensor& ids, const Tensor& seq_idx, std::vector<LayerState>* states, bool want_state,
                Tensor* aux, std::vector<int64_t>* expert_counts);
  Tensor head(const Tensor& h) const;  // final norm + LM head -> logits (..., V/tp)
  config::ModelConfig cfg_;
  TpPlacement tp_;
  Parameter* embedding_;
  std::vector<Block*> blocks_;
  RmsNorm* norm_f_;
  Parameter* lm_head_ = nullptr;  // null when tied to the embedding
};

}  // namespace ssm::nn
