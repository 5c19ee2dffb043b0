// CPU optimizer kernels (float, double): the fused multi-tensor AdamW step and the
// sum of squares behind gradient-norm clipping.
//
//   cpu::adamw_step<float>(p);                        // every tensor of p, one pass each
//   double ss = cpu::sum_squares<float>(g, n);        // Σ g², in double
//
// Work is split into fixed element chunks (boundaries depend only on the sizes); the sum of
// squares combines chunk partials in order, so both are identical for any thread count.
#pragma once
#include <cstdint>

#include "kernels/common/adamw_params.h"

namespace ssm::kernels::cpu {

// Per element, with bc1 = 1 - beta1^step, bc2 = 1 - beta2^step:
//   p -= lr · wd · p;  m = β1 m + (1 - β1) g;  v = β2 v + (1 - β2) g²
//   p -= (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps)
template <class T>
void adamw_step(const AdamwParams& p);

// Σ x[i]², accumulated in double. x (n) contiguous.
template <class T>
double sum_squares(const T* x, int64_t n);

}  // namespace ssm::kernels::cpu
