// Synthetic sequence tasks for testing a model's memory, generated on the fly.
//
//   ssm::data::SyntheticConfig cfg;
//   cfg.task = ssm::data::SyntheticTask::kSelectiveCopy;
//   cfg.vocab_size = 16;  cfg.seq_len = 256;  cfg.num_items = 16;  cfg.global_batch = 64;
//   ssm::data::SyntheticTaskSource source(cfg);
//   ssm::data::Batch b = source.batch(step);                // targets: -1 except answers
//   double acc = ssm::data::accuracy(argmax_ids, b);        // argmax_ids: (B, L)
//
// Every row is a pure function of (seed, task, global sample index g), with
// g = step * global_batch + dp_rank * local_batch + i, so a batch depends only on
// (seed, step, rank, row), data-parallel ranks see disjoint rows, and the same global batch
// comes out for any dp layout. eval_batch(k) draws from a separate stream that never
// overlaps the training rows. Loss is taken only on answer tokens (targets -1 elsewhere);
// answer_pos lists them. Ids per task (V = vocab_size):
//
// kSelectiveCopy (Gu & Dao 2023, "Mamba", selective copying): K = num_items coloured tokens
//   (ids 2..V-1, iid uniform) sit at K random distinct positions of a data region of L - K
//   noise tokens (id 0); then K marker tokens (id 1) follow. At the j-th marker the model
//   must output the j-th coloured token in order of position. No teacher forcing: the answer
//   slots show only markers. Needs V >= 3, K >= 1, L >= 2K.
// kInductionHeads (Olsson et al. 2022; H3): L - 1 ordinary tokens (ids 1..V-1, iid); the
//   trigger (id 0) is placed once at a random position p in [0, L-3] and the ordinary token
//   after it is the value; the last input is the trigger again and its target is the value.
//   One answer per row. Needs V >= 3, L >= 3.
// kAssociativeRecall (multi-query associative recall, Arora et al. 2023, "Zoology"): P =
//   num_items key-value pairs first (k1 v1 k2 v2 ...; keys distinct from ids 1..nk, values iid
//   from ids nk+1..V-1, nk = (V-1)/2), then Q = num_queries (0 means P) of those keys, each
//   asked once, at random distinct positions of the rest of the sequence, filler (id 0)
//   elsewhere. The target at a query is its value. Needs 1 <= Q <= P <= nk, 2P + Q <= L.
#pragma once
#include <cstdint>
#include <span>
#include <string_view>

#include "data/batch.h"

namespace ssm::data {

enum class SyntheticTask { kSelectiveCopy, kInductionHeads, kAssociativeRecall };
const char* synthetic_task_name(SyntheticTask t);  // "selective_copy", "induction_heads", "mqar"
SyntheticTask parse_synthetic_task(std::string_view s);

namespace synthetic_ids {
inline constexpr int32_t kCopyNoise = 0;
inline constexpr int32_t kCopyMarker = 1;
inline constexpr int32_t kCopyFirstColour = 2;
inline constexpr int32_t kInductionTrigger = 0;
inline constexpr int32_t kRecallFiller = 0;
inline constexpr int32_t kRecallFirstKey = 1;
}  // namespace synthetic_ids

struct SyntheticConfig {
  SyntheticTask task = SyntheticTask::kSelectiveCopy;
  int64_t vocab_size = 16;  // V
  int64_t seq_len = 256;    // L
  int64_t num_items = 16;   // tokens to copy (selective copy) / key-value pairs (MQAR)
  int64_t num_queries = 0;  // MQAR queries; 0 means num_items
  uint64_t seed = 0;
  int64_t global_batch = 1;  // rows over all data-parallel ranks; divisible by dp_size
  int dp_rank = 0;
  int dp_size = 1;
};

class SyntheticTaskSource : public BatchSource {
 public:
  explicit SyntheticTaskSource(SyntheticConfig config);  // throws on impossible sizes

  Batch batch(int64_t step) const override;  // training rows of `step`
  Batch eval_batch(int64_t k) const;         // held-out rows, disjoint from training
  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t answers_per_row() const;  // A: K, 1 or Q
  const SyntheticConfig& config() const { return config_; }

  // One row of the sample with index g (eval: the held-out sample g):
  // inputs (L), targets (L) and answer_pos (A).
  void generate_row(int64_t g, bool eval, int32_t* inputs, int32_t* targets,
                    int32_t* answer_pos) const;

 private:
  Batch make_batch(int64_t first_g, bool eval) const;
  SyntheticConfig config_;
  uint64_t key_ = 0;  // Philox key derived from (seed, task)
};

// Fraction of scored positions (targets != -1: for synthetic batches exactly answer_pos)
// where predictions (B, L) equal the target; 0 when nothing is scored.
double accuracy(std::span<const int32_t> predictions, const Batch& batch);
// Fraction of rows whose scored positions are all correct (rows with none are skipped).
double exact_match(std::span<const int32_t> predictions, const Batch& batch);

}  // namespace ssm::data
