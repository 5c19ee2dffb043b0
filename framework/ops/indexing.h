// Lookups, gathers, concatenation and splitting, all differentiable with deterministic
// backward passes (gradients accumulate in a fixed order for any thread count).
//
//   Tensor h = ssm::embedding(wte, tokens);             // wte (V, D), tokens (B, L) -> (B, L, D)
//   Tensor xbc = ssm::concat({x, B, C}, -1);             // (B, L, E + 2GN)
//   std::vector<Tensor> p = ssm::split(zxbcdt, {E, E, 2 * G * N, H}, -1);  // views
//   Tensor rows = ssm::index_select(w, 0, ids);          // ids (K) -> (K, D)
//   Tensor g = ssm::gather(x, 1, index);                 // torch.gather semantics
//
// Index tensors are int32 or int64; every index is bounds-checked and a bad one is
// reported with its value, its position and the valid range.
#pragma once
#include <cstdint>
#include <vector>

#include "framework/core/tensor.h"

namespace ssm {

// weight (V, D), ids int32/int64 of any shape S -> (S..., D): out[s] = weight[ids[s]].
// The gradient of weight sums the rows of each id in ascending position order.
Tensor embedding(const Tensor& weight, const Tensor& ids);

// Concatenates along `dim`; every tensor has the same rank, dtype, device and sizes off dim.
Tensor concat(const std::vector<Tensor>& tensors, int dim);

// Views of consecutive slices along `dim` with the given sizes (summing to x.size(dim)).
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int dim);

// index (K) int32/int64 -> x with size K along dim: out[.., k, ..] = x[.., index[k], ..].
Tensor index_select(const Tensor& x, int dim, const Tensor& index);

// torch.gather: index has x's rank and index.size(d) <= x.size(d) for d != dim; the output
// has index's shape and out[i][j][k] = x[i][index[i][j][k]][k] (for dim = 1).
Tensor gather(const Tensor& x, int dim, const Tensor& index);

}  // namespace ssm
