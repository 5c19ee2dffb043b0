// Entry point of reverse mode for models and tests.
//
//   Tensor loss = ssm::cross_entropy(logits, targets);
//   ssm::backward(loss);                 // fills w.grad() for every leaf w
#pragma once
#include "framework/autograd/tape.h"
#include "framework/core/tensor.h"

namespace ssm {

void backward(const Tensor& root, const Tensor& seed = Tensor(), const autograd::BackwardOptions& opts = {});
// The gradient arithmetic the engine uses (exposed for tools such as gradcheck).
const autograd::GradOps& grad_ops();

}  // namespace ssm
