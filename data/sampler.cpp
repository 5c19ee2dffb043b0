#include "data/sampler.h"

#include <algorithm>
#include <vector>

#include "data/random.h"
#include "framework/core/error.h"

namespace ssm::data {

namespace {

void check_common(const SamplerConfig& c, const char* who) {
  SSM_CHECK(c.seq_len >= 1, "{}: seq_len must be >= 1, got {}", who, c.seq_len);
  SSM_CHECK(c.dp_size >= 1 && c.dp_rank >= 0 && c.dp_rank < c.dp_size,
            "{}: dp_rank {} outside [0, dp_size = {})", who, c.dp_rank, c.dp_size);
  SSM_CHECK(c.global_batch >= 1 && c.global_batch % c.dp_size == 0,
            "{}: global_batch {} must be a positive multiple of dp_size {}", who, c.global_batch,
            c.dp_size);
}

// Reads the L + 1 tokens at `start` into row r: inputs = [0, L), targets = [1, L].
void fill_window(const TokenStream& s, int64_t start, Batch& b, int64_t r,
                 std::vector<int32_t>& tmp) {
  const int64_t L = b.seq_len;
  tmp.resize(size_t(L + 1));
  s.read(start, L + 1, tmp.data());
  std::copy(tmp.begin(), tmp.begin() + L, b.inputs.begin() + r * L);
  std::copy(tmp.begin() + 1, tmp.end(), b.targets.begin() + r * L);
  b.offsets[size_t(r)] = start;
}

}  // namespace

const char* sample_mode_name(SampleMode m) { return m == SampleMode::kReset ? "reset" : "carry"; }

SampleMode parse_sample_mode(std::string_view s) {
  if (s == "reset") return SampleMode::kReset;
  if (s == "carry") return SampleMode::kCarry;
  SSM_FAIL("unknown sampling mode '{}' (expected 'reset' or 'carry')", s);
}

void fill_seq_idx(Batch& b, int32_t eos_id) {
  for (int64_t r = 0; r < b.rows; ++r) {
    const int32_t* in = b.inputs.data() + r * b.seq_len;
    int32_t* idx = b.seq_idx.data() + r * b.seq_len;
    int32_t doc = 0;
    for (int64_t t = 0; t < b.seq_len; ++t) {
      idx[t] = doc;
      if (eos_id >= 0 && in[t] == eos_id) ++doc;  // the EOS belongs to the document it ends
    }
  }
}

// ---- TokenSampler ------------------------------------------------------------------------

TokenSampler::TokenSampler(TokenStream stream, SamplerConfig config)
    : stream_(std::move(stream)), config_(config) {
  check_common(config_, "token sampler");
  const int64_t T = stream_.size(), L = config_.seq_len;
  if (config_.mode == SampleMode::kReset) {
    num_windows_ = T > 0 ? (T - 1) / L : 0;
    // Fewer windows than rows would repeat a window within one step.
    SSM_CHECK(num_windows_ >= config_.global_batch,
              "token sampler: the train split has {} tokens = {} windows of seq_len + 1 = {} "
              "tokens, fewer than global_batch = {}",
              T, num_windows_, L + 1, config_.global_batch);
  } else {
    region_ = T / config_.global_batch;
    num_windows_ = region_ > 0 ? (region_ - 1) / L : 0;
    SSM_CHECK(num_windows_ >= 1,
              "token sampler (carry): {} tokens split into global_batch = {} row regions of {} "
              "tokens, each shorter than seq_len + 1 = {}",
              T, config_.global_batch, region_, L + 1);
  }
}

int64_t TokenSampler::steps_per_epoch() const {
  if (config_.mode == SampleMode::kCarry) return num_windows_;
  return (num_windows_ + config_.global_batch - 1) / config_.global_batch;
}

int64_t TokenSampler::window_of_sample(int64_t g) const {
  SSM_CHECK(g >= 0, "token sampler: negative sample index {}", g);
  const uint64_t W = uint64_t(num_windows_);
  const uint64_t epoch = uint64_t(g) / W;
  return int64_t(feistel_permute(uint64_t(g) % W, W, config_.seed, epoch));
}

Batch TokenSampler::batch(int64_t step) const {
  SSM_CHECK(step >= 0, "token sampler: negative step {}", step);
  const int64_t B = config_.local_batch(), L = config_.seq_len;
  Batch b;
  b.resize(B, L);
  std::vector<int32_t> tmp;
  for (int64_t i = 0; i < B; ++i) {
    if (config_.mode == SampleMode::kReset) {
      const int64_t g = step * config_.global_batch + config_.dp_rank * B + i;
      fill_window(stream_, window_of_sample(g) * L, b, i, tmp);
    } else {
      const int64_t row = config_.dp_rank * B + i;
      const int64_t k = step % num_windows_;
      const int64_t start = row * region_ + k * L;
      fill_window(stream_, start, b, i, tmp);
      const bool ended_doc =
          config_.eos_id >= 0 && k > 0 && stream_.at(start - 1) == config_.eos_id;
      b.continues[size_t(i)] = k > 0 && !ended_doc;
    }
  }
  fill_seq_idx(b, config_.eos_id);
  return b;
}

// ---- ValidationSampler -------------------------------------------------------------------

ValidationSampler::ValidationSampler(TokenStream stream, SamplerConfig config, int64_t max_windows)
    : stream_(std::move(stream)), config_(config) {
  check_common(config_, "validation sampler");
  SSM_CHECK(max_windows >= 0, "validation sampler: max_windows must be >= 0, got {}", max_windows);
  const int64_t T = stream_.size();
  const int64_t W = T > 0 ? (T - 1) / config_.seq_len : 0;
  num_windows_ = std::min(W, max_windows);
}

int64_t ValidationSampler::num_batches() const {
  return (num_windows_ + config_.global_batch - 1) / config_.global_batch;
}

Batch ValidationSampler::batch(int64_t k) const {
  SSM_CHECK(k >= 0 && k < num_batches(), "validation sampler: batch {} outside [0, {})", k,
            num_batches());
  const int64_t B = config_.local_batch(), L = config_.seq_len;
  Batch b;
  b.resize(B, L);
  std::vector<int32_t> tmp;
  for (int64_t i = 0; i < B; ++i) {
    const int64_t w = k * config_.global_batch + config_.dp_rank * B + i;
    if (w < num_windows_) {
      fill_window(stream_, w * L, b, i, tmp);
    } else {
      std::fill(b.inputs.begin() + i * L, b.inputs.begin() + (i + 1) * L, config_.pad_id);
    }
  }
  fill_seq_idx(b, config_.eos_id);
  return b;
}

}  // namespace ssm::data
