#include "framework/optim/clip.h"

#include <cmath>

#include "framework/ops/elementwise.h"
#include "framework/ops/view.h"
#include "kernels/cpu/adamw.h"

namespace ssm::optim {

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  NoGradGuard no_grad;
  double sumsq = 0;
  std::vector<Tensor> grads;
  for (const Tensor& p : params) {
    Tensor g = p.defined() ? p.grad() : Tensor();
    if (!g.defined()) continue;
    SSM_CHECK(g.device().is_cpu(), "clip_grad_norm: no CUDA kernel for gradient {} in this build", g.describe());
    const Tensor c = contiguous(g);
    switch (c.dtype()) {
      case DType::f32: sumsq += kernels::cpu::sum_squares(c.data<float>(), c.numel()); break;
      case DType::f64: sumsq += kernels::cpu::sum_squares(c.data<double>(), c.numel()); break;
      default: SSM_FAIL("clip_grad_norm: gradient {} must be f32 or f64", g.describe());
    }
    grads.push_back(g);
  }
  const double norm = std::sqrt(sumsq);
  if (max_norm > 0 && std::isfinite(norm) && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (const Tensor& g : grads) mul_(g, scale);
  }
  return norm;
}

}  // namespace ssm::optim
