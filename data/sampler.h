// Deterministic batch samplers over a token stream, for training and validation.
//
//   ssm::data::SamplerConfig cfg;
//   cfg.mode = ssm::data::SampleMode::kReset;    // or kCarry (truncated BPTT)
//   cfg.seq_len = 1024;  cfg.global_batch = 32;  cfg.dp_rank = rank;  cfg.dp_size = world;
//   cfg.seed = 1234;
//   ssm::data::TokenSampler sampler(ds.train, cfg);
//   ssm::data::Batch b = sampler.batch(step);     // rows = global_batch / dp_size
//
// A batch is a pure function of (stream, config, step): resuming at step s reproduces exactly
// the batches of an uninterrupted run, and data-parallel ranks read disjoint rows.
//
// kReset: the stream is cut into W = (T - 1) / L windows of L + 1 tokens at positions w * L
//   (consecutive windows share one token: the last target of one is the first input of the
//   next). Global sample g = step * global_batch + dp_rank * local_batch + i is window
//   feistel_permute(g mod W, W, seed, epoch = g / W): each epoch visits every window exactly
//   once, in an order that is a fresh permutation per epoch, with O(1) memory.
//   inputs = window[0, L), targets = window[1, L]. continues = 0.
// kCarry: global row r = dp_rank * local_batch + i owns the region [r * R, (r + 1) * R) of
//   the stream, R = T / global_batch, and reads it as one contiguous stream: at step s it
//   reads the window starting at r * R + (s mod S) * L, S = (R - 1) / L windows per region,
//   so row r at step s + 1 starts exactly where row r at step s stopped. When the region is
//   used up the row wraps to its start (continues = 0); otherwise continues = 1 unless the
//   previous window's last input was EOS (then the carried state belongs to a finished
//   document and must be reset anyway).
// In both modes seq_idx counts EOS tokens within each row (see Batch), and offsets holds
// each row's stream position.
#pragma once
#include <cstdint>
#include <string_view>

#include "data/batch.h"
#include "data/dataset.h"

namespace ssm::data {

enum class SampleMode { kReset, kCarry };
const char* sample_mode_name(SampleMode m);        // "reset" / "carry"
SampleMode parse_sample_mode(std::string_view s);  // throws on anything else

struct SamplerConfig {
  SampleMode mode = SampleMode::kReset;
  int64_t seq_len = 0;       // L
  int64_t global_batch = 0;  // rows over all data-parallel ranks; divisible by dp_size
  int dp_rank = 0;
  int dp_size = 1;
  uint64_t seed = 0;
  int32_t eos_id = Tokenizer::kEos;  // -1: no document boundaries (seq_idx all zero)
  int32_t pad_id = Tokenizer::kPad;  // inputs of padding rows in partial validation batches

  int64_t local_batch() const { return global_batch / dp_size; }
};

class TokenSampler : public BatchSource {
 public:
  TokenSampler(TokenStream stream, SamplerConfig config);

  Batch batch(int64_t step) const override;
  int64_t vocab_size() const override { return stream_.vocab_size(); }

  const SamplerConfig& config() const { return config_; }
  // kReset: W windows; kCarry: S windows per row region.
  int64_t num_windows() const { return num_windows_; }
  // Steps until every window has been seen once (kReset: ceil(W / global_batch); a step may
  // straddle two epochs) or every row has wrapped (kCarry: S).
  int64_t steps_per_epoch() const;
  // kReset only: the window index (window starts at index * L) of global sample g.
  int64_t window_of_sample(int64_t g) const;

 private:
  TokenStream stream_;
  SamplerConfig config_;
  int64_t num_windows_ = 0;
  int64_t region_ = 0;  // kCarry: R
};

// Validation windows: the first min(max_windows, W) windows of the stream, in order, at
// positions w * L (no shuffling, so every evaluation sees the same data). Batch k holds
// windows k * global_batch + dp_rank * local_batch + i; rows past the last window are
// padding (inputs pad_id, targets -1) so all ranks run the same number of batches.
class ValidationSampler {
 public:
  // Only seq_len, global_batch, dp_rank, dp_size, eos_id and pad_id of config are used.
  ValidationSampler(TokenStream stream, SamplerConfig config, int64_t max_windows);

  int64_t num_windows() const { return num_windows_; }
  int64_t num_batches() const;
  Batch batch(int64_t k) const;

 private:
  TokenStream stream_;
  SamplerConfig config_;
  int64_t num_windows_ = 0;
};

// Fills seq_idx rows from inputs: 0 at t = 0, +1 after each eos_id input (eos_id < 0: zeros).
void fill_seq_idx(Batch& b, int32_t eos_id);

}  // namespace ssm::data
