#include "framework/nn/layers.h"

#include <cmath>

#include "framework/ops/ops.h"

namespace ssm::nn {

Tensor compute_view(const Parameter& p, const Tensor& like) {
  return p.value.dtype() == like.dtype() ? p.value : to(p.value, like.dtype());
}

Tensor default_linear_init(Init& init, int64_t out, int64_t in) {
  double bound = 1.0 / std::sqrt(double(in));
  return init.uniform({out, in}, -bound, bound);
}

Linear::Linear(Init& init, const Tensor& full_weight, const Tensor& full_bias, TpSplit split,
               std::vector<Segment> segments) {
  Partition wp, bp;
  if (split == TpSplit::column) {
    wp = {0, segments};
    bp = {0, segments};
  } else if (split == TpSplit::row) {
    wp = {1, {}};
  }
  weight_ = &add_param("weight", full_weight, init, wp);
  if (full_bias.defined()) bias_ = &add_param("bias", full_bias, init, bp, /*weight_decay=*/false);
}

Tensor Linear::forward(const Tensor& x) const {
  return linear(x, compute_view(*weight_, x), bias_ ? compute_view(*bias_, x) : Tensor());
}

Embedding::Embedding(Init& init, int64_t vocab, int64_t dim, double std) {
  weight_ = &add_param("weight", init.normal({vocab, dim}, std), init);
}

Tensor Embedding::forward(const Tensor& ids) const { return embedding(weight_->value, ids); }

RmsNorm::RmsNorm(Init& init, int64_t dim, double eps) : eps_(eps) {
  weight_ = &add_param("weight", init.constant({dim}, 1.0), init, {}, /*weight_decay=*/false);
}

Tensor RmsNorm::forward(const Tensor& x) const { return rms_norm(x, compute_view(*weight_, x), eps_); }

}  // namespace ssm::nn
