#include "framework/ops/loss.h"

#include "framework/autograd/tape.h"
#include "framework/ops/dispatch.h"
#include "framework/ops/view.h"
#include "kernels/cpu/xent.h"

namespace ssm {
namespace {

// Logits as (N, V) rows with a unit-stride vocab dim: a view when the leading dims collapse,
// else a contiguous copy. Returns the row stride.
int64_t logits_rows(const Tensor& x, Tensor* rows) {
  const int r = x.dim();
  const int64_t V = x.shape()[r - 1];
  bool ok = x.strides()[r - 1] == 1 || V == 1;
  int64_t stride = V, next = -1;
  for (int i = r - 2; i >= 0 && ok; --i) {
    if (x.shape()[i] == 1) continue;
    if (next >= 0 && x.strides()[i] != next) ok = false;
    if (next < 0) stride = x.strides()[i];
    next = x.strides()[i] * x.shape()[i];
  }
  if (ok) {
    *rows = x;
    return stride;
  }
  NoGradGuard raw;  // an internal copy, not a recorded op
  *rows = contiguous(x);
  return V;
}

// Every target must be a class in [0, V) or ignore_index; the error names the first bad one.
template <class I>
void check_targets(const I* t, int64_t n, int64_t V, int64_t ignore_index, const Tensor& targets,
                   const Tensor& logits) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = int64_t(t[i]);
    if (v == ignore_index || (v >= 0 && v < V)) continue;
    SSM_FAIL("cross_entropy: target {} at flat position {} of {} is out of range for vocab size V = {} "
             "(logits {}; ignore_index = {})", v, i, targets.describe(), V, logits.describe(), ignore_index);
  }
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index, CrossEntropyStats* stats) {
  const char* op = "cross_entropy";
  ops_detail::check_float(op, logits);
  ops_detail::check_same_device(op, {&logits, &targets});
  SSM_CHECK(logits.dim() == 2 || logits.dim() == 3, "{}: logits {} must be (N, V) or (B, L, V)", op,
            logits.describe());
  SSM_CHECK(targets.dtype() == DType::i32 || targets.dtype() == DType::i64,
            "{}: targets {} must be int32 or int64", op, targets.describe());
  Dims lead = logits.shape();
  lead.erase(lead.size() - 1);
  SSM_CHECK(targets.shape() == lead, "{}: targets {} do not match the leading dims {} of logits {}", op,
            targets.describe(), lead.str(), logits.describe());
  const int64_t V = logits.shape()[logits.dim() - 1], N = lead.numel();
  SSM_CHECK(V > 0, "{}: logits {} have an empty vocab dim", op, logits.describe());
  if (!logits.device().is_cpu()) ops_detail::no_cuda_kernel(op, logits);

  Tensor t;
  {
    NoGradGuard raw;
    t = contiguous(targets);
  }
  const bool i64 = t.dtype() == DType::i64;
  if (i64)
    check_targets(t.data<int64_t>(), N, V, ignore_index, targets, logits);
  else
    check_targets(t.data<int32_t>(), N, V, ignore_index, targets, logits);

  Tensor rows;
  kernels::XentParams p;
  p.rows = N;
  p.vocab = V;
  p.logits_row_stride = logits_rows(logits, &rows);
  p.ignore_index = ignore_index;
  p.targets_i64 = i64;
  p.logits = rows.raw_data();
  p.targets = t.raw_data();
  const Tensor lse = Tensor::empty(Dims{N}, logits.dtype(), logits.device());
  p.lse = lse.raw_data();
  kernels::XentTotals tot;
  ops_detail::dispatch_float(op, logits.dtype(), [&]<class T>() { kernels::cpu::xent_fwd<T>(p, &tot); });
  if (stats) *stats = {tot.count, tot.correct};

  const double mean = tot.count > 0 ? tot.loss_sum / double(tot.count) : 0.0;
  Tensor loss = Tensor::scalar(mean, logits.dtype(), logits.device());
  if (autograd::needs_grad({&logits})) {
    const Dims shape = logits.shape();
    const int64_t count = tot.count;
    autograd::record(op, {&logits}, {&loss}, [op, p, rows, t, lse, shape, count](autograd::BackwardCtx& g) {
      kernels::XentParams b = p;
      Tensor dl = Tensor::empty(shape, rows.dtype(), rows.device());
      b.dlogits = dl.raw_data();
      b.dlogits_row_stride = p.vocab;
      b.grad_scale = count > 0 ? g.grad_out().item() / double(count) : 0.0;
      ops_detail::dispatch_float(op, rows.dtype(), [&]<class T>() { kernels::cpu::xent_bwd<T>(b); });
      g.set(0, dl);
    });
  }
  return loss;
}

}  // namespace ssm
