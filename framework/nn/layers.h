// Basic layers: Linear, Embedding, RMSNorm. Each owns its parameters and knows how it is
// partitioned under tensor parallelism (Megatron style):
//
//   column-parallel  y_local = linear(tp_copy(x), W_local, b_local)    W rows split: (out/tp, in)
//   row-parallel     y = tp_reduce(linear(x_local, W_local)) + b        W columns split: (out, in/tp)
//
// so a column layer followed by a row layer needs one all-reduce in forward (the row
// layer's) and one in backward (the column layer's input). At tp size 1 both are plain
// linear layers.
#pragma once
#include "framework/nn/module.h"

namespace ssm::nn {

enum class TpSplit { none, column, row };

class Linear : public Module {
 public:
  // weight (out, in) initialised from `full_weight`; bias (out) from `full_bias` when it is
  // defined (biases are never weight-decayed). `segments` names packed row blocks of a
  // column-parallel weight ([z|x|B|C|dt]).
  Linear(Init& init, const Tensor& full_weight, const Tensor& full_bias, TpSplit split = TpSplit::none,
         std::vector<Segment> segments = {});
  // none: x (..., in) -> (..., out); column: x (..., in) replicated -> (..., out/tp);
  // row: x (..., in/tp) -> (..., out) replicated (summed over tp ranks, then + bias).
  Tensor forward(const Tensor& x) const;
  // Column-parallel without the tp_copy of x: for layers that share one input (q/k/v,
  // gate/up) and copy it once. Same as forward() for the other splits.
  Tensor forward_local(const Tensor& x) const;
  Parameter& weight() { return *weight_; }
  Parameter* bias() { return bias_; }

 private:
  Parameter* weight_;
  Parameter* bias_ = nullptr;
  TpSplit split_;
  TpPlacement tp_;
};

// PyTorch's default nn.Linear init: U(-1/sqrt(in), 1/sqrt(in)), full size (out, in).
Tensor default_linear_init(Init& init, int64_t out, int64_t in);

// Vocab-parallel under TP: rank r owns rows [r·V/tp, (r+1)·V/tp) of the (V, D) table.
class Embedding : public Module {
 public:
  Embedding(Init& init, int64_t vocab, int64_t dim, double std);
  Tensor forward(const Tensor& ids) const;  // ids (B, L) int -> (B, L, D), replicated
  Parameter& weight() { return *weight_; }

 private:
  Parameter* weight_;
  TpPlacement tp_;
};

// ids (any shape) -> (..., D) from a (V/tp, D) vocab-parallel table (plain embedding at tp 1).
Tensor embed_tokens(const Tensor& weight_local, const Tensor& ids, const TpPlacement& tp);

class RmsNorm : public Module {
 public:
  RmsNorm(Init& init, int64_t dim, double eps);
  Tensor forward(const Tensor& x) const;
  Parameter& weight() { return *weight_; }

 private:
  Parameter* weight_;
  double eps_;
};

// Casts a parameter to the compute dtype of `like` (bf16 forward on GPU keeps fp32 masters).
Tensor compute_view(const Parameter& p, const Tensor& like);

}  // namespace ssm::nn
