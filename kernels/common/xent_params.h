// Parameters of the fused cross-entropy over rows of logits.
//
//   XentParams p;                          // logits (N, V), N = B * L tokens
//   p.rows = N; p.vocab = V; p.logits = logits; p.logits_row_stride = V;
//   p.targets = targets; p.targets_i64 = true; p.ignore_index = -1;
//   p.lse = lse;                           // (N) saved for the backward
//   cpu::xent_fwd<float>(p, &stats);       // stats.loss_sum, stats.count, stats.correct
//   p.dlogits = dlogits; p.dlogits_row_stride = V; p.grad_scale = dloss / stats.count;
//   cpu::xent_bwd<float>(p);               // dlogits = grad_scale · (softmax - onehot)
//
// Targets must be in [0, V) or equal ignore_index (the caller checks). Ignored rows add
// nothing to the loss or the count and get a zero gradient.
#pragma once
#include <cstdint>

namespace ssm::kernels {

struct XentParams {
  int64_t rows = 0;               // N
  int64_t vocab = 0;              // V
  int64_t logits_row_stride = 0;  // vocab dim contiguous
  int64_t dlogits_row_stride = 0;
  int64_t ignore_index = -1;
  bool targets_i64 = false;       // int64 targets, else int32
  double grad_scale = 0.0;        // backward: dloss / count

  const void* logits = nullptr;   // (N, V)
  const void* targets = nullptr;  // (N) contiguous int32 / int64
  void* lse = nullptr;            // (N) logsumexp per row: forward output, backward input
  void* dlogits = nullptr;        // (N, V) backward output
};

// Forward totals over the non-ignored rows (summed in a fixed order).
struct XentTotals {
  double loss_sum = 0.0;  // Σ (lse - logit[target])
  int64_t count = 0;      // non-ignored rows
  int64_t correct = 0;    // rows whose first argmax equals the target
};

}  // namespace ssm::kernels
