#include "framework/checkpoint/train_state.h"

#include <map>

#include "framework/ops/view.h"

namespace ssm::checkpoint {

std::vector<LogicalPart> logical_parts(nn::Module& model, nn::TpPlacement tp) {
  std::vector<LogicalPart> out;
  for (auto& [name, p] : model.named_parameters()) {
    const nn::Partition& part = p->partition;
    if (part.replicated() || part.segments.empty()) {
      LogicalPart lp;
      lp.name = name;
      lp.param = p;
      lp.dim = part.dim;
      lp.global_shape = p->global_shape;
      if (!part.replicated()) {
        int64_t local = p->value.shape()[part.dim];
        lp.global_start = tp.rank * local;
        lp.local_size = local;
      }
      out.push_back(lp);
      continue;
    }
    int64_t local_at = 0;
    for (const nn::Segment& s : part.segments) {
      LogicalPart lp;
      lp.name = name + "." + s.name;
      lp.param = p;
      lp.dim = part.dim;
      lp.global_shape = p->global_shape;
      lp.global_shape[part.dim] = s.size;
      int64_t local = s.size / tp.size;
      lp.global_start = tp.rank * local;
      lp.local_start = local_at;
      lp.local_size = local;
      local_at += local;
      out.push_back(lp);
    }
  }
  return out;
}

namespace {

// This rank's piece of a logical tensor taken from a full local tensor (param or moment).
Tensor piece_of(const Tensor& local, const LogicalPart& lp) {
  NoGradGuard ng;
  Tensor t = lp.dim < 0 ? local : local.narrow(lp.dim, lp.local_start, lp.local_size);
  return clone(to(t.detach(), Device::cpu()));
}

Dims piece_start(const LogicalPart& lp) {
  Dims s = Dims::filled(lp.global_shape.size(), 0);
  if (lp.dim >= 0) s[lp.dim] = lp.global_start;
  return s;
}

void decompose(const Dims& shape, int d, Dims& start, int64_t lo, int64_t hi, std::vector<std::pair<Dims, Dims>>& out) {
  if (lo >= hi) return;
  int64_t inner = 1;
  for (int k = d + 1; k < shape.size(); ++k) inner *= shape[k];
  Dims size = Dims::filled(shape.size(), 1);
  for (int k = d + 1; k < shape.size(); ++k) size[k] = shape[k];
  const int64_t first = lo / inner, last = (hi - 1) / inner;
  if (first == last && (lo % inner != 0 || hi % inner != 0)) {  // inside one slice along d
    start[d] = first;
    decompose(shape, d + 1, start, lo - first * inner, hi - first * inner, out);
    start[d] = 0;
    return;
  }
  int64_t a = first, b = last + 1;
  if (lo % inner != 0) {  // partial head slice
    start[d] = first;
    decompose(shape, d + 1, start, lo % inner, inner, out);
    a = first + 1;
  }
  if (hi % inner != 0) b = last;  // partial tail slice, below
  if (a < b) {
    Dims st = start;
    st[d] = a;
    size[d] = b - a;
    out.emplace_back(st, size);
  }
  if (hi % inner != 0) {
    start[d] = last;
    decompose(shape, d + 1, start, 0, hi - last * inner, out);
  }
  start[d] = 0;
}

// The part of `box` (in local parameter coordinates) that lies in `lp`, as (local start,
// global start, size); false when they do not meet.
bool box_in_part(const std::pair<Dims, Dims>& box, const LogicalPart& lp, Dims& local, Dims& global, Dims& size) {
  local = box.first;
  size = box.second;
  global = box.first;
  if (lp.dim < 0) return true;
  const int d = lp.dim;
  const int64_t lo = std::max(box.first[d], lp.local_start);
  const int64_t hi = std::min(box.first[d] + box.second[d], lp.local_start + lp.local_size);
  if (lo >= hi) return false;
  local[d] = lo;
  size[d] = hi - lo;
  global[d] = lp.global_start + (lo - lp.local_start);
  return true;
}

Tensor narrow_box(const Tensor& t, const Dims& start, const Dims& size) {
  Tensor v = t;
  for (int d = 0; d < start.size(); ++d) v = v.narrow(d, start[d], size[d]);
  return v;
}

// The logical parts of each parameter, by parameter.
std::map<const nn::Parameter*, std::vector<const LogicalPart*>> parts_by_param(const std::vector<LogicalPart>& parts) {
  std::map<const nn::Parameter*, std::vector<const LogicalPart*>> m;
  for (const LogicalPart& lp : parts) m[lp.param].push_back(&lp);
  return m;
}

// For each ZeRO slot: the model parameter it updates.
const nn::Parameter* param_of(nn::Module& model, const dist::ZeroAdamW::Slot& s) {
  for (nn::Parameter* p : model.parameters())
    if (p->value.same(s.param)) return p;
  SSM_FAIL("checkpoint: the ZeRO optimizer holds '{}', which is not a parameter of the model", s.name);
}

}  // namespace

std::vector<std::pair<Dims, Dims>> flat_range_boxes(const Dims& shape, int64_t lo, int64_t hi) {
  SSM_CHECK(0 <= lo && lo <= hi && hi <= shape.numel(), "flat_range_boxes: [{}, {}) is not inside {}", lo, hi,
            shape.str());
  std::vector<std::pair<Dims, Dims>> out;
  if (shape.size() == 0) {
    if (lo < hi) out.emplace_back(Dims(), Dims());
    return out;
  }
  Dims start = Dims::filled(shape.size(), 0);
  decompose(shape, 0, start, lo, hi, out);
  return out;
}

Snapshot snapshot_training_state(nn::Module& model, const optim::AdamW* opt, const dist::ZeroAdamW* zero,
                                 nn::TpPlacement tp, SaveRole role, nlohmann::json meta, int rank, int world) {
  SSM_CHECK(!(opt && zero), "checkpoint: give either the AdamW or the ZeRO optimizer, not both");
  Snapshot s;
  s.meta = std::move(meta);
  s.step = s.meta.value("step", int64_t(0));
  s.rank = rank;
  s.world = world;
  const std::vector<LogicalPart> parts = logical_parts(model, tp);
  auto writes = [&](const LogicalPart& lp) { return lp.dim < 0 ? role.replicated : role.tp_shards; };
  for (const LogicalPart& lp : parts) {
    if (!writes(lp)) continue;
    s.items.push_back({"model/" + lp.name, piece_of(lp.param->value, lp), lp.global_shape, piece_start(lp)});
  }
  if (opt) {
    std::map<const TensorImpl*, const optim::AdamW::Slot*> by_param;
    for (const auto& slot : opt->slots()) by_param[slot.param.impl()] = &slot;
    for (const LogicalPart& lp : parts) {
      if (!writes(lp)) continue;
      auto it = by_param.find(lp.param->value.impl());
      SSM_CHECK(it != by_param.end(), "checkpoint: parameter '{}' is not in the optimizer", lp.name);
      s.items.push_back({"optim/exp_avg/" + lp.name, piece_of(it->second->exp_avg, lp), lp.global_shape, piece_start(lp)});
      s.items.push_back(
          {"optim/exp_avg_sq/" + lp.name, piece_of(it->second->exp_avg_sq, lp), lp.global_shape, piece_start(lp)});
    }
  }
  if (zero) {
    // Each rank holds elements [lo, hi) of every group's flat vector: write the boxes of the
    // logical tensors they cover.
    NoGradGuard ng;
    const auto by_param = parts_by_param(parts);
    for (const dist::ZeroAdamW::Slot& slot : zero->slots()) {
      const nn::Parameter* p = param_of(model, slot);
      const dist::ZeroAdamW::Group& g = zero->groups()[size_t(slot.group)];
      const auto [base, end] = zero->shard_range(slot.group);
      const int64_t lo = std::max(base, slot.offset), hi = std::min(end, slot.offset + slot.param.numel());
      if (lo >= hi) continue;
      for (const auto& [kind, state] : {std::pair{"exp_avg", &g.exp_avg}, std::pair{"exp_avg_sq", &g.exp_avg_sq}}) {
        // The shard's elements of this parameter, in place in a parameter-shaped buffer.
        Tensor local = Tensor::zeros(slot.param.shape(), g.dtype);
        copy_(local.view({-1}).narrow(0, lo - slot.offset, hi - lo), state->narrow(0, lo - base, hi - lo));
        for (const auto& box : flat_range_boxes(slot.param.shape(), lo - slot.offset, hi - slot.offset))
          for (const LogicalPart* lp : by_param.at(p)) {
            if (lp->dim < 0 && !role.zero_replicated) continue;
            Dims at, global, size;
            if (!box_in_part(box, *lp, at, global, size)) continue;
            Tensor piece = clone(narrow_box(local, at, size));
            s.items.push_back({fmt::format("optim/{}/{}", kind, lp->name), piece, lp->global_shape, global});
          }
      }
    }
  }
  return s;
}

Snapshot snapshot_training_state(nn::Module& model, const optim::AdamW* opt, nn::TpPlacement tp, bool owner,
                                 nlohmann::json meta, int rank, int world) {
  return snapshot_training_state(model, opt, nullptr, tp, SaveRole{owner, true, owner}, std::move(meta), rank, world);
}

void load_training_state(const LoadedCheckpoint& c, nn::Module& model, optim::AdamW* opt, nn::TpPlacement tp) {
  std::map<const TensorImpl*, const optim::AdamW::Slot*> by_param;
  if (opt)
    for (const auto& slot : opt->slots()) by_param[slot.param.impl()] = &slot;
  NoGradGuard ng;
  for (const LogicalPart& lp : logical_parts(model, tp)) {
    const LogicalTensor* t = c.find("model/" + lp.name);
    SSM_CHECK(t != nullptr, "{}: checkpoint has no tensor 'model/{}' (was it written by a different model?)", c.path,
              lp.name);
    SSM_CHECK(Dims(t->shape) == lp.global_shape, "{}: tensor 'model/{}' has shape {} in the checkpoint, the model wants {}",
              c.path, lp.name, Dims(t->shape).str(), lp.global_shape.str());
    Dims start = piece_start(lp);
    Dims shape = lp.global_shape;
    if (lp.dim >= 0) shape[lp.dim] = lp.local_size;
    auto load_into = [&](const std::string& logical, const Tensor& dst_full) {
      Tensor src = c.read(logical, start, shape);
      Tensor dst = lp.dim < 0 ? dst_full : dst_full.narrow(lp.dim, lp.local_start, lp.local_size);
      copy_(dst, to(src, dst.device()));
    };
    load_into("model/" + lp.name, lp.param->value.detach());
    if (opt) {
      auto it = by_param.find(lp.param->value.impl());
      SSM_CHECK(it != by_param.end(), "checkpoint: parameter '{}' is not in the optimizer", lp.name);
      load_into("optim/exp_avg/" + lp.name, it->second->exp_avg);
      load_into("optim/exp_avg_sq/" + lp.name, it->second->exp_avg_sq);
    }
  }
}

void load_zero_state(const LoadedCheckpoint& c, nn::Module& model, const dist::ZeroAdamW& zero, nn::TpPlacement tp) {
  load_training_state(c, model, nullptr, tp);
  NoGradGuard ng;
  const std::vector<LogicalPart> parts = logical_parts(model, tp);
  const auto by_param = parts_by_param(parts);
  for (const dist::ZeroAdamW::Slot& slot : zero.slots()) {
    const nn::Parameter* p = param_of(model, slot);
    const dist::ZeroAdamW::Group& g = zero.groups()[size_t(slot.group)];
    const auto [base, end] = zero.shard_range(slot.group);
    const int64_t lo = std::max(base, slot.offset), hi = std::min(end, slot.offset + slot.param.numel());
    if (lo >= hi) continue;
    // Master weights: the parameters just loaded (f32/f64 masters equal the parameters).
    copy_(g.master.narrow(0, lo - base, hi - lo), slot.param.view({-1}).narrow(0, lo - slot.offset, hi - lo));
    for (const auto& [kind, state] : {std::pair{"exp_avg", &g.exp_avg}, std::pair{"exp_avg_sq", &g.exp_avg_sq}}) {
      Tensor local = Tensor::zeros(slot.param.shape(), g.dtype);
      for (const auto& box : flat_range_boxes(slot.param.shape(), lo - slot.offset, hi - slot.offset))
        for (const LogicalPart* lp : by_param.at(p)) {
          Dims at, global, size;
          if (!box_in_part(box, *lp, at, global, size)) continue;
          const std::string name = fmt::format("optim/{}/{}", kind, lp->name);
          SSM_CHECK(c.find(name) != nullptr, "{}: checkpoint has no tensor '{}' (saved without optimizer state?)",
                    c.path, name);
          copy_(narrow_box(local, at, size), c.read(name, global, size));
        }
      copy_(state->narrow(0, lo - base, hi - lo), local.view({-1}).narrow(0, lo - slot.offset, hi - lo));
    }
  }
}

}  // namespace ssm::checkpoint
