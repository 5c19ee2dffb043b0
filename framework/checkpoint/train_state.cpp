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

}  // namespace

Snapshot snapshot_training_state(nn::Module& model, const optim::AdamW* opt, nn::TpPlacement tp, bool owner,
                                 nlohmann::json meta, int rank, int world) {
  Snapshot s;
  s.meta = std::move(meta);
  s.step = s.meta.value("step", int64_t(0));
  s.rank = rank;
  s.world = world;
  for (const LogicalPart& lp : logical_parts(model, tp)) {
    if (lp.dim < 0 && !owner) continue;  // replicated: written once
    s.items.push_back({"model/" + lp.name, piece_of(lp.param->value, lp), lp.global_shape, piece_start(lp)});
  }
  if (opt) {
    std::map<const TensorImpl*, const optim::AdamW::Slot*> by_param;
    for (const auto& slot : opt->slots()) by_param[slot.param.impl()] = &slot;
    for (const LogicalPart& lp : logical_parts(model, tp)) {
      if (lp.dim < 0 && !owner) continue;
      auto it = by_param.find(lp.param->value.impl());
      SSM_CHECK(it != by_param.end(), "checkpoint: parameter '{}' is not in the optimizer", lp.name);
      s.items.push_back({"optim/exp_avg/" + lp.name, piece_of(it->second->exp_avg, lp), lp.global_shape, piece_start(lp)});
      s.items.push_back(
          {"optim/exp_avg_sq/" + lp.name, piece_of(it->second->exp_avg_sq, lp), lp.global_shape, piece_start(lp)});
    }
  }
  return s;
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

}  // namespace ssm::checkpoint
