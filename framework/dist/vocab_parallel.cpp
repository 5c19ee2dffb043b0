#include "framework/dist/vocab_parallel.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "framework/autograd/tape.h"
#include "framework/ops/dispatch.h"
#include "framework/ops/elementwise.h"
#include "framework/ops/indexing.h"
#include "framework/ops/view.h"

namespace ssm::dist {

// ---- embedding ------------------------------------------------------------------------

Tensor vocab_parallel_embedding(const Tensor& weight_local, const Tensor& ids, const CommPtr& tp) {
  const char* op = "vocab_parallel_embedding";
  SSM_CHECK(tp != nullptr, "{}: no tp communicator", op);
  SSM_CHECK(weight_local.defined() && weight_local.dim() == 2, "{}: weight_local {} must be (V/tp, D)", op,
            weight_local.defined() ? weight_local.describe() : "undefined");
  SSM_CHECK(ids.defined() && (ids.dtype() == DType::i32 || ids.dtype() == DType::i64),
            "{}: ids {} must be int32 or int64", op, ids.defined() ? ids.describe() : "undefined");
  const int64_t v_local = weight_local.shape()[0], vocab = v_local * tp->size();
  const int64_t start = tp->rank() * v_local;

  // Ids of this rank's slice become local rows; the others read row 0 and are masked out.
  const std::vector<double> all = ids.to_vector();
  std::vector<double> local(all.size()), keep(all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    const int64_t v = int64_t(all[i]);
    SSM_CHECK(v >= 0 && v < vocab,
              "{}: id {} at flat position {} of {} is out of range for vocab size V = {} ({} tp ranks × {} rows of "
              "{}; on {})", op, v, i, ids.describe(), vocab, tp->size(), v_local, weight_local.describe(),
              tp->describe());
    const bool mine = v >= start && v < start + v_local;
    local[i] = mine ? double(v - start) : 0.0;
    keep[i] = mine ? 1.0 : 0.0;
  }
  Dims mask_shape = ids.shape();
  mask_shape.push_back(1);
  const Tensor local_ids = Tensor::from_vector(local, ids.shape(), DType::i64, weight_local.device());
  const Tensor mask = Tensor::from_vector(keep, mask_shape, weight_local.dtype(), weight_local.device());
  return reduce_from_tp(mul(embedding(weight_local, local_ids), mask), tp);
}

// ---- cross-entropy --------------------------------------------------------------------

namespace {

// Per row of the local slice: (max, Σ exp(x - max), target logit or 0, global first argmax).
constexpr int kStats = 4;

template <class T>
void local_row_stats(const T* x, int64_t rows, int64_t v_local, int64_t start, const int64_t* tgt, int64_t ignore,
                     double* out) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; ++i) {
    const T* r = x + i * v_local;
    double m = double(r[0]);
    int64_t am = 0;
    for (int64_t j = 1; j < v_local; ++j)
      if (double(r[j]) > m) {
        m = double(r[j]);
        am = j;
      }
    double s = 0;
    for (int64_t j = 0; j < v_local; ++j) s += std::exp(double(r[j]) - m);
    const int64_t t = tgt[i];
    const bool mine = t != ignore && t >= start && t < start + v_local;
    double* o = out + i * kStats;
    o[0] = m;
    o[1] = s;
    o[2] = mine ? double(r[t - start]) : 0.0;
    o[3] = double(start + am);
  }
}

template <class T>
void local_xent_bwd(const T* x, int64_t rows, int64_t v_local, int64_t start, const int64_t* tgt, int64_t ignore,
                    const double* lse, double scale, T* dx) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; ++i) {
    const T* r = x + i * v_local;
    T* d = dx + i * v_local;
    const int64_t t = tgt[i];
    if (t == ignore) {
      for (int64_t j = 0; j < v_local; ++j) d[j] = T(0);
      continue;
    }
    for (int64_t j = 0; j < v_local; ++j) {
      const double p = std::exp(double(r[j]) - lse[i]);
      d[j] = T(scale * (p - (start + j == t ? 1.0 : 0.0)));
    }
  }
}

}  // namespace

Tensor vocab_parallel_cross_entropy(const Tensor& logits, const Tensor& targets, const CommPtr& tp,
                                    int64_t ignore_index, CrossEntropyStats* stats) {
  const char* op = "vocab_parallel_cross_entropy";
  SSM_CHECK(tp != nullptr, "{}: no tp communicator", op);
  SSM_CHECK(logits.defined() && targets.defined(), "{}: undefined logits or targets", op);
  ops_detail::check_float(op, logits);
  ops_detail::check_same_device(op, {&logits, &targets});
  SSM_CHECK(logits.dim() == 2 || logits.dim() == 3, "{}: logits {} must be (N, V/tp) or (B, L, V/tp)", op,
            logits.describe());
  SSM_CHECK(targets.dtype() == DType::i32 || targets.dtype() == DType::i64, "{}: targets {} must be int32 or int64",
            op, targets.describe());
  Dims lead = logits.shape();
  lead.erase(lead.size() - 1);
  SSM_CHECK(targets.shape() == lead, "{}: targets {} do not match the leading dims {} of logits {}", op,
            targets.describe(), lead.str(), logits.describe());
  if (!logits.device().is_cpu()) ops_detail::no_cuda_kernel(op, logits);
  const int64_t v_local = logits.shape()[logits.dim() - 1], rows = lead.numel();
  SSM_CHECK(v_local > 0, "{}: logits {} have an empty vocab slice", op, logits.describe());
  const int64_t vocab = v_local * tp->size(), start = tp->rank() * v_local;
  const int nranks = tp->size();

  Tensor x, tgt;
  std::vector<int64_t> t(static_cast<size_t>(rows));
  {
    NoGradGuard raw;
    x = contiguous(logits);
    const std::vector<double> tv = targets.to_vector();
    for (int64_t i = 0; i < rows; ++i) {
      t[size_t(i)] = int64_t(tv[size_t(i)]);
      const int64_t v = t[size_t(i)];
      SSM_CHECK(v == ignore_index || (v >= 0 && v < vocab),
                "{}: target {} at flat position {} of {} is out of range for vocab size V = {} ({} tp ranks × {}; "
                "ignore_index = {})", op, v, i, targets.describe(), vocab, nranks, logits.describe(), ignore_index);
    }
  }

  Tensor part = Tensor::empty({rows, kStats}, DType::f64);
  ops_detail::dispatch_float(op, x.dtype(), [&]<class T>() {
    local_row_stats<T>(x.data<T>(), rows, v_local, start, t.data(), ignore_index, part.data<double>());
  });
  const Tensor gathered = tp->all_gather(part, 0);  // (tp·N, 4): rank r's rows at [r·N, (r+1)·N)
  const double* g = gathered.data<double>();

  // Combine in rank order on every rank: identical results everywhere.
  Tensor lse = Tensor::empty({rows}, DType::f64);
  double* lse_p = lse.data<double>();
  double loss_sum = 0;
  int64_t count = 0, correct = 0;
  for (int64_t i = 0; i < rows; ++i) {
    double mx = -std::numeric_limits<double>::infinity();
    for (int r = 0; r < nranks; ++r) mx = std::max(mx, g[(r * rows + i) * kStats]);
    double s = 0;
    int64_t argmax = -1;
    for (int r = 0; r < nranks; ++r) {
      const double* o = g + (r * rows + i) * kStats;
      s += o[1] * std::exp(o[0] - mx);
      if (argmax < 0 && o[0] == mx) argmax = int64_t(o[3]);
    }
    lse_p[i] = mx + std::log(s);
    const int64_t ti = t[size_t(i)];
    if (ti == ignore_index) continue;
    const int owner = int(ti / v_local);
    loss_sum += lse_p[i] - g[(owner * rows + i) * kStats + 2];
    ++count;
    correct += argmax == ti;
  }
  if (stats) *stats = {count, correct};

  Tensor loss = Tensor::scalar(count > 0 ? loss_sum / double(count) : 0.0, logits.dtype(), logits.device());
  if (autograd::needs_grad({&logits})) {
    const Dims shape = logits.shape();
    autograd::record(op, {&logits}, {&loss},
                     [op, x, t = std::move(t), lse, shape, rows, v_local, start, ignore_index, count](
                         autograd::BackwardCtx& bc) {
                       Tensor dx = Tensor::empty(shape, x.dtype(), x.device());
                       const double scale = count > 0 ? bc.grad_out().item() / double(count) : 0.0;
                       ops_detail::dispatch_float(op, x.dtype(), [&]<class T>() {
                         local_xent_bwd<T>(x.data<T>(), rows, v_local, start, t.data(), ignore_index,
                                           lse.data<double>(), scale, dx.data<T>());
                       });
                       bc.set(0, dx);
                     });
  }
  return loss;
}

}  // namespace ssm::dist
