// Sampling in recurrent mode: the prompt is prefilled with the parallel form, then each
// new token costs one step() per layer with constant memory for SSM layers (a KV cache for
// attention layers). Tokens are handed to `on_token` as soon as they are produced.
//
//   SampleOptions o;  o.max_tokens = 200;  o.temperature = 0.8;  o.top_k = 40;  o.seed = 1;
//   std::vector<int32_t> out = sample(model, prompt_ids, o, [&](int32_t id) { print(tok.decode({id})); });
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "framework/nn/lm.h"

namespace ssm::train {

struct SampleOptions {
  int64_t max_tokens = 256;
  double temperature = 1.0;  // 0 = greedy (argmax)
  int64_t top_k = 0;         // 0 = whole vocabulary
  uint64_t seed = 0;
  int32_t stop_token = -1;   // stop after producing this id (e.g. EOS); -1 = never
};

// Returns the generated ids (prompt excluded). `prompt` must be non-empty.
std::vector<int32_t> sample(nn::LanguageModel& model, const std::vector<int32_t>& prompt, const SampleOptions& opts,
                            const std::function<void(int32_t)>& on_token = {});

// Greedy decoding by repeated full forward passes over the growing sequence: the slow
// reference the recurrent path is tested against.
std::vector<int32_t> greedy_full_forward(nn::LanguageModel& model, const std::vector<int32_t>& prompt,
                                         int64_t max_tokens);

}  // namespace ssm::train
