#include "framework/optim/adamw.h"

#include <cmath>
#include <set>

#include "framework/ops/elementwise.h"
#include "framework/ops/view.h"
#include "kernels/cpu/adamw.h"
#if defined(SSM_WITH_CUDA)
#include "framework/ops/dispatch.h"
#include "kernels/cuda/adamw/adamw.h"
#endif

namespace ssm::optim {

bool no_decay(const std::string& /*name*/, const Tensor& param) { return param.dim() < 2; }

AdamW::AdamW(NamedParams params, AdamWOptions options) : options_(std::move(options)) {
  const AdamWOptions& o = options_;
  SSM_CHECK(o.lr >= 0 && o.eps >= 0 && o.weight_decay >= 0, "AdamW: lr {}, eps {} and weight_decay {} must be >= 0",
            o.lr, o.eps, o.weight_decay);
  SSM_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, "AdamW: betas ({}, {}) must be in [0, 1)",
            o.beta1, o.beta2);
  std::set<std::string> names;
  std::set<const TensorImpl*> seen;
  for (auto& [name, p] : params) {
    SSM_CHECK(p.defined(), "AdamW: parameter '{}' is undefined", name);
    SSM_CHECK(p.dtype() == DType::f32 || p.dtype() == DType::f64,
              "AdamW: parameter '{}' {} must be an f32 or f64 master weight", name, p.describe());
    SSM_CHECK(p.device().is_cpu() || cuda_compiled(), "AdamW: parameter '{}' {} is on CUDA, which this build lacks",
              name, p.describe());
    SSM_CHECK(slots_.empty() || slots_[0].param.device() == p.device(),
              "AdamW: parameter '{}' {} is not on the device of '{}' {} (one optimizer per device)", name,
              p.describe(), slots_.empty() ? name : slots_[0].name,
              slots_.empty() ? p.describe() : slots_[0].param.describe());
    SSM_CHECK(p.is_contiguous(), "AdamW: parameter '{}' {} must be contiguous", name, p.describe());
    SSM_CHECK(names.insert(name).second, "AdamW: parameter name '{}' appears twice", name);
    SSM_CHECK(seen.insert(p.impl()).second, "AdamW: parameter '{}' {} was already given under another name", name,
              p.describe());
    Slot s;
    s.name = name;
    s.param = p;
    s.exp_avg = Tensor::zeros(p.shape(), p.dtype(), p.device());
    s.exp_avg_sq = Tensor::zeros(p.shape(), p.dtype(), p.device());
    s.decay = !(o.no_decay && o.no_decay(name, p));
    slots_.push_back(std::move(s));
  }
}

void AdamW::step(double lr) {
  SSM_CHECK(std::isfinite(lr) && lr >= 0, "AdamW::step: learning rate {} must be finite and >= 0", lr);
  NoGradGuard no_grad;
  const int64_t t = steps_ + 1;
  // One fused launch per master dtype; grads kept alive (a non-contiguous grad is copied).
  std::vector<kernels::AdamwTensor> by_dtype[2];
  std::vector<Tensor> grads;
  grads.reserve(slots_.size());
  for (const Slot& s : slots_) {
    Tensor g = s.param.grad();
    if (!g.defined()) continue;
    SSM_CHECK(g.shape() == s.param.shape() && g.dtype() == s.param.dtype(),
              "AdamW::step: gradient {} of '{}' does not match the parameter {}", g.describe(), s.name,
              s.param.describe());
    grads.push_back(contiguous(g));
    kernels::AdamwTensor a;
    a.numel = s.param.numel();
    a.param = s.param.raw_data();
    a.grad = grads.back().raw_data();
    a.exp_avg = s.exp_avg.raw_data();
    a.exp_avg_sq = s.exp_avg_sq.raw_data();
    a.weight_decay = s.decay ? options_.weight_decay : 0.0;
    by_dtype[s.param.dtype() == DType::f64].push_back(a);
  }
  for (int k = 0; k < 2; ++k) {
    if (by_dtype[k].empty()) continue;
    kernels::AdamwParams p;
    p.lr = lr;
    p.beta1 = options_.beta1;
    p.beta2 = options_.beta2;
    p.eps = options_.eps;
    p.step = t;
    p.num_tensors = int64_t(by_dtype[k].size());
    p.tensors = by_dtype[k].data();
    const Device dev = slots_[0].param.device();
    if (dev.is_cuda()) {
#if defined(SSM_WITH_CUDA)
      // Descriptors and chunk table go to a device scratch block in one copy; one launch.
      const size_t ws = kernels::cuda::multi_tensor_workspace(p.num_tensors, p.tensors);
      Tensor scratch = Tensor::empty(Dims{int64_t(ws / 8 + 1)}, DType::i64, dev);
      SSM_CUDA_LAUNCH("AdamW::step", dev,
                      kernels::cuda::adamw_step(k == 0 ? DType::f32 : DType::f64, p, scratch.raw_data(), ws, stream));
#endif
    } else if (k == 0)
      kernels::cpu::adamw_step<float>(p);
    else
      kernels::cpu::adamw_step<double>(p);
  }
  steps_ = t;
}

void AdamW::zero_grad() {
  for (Slot& s : slots_) s.param.zero_grad();
}

std::vector<Tensor> AdamW::params() const {
  std::vector<Tensor> out;
  for (const Slot& s : slots_) out.push_back(s.param);
  return out;
}

void AdamW::set_step_count(int64_t steps) {
  SSM_CHECK(steps >= 0, "AdamW::set_step_count: {} must be >= 0", steps);
  steps_ = steps;
}

const AdamW::Slot& AdamW::slot(const std::string& name) const {
  for (const Slot& s : slots_)
    if (s.name == name) return s;
  SSM_FAIL("AdamW: no parameter named '{}' ({} parameters)", name, slots_.size());
}

void AdamW::load_slot_state(const std::string& name, const Tensor& exp_avg, const Tensor& exp_avg_sq) {
  const Slot& s = slot(name);
  for (const Tensor* t : {&exp_avg, &exp_avg_sq})
    SSM_CHECK(t->defined() && t->shape() == s.param.shape(),
              "AdamW::load_slot_state: state {} for '{}' does not match the parameter {}",
              t->defined() ? t->describe() : std::string("undefined"), name, s.param.describe());
  NoGradGuard no_grad;
  copy_(s.exp_avg, exp_avg);
  copy_(s.exp_avg_sq, exp_avg_sq);
}

}  // namespace ssm::optim
