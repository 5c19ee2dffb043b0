// Basic layers: Linear, Embedding, RMSNorm. Each owns its parameters and knows how it is
// partitioned under tensor parallelism (column-parallel: output rows split; row-parallel:
// input columns split).
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
  // x (..., in_local) -> (..., out_local)
  Tensor forward(const Tensor& x) const;
  Parameter& weight() { return *weight_; }
  Parameter* bias() { return bias_; }

 private:
  Parameter* weight_;
  Parameter* bias_ = nullptr;
};

// PyTorch's default nn.Linear init: U(-1/sqrt(in), 1/sqrt(in)), full size (out, in).
Tensor default_linear_init(Init& init, int64_t out, int64_t in);

class Embedding : public Module {
 public:
  Embedding(Init& init, int64_t vocab, int64_t dim, double std);
  Tensor forward(const Tensor& ids) const;  // ids (B, L) int -> (B, L, D)
  Parameter& weight() { return *weight_; }

 private:
  Parameter* weight_;
};

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
