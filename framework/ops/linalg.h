// Matrix products.
//
//   Tensor y = ssm::matmul(x, w, false, true);   // x (B, L, D) · wᵀ, w (E, D) -> (B, L, E)
//   Tensor y = ssm::linear(x, w, bias);          // same, plus bias (E); bias may be undefined
#pragma once
#include "framework/core/tensor.h"

namespace ssm {

// op(a) · op(b) with op = transpose of the last two dims when the flag is set.
// a (..., M, K); b (K, N) shared by every batch, or (..., K, N) with a's batch dims.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// x (..., in) · wᵀ (+ bias): w (out, in), bias (out) or undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias = Tensor());

}  // namespace ssm
