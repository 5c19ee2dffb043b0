#include "framework/optim/clip.h"

#include <cmath>

#include "framework/ops/elementwise.h"
#include "framework/ops/view.h"
#include "kernels/cpu/adamw.h"
#if defined(SSM_WITH_CUDA)
#include "framework/ops/dispatch.h"
#include "kernels/cuda/adamw/adamw.h"
#endif

namespace ssm::optim {

namespace {

// Σ g² over CUDA gradients: one multi-tensor launch per gradient dtype into a device f64
// vector, then a single copy of that vector (one scalar per dtype) to the host.
double cuda_sum_squares(const std::vector<Tensor>& grads) {
  const Device dev = grads[0].device();
  const DType kTypes[] = {DType::f32, DType::bf16, DType::f64};
  std::vector<kernels::AdamwTensor> lists[3];
  std::vector<Tensor> keep;
  for (const Tensor& g : grads) {
    SSM_CHECK(g.device() == dev, "clip_grad_norm: gradient {} is not on {} like {}", g.describe(), dev.str(),
              grads[0].describe());
    const int k = g.dtype() == DType::f32 ? 0 : g.dtype() == DType::bf16 ? 1 : g.dtype() == DType::f64 ? 2 : -1;
    SSM_CHECK(k >= 0, "clip_grad_norm: gradient {} must be f32, bf16 or f64", g.describe());
    keep.push_back(contiguous(g));
    kernels::AdamwTensor a;
    a.numel = g.numel();
    a.grad = keep.back().raw_data();
    lists[k].push_back(a);
  }
  Tensor sums = Tensor::zeros(Dims{3}, DType::f64, dev);
#if defined(SSM_WITH_CUDA)
  for (int k = 0; k < 3; ++k) {
    if (lists[k].empty()) continue;
    const int64_t n = int64_t(lists[k].size());
    const size_t ws = kernels::cuda::multi_tensor_workspace(n, lists[k].data());
    Tensor scratch = Tensor::empty(Dims{int64_t(ws / 8 + 1)}, DType::i64, dev);
    double* out = static_cast<double*>(sums.raw_data()) + k;
    SSM_CUDA_LAUNCH("clip_grad_norm", dev,
                    kernels::cuda::sum_squares(kTypes[k], n, lists[k].data(), scratch.raw_data(), ws, out, stream));
  }
#else
  (void)kTypes;
#endif
  const std::vector<double> v = sums.to_vector();  // the one device-to-host copy
  return v[0] + v[1] + v[2];
}

}  // namespace

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  NoGradGuard no_grad;
  double sumsq = 0;
  std::vector<Tensor> grads, cuda_grads;
  for (const Tensor& p : params) {
    Tensor g = p.defined() ? p.grad() : Tensor();
    if (!g.defined()) continue;
    if (g.device().is_cuda()) {
      cuda_grads.push_back(g);
      grads.push_back(g);
      continue;
    }
    const Tensor c = contiguous(g);
    switch (c.dtype()) {
      case DType::f32: sumsq += kernels::cpu::sum_squares(c.data<float>(), c.numel()); break;
      case DType::f64: sumsq += kernels::cpu::sum_squares(c.data<double>(), c.numel()); break;
      default: SSM_FAIL("clip_grad_norm: gradient {} must be f32 or f64", g.describe());
    }
    grads.push_back(g);
  }
  if (!cuda_grads.empty()) sumsq += cuda_sum_squares(cuda_grads);
  const double norm = std::sqrt(sumsq);
  if (max_norm > 0 && std::isfinite(norm) && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (const Tensor& g : grads) mul_(g, scale);
  }
  return norm;
}

}  // namespace ssm::optim
