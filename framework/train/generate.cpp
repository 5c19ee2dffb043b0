#include "framework/train/generate.h"

#include <algorithm>
#include <cmath>

#include "framework/ops/ops.h"
#include "kernels/common/philox.h"

namespace ssm::train {
namespace {

int32_t pick(const std::vector<double>& logits, const SampleOptions& o, uint64_t counter) {
  int64_t V = int64_t(logits.size());
  if (o.temperature <= 0.0) return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::vector<int32_t> idx(static_cast<size_t>(V));
  for (int64_t i = 0; i < V; ++i) idx[size_t(i)] = int32_t(i);
  int64_t k = o.top_k > 0 ? std::min(o.top_k, V) : V;
  // Highest logits first; ties by lower id so sampling is reproducible.
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
    return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
  });
  double mx = logits[size_t(idx[0])], total = 0;
  std::vector<double> p(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) total += p[size_t(i)] = std::exp((logits[size_t(idx[size_t(i)])] - mx) / o.temperature);
  kernels::Philox4 r = kernels::philox4x32(counter, /*stream=*/0x5a3b1e, o.seed);
  double u = kernels::philox_uniform_f64(r.v[0], r.v[1]) * total;
  for (int64_t i = 0; i < k; ++i) {
    u -= p[size_t(i)];
    if (u <= 0) return idx[size_t(i)];
  }
  return idx[size_t(k - 1)];
}

}  // namespace

std::vector<int32_t> sample(nn::LanguageModel& model, const std::vector<int32_t>& prompt, const SampleOptions& o,
                            const std::function<void(int32_t)>& on_token) {
  SSM_CHECK(!prompt.empty(), "generate: the prompt is empty");
  NoGradGuard ng;
  std::vector<nn::LayerState> states = model.new_states();
  std::vector<double> ids(prompt.begin(), prompt.end());
  Tensor logits = model.prefill(Tensor::from_vector(ids, {1, int64_t(ids.size())}, DType::i32), states);
  std::vector<int32_t> out;
  for (int64_t t = 0; t < o.max_tokens; ++t) {
    int32_t next = pick(logits.to_vector(), o, uint64_t(t));
    out.push_back(next);
    if (on_token) on_token(next);
    if (next == o.stop_token) break;
    if (t + 1 < o.max_tokens) logits = model.step(Tensor::from_vector({double(next)}, {1}, DType::i32), states);
  }
  return out;
}

std::vector<int32_t> greedy_full_forward(nn::LanguageModel& model, const std::vector<int32_t>& prompt,
                                         int64_t max_tokens) {
  NoGradGuard ng;
  std::vector<int32_t> seq = prompt, out;
  for (int64_t t = 0; t < max_tokens; ++t) {
    std::vector<double> ids(seq.begin(), seq.end());
    nn::LmBatch b;
    b.ids = Tensor::from_vector(ids, {1, int64_t(ids.size())}, DType::i32);
    Tensor logits = model.forward(b).logits;  // (1, L, V)
    std::vector<double> last = logits.select(1, int64_t(seq.size()) - 1).to_vector();
    int32_t next = int32_t(std::max_element(last.begin(), last.end()) - last.begin());
    out.push_back(next);
    seq.push_back(next);
  }
  return out;
}

}  // namespace ssm::train
