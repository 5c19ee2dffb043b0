// Vocab-parallel embedding and cross-entropy: the vocab is split evenly across tp ranks
// (rank r owns token ids [r·V/tp, (r+1)·V/tp)), so neither the (V, D) table nor the (N, V)
// logits are ever materialised on one rank.
//
//   Tensor h = dist::vocab_parallel_embedding(wte_local, tokens, grid.tp());   // (B, L, D)
//   ...
//   Tensor logits_local = ssm::linear(h, lm_head_local);                      // (B, L, V/tp)
//   Tensor loss = dist::vocab_parallel_cross_entropy(logits_local, targets, grid.tp());
//   ssm::backward(loss);        // each rank gets the gradient of its own vocab slice
//
// The loss equals ssm::cross_entropy on the gathered logits (same value on every tp rank;
// Megatron#7452 is the reminder to test exactly that): every rank contributes its per-row
// (max, Σexp, target logit, argmax) in one all-gather, and every rank combines them in rank
// order, so all ranks compute bit-identical results.
#pragma once
#include <cstdint>

#include "framework/dist/tp.h"
#include "framework/ops/loss.h"

namespace ssm::dist {

// weight_local (V/tp, D); ids int32/int64 of any shape S with values in [0, V) -> (S..., D),
// identical on every tp rank. Ids outside this rank's slice contribute zero before the
// all-reduce; the backward needs no communication.
Tensor vocab_parallel_embedding(const Tensor& weight_local, const Tensor& ids, const CommPtr& tp);

// logits_local (N, V/tp) or (B, L, V/tp), f32/f64, cpu; targets (N) or (B, L) int32/int64 with
// values in [0, V) or ignore_index, identical on every tp rank. Returns the mean loss over
// non-ignored rows (0-d, logits dtype), like ssm::cross_entropy. `stats` may be null.
Tensor vocab_parallel_cross_entropy(const Tensor& logits_local, const Tensor& targets, const CommPtr& tp,
                                    int64_t ignore_index = -1, CrossEntropyStats* stats = nullptr);

}  // namespace ssm::dist
