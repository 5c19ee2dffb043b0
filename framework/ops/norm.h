// Normalisations over the last dim, fused with hand-written backward kernels.
//
//   Tensor h = ssm::rms_norm(x, w, 1e-5);                   // x (B, L, D), w (D)
//   Tensor y = ssm::rms_norm_gated(y_ssd, z, w, 1e-5, E / G);  // Mamba-2: norm(y·silu(z)) per group
//   auto [normed, residual] = ssm::add_rms_norm(x, residual, w, 1e-5);  // prenorm block input
//   Tensor o = ssm::layer_norm(x, gamma, beta, 1e-5);
//
// Computed in the input dtype (f32 or f64 on the cpu) with row statistics accumulated in
// double. A weight (and bias) may be undefined, meaning ones (zeros). Deterministic for any
// thread count, including the weight gradients.
#pragma once
#include <cstdint>

#include "framework/core/tensor.h"

namespace ssm {

// y = weight · x · rsqrt(mean(x², last dim) + eps).  x (..., D), weight (D) or undefined.
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps);

// The Mamba-2 gated grouped RMSNorm. x, z (..., E); weight (E) or undefined; the mean is
// taken over groups of `group_size` consecutive channels (E / G; 0 means E = one group).
//   norm_before_gate = false:  y = rmsnorm_per_group(x · silu(z)) · weight
//   norm_before_gate = true:   y = rmsnorm_per_group(x) · weight · silu(z)
Tensor rms_norm_gated(const Tensor& x, const Tensor& z, const Tensor& weight, double eps, int64_t group_size = 0,
                      bool norm_before_gate = false);

// Fused residual add + RMSNorm: residual_out = x + residual, normed = rms_norm(residual_out).
struct NormedResidual {
  Tensor normed;    // (..., D)
  Tensor residual;  // (..., D) the new residual stream
};
NormedResidual add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps);

// y = (x - mean) / sqrt(var + eps) · weight + bias over the last dim (biased variance).
// x (..., D); weight, bias (D) or undefined.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps);

}  // namespace ssm
