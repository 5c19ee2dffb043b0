#include "framework/nn/layers.h"

#include <cmath>

#include "framework/dist/vocab_parallel.h"
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
               std::vector<Segment> segments)
    : split_(split), tp_(init.tp()) {
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
  return forward_local(split_ == TpSplit::column ? tp_copy(x, tp_) : x);
}

Tensor Linear::forward_local(const Tensor& x) const {
  const Tensor w = compute_view(*weight_, x);
  const Tensor b = bias_ ? compute_view(*bias_, x) : Tensor();
  if (split_ != TpSplit::row || tp_.size == 1) return linear(x, w, b);
  // Partial sums over this rank's input columns; the bias is added once, after the sum.
  Tensor y = tp_reduce(linear(x, w), tp_);
  return b.defined() ? add(y, b) : y;
}

Tensor embed_tokens(const Tensor& weight_local, const Tensor& ids, const TpPlacement& tp) {
  if (tp.size == 1) return embedding(weight_local, ids);
  SSM_CHECK(tp.comm != nullptr, "embedding: the model was built for tensor parallel size {} without a tp "
            "communicator", tp.size);
  return dist::vocab_parallel_embedding(weight_local, ids, tp.comm);
}

Embedding::Embedding(Init& init, int64_t vocab, int64_t dim, double std) : tp_(init.tp()) {
  weight_ = &add_param("weight", init.normal({vocab, dim}, std), init, {0, {}});
}

Tensor Embedding::forward(const Tensor& ids) const { return embed_tokens(weight_->value, ids, tp_); }

RmsNorm::RmsNorm(Init& init, int64_t dim, double eps) : eps_(eps) {
  weight_ = &add_param("weight", init.constant({dim}, 1.0), init, {}, /*weight_decay=*/false);
}

Tensor RmsNorm::forward(const Tensor& x) const { return rms_norm(x, compute_view(*weight_, x), eps_); }

}  // namespace ssm::nn
