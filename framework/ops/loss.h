// Fused cross-entropy: one pass computes each row's logsumexp and loss; the backward
// recomputes softmax from the logits and the saved logsumexp (no (N, V) probabilities are
// kept), dlogits = dloss · (softmax - onehot(target)) / count.
//
//   CrossEntropyStats st;
//   Tensor loss = ssm::cross_entropy(logits, targets, /*ignore_index=*/-1, &st);  // scalar
//   ssm::backward(loss);
//   double acc = double(st.correct) / double(st.count);   // token accuracy, no gradient
#pragma once
#include <cstdint>

#include "framework/core/tensor.h"

namespace ssm {

// Counts of the rows that entered the mean (for metrics and for re-weighting micro-batches).
struct CrossEntropyStats {
  int64_t count = 0;    // rows whose target is not ignore_index
  int64_t correct = 0;  // of those, rows whose (first) argmax logit is the target
};

// logits (N, V) or (B, L, V), f32/f64; targets (N) or (B, L), int32/int64, each in [0, V) or
// equal to ignore_index. Returns the mean over non-ignored rows as a 0-d tensor of the
// logits' dtype: 0 (with a zero gradient) when every row is ignored. `stats` may be null.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -1,
                     CrossEntropyStats* stats = nullptr);

}  // namespace ssm
