// CPU softmax and log-softmax (float, double) along one axis, forward and backward.
//
//   SoftmaxParams p = ...;            // (O, N, I) geometry, see softmax_params.h
//   cpu::softmax_fwd<double>(p);      // y = exp(x - max) / Σ exp(x - max)   (or x - logsumexp)
//   p.dy = dy; p.dx = dx;
//   cpu::softmax_bwd<double>(p);      // dx from y and dy (x is not read)
//
// Sums accumulate in double; lines are independent, so results do not depend on threads.
#pragma once
#include "kernels/common/softmax_params.h"

namespace ssm::kernels::cpu {

// Writes y. Stable: the line maximum is subtracted before exponentiating.
template <class T>
void softmax_fwd(const SoftmaxParams& p);
// softmax: dx = y · (dy - Σ dy·y);  log_softmax: dx = dy - exp(y) · Σ dy.
template <class T>
void softmax_bwd(const SoftmaxParams& p);

}  // namespace ssm::kernels::cpu
