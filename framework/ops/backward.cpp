#include "framework/ops/backward.h"

#include "framework/ops/elementwise.h"
#include "framework/ops/random.h"
#include "framework/ops/view.h"

namespace ssm {

const autograd::GradOps& grad_ops() {
  static const autograd::GradOps ops = [] {
    autograd::GradOps o;
    o.add = [](const Tensor& a, const Tensor& b) { return add(a, b); };
    o.add_into = [](const Tensor& acc, const Tensor& g) { add_(acc, g); };
    o.clone = [](const Tensor& g) { return clone(g); };
    o.fill = [](const Dims& shape, DType dt, Device dev, double v) { return full(shape, v, dt, dev); };
    return o;
  }();
  return ops;
}

void backward(const Tensor& root, const Tensor& seed, const autograd::BackwardOptions& opts) {
  autograd::run_backward(root, seed, grad_ops(), opts);
}

}  // namespace ssm
