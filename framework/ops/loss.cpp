#include "framework/ops/loss.h"

#include "framework/autograd/tape.h"
#include "framework/ops/dispatch.h"
#include "framework/ops/view.h"
#include "kernels/cpu/xent.h"
#if defined(SSM_WITH_CUDA)
#include "kernels/cuda/xent/xent.h"
#endif

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

// CUDA path: no host sync for the loss or its gradient (the count stays on the device).
// Targets are range-checked on a host copy only when stats are asked (one sync then);
// otherwise an out-of-range target makes its row's loss NaN (the kernel never reads
// outside the row).
Tensor cross_entropy_cuda(const Tensor& logits, const Tensor& targets, int64_t ignore_index, CrossEntropyStats* stats,
                          int64_t N, int64_t V) {
  const char* op = "cross_entropy";
  Tensor t;
  {
    NoGradGuard raw;
    t = contiguous(targets);
  }
  const bool i64 = t.dtype() == DType::i64;
  if (stats) {
    NoGradGuard raw;
    const Tensor th = to(t, Device::cpu());
    if (i64)
      check_targets(th.data<int64_t>(), N, V, ignore_index, targets, logits);
    else
      check_targets(th.data<int32_t>(), N, V, ignore_index, targets, logits);
  }
  Tensor rows;
  kernels::XentParams p;
  p.rows = N;
  p.vocab = V;
  p.logits_row_stride = logits_rows(logits, &rows);
  p.ignore_index = ignore_index;
  p.targets_i64 = i64;
  p.logits = rows.raw_data();
  p.targets = t.raw_data();
  const Device d = logits.device();
  const DType dt = logits.dtype();
  const Tensor lse = Tensor::empty(Dims{N}, dt == DType::bf16 ? DType::f32 : dt, d);  // (N) compute dtype
  const Tensor totals = Tensor::empty(Dims{3}, DType::f64, d);                       // Σ loss, count, correct
  p.lse = lse.raw_data();
  Tensor loss = Tensor::empty(Dims{}, dt, d);
#if defined(SSM_WITH_CUDA)
  {
    const size_t ws = kernels::cuda::xent_fwd_workspace(p);
    Tensor scratch = Tensor::empty(Dims{int64_t(ws / 8 + 1)}, DType::i64, d);
    SSM_CUDA_LAUNCH(op, d,
                    kernels::cuda::xent_fwd(dt, p, scratch.raw_data(), static_cast<double*>(totals.raw_data()),
                                            loss.raw_data(), stream));
  }
#endif
  if (stats) {
    const std::vector<double> tv = totals.to_vector();
    *stats = {int64_t(tv[1]), int64_t(tv[2])};
  }
  if (autograd::needs_grad({&logits})) {
    const Dims shape = logits.shape();
    autograd::record(op, {&logits}, {&loss}, [op, p, rows, t, lse, totals, shape](autograd::BackwardCtx& g) {
      Tensor dl = Tensor::empty(shape, rows.dtype(), rows.device());
      const Tensor go = g.grad_out();
#if defined(SSM_WITH_CUDA)
      kernels::cuda::XentBwdCuda b;
      b.p = p;
      b.p.dlogits = dl.raw_data();
      b.p.dlogits_row_stride = p.vocab;
      b.dloss = go.raw_data();
      b.totals = static_cast<const double*>(totals.raw_data());
      SSM_CUDA_LAUNCH(op, rows.device(), kernels::cuda::xent_bwd(rows.dtype(), b, stream));
#else
      (void)op, (void)p, (void)t, (void)lse, (void)totals, (void)go;
#endif
      g.set(0, dl);
    });
  }
  return loss;
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
  if (logits.device().is_cuda()) return cross_entropy_cuda(logits, targets, ignore_index, stats, N, V);

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
