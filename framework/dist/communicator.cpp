#include "framework/dist/communicator.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "framework/ops/view.h"

namespace ssm::dist {

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::max: return "max";
    case ReduceOp::min: return "min";
  }
  return "?";
}

double collective_timeout_s() {
  const char* env = std::getenv("SSM_COLLECTIVE_TIMEOUT_S");
  if (!env || !*env) return 60.0;
  char* end = nullptr;
  const double v = std::strtod(env, &end);
  SSM_CHECK(end && *end == '\0' && std::isfinite(v) && v > 0,
            "SSM_COLLECTIVE_TIMEOUT_S='{}' must be a positive number of seconds", env);
  return v;
}

// ---- the checked public surface -------------------------------------------------

namespace {

// Permutation moving `d` to the front, and its inverse: collectives run on dim 0 of a
// contiguous buffer, where each rank's block is one contiguous range.
std::vector<int> front_order(int d, int rank) {
  std::vector<int> o{d};
  for (int i = 0; i < rank; ++i)
    if (i != d) o.push_back(i);
  return o;
}
std::vector<int> back_order(int d, int rank) {
  std::vector<int> o;
  for (int i = 0; i < rank; ++i) o.push_back(i < d ? i + 1 : i == d ? 0 : i);
  return o;
}
Tensor to_front(const Tensor& x, int d) { return d == 0 ? x : x.permute(front_order(d, x.dim())); }
Tensor from_front(const Tensor& y, int d) { return d == 0 ? y : contiguous(y.permute(back_order(d, y.dim()))); }

}  // namespace

std::string Communicator::describe() const {
  return fmt::format("'{}' (rank {} of {}, {})", name(), rank(), size(), backend());
}

std::string Communicator::what(const char* op, const Tensor* t) const {
  return t ? fmt::format("{} of {} on {}", op, t->describe(), describe()) : fmt::format("{} on {}", op, describe());
}

void Communicator::check_tensor(const char* op, const Tensor& t) const {
  SSM_CHECK(t.defined(), "{} on {}: the tensor is undefined", op, describe());
  SSM_CHECK(supports(t.device()), "{}: the {} backend cannot communicate tensors on {} ({})", what(op, &t),
            backend(), t.device().str(), t.describe());
}

void Communicator::all_reduce(const Tensor& t, ReduceOp op) {
  NoGradGuard raw;  // collectives are never recorded; the differentiable wrappers are in tp.h
  check_tensor("all_reduce", t);
  if (t.numel() == 0) return;
  if (t.is_contiguous()) {
    all_reduce_impl(t, op, what("all_reduce", &t))->wait();
    return;
  }
  Tensor c = contiguous(t);
  all_reduce_impl(c, op, what("all_reduce", &t))->wait();
  copy_(t, c);
}

std::unique_ptr<Work> Communicator::all_reduce_async(const Tensor& t, ReduceOp op) {
  NoGradGuard raw;
  check_tensor("all_reduce_async", t);
  SSM_CHECK(t.is_contiguous(), "{}: the tensor must be contiguous (the result is written in place)",
            what("all_reduce_async", &t));
  return all_reduce_impl(t, op, what("all_reduce_async", &t));
}

Tensor Communicator::all_gather(const Tensor& x, int dim) {
  NoGradGuard raw;
  check_tensor("all_gather", x);
  SSM_CHECK(x.dim() >= 1, "{}: needs at least one dimension to gather along", what("all_gather", &x));
  const int d = wrap_dim(dim, x.dim());
  Tensor in = contiguous(to_front(x, d));
  Dims shape = in.shape();
  shape[0] *= size();
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  if (out.numel() > 0) all_gather_impl(in, out, what("all_gather", &x));
  return from_front(out, d);
}

Tensor Communicator::reduce_scatter(const Tensor& x, int dim, ReduceOp op) {
  NoGradGuard raw;
  check_tensor("reduce_scatter", x);
  SSM_CHECK(x.dim() >= 1, "{}: needs at least one dimension to scatter along", what("reduce_scatter", &x));
  const int d = wrap_dim(dim, x.dim());
  SSM_CHECK(x.shape()[d] % size() == 0, "{}: dimension {} of size {} is not divisible by the {} ranks",
            what("reduce_scatter", &x), d, x.shape()[d], size());
  Tensor in = contiguous(to_front(x, d));
  Dims shape = in.shape();
  shape[0] /= size();
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  if (out.numel() > 0) reduce_scatter_impl(in, out, op, what("reduce_scatter", &x));
  return from_front(out, d);
}

void Communicator::broadcast(const Tensor& t, int root) {
  NoGradGuard raw;
  check_tensor("broadcast", t);
  SSM_CHECK(root >= 0 && root < size(), "{}: root {} is not a rank in [0, {})", what("broadcast", &t), root,
            size());
  if (t.numel() == 0) return;
  if (t.is_contiguous()) {
    broadcast_impl(t, root, what("broadcast", &t));
    return;
  }
  Tensor c = contiguous(t);
  broadcast_impl(c, root, what("broadcast", &t));
  copy_(t, c);
}

void Communicator::barrier() { barrier_impl(what("barrier", nullptr)); }

std::shared_ptr<Communicator> Communicator::split(int color, int key, const std::string& name) {
  SSM_CHECK(color >= 0, "split on {}: color {} must be >= 0", describe(), color);
  SSM_CHECK(!name.empty(), "split on {}: the sub-communicator needs a name", describe());
  return split_impl(color, key, name, what("split", nullptr));
}

// ---- world size 1 ---------------------------------------------------------------

namespace {

class DoneWork final : public Work {
 public:
  bool test() override { return true; }
  void wait() override {}
};

class SelfCommunicator final : public Communicator {
 public:
  explicit SelfCommunicator(std::string name) : name_(std::move(name)) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const std::string& name() const override { return name_; }
  const char* backend() const override { return "self"; }
  bool supports(Device d) const override { return d.is_cpu() || cuda_compiled(); }

 protected:
  std::unique_ptr<Work> all_reduce_impl(const Tensor&, ReduceOp, const std::string&) override {
    return std::make_unique<DoneWork>();
  }
  void all_gather_impl(const Tensor& in, const Tensor& out, const std::string&) override { copy(in, out); }
  void reduce_scatter_impl(const Tensor& in, const Tensor& out, ReduceOp, const std::string&) override {
    copy(in, out);
  }
  void broadcast_impl(const Tensor&, int, const std::string&) override {}
  void barrier_impl(const std::string&) override {}
  std::shared_ptr<Communicator> split_impl(int, int, const std::string& name, const std::string&) override {
    return self_communicator(name);
  }

 private:
  static void copy(const Tensor& in, const Tensor& out) {
    copy_bytes(out.raw_data(), out.device(), in.raw_data(), in.device(), out.nbytes());
  }
  std::string name_;
};

}  // namespace

std::shared_ptr<Communicator> self_communicator(const std::string& name) {
  return std::make_shared<SelfCommunicator>(name);
}

}  // namespace ssm::dist
