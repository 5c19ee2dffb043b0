// Global gradient-norm clipping.
//
//   double norm = optim::clip_grad_norm(opt.params(), 1.0);   // scales grads when norm > 1
//   double norm = optim::clip_grad_norm(opt.params(), 0.0);   // only measures (logging)
#pragma once
#include <vector>

#include "framework/core/tensor.h"

namespace ssm::optim {

// The L2 norm of all the gradients of `params` together (those without a gradient are
// skipped), accumulated in double in parameter order, so it is the same for any thread
// count. When max_norm > 0 and the norm exceeds it, every gradient is scaled in place by
// max_norm / (norm + 1e-6). A non-finite norm is returned as is and nothing is scaled (the
// caller decides whether to skip the step).
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

}  // namespace ssm::optim
