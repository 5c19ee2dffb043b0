#include "framework/dist/tp.h"

#include "framework/autograd/tape.h"
#include "framework/ops/view.h"

namespace ssm::dist {
namespace {

void check_args(const char* op, const Tensor& x, const CommPtr& tp) {
  SSM_CHECK(tp != nullptr, "{}: no communicator given for {}", op, x.defined() ? x.describe() : "undefined");
  SSM_CHECK(x.defined(), "{}: undefined tensor on {}", op, tp->describe());
}

// This rank's block of `g` along `d`, as a fresh contiguous tensor.
Tensor own_block(const Tensor& g, int d, const Communicator& c) {
  const int64_t m = g.shape()[d] / c.size();
  return contiguous(g.narrow(d, c.rank() * m, m));
}

}  // namespace

Tensor copy_to_tp(const Tensor& x, const CommPtr& tp) {
  const char* op = "copy_to_tp";
  check_args(op, x, tp);
  if (!autograd::needs_grad({&x})) return x;
  Tensor y = x.detach();  // same values, a node of its own on the tape
  autograd::record(op, {&x}, {&y}, [tp](autograd::BackwardCtx& g) {
    Tensor d = clone(g.grad_out());
    tp->all_reduce(d);
    g.set(0, d);
  });
  return y;
}

Tensor reduce_from_tp(const Tensor& x, const CommPtr& tp) {
  const char* op = "reduce_from_tp";
  check_args(op, x, tp);
  Tensor y;
  {
    NoGradGuard raw;
    y = clone(x);
  }
  tp->all_reduce(y);
  if (autograd::needs_grad({&x}))
    autograd::record(op, {&x}, {&y}, [](autograd::BackwardCtx& g) { g.set(0, g.grad_out()); });
  return y;
}

Tensor scatter_to_tp(const Tensor& x, const CommPtr& tp, int dim) {
  const char* op = "scatter_to_tp";
  check_args(op, x, tp);
  SSM_CHECK(x.dim() >= 1, "{}: {} has no dimension to split", op, x.describe());
  const int d = wrap_dim(dim, x.dim());
  SSM_CHECK(x.shape()[d] % tp->size() == 0, "{}: dimension {} of {} is not divisible by the {} ranks of {}", op, d,
            x.describe(), tp->size(), tp->describe());
  Tensor y;
  {
    NoGradGuard raw;
    y = own_block(x, d, *tp);
  }
  if (autograd::needs_grad({&x}))
    autograd::record(op, {&x}, {&y}, [tp, d](autograd::BackwardCtx& g) { g.set(0, tp->all_gather(g.grad_out(), d)); });
  return y;
}

Tensor gather_from_tp(const Tensor& x, const CommPtr& tp, int dim) {
  const char* op = "gather_from_tp";
  check_args(op, x, tp);
  SSM_CHECK(x.dim() >= 1, "{}: {} has no dimension to gather along", op, x.describe());
  const int d = wrap_dim(dim, x.dim());
  Tensor y = tp->all_gather(x, d);
  if (autograd::needs_grad({&x}))
    autograd::record(op, {&x}, {&y}, [tp, d](autograd::BackwardCtx& g) { g.set(0, own_block(g.grad_out(), d, *tp)); });
  return y;
}

Tensor reduce_scatter_to_sp(const Tensor& x, const CommPtr& tp, int dim) {
  const char* op = "reduce_scatter_to_sp";
  check_args(op, x, tp);
  SSM_CHECK(x.dim() >= 1, "{}: {} has no dimension to scatter along", op, x.describe());
  const int d = wrap_dim(dim, x.dim());
  Tensor y = tp->reduce_scatter(x, d);
  if (autograd::needs_grad({&x}))
    autograd::record(op, {&x}, {&y}, [tp, d](autograd::BackwardCtx& g) { g.set(0, tp->all_gather(g.grad_out(), d)); });
  return y;
}

Tensor gather_from_sp(const Tensor& x, const CommPtr& tp, int dim) {
  const char* op = "gather_from_sp";
  check_args(op, x, tp);
  SSM_CHECK(x.dim() >= 1, "{}: {} has no dimension to gather along", op, x.describe());
  const int d = wrap_dim(dim, x.dim());
  Tensor y = tp->all_gather(x, d);
  if (autograd::needs_grad({&x}))
    autograd::record(op, {&x}, {&y},
                     [tp, d](autograd::BackwardCtx& g) { g.set(0, tp->reduce_scatter(g.grad_out(), d)); });
  return y;
}

}  // namespace ssm::dist
