// Tensor-parallel models against the single-rank model, in float64: for Mamba, Mamba-2 and
// Jamba (attention, dense MLP, MoE), a model built over a tp group of 2 starts from the
// slices of the single-rank weights, computes the same loss (cross-entropy + MoE aux
// losses), its parameters' gradients equal the slices of the single-rank gradients, and
// generation (prefill + recurrent steps) gives the same gathered logits. Every rank also
// builds the single-rank model itself (same seeds everywhere), so no reference is trusted
// from another rank; dp groups use different tokens.
#include <gtest/gtest.h>

#include "framework/dist/grid.h"
#include "framework/nn/lm.h"
#include "framework/ops/ops.h"
#include "tests/dist/mpi_env.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

using config::ModelFamily;

constexpr double kTol = 1e-10;

config::ModelConfig tiny(ModelFamily f) {
  config::ModelConfig c;
  c.family = f;
  c.vocab_size = 12;  // 6 rows of the embedding / LM head per rank
  c.d_model = 8;
  c.n_layers = 2;
  c.d_state = 4;
  c.d_conv = 3;
  c.expand = 2;      // E = 16
  c.dt_rank = 2;
  c.headdim = 4;     // mamba2: 4 heads, 2 per rank
  c.n_groups = 2;    // mamba2: one B/C group per rank, 2 heads per group
  c.chunk_size = 5;
  c.initializer_range = 0.3;  // larger weights than usual so gradients are not tiny
  c.tie_embeddings = f != ModelFamily::jamba;
  if (f == ModelFamily::mamba) c.proj_bias = true;  // a row-parallel bias, added once
  if (f == ModelFamily::mamba2) c.d_intermediate = 6;  // a dense MLP after each mixer
  if (f == ModelFamily::s4d) c.d_state = 8;             // 4 complex modes per channel
  if (f == ModelFamily::jamba) {
    c.n_layers = 4;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.intermediate_size = 12;  // dense and expert FFN width, 6 per rank
    c.attn_layer_period = 2;
    c.attn_layer_offset = 1;
    c.expert_layer_period = 2;
    c.expert_layer_offset = 0;
    c.num_experts = 3;
    c.num_experts_per_tok = 2;
    c.router_aux_loss_coef = 0.01;
    c.router_z_loss_coef = 0.001;
  }
  return c;
}

Tensor random_ids(int64_t B, int64_t L, int vocab, uint64_t seed, bool some_ignored) {
  std::vector<double> v(size_t(B * L));
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (size_t i = 0; i < v.size(); ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v[i] = double((s >> 33) % uint64_t(vocab));
    if (some_ignored && i % 7 == 3) v[i] = -1;
  }
  return Tensor::from_vector(v, {B, L}, DType::i32);
}

nn::LmBatch lm_batch(const Tensor& ids, const Tensor& targets) {
  nn::LmBatch b;
  b.ids = ids;
  b.targets = targets;
  return b;
}

class TpModel : public ::testing::TestWithParam<ModelFamily> {};

TEST_P(TpModel, LossGradientsAndGenerationMatchSingleRank) {
  const auto& world = test::world();
  if (world->size() % 2 != 0) GTEST_SKIP() << "needs an even number of ranks for tp = 2";
  dist::ProcessGrid grid(world, /*tp=*/2);
  const config::ModelConfig cfg = tiny(GetParam());
  nn::Init init_full(7, {}, Device::cpu(), DType::f64);
  nn::LanguageModel full(cfg, init_full);
  const nn::TpPlacement tp = nn::TpPlacement::over(grid.tp());
  nn::Init init_tp(7, tp, Device::cpu(), DType::f64);
  nn::LanguageModel part(cfg, init_tp);

  // Same initialisation: every shard is the slice of the full tensor.
  const auto full_params = full.named_parameters();
  const auto part_params = part.named_parameters();
  ASSERT_EQ(full_params.size(), part_params.size());
  for (size_t i = 0; i < part_params.size(); ++i) {
    const auto& [name, p] = part_params[i];
    ASSERT_EQ(name, full_params[i].first);
    EXPECT_EQ(p->global_shape, full_params[i].second->value.shape()) << name;
    EXPECT_EQ(p->value.to_vector(), nn::shard_of(full_params[i].second->value, p->partition, tp).to_vector()) << name;
  }

  const int64_t B = 2, L = 7;
  const uint64_t seed = 100 + uint64_t(grid.dp_rank());
  const nn::LmBatch batch =
      lm_batch(random_ids(B, L, cfg.vocab_size, seed, false), random_ids(B, L, cfg.vocab_size, seed + 1, true));
  nn::LmResult a = full.forward(batch);
  backward(a.loss);
  nn::LmResult b = part.forward(batch);
  backward(b.loss);
  EXPECT_NEAR(b.loss.item(), a.loss.item(), kTol * std::abs(a.loss.item()));
  EXPECT_NEAR(b.ce.item(), a.ce.item(), kTol * std::abs(a.ce.item()));
  EXPECT_EQ(b.count, a.count);
  EXPECT_EQ(b.correct, a.correct);
  EXPECT_EQ(b.expert_counts, a.expert_counts);
  if (GetParam() == ModelFamily::jamba) {
    ASSERT_TRUE(a.aux.defined() && b.aux.defined());
    EXPECT_GT(a.aux.item(), 0.0);
    EXPECT_NEAR(b.aux.item(), a.aux.item(), kTol * a.aux.item());
  }
  for (size_t i = 0; i < part_params.size(); ++i) {
    const auto& [name, p] = part_params[i];
    const Tensor gf = full_params[i].second->value.grad();
    ASSERT_TRUE(gf.defined() && p->value.grad().defined()) << name;
    const Tensor want = nn::shard_of(gf, p->partition, tp);
    EXPECT_LT(test::max_rel_diff(p->value.grad(), want), kTol) << name << " on tp rank " << tp.rank;
  }

  // Logits without targets are gathered over the vocab.
  nn::LmResult la = full.forward(lm_batch(batch.ids, Tensor()));
  nn::LmResult lb = part.forward(lm_batch(batch.ids, Tensor()));
  EXPECT_EQ(lb.logits.shape(), la.logits.shape());
  EXPECT_LT(test::max_rel_diff(lb.logits, la.logits), kTol);

  // Generation: prefill, then two recurrent steps.
  std::vector<nn::LayerState> sa = full.new_states(), sb = part.new_states();
  Tensor pa = full.prefill(batch.ids, sa), pb = part.prefill(batch.ids, sb);
  EXPECT_LT(test::max_rel_diff(pb, pa), kTol);
  for (int k = 0; k < 2; ++k) {
    Tensor tok = random_ids(1, B, cfg.vocab_size, seed + 10 + uint64_t(k), false).view({B});
    EXPECT_LT(test::max_rel_diff(part.step(tok, sb), full.step(tok, sa)), kTol) << "step " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Families, TpModel,
                         ::testing::Values(ModelFamily::mamba, ModelFamily::mamba2, ModelFamily::jamba,
                                           ModelFamily::s4d, ModelFamily::s5),
                         [](const auto& info) { return std::string(config::to_string(info.param)); });

// The layout checks name the recipe key that does not divide.
TEST(TpLayout, IndivisibleWidthsAreClearErrors) {
  auto message = [](const config::ModelConfig& c, int tp) -> std::string {
    try {
      nn::check_tp_layout(c, tp);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  config::ModelConfig c = tiny(ModelFamily::mamba2);
  EXPECT_EQ(message(c, 2), "");
  c.n_groups = 1;
  EXPECT_NE(message(c, 2).find("model.n_groups = 1 is not divisible by tp"), std::string::npos) << message(c, 2);
  c = tiny(ModelFamily::mamba2);
  c.vocab_size = 13;
  EXPECT_NE(message(c, 2).find("model.vocab_size"), std::string::npos);
  c = tiny(ModelFamily::jamba);
  c.n_kv_heads = 1;
  EXPECT_NE(message(c, 2).find("model.n_kv_heads = 1"), std::string::npos);
  c = tiny(ModelFamily::jamba);
  c.intermediate_size = 9;
  EXPECT_NE(message(c, 2).find("model.intermediate_size"), std::string::npos);
  c = tiny(ModelFamily::mamba);
  c.expand = 1;
  c.d_model = 9;
  EXPECT_NE(message(c, 2).find("d_inner"), std::string::npos);
  c = tiny(ModelFamily::s4d);
  EXPECT_EQ(message(c, 2), "");
  c.d_model = 9;
  c.vocab_size = 12;
  EXPECT_NE(message(c, 2).find("model.d_model = 9"), std::string::npos) << message(c, 2);
  c = tiny(ModelFamily::s5);
  c.d_state = 5;
  EXPECT_NE(message(c, 2).find("model.d_state = 5"), std::string::npos) << message(c, 2);
  // Building a tp model without a communicator fails when it runs, not silently.
  c = tiny(ModelFamily::mamba);
  nn::Init init(1, nn::TpPlacement{0, 2, nullptr});
  nn::LanguageModel m(c, init);
  EXPECT_THROW(m.forward(lm_batch(random_ids(1, 3, 12, 1, false), random_ids(1, 3, 12, 2, false))), Error);
}

}  // namespace
}  // namespace ssm
