// Differentiable reductions. `dims` empty means all dimensions.
//
//   Tensor m = ssm::mean(x, {-1}, /*keepdim=*/true);   // (B, L, D) -> (B, L, 1)
//   Tensor s = ssm::sum(x);                             // scalar
#pragma once
#include <vector>

#include "framework/core/tensor.h"

namespace ssm {

Tensor sum(const Tensor& x, const std::vector<int>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int>& dims = {}, bool keepdim = false);
// Maximum values; the gradient flows to the first maximal element of each reduced group.
Tensor max(const Tensor& x, const std::vector<int>& dims = {}, bool keepdim = false);
// Sums a broadcast gradient back to `shape` (the backward of broadcasting).
Tensor sum_to_shape(const Tensor& x, const Dims& shape);

}  // namespace ssm
