// Softmax and log-softmax along any dim, with fused backward kernels.
//
//   Tensor p  = ssm::softmax(scores, -1);      // (B, H, L, L) attention probabilities
//   Tensor lp = ssm::log_softmax(logits, -1);  // (B, L, V)
//   Tensor q  = ssm::softmax(x, 0);            // any dim: no transpose or copy needed
//
// Numerically stable (the max along the dim is subtracted first; sums in double). The
// backward uses only the output: softmax dx = y·(dy - Σ dy·y), log_softmax dx = dy - eʸ·Σ dy.
#pragma once
#include "framework/core/tensor.h"

namespace ssm {

Tensor softmax(const Tensor& x, int dim);
Tensor log_softmax(const Tensor& x, int dim);

}  // namespace ssm
