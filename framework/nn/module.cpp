#include "framework/nn/module.h"

#include "framework/ops/elementwise.h"
#include "framework/ops/random.h"
#include "framework/ops/view.h"

namespace ssm::nn {

TpPlacement TpPlacement::over(const dist::CommPtr& tp) {
  if (!tp) return {};
  return {tp->rank(), tp->size(), tp};
}

namespace {
const dist::CommPtr& comm_of(const TpPlacement& tp, const char* op) {
  SSM_CHECK(tp.comm != nullptr, "{}: the model was built for tensor parallel size {} without a tp communicator "
            "(build it with nn::TpPlacement::over(grid.tp()) to run it)", op, tp.size);
  return tp.comm;
}
}  // namespace

Tensor tp_copy(const Tensor& x, const TpPlacement& tp) {
  return tp.size == 1 ? x : dist::copy_to_tp(x, comm_of(tp, "copy_to_tp"));
}

Tensor tp_reduce(const Tensor& x, const TpPlacement& tp) {
  return tp.size == 1 ? x : dist::reduce_from_tp(x, comm_of(tp, "reduce_from_tp"));
}

Tensor tp_gather(const Tensor& x, const TpPlacement& tp, int dim) {
  return tp.size == 1 ? x : dist::gather_from_tp(x, comm_of(tp, "gather_from_tp"), dim);
}

Tensor Init::normal(const Dims& shape, double std) {
  Tensor t = randn(shape, rng_, DType::f64);
  return std == 1.0 ? t : [&] {
    NoGradGuard ng;
    return mul(t, std);
  }();
}

Tensor Init::uniform(const Dims& shape, double lo, double hi) { return ssm::uniform(shape, lo, hi, rng_, DType::f64); }

Tensor Init::constant(const Dims& shape, double value) { return full(shape, value, DType::f64); }

Tensor Init::from_values(const std::vector<double>& v, const Dims& shape) {
  return Tensor::from_vector(v, shape, DType::f64);
}

Tensor shard_of(const Tensor& full, const Partition& part, TpPlacement tp) {
  if (part.replicated() || tp.size == 1) return full;
  NoGradGuard ng;
  int d = wrap_dim(part.dim, full.dim());
  std::vector<Segment> segs = part.segments;
  if (segs.empty()) segs.push_back({"", full.shape()[d]});
  std::vector<Tensor> pieces;
  int64_t start = 0;
  for (const Segment& s : segs) {
    SSM_CHECK(s.size % tp.size == 0, "segment '{}' of size {} is not divisible by tensor parallel size {}", s.name,
              s.size, tp.size);
    int64_t local = s.size / tp.size;
    pieces.push_back(full.narrow(d, start + tp.rank * local, local));
    start += s.size;
  }
  SSM_CHECK(start == full.shape()[d], "partition segments sum to {} but dimension {} of {} has size {}", start, d,
            full.describe(), full.shape()[d]);
  if (pieces.size() == 1) return contiguous(pieces[0]);
  // Concatenate the per-segment slices along d.
  Dims shape = full.shape();
  int64_t total = 0;
  for (const Tensor& p : pieces) total += p.shape()[d];
  shape[d] = total;
  Tensor out = Tensor::empty(shape, full.dtype(), full.device());
  int64_t at = 0;
  for (const Tensor& p : pieces) {
    copy_(out.narrow(d, at, p.shape()[d]), p);
    at += p.shape()[d];
  }
  return out;
}

Parameter& Module::add_param(const std::string& name, const Tensor& full, const Init& init, Partition part,
                             bool weight_decay) {
  auto p = std::make_unique<Parameter>();
  p->name = name;
  p->global_shape = full.shape();
  p->partition = std::move(part);
  p->weight_decay = weight_decay;
  {
    NoGradGuard ng;
    Tensor local = shard_of(full, p->partition, init.tp());
    p->value = clone(to(to(local, init.dtype()), init.device()));
  }
  p->value.set_requires_grad(true);
  params_.push_back(std::move(p));
  return *params_.back();
}

void Module::collect(const std::string& prefix, std::vector<std::pair<std::string, Parameter*>>& out) {
  for (auto& p : params_) out.emplace_back(prefix + p->name, p.get());
  for (auto& [name, child] : children_) child->collect(prefix + name + ".", out);
}

std::vector<std::pair<std::string, Parameter*>> Module::named_parameters() {
  std::vector<std::pair<std::string, Parameter*>> out;
  collect("", out);
  return out;
}

std::vector<Parameter*> Module::parameters() {
  std::vector<Parameter*> out;
  for (auto& [n, p] : named_parameters()) out.push_back(p);
  return out;
}

int64_t Module::num_parameters() {
  int64_t n = 0;
  for (Parameter* p : parameters()) n += p->global_shape.numel();
  return n;
}

Parameter* Module::find(const std::string& full_name) {
  for (auto& [n, p] : named_parameters())
    if (n == full_name) return p;
  return nullptr;
}

}  // namespace ssm::nn
