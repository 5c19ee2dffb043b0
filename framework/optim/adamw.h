// AdamW over named fp32 (or f64) master parameters: decoupled weight decay, bias
// correction, one fused multi-tensor kernel per step.
//
//   optim::AdamWOptions o;
//   o.lr = 3e-4; o.beta2 = 0.95; o.weight_decay = 0.1;     // no_decay: dim < 2 (norms, biases)
//   optim::AdamW opt(model.named_parameters(), o);
//   for (int64_t s = 0; s < steps; ++s) {
//     ...; ssm::backward(loss);
//     optim::clip_grad_norm(opt.params(), 1.0);
//     opt.step(schedule.lr_at(s));
//     opt.zero_grad();
//   }
//
// The state (m, v) has the parameter's dtype (f32 masters get fp32 state; f64 masters,
// used by the float64 tests, get f64) and is exposed by name for checkpoints, together with
// the step counter. A parameter whose grad is undefined at a step is left untouched (its
// m and v too); the bias correction uses the optimizer's global step count.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "framework/core/tensor.h"

namespace ssm::optim {

using NamedParams = std::vector<std::pair<std::string, Tensor>>;

// The default decay rule: parameters with fewer than 2 dims (norm weights, biases, the
// Mamba A_log / D / dt_bias vectors) are not decayed.
bool no_decay(const std::string& name, const Tensor& param);

struct AdamWOptions {
  double lr = 1e-3;  // used by step() without an argument
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  // True for parameters that must not be decayed; overridable (e.g. also the embedding).
  std::function<bool(const std::string& name, const Tensor& param)> no_decay = optim::no_decay;
};

class AdamW {
 public:
  // One slot per parameter, in the given order (the order of every fused update).
  struct Slot {
    std::string name;
    Tensor param;       // the master weights, updated in place
    Tensor exp_avg;     // m, same shape and dtype as param
    Tensor exp_avg_sq;  // v
    bool decay = true;  // weight decay applies
  };

  // Parameters must be distinct, uniquely named, contiguous f32/f64 cpu tensors.
  AdamW(NamedParams params, AdamWOptions options = {});

  void step() { step(options_.lr); }
  // One update of every parameter with a gradient, at learning rate `lr` (from a schedule).
  void step(double lr);
  // Drops every parameter's gradient.
  void zero_grad();

  const AdamWOptions& options() const { return options_; }
  std::vector<Tensor> params() const;  // in slot order, for clip_grad_norm

  // ---- state, for checkpoints ----
  int64_t step_count() const { return steps_; }  // steps taken so far
  void set_step_count(int64_t steps);
  const std::vector<Slot>& slots() const { return slots_; }
  const Slot& slot(const std::string& name) const;  // throws naming the unknown parameter
  // Copies saved m and v (same shape, any float dtype) into the named slot.
  void load_slot_state(const std::string& name, const Tensor& exp_avg, const Tensor& exp_avg_sq);

 private:
  AdamWOptions options_;
  std::vector<Slot> slots_;
  int64_t steps_ = 0;
};

}  // namespace ssm::optim
