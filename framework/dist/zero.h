// ZeRO-1 AdamW: optimizer state and fp32 master weights sharded across data-parallel ranks.
//
//   dist::ZeroAdamW opt(model.named_parameters(), grid.dp(), {.lr = 3e-4, .weight_decay = 0.1});
//   ssm::backward(loss);             // local gradients, no GradReducer needed
//   opt.step(schedule.lr_at(s));     // reduce-scatter grads, update own shard, all-gather weights
//   opt.zero_grad();
//   double norm = opt.step(lr, {.max_norm = 1.0, .tp = grid.tp(), .tp_replicated = ...});  // clipped
//
// One step: the gradients of all parameters (one flat vector per master dtype, padded to a
// multiple of dp) are reduce-scattered and averaged, so rank r receives the mean gradient of
// elements [r·S, (r+1)·S) only; it runs the fused AdamW kernel on its shard of the master
// weights, m and v (each parameter piece keeps its own weight decay); then the updated
// master shards are all-gathered back into every rank's parameters. The result equals plain
// optim::AdamW on the dp-mean gradient, with 1/dp of the state per rank.
//
// A parameter whose gradient is undefined on every rank is skipped (like optim::AdamW);
// one undefined on some ranks only counts as zeros there. Every rank passes the same
// parameters in the same order. f32 and bf16 parameters have f32 masters, f64 ones f64.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "framework/dist/communicator.h"

namespace ssm::dist {

struct ZeroAdamWOptions {
  double lr = 1e-3;  // used by step() without an argument
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  // True for parameters that must not be decayed; the default (dim < 2: norms, biases,
  // A_log, D, dt_bias) is optim::no_decay's rule.
  std::function<bool(const std::string& name, const Tensor& param)> no_decay =
      [](const std::string&, const Tensor& p) { return p.dim() < 2; };
};

// Global gradient-norm clipping inside ZeroAdamW::step: the norm of the dp-mean gradient
// from every rank's reduced shard (sums of squares all-reduced over dp) and, under tensor
// parallelism, summed over the tp ranks for split parameters while replicated ones (the
// same on every tp rank) count once. Scaling as optim::clip_grad_norm: by
// max_norm / (norm + 1e-6) when the norm exceeds max_norm.
struct ZeroClip {
  double max_norm = 0.0;                // 0 = measure only
  std::shared_ptr<Communicator> tp;     // null: no tensor parallelism
  std::function<bool(const std::string& name)> tp_replicated;  // null: every parameter is split
};

class ZeroAdamW {
 public:
  using NamedParams = std::vector<std::pair<std::string, Tensor>>;

  // Parameters: distinct, uniquely named, contiguous f32/bf16/f64 cpu tensors.
  ZeroAdamW(NamedParams params, std::shared_ptr<Communicator> dp, ZeroAdamWOptions options = {});

  void step() { step(options_.lr); }
  void step(double lr);  // collective over dp
  // The same with gradient clipping; returns the global gradient norm before clipping.
  // Collective over dp and (with clip.tp) over tp.
  double step(double lr, const ZeroClip& clip);
  void zero_grad();
  std::vector<Tensor> params() const;
  const ZeroAdamWOptions& options() const { return options_; }
  int64_t step_count() const { return steps_; }
  void set_step_count(int64_t steps);

  // ---- the sharded state, for checkpoints ----
  // All parameters with one master dtype, flattened in order and padded to dp · shard_size.
  struct Group {
    DType dtype = DType::f32;     // master dtype
    int64_t numel = 0;            // unpadded
    int64_t shard_size = 0;       // S
    Tensor master;                // (S) elements [rank·S, (rank+1)·S) of the flat vector
    Tensor exp_avg, exp_avg_sq;   // (S)
  };
  struct Slot {
    std::string name;
    Tensor param;
    int group = 0;
    int64_t offset = 0;  // of the parameter in its group's flat vector
    bool decay = true;
  };
  const std::vector<Group>& groups() const { return groups_; }
  const std::vector<Slot>& slots() const { return slots_; }
  // Element range [begin, end) of the group's flat vector held by this rank.
  std::pair<int64_t, int64_t> shard_range(int group) const;

 private:
  double step_impl(double lr, const ZeroClip* clip);
  std::shared_ptr<Communicator> dp_;
  ZeroAdamWOptions options_;
  std::vector<Group> groups_;
  std::vector<Slot> slots_;
  int64_t steps_ = 0;
};

}  // namespace ssm::dist
