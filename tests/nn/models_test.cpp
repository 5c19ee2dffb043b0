// Every model family: float64 gradients of the whole LM (all parameters), recurrent step
// mode against the parallel forward, packed documents, and carried state (TBPTT).
#include <gtest/gtest.h>

#include "framework/nn/lm.h"
#include "framework/ops/ops.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

using config::ModelFamily;

config::ModelConfig tiny(ModelFamily f) {
  config::ModelConfig c;
  c.family = f;
  c.vocab_size = 11;
  c.d_model = 8;
  c.n_layers = 2;
  c.d_state = 4;
  c.d_conv = 3;
  c.expand = 2;
  c.dt_rank = 2;
  c.headdim = 4;   // mamba2: E = 16 -> 4 heads
  c.n_groups = 2;  // mamba2: 2 heads per group
  c.chunk_size = 5;
  c.tie_embeddings = f != ModelFamily::jamba;
  c.initializer_range = 0.3;  // larger weights than usual so gradients are not tiny
  if (f == ModelFamily::jamba) {
    c.n_layers = 4;
    c.n_heads = 2;
    c.n_kv_heads = 1;
    c.intermediate_size = 12;
    c.attn_layer_period = 2;
    c.attn_layer_offset = 1;
    c.expert_layer_period = 2;
    c.expert_layer_offset = 0;
    c.num_experts = 3;
    c.num_experts_per_tok = 2;
    c.router_aux_loss_coef = 0.01;
    c.router_z_loss_coef = 0.001;
  }
  if (f == ModelFamily::s4d) c.d_state = 6;
  return c;
}

Tensor ids_of(const std::vector<int>& v, int64_t B, int64_t L) {
  std::vector<double> d(v.begin(), v.end());
  return Tensor::from_vector(d, {B, L}, DType::i32);
}

std::vector<int> random_ids(int64_t n, int vocab, uint64_t seed) {
  std::vector<int> v(static_cast<size_t>(n));
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (auto& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = int((s >> 33) % uint64_t(vocab));
  }
  return v;
}

class Families : public ::testing::TestWithParam<ModelFamily> {};

TEST_P(Families, WholeModelGradcheckFloat64) {
  config::ModelConfig cfg = tiny(GetParam());
  nn::Init init(3, {}, Device::cpu(), DType::f64);
  nn::LanguageModel lm(cfg, init);
  const int64_t B = 2, L = 7;
  nn::LmBatch batch{ids_of(random_ids(B * L, 11, 1), B, L), ids_of(random_ids(B * L, 11, 2), B, L)};
  // Ignore a few targets: they must not contribute.
  std::vector<double> t = batch.targets.to_vector();
  t[3] = -1;
  t[9] = -1;
  batch.targets = Tensor::from_vector(t, {B, L}, DType::i32);
  std::vector<Tensor> leaves;
  for (nn::Parameter* p : lm.parameters()) leaves.push_back(p->value);
  auto f = [&] { return lm.forward(batch).loss; };
  EXPECT_TRUE(test::gradcheck_leaves(f, leaves, {1e-6, 1e-8, 1e-5}, 12));
}

TEST_P(Families, RecurrentStepMatchesParallelForward) {
  config::ModelConfig cfg = tiny(GetParam());
  nn::Init init(4, {}, Device::cpu(), DType::f64);
  nn::LanguageModel lm(cfg, init);
  const int64_t B = 2, L = 70, P = 5;
  Tensor ids = ids_of(random_ids(B * L, 11, 5), B, L);
  NoGradGuard ng;
  nn::LmBatch full{ids};
  Tensor logits = lm.forward(full).logits;  // (B, L, V)
  std::vector<nn::LayerState> states = lm.new_states();
  Tensor out = lm.prefill(contiguous(ids.narrow(1, 0, P)), states);
  EXPECT_LT(test::max_rel_diff(out, contiguous(logits.select(1, P - 1))), 1e-9);
  for (int64_t t = P; t < L; ++t) {
    out = lm.step(contiguous(ids.select(1, t)), states);
    ASSERT_LT(test::max_rel_diff(out, contiguous(logits.select(1, t))), 1e-9) << "position " << t;
  }
}

TEST_P(Families, CarriedStateEqualsOneLongWindow) {
  config::ModelConfig cfg = tiny(GetParam());
  if (cfg.family == ModelFamily::jamba) GTEST_SKIP() << "attention layers do not carry state across windows";
  nn::Init init(6, {}, Device::cpu(), DType::f64);
  nn::LanguageModel lm(cfg, init);
  const int64_t B = 2, L = 24, H = 13;  // split after 13 tokens: not a multiple of the chunk
  Tensor ids = ids_of(random_ids(B * L, 11, 7), B, L);
  NoGradGuard ng;
  Tensor whole = lm.forward({ids}).logits;
  std::vector<nn::LayerState> st = lm.new_states();
  nn::LmBatch a{contiguous(ids.narrow(1, 0, H))};
  a.states = &st;
  Tensor first = lm.forward(a).logits;
  nn::LmBatch b{contiguous(ids.narrow(1, H, L - H))};
  b.states = &st;
  Tensor second = lm.forward(b).logits;
  EXPECT_LT(test::max_rel_diff(first, contiguous(whole.narrow(1, 0, H))), 1e-10);
  EXPECT_LT(test::max_rel_diff(second, contiguous(whole.narrow(1, H, L - H))), 1e-10);
}

INSTANTIATE_TEST_SUITE_P(All, Families,
                         ::testing::Values(ModelFamily::mamba, ModelFamily::mamba2, ModelFamily::s4d, ModelFamily::s5,
                                           ModelFamily::jamba),
                         [](const auto& info) { return std::string(config::to_string(info.param)); });

class Packed : public ::testing::TestWithParam<ModelFamily> {};

// Two documents packed in one row (seq_idx marks them) give the same logits as each alone.
TEST_P(Packed, PackedDocumentsEqualSeparateRuns) {
  config::ModelConfig cfg = tiny(GetParam());
  nn::Init init(8, {}, Device::cpu(), DType::f64);
  nn::LanguageModel lm(cfg, init);
  std::vector<int> a = random_ids(9, 11, 9), b = random_ids(12, 11, 10);
  std::vector<int> packed = a;
  packed.insert(packed.end(), b.begin(), b.end());
  std::vector<double> seq(21, 0.0);
  for (size_t i = 9; i < 21; ++i) seq[i] = 1.0;
  NoGradGuard ng;
  nn::LmBatch pb{ids_of(packed, 1, 21)};
  pb.seq_idx = Tensor::from_vector(seq, {1, 21}, DType::i32);
  Tensor lp = lm.forward(pb).logits;
  Tensor la = lm.forward({ids_of(a, 1, 9)}).logits;
  Tensor lb = lm.forward({ids_of(b, 1, 12)}).logits;
  EXPECT_LT(test::max_rel_diff(contiguous(lp.narrow(1, 0, 9)), la), 1e-10);
  EXPECT_LT(test::max_rel_diff(contiguous(lp.narrow(1, 9, 12)), lb), 1e-10);
}

INSTANTIATE_TEST_SUITE_P(ScanFamilies, Packed,
                         ::testing::Values(ModelFamily::mamba, ModelFamily::mamba2, ModelFamily::jamba),
                         [](const auto& info) { return std::string(config::to_string(info.param)); });

TEST(LayerPlan, JambaLayoutFollowsPeriodsAndOffsets) {
  config::ModelConfig c;
  c.family = ModelFamily::jamba;
  c.n_layers = 16;  // defaults: attention at i % 8 == 4, MoE at odd i
  std::vector<nn::LayerPlan> plan = nn::layer_plan(c);
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(plan[size_t(i)].mixer == nn::LayerKind::attention, i % 8 == 4) << i;
    EXPECT_EQ(plan[size_t(i)].ffn == nn::LayerPlan::Ffn::moe, i % 2 == 1) << i;
  }
}

TEST(LanguageModel, ParameterNamesAndCounts) {
  config::ModelConfig c = tiny(ModelFamily::mamba2);
  nn::Init init(1);
  nn::LanguageModel lm(c, init);
  nn::Parameter* in_proj = lm.find("layers.0.mixer.in_proj.weight");
  ASSERT_NE(in_proj, nullptr);
  // [z | x | B | C | dt] = 2E + 2GN + H rows
  EXPECT_EQ(in_proj->global_shape, (Dims{2 * 16 + 2 * 2 * 4 + 4, 8}));
  ASSERT_EQ(in_proj->partition.segments.size(), 5u);
  EXPECT_EQ(in_proj->partition.segments[0].name, "z");
  EXPECT_NE(lm.find("layers.1.mixer.conv1d.weight"), nullptr);
  EXPECT_EQ(lm.find("lm_head.weight"), nullptr);  // tied
  EXPECT_THROW(
      [] {
        config::ModelConfig bad = tiny(ModelFamily::mamba2);
        bad.n_groups = 3;  // 4 heads not divisible by 3 groups
        nn::Init i2(1);
        nn::LanguageModel m(bad, i2);
      }(),
      Error);
}

}  // namespace
}  // namespace ssm
