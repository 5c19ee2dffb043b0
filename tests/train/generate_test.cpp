// Generation in recurrent mode equals greedy decoding by repeated full forward passes.
#include <gtest/gtest.h>

#include "framework/train/generate.h"

namespace ssm {
namespace {

TEST(Generate, RecurrentGreedyEqualsFullForwardGreedy) {
  for (config::ModelFamily f : {config::ModelFamily::mamba, config::ModelFamily::mamba2, config::ModelFamily::jamba,
                                config::ModelFamily::s4d, config::ModelFamily::s5}) {
    config::ModelConfig c;
    c.family = f;
    c.vocab_size = 23;
    c.d_model = 16;
    c.n_layers = f == config::ModelFamily::jamba ? 4 : 2;
    c.d_state = 8;
    c.headdim = 8;
    c.chunk_size = 8;
    c.n_heads = 2;
    c.intermediate_size = 24;
    c.attn_layer_period = 2;
    c.attn_layer_offset = 1;
    c.num_experts = 4;
    c.initializer_range = 0.5;  // peaked logits: greedy choices are not near-ties
    nn::Init init(11, {}, Device::cpu(), DType::f64);
    nn::LanguageModel lm(c, init);
    std::vector<int32_t> prompt = {1, 5, 7, 2};
    train::SampleOptions o;
    o.max_tokens = 66;
    o.temperature = 0;  // greedy
    std::vector<int32_t> streamed;
    std::vector<int32_t> rec = train::sample(lm, prompt, o, [&](int32_t id) { streamed.push_back(id); });
    std::vector<int32_t> full = train::greedy_full_forward(lm, prompt, 66);
    EXPECT_EQ(rec, full) << config::to_string(f);
    EXPECT_EQ(streamed, rec);
  }
}

TEST(Generate, SamplingIsReproducibleAndRespectsTopK) {
  config::ModelConfig c;
  c.family = config::ModelFamily::mamba2;
  c.vocab_size = 50;
  c.d_model = 16;
  c.n_layers = 1;
  c.d_state = 8;
  c.headdim = 8;
  c.chunk_size = 8;
  nn::Init init(2);
  nn::LanguageModel lm(c, init);
  train::SampleOptions o;
  o.max_tokens = 30;
  o.temperature = 1.0;
  o.top_k = 5;
  o.seed = 9;
  EXPECT_EQ(train::sample(lm, {1, 2}, o), train::sample(lm, {1, 2}, o));
  o.seed = 10;
  std::vector<int32_t> other = train::sample(lm, {1, 2}, o);
  EXPECT_EQ(other.size(), 30u);
}

}  // namespace
}  // namespace ssm
