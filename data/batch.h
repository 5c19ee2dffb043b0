// The unit of data the trainer consumes: plain int32 arrays, row-major, turned into tensors
// by the trainer. Every source (token sampler, validation windows, synthetic tasks) fills
// the same struct, so the training loop has one code path.
//
//   const ssm::data::BatchSource& source = sampler;      // or a SyntheticTaskSource
//   ssm::data::Batch b = source.batch(step);             // pure function of step
//   // b.inputs[r * b.seq_len + t] is token t of row r; b.targets the same shape, -1 = ignore
#pragma once
#include <cstdint>
#include <vector>

namespace ssm::data {

inline constexpr int32_t kIgnoreTarget = -1;

struct Batch {
  int64_t rows = 0;     // B: rows on this data-parallel rank (the local batch)
  int64_t seq_len = 0;  // L

  std::vector<int32_t> inputs;   // (B, L) token ids
  std::vector<int32_t> targets;  // (B, L) next token, or kIgnoreTarget where no loss is taken
  // (B, L) document index within the row: 0 at t = 0, +1 after every EOS input token, so a
  // model can reset its state wherever seq_idx changes. All zeros for synthetic tasks.
  std::vector<int32_t> seq_idx;
  // (B) 1 where the state a model carried out of this row at the previous step is valid for
  // this row's first token (carry mode: the stream is contiguous and no document ended right
  // at the window boundary); 0 otherwise: reset mode, wrap-around, step 0, synthetic tasks.
  std::vector<uint8_t> continues;
  // (B) position in the token stream of inputs[r][0]; -1 for synthetic rows and padding rows.
  std::vector<int64_t> offsets;

  // Synthetic tasks only: (B, A) positions t where targets[r][t] is an answer token, in
  // increasing t. Empty (A = 0) for token data.
  int64_t answers_per_row = 0;  // A
  std::vector<int32_t> answer_pos;

  int32_t input(int64_t r, int64_t t) const { return inputs[size_t(r * seq_len + t)]; }
  int32_t target(int64_t r, int64_t t) const { return targets[size_t(r * seq_len + t)]; }

  // Allocates every array for B x L, targets filled with kIgnoreTarget, the rest zero.
  void resize(int64_t b, int64_t l) {
    rows = b;
    seq_len = l;
    inputs.assign(size_t(b * l), 0);
    targets.assign(size_t(b * l), kIgnoreTarget);
    seq_idx.assign(size_t(b * l), 0);
    continues.assign(size_t(b), 0);
    offsets.assign(size_t(b), -1);
    answers_per_row = 0;
    answer_pos.clear();
  }
};

// Anything that produces the training batch of a given step. Implementations are stateless
// in the step: batch(s) never depends on which batches were asked for before, which is what
// makes resuming exact.
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual Batch batch(int64_t step) const = 0;
  virtual int64_t vocab_size() const = 0;
};

}  // namespace ssm::data
