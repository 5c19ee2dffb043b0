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
// On CUDA the bias is added by the GEMM epilogue (no extra pass over the output).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias = Tensor());

// f32 matmuls on CUDA run exact fp32 by default; allowing TF32 trades ~1e-3 relative error
// for tensor-core speed. Process-wide (like torch.backends.cuda.matmul.allow_tf32); no effect on CPU.
void set_matmul_allow_tf32(bool on);
bool matmul_allow_tf32();

}  // namespace ssm
