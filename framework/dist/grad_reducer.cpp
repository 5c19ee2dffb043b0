#include "framework/dist/grad_reducer.h"

#include <set>

#include "framework/ops/elementwise.h"
#include "framework/ops/view.h"

namespace ssm::dist {

GradReducer::GradReducer(std::vector<Tensor> params, std::shared_ptr<Communicator> dp, GradReducerOptions options)
    : dp_(std::move(dp)) {
  SSM_CHECK(dp_ != nullptr, "GradReducer: no data-parallel communicator");
  SSM_CHECK(options.bucket_mb > 0, "GradReducer: bucket_mb = {} must be > 0", options.bucket_mb);
  const double cap_bytes = options.bucket_mb * 1024.0 * 1024.0;
  std::set<const TensorImpl*> seen;
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& p = params[i];
    SSM_CHECK(p.defined(), "GradReducer: parameter {} is undefined", i);
    SSM_CHECK(dtype_is_float(p.dtype()), "GradReducer: parameter {} {} is not floating point", i, p.describe());
    SSM_CHECK(dp_->supports(p.device()), "GradReducer: parameter {} {} is on a device the {} backend of {} cannot "
              "reduce", i, p.describe(), dp_->backend(), dp_->describe());
    SSM_CHECK(seen.insert(p.impl()).second, "GradReducer: parameter {} {} is listed twice", i, p.describe());
    slots_.push_back({p, 0, 0, false});
    index_[p.impl()] = int(i);
  }
  // Reverse order: the gradients of the last parameters are final first.
  std::vector<int64_t> sizes;
  std::vector<DType> types;
  for (int i = int(slots_.size()) - 1; i >= 0; --i) {
    const Tensor& p = slots_[size_t(i)].param;
    const DType t = p.dtype() == DType::f64 ? DType::f64 : DType::f32;
    const double bytes = double(p.numel()) * dtype_size(t);
    const bool fits = !buckets_.empty() && types.back() == t && double(sizes.back()) * dtype_size(t) + bytes <= cap_bytes;
    if (!fits) {
      buckets_.emplace_back();
      sizes.push_back(0);
      types.push_back(t);
    }
    Slot& s = slots_[size_t(i)];
    s.bucket = int(buckets_.size()) - 1;
    s.offset = sizes.back();
    sizes.back() += p.numel();
    buckets_.back().slots.push_back(i);
  }
  for (size_t b = 0; b < buckets_.size(); ++b) {
    buckets_[b].buffer = Tensor::zeros({sizes[b]}, types[b], slots_[size_t(buckets_[b].slots[0])].param.device());
    buckets_[b].pending = int(buckets_[b].slots.size());
  }
}

std::vector<int> GradReducer::bucket_params(int b) const {
  SSM_CHECK(b >= 0 && b < num_buckets(), "GradReducer::bucket_params: bucket {} not in [0, {})", b, num_buckets());
  return buckets_[size_t(b)].slots;
}

autograd::BackwardOptions GradReducer::hook() {
  autograd::BackwardOptions o;
  o.on_leaf_ready = [this](const Tensor& leaf) { on_ready(leaf); };
  return o;
}

void GradReducer::stage(Slot& s) {
  NoGradGuard raw;
  Bucket& b = buckets_[size_t(s.bucket)];
  const Tensor dst = b.buffer.narrow(0, s.offset, s.param.numel()).view(s.param.shape());
  const Tensor g = s.param.grad();
  if (g.defined()) {
    SSM_CHECK(g.shape() == s.param.shape(), "GradReducer: gradient {} does not match its parameter {}", g.describe(),
              s.param.describe());
    copy_(dst, g);
  } else {
    fill_(dst, 0.0);
  }
  s.ready = true;
  --b.pending;
}

void GradReducer::launch_ready() {
  while (next_launch_ < num_buckets() && buckets_[size_t(next_launch_)].pending == 0) {
    Bucket& b = buckets_[size_t(next_launch_++)];
    b.work = dp_->all_reduce_async(b.buffer);
    if (!in_finish_) ++early_this_step_;
  }
}

void GradReducer::on_ready(const Tensor& leaf) {
  auto it = index_.find(leaf.impl());
  if (it == index_.end()) return;  // a leaf that is not one of ours (an input that requires grad)
  Slot& s = slots_[size_t(it->second)];
  SSM_CHECK(!s.ready, "GradReducer: the gradient of parameter {} {} became final twice before finish(); pass "
            "hook() only to the backward of the last micro-batch", it->second, s.param.describe());
  stage(s);
  launch_ready();
  for (int b = 0; b < next_launch_; ++b)  // let the transport progress while backward runs
    if (buckets_[size_t(b)].work) buckets_[size_t(b)].work->test();
}

void GradReducer::finish() {
  NoGradGuard raw;
  in_finish_ = true;
  launched_early_ = early_this_step_;
  early_this_step_ = 0;
  struct Reset {  // leaves the reducer ready for the next step even when a wait throws
    GradReducer* r;
    ~Reset() {
      for (Slot& s : r->slots_) s.ready = false;
      for (Bucket& b : r->buckets_) {
        b.pending = int(b.slots.size());
        b.work.reset();
      }
      r->next_launch_ = 0;
      r->in_finish_ = false;
    }
  } reset{this};
  for (Slot& s : slots_)
    if (!s.ready) stage(s);
  launch_ready();
  const double inv = 1.0 / double(dp_->size());
  for (Bucket& b : buckets_) {
    b.work->wait();
    if (dp_->size() > 1) mul_(b.buffer, inv);
    for (int i : b.slots) {
      Slot& s = slots_[size_t(i)];
      const Tensor mean = b.buffer.narrow(0, s.offset, s.param.numel()).view(s.param.shape());
      Tensor g = s.param.grad();
      if (g.defined() && g.dtype() == s.param.dtype()) {
        copy_(g, mean);
      } else {
        Tensor fresh = Tensor::empty(s.param.shape(), s.param.dtype(), s.param.device());
        copy_(fresh, mean);
        s.param.set_grad(fresh);
      }
    }
  }
}

}  // namespace ssm::dist
