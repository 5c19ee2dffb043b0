#include "framework/dist/zero.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "framework/ops/elementwise.h"
#include "framework/ops/view.h"
#include "kernels/cpu/adamw.h"

namespace ssm::dist {

ZeroAdamW::ZeroAdamW(NamedParams params, std::shared_ptr<Communicator> dp, ZeroAdamWOptions options)
    : dp_(std::move(dp)), options_(std::move(options)) {
  const ZeroAdamWOptions& o = options_;
  SSM_CHECK(dp_ != nullptr, "ZeroAdamW: no data-parallel communicator");
  SSM_CHECK(o.lr >= 0 && o.eps >= 0 && o.weight_decay >= 0,
            "ZeroAdamW: lr {}, eps {} and weight_decay {} must be >= 0", o.lr, o.eps, o.weight_decay);
  SSM_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, "ZeroAdamW: betas ({}, {}) must be in [0, 1)",
            o.beta1, o.beta2);
  std::set<std::string> names;
  std::set<const TensorImpl*> seen;
  int group_of[2] = {-1, -1};  // f32 masters, f64 masters
  for (auto& [name, p] : params) {
    SSM_CHECK(p.defined(), "ZeroAdamW: parameter '{}' is undefined", name);
    SSM_CHECK(dtype_is_float(p.dtype()), "ZeroAdamW: parameter '{}' {} must be f32, bf16 or f64", name, p.describe());
    SSM_CHECK(p.device().is_cpu(), "ZeroAdamW: no CUDA kernel for parameter '{}' {} in this build", name,
              p.describe());
    SSM_CHECK(p.is_contiguous(), "ZeroAdamW: parameter '{}' {} must be contiguous", name, p.describe());
    SSM_CHECK(names.insert(name).second, "ZeroAdamW: parameter name '{}' appears twice", name);
    SSM_CHECK(seen.insert(p.impl()).second, "ZeroAdamW: parameter '{}' {} was already given under another name", name,
              p.describe());
    const int k = p.dtype() == DType::f64 ? 1 : 0;
    if (group_of[k] < 0) {
      group_of[k] = int(groups_.size());
      groups_.push_back({});
      groups_.back().dtype = k ? DType::f64 : DType::f32;
    }
    Group& g = groups_[size_t(group_of[k])];
    slots_.push_back({name, p, group_of[k], g.numel, !(o.no_decay && o.no_decay(name, p))});
    g.numel += p.numel();
  }
  // Each rank keeps its shard of the master weights (initialised from the parameters, which
  // every rank holds identically) and zero m, v.
  NoGradGuard raw;
  const int n = dp_->size(), r = dp_->rank();
  for (Group& g : groups_) {
    g.shard_size = (g.numel + n - 1) / n;
    g.master = Tensor::zeros({g.shard_size}, g.dtype);
    g.exp_avg = Tensor::zeros({g.shard_size}, g.dtype);
    g.exp_avg_sq = Tensor::zeros({g.shard_size}, g.dtype);
  }
  for (const Slot& s : slots_) {
    const Group& g = groups_[size_t(s.group)];
    const int64_t lo = std::max(s.offset, r * g.shard_size);
    const int64_t hi = std::min(s.offset + s.param.numel(), (r + 1) * g.shard_size);
    if (lo < hi) copy_(g.master.narrow(0, lo - r * g.shard_size, hi - lo), s.param.view({-1}).narrow(0, lo - s.offset, hi - lo));
  }
}

void ZeroAdamW::step(double lr) { step_impl(lr, nullptr); }

double ZeroAdamW::step(double lr, const ZeroClip& clip) {
  SSM_CHECK(clip.max_norm >= 0, "ZeroAdamW::step: max_norm {} must be >= 0", clip.max_norm);
  return step_impl(lr, &clip);
}

std::pair<int64_t, int64_t> ZeroAdamW::shard_range(int group) const {
  SSM_CHECK(group >= 0 && group < int(groups_.size()), "ZeroAdamW::shard_range: group {} not in [0, {})", group,
            groups_.size());
  const int64_t S = groups_[size_t(group)].shard_size, base = int64_t(dp_->rank()) * S;
  return {base, base + S};
}

double ZeroAdamW::step_impl(double lr, const ZeroClip* clip) {
  SSM_CHECK(std::isfinite(lr) && lr >= 0, "ZeroAdamW::step: learning rate {} must be finite and >= 0", lr);
  NoGradGuard raw;
  const int64_t t = steps_ + 1;
  const int n = dp_->size(), r = dp_->rank();

  // Which parameters have a gradient on some rank (the others are skipped everywhere).
  Tensor has = Tensor::zeros({int64_t(slots_.size())}, DType::i32);
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Tensor g = slots_[i].param.grad();
    if (!g.defined()) continue;
    SSM_CHECK(g.shape() == slots_[i].param.shape(), "ZeroAdamW::step: gradient {} of '{}' does not match the "
              "parameter {}", g.describe(), slots_[i].name, slots_[i].param.describe());
    has.data<int32_t>()[i] = 1;
  }
  dp_->all_reduce(has, ReduceOp::max);
  const int32_t* any = has.data<int32_t>();

  // 1. Reduce-scatter: this rank's shard of the dp-mean gradient, per group.
  std::vector<Tensor> grads(groups_.size());
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    Group& grp = groups_[gi];
    bool active = false;
    Tensor flat = Tensor::zeros({grp.shard_size * n}, grp.dtype);
    for (size_t i = 0; i < slots_.size(); ++i) {
      const Slot& s = slots_[i];
      if (s.group != int(gi) || !any[i]) continue;
      active = true;
      const Tensor g = s.param.grad();
      if (g.defined()) copy_(flat.narrow(0, s.offset, s.param.numel()).view(s.param.shape()), g);
    }
    if (!active) continue;  // identical on every rank: no collective skipped by one rank only
    grads[gi] = dp_->reduce_scatter(flat, 0);  // (S): Σ over ranks of this rank's elements
    if (n > 1) mul_(grads[gi], 1.0 / double(n));
  }

  // 2. Optional global norm and clipping, from the shards.
  double norm = 0.0;
  if (clip) {
    double sq[2] = {0.0, 0.0};  // split over tp, replicated across tp
    for (size_t gi = 0; gi < groups_.size(); ++gi) {
      if (!grads[gi].defined()) continue;
      const int64_t S = groups_[gi].shard_size, base = int64_t(r) * S;
      for (size_t i = 0; i < slots_.size(); ++i) {
        const Slot& s = slots_[i];
        if (s.group != int(gi) || !any[i]) continue;
        const int64_t lo = std::max(s.offset, base), hi = std::min(s.offset + s.param.numel(), base + S);
        if (lo >= hi) continue;
        const bool rep = clip->tp && clip->tp_replicated && clip->tp_replicated(s.name);
        const Tensor piece = grads[gi].narrow(0, lo - base, hi - lo);
        sq[rep ? 1 : 0] += groups_[gi].dtype == DType::f64 ? kernels::cpu::sum_squares(piece.data<double>(), hi - lo)
                                                           : kernels::cpu::sum_squares(piece.data<float>(), hi - lo);
      }
    }
    Tensor sums = Tensor::from_vector({sq[0], sq[1]}, {2}, DType::f64);
    dp_->all_reduce(sums);
    Tensor split = sums.narrow(0, 0, 1);
    if (clip->tp && clip->tp->size() > 1) clip->tp->all_reduce(split);
    norm = std::sqrt(sums.data<double>()[0] + sums.data<double>()[1]);
    if (clip->max_norm > 0 && std::isfinite(norm) && norm > clip->max_norm) {
      const double scale = clip->max_norm / (norm + 1e-6);
      for (const Tensor& g : grads)
        if (g.defined()) mul_(g, scale);
    }
  }

  // 3. AdamW on this rank's shard, then all-gather the updated master weights.
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    if (!grads[gi].defined()) continue;
    Group& grp = groups_[gi];
    const Tensor& grad = grads[gi];
    const int64_t S = grp.shard_size, base = int64_t(r) * S;
    std::vector<kernels::AdamwTensor> pieces;
    for (size_t i = 0; i < slots_.size(); ++i) {
      const Slot& s = slots_[i];
      if (s.group != int(gi) || !any[i]) continue;
      const int64_t lo = std::max(s.offset, base), hi = std::min(s.offset + s.param.numel(), base + S);
      if (lo >= hi) continue;
      const int64_t at = (lo - base) * dtype_size(grp.dtype);
      kernels::AdamwTensor a;
      a.numel = hi - lo;
      a.param = static_cast<char*>(grp.master.raw_data()) + at;
      a.grad = static_cast<const char*>(grad.raw_data()) + at;
      a.exp_avg = static_cast<char*>(grp.exp_avg.raw_data()) + at;
      a.exp_avg_sq = static_cast<char*>(grp.exp_avg_sq.raw_data()) + at;
      a.weight_decay = s.decay ? options_.weight_decay : 0.0;
      pieces.push_back(a);
    }
    if (!pieces.empty()) {
      kernels::AdamwParams p;
      p.lr = lr;
      p.beta1 = options_.beta1;
      p.beta2 = options_.beta2;
      p.eps = options_.eps;
      p.step = t;
      p.num_tensors = int64_t(pieces.size());
      p.tensors = pieces.data();
      if (grp.dtype == DType::f64)
        kernels::cpu::adamw_step<double>(p);
      else
        kernels::cpu::adamw_step<float>(p);
    }

    const Tensor full = dp_->all_gather(grp.master, 0);  // (n·S): the updated master weights
    for (size_t i = 0; i < slots_.size(); ++i) {
      const Slot& s = slots_[i];
      if (s.group == int(gi) && any[i]) copy_(s.param, full.narrow(0, s.offset, s.param.numel()).view(s.param.shape()));
    }
  }
  steps_ = t;
  return norm;
}

void ZeroAdamW::zero_grad() {
  for (Slot& s : slots_) s.param.zero_grad();
}

std::vector<Tensor> ZeroAdamW::params() const {
  std::vector<Tensor> out;
  for (const Slot& s : slots_) out.push_back(s.param);
  return out;
}

void ZeroAdamW::set_step_count(int64_t steps) {
  SSM_CHECK(steps >= 0, "ZeroAdamW::set_step_count: {} must be >= 0", steps);
  steps_ = steps;
}

}  // namespace ssm::dist
