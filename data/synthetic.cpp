#include "data/synthetic.h"

#include <algorithm>
#include <vector>

#include "data/random.h"
#include "framework/core/error.h"

namespace ssm::data {

namespace {

// Held-out rows use the upper half of the Philox stream space; training rows the lower half.
constexpr uint64_t kEvalStreamBit = uint64_t(1) << 63;

// k distinct values of [0, n) in draw order (partial Fisher-Yates).
std::vector<int32_t> sample_distinct(PhiloxStream& rng, int64_t n, int64_t k) {
  std::vector<int32_t> pool(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) pool[size_t(i)] = int32_t(i);
  for (int64_t j = 0; j < k; ++j) {
    const int64_t r = j + rng.below(uint64_t(n - j));
    std::swap(pool[size_t(j)], pool[size_t(r)]);
  }
  pool.resize(size_t(k));
  return pool;
}

int64_t num_queries(const SyntheticConfig& c) {
  return c.num_queries > 0 ? c.num_queries : c.num_items;
}

}  // namespace

const char* synthetic_task_name(SyntheticTask t) {
  switch (t) {
    case SyntheticTask::kSelectiveCopy:
      return "selective_copy";
    case SyntheticTask::kInductionHeads:
      return "induction_heads";
    case SyntheticTask::kAssociativeRecall:
      return "mqar";
  }
  return "?";
}

SyntheticTask parse_synthetic_task(std::string_view s) {
  for (auto t : {SyntheticTask::kSelectiveCopy, SyntheticTask::kInductionHeads,
                 SyntheticTask::kAssociativeRecall}) {
    if (s == synthetic_task_name(t)) return t;
  }
  SSM_FAIL("unknown synthetic task '{}' (expected selective_copy, induction_heads or mqar)", s);
}

SyntheticTaskSource::SyntheticTaskSource(SyntheticConfig c) : config_(c) {
  const char* name = synthetic_task_name(c.task);
  const int64_t V = c.vocab_size, L = c.seq_len, K = c.num_items;
  SSM_CHECK(c.dp_size >= 1 && c.dp_rank >= 0 && c.dp_rank < c.dp_size,
            "{}: dp_rank {} outside [0, dp_size = {})", name, c.dp_rank, c.dp_size);
  SSM_CHECK(c.global_batch >= 1 && c.global_batch % c.dp_size == 0,
            "{}: global_batch {} must be a positive multiple of dp_size {}", name, c.global_batch,
            c.dp_size);
  SSM_CHECK(V <= INT32_MAX && L <= INT32_MAX, "{}: vocab_size / seq_len too large", name);
  switch (c.task) {
    case SyntheticTask::kSelectiveCopy:
      SSM_CHECK(V >= 3, "{}: vocab_size {} < 3 (noise, marker and at least one colour)", name, V);
      SSM_CHECK(K >= 1 && L >= 2 * K,
                "{}: needs num_items >= 1 and seq_len >= 2 * num_items, got num_items = {}, "
                "seq_len = {}",
                name, K, L);
      break;
    case SyntheticTask::kInductionHeads:
      SSM_CHECK(V >= 3, "{}: vocab_size {} < 3 (trigger and at least two ordinary tokens)", name,
                V);
      SSM_CHECK(L >= 3, "{}: seq_len {} < 3", name, L);
      break;
    case SyntheticTask::kAssociativeRecall: {
      const int64_t nk = (V - 1) / 2, Q = num_queries(c);
      SSM_CHECK(V >= 3, "{}: vocab_size {} < 3", name, V);
      SSM_CHECK(K >= 1 && K <= nk,
                "{}: num_items (pairs) = {} must be in [1, (vocab_size - 1) / 2 = {}]", name, K,
                nk);
      SSM_CHECK(Q >= 1 && Q <= K, "{}: num_queries {} must be in [1, num_items = {}]", name, Q, K);
      SSM_CHECK(2 * K + Q <= L, "{}: 2 * num_items + num_queries = {} exceeds seq_len {}", name,
                2 * K + Q, L);
      break;
    }
  }
  key_ = mix64(c.seed ^ mix64(uint64_t(c.task) + 1));
}

int64_t SyntheticTaskSource::answers_per_row() const {
  switch (config_.task) {
    case SyntheticTask::kSelectiveCopy:
      return config_.num_items;
    case SyntheticTask::kInductionHeads:
      return 1;
    case SyntheticTask::kAssociativeRecall:
      return num_queries(config_);
  }
  return 0;
}

void SyntheticTaskSource::generate_row(int64_t g, bool eval, int32_t* in, int32_t* tgt,
                                       int32_t* ans) const {
  SSM_CHECK(g >= 0, "{}: negative sample index {}", synthetic_task_name(config_.task), g);
  PhiloxStream rng(key_, uint64_t(g) | (eval ? kEvalStreamBit : 0));
  const int64_t V = config_.vocab_size, L = config_.seq_len;
  std::fill(tgt, tgt + L, kIgnoreTarget);
  switch (config_.task) {
    case SyntheticTask::kSelectiveCopy: {
      namespace ids = synthetic_ids;
      const int64_t K = config_.num_items, data_len = L - K;
      std::fill(in, in + data_len, ids::kCopyNoise);
      std::fill(in + data_len, in + L, ids::kCopyMarker);
      std::vector<int32_t> pos = sample_distinct(rng, data_len, K);
      std::sort(pos.begin(), pos.end());
      for (int64_t j = 0; j < K; ++j) {
        const int32_t colour = ids::kCopyFirstColour + int32_t(rng.below(uint64_t(V - 2)));
        in[pos[size_t(j)]] = colour;
        tgt[data_len + j] = colour;
        ans[j] = int32_t(data_len + j);
      }
      break;
    }
    case SyntheticTask::kInductionHeads: {
      for (int64_t t = 0; t < L - 1; ++t) in[t] = 1 + int32_t(rng.below(uint64_t(V - 1)));
      const int64_t p = rng.below(uint64_t(L - 2));  // trigger in [0, L-3], value in [1, L-2]
      in[p] = synthetic_ids::kInductionTrigger;
      in[L - 1] = synthetic_ids::kInductionTrigger;
      tgt[L - 1] = in[p + 1];
      ans[0] = int32_t(L - 1);
      break;
    }
    case SyntheticTask::kAssociativeRecall: {
      const int64_t P = config_.num_items, Q = num_queries(config_);
      const int64_t nk = (V - 1) / 2, nv = V - 1 - nk;
      std::fill(in, in + L, synthetic_ids::kRecallFiller);
      std::vector<int32_t> keys = sample_distinct(rng, nk, P);
      std::vector<int32_t> values(static_cast<size_t>(P));
      for (int64_t i = 0; i < P; ++i) {
        keys[size_t(i)] += synthetic_ids::kRecallFirstKey;
        values[size_t(i)] = int32_t(synthetic_ids::kRecallFirstKey + nk + rng.below(uint64_t(nv)));
        in[2 * i] = keys[size_t(i)];
        in[2 * i + 1] = values[size_t(i)];
      }
      std::vector<int32_t> asked = sample_distinct(rng, P, Q);  // which pairs, in query order
      std::vector<int32_t> pos = sample_distinct(rng, L - 2 * P, Q);
      std::sort(pos.begin(), pos.end());
      for (int64_t j = 0; j < Q; ++j) {
        const int64_t t = 2 * P + pos[size_t(j)];
        in[t] = keys[size_t(asked[size_t(j)])];
        tgt[t] = values[size_t(asked[size_t(j)])];
        ans[j] = int32_t(t);
      }
      break;
    }
  }
}

Batch SyntheticTaskSource::make_batch(int64_t first_g, bool eval) const {
  const int64_t B = config_.global_batch / config_.dp_size, L = config_.seq_len;
  const int64_t A = answers_per_row();
  Batch b;
  b.resize(B, L);
  b.answers_per_row = A;
  b.answer_pos.assign(size_t(B * A), 0);
  for (int64_t i = 0; i < B; ++i) {
    generate_row(first_g + i, eval, b.inputs.data() + i * L, b.targets.data() + i * L,
                 b.answer_pos.data() + i * A);
  }
  return b;
}

Batch SyntheticTaskSource::batch(int64_t step) const {
  SSM_CHECK(step >= 0, "{}: negative step {}", synthetic_task_name(config_.task), step);
  const int64_t B = config_.global_batch / config_.dp_size;
  return make_batch(step * config_.global_batch + config_.dp_rank * B, /*eval=*/false);
}

Batch SyntheticTaskSource::eval_batch(int64_t k) const {
  SSM_CHECK(k >= 0, "{}: negative eval batch {}", synthetic_task_name(config_.task), k);
  const int64_t B = config_.global_batch / config_.dp_size;
  return make_batch(k * config_.global_batch + config_.dp_rank * B, /*eval=*/true);
}

namespace {

// Counts (correct, scored) per row and calls fn(row_correct, row_scored) for every row.
template <typename Fn>
void score_rows(std::span<const int32_t> pred, const Batch& b, const char* who, Fn fn) {
  SSM_CHECK(int64_t(pred.size()) == b.rows * b.seq_len,
            "{}: predictions have {} elements, batch is ({}, {})", who, pred.size(), b.rows,
            b.seq_len);
  for (int64_t r = 0; r < b.rows; ++r) {
    int64_t correct = 0, scored = 0;
    for (int64_t t = 0; t < b.seq_len; ++t) {
      const int32_t y = b.target(r, t);
      if (y == kIgnoreTarget) continue;
      ++scored;
      correct += pred[size_t(r * b.seq_len + t)] == y;
    }
    fn(correct, scored);
  }
}

}  // namespace

double accuracy(std::span<const int32_t> predictions, const Batch& batch) {
  int64_t correct = 0, scored = 0;
  score_rows(predictions, batch, "accuracy", [&](int64_t c, int64_t s) {
    correct += c;
    scored += s;
  });
  return scored > 0 ? double(correct) / double(scored) : 0.0;
}

double exact_match(std::span<const int32_t> predictions, const Batch& batch) {
  int64_t exact = 0, rows = 0;
  score_rows(predictions, batch, "exact_match", [&](int64_t c, int64_t s) {
    if (s == 0) return;
    ++rows;
    exact += c == s;
  });
  return rows > 0 ? double(exact) / double(rows) : 0.0;
}

}  // namespace ssm::data
