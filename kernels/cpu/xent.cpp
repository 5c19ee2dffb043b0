#include "kernels/cpu/xent.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/common/macros.h"

namespace ssm::kernels::cpu {
namespace {

constexpr int64_t kGrain = 1 << 14;  // elements below which a call stays single-threaded
constexpr int64_t kChunkRows = 64;   // rows per partial total (fixed: independent of threads)

int64_t target_at(const XentParams& p, int64_t r) {
  return p.targets_i64 ? static_cast<const int64_t*>(p.targets)[r]
                       : int64_t(static_cast<const int32_t*>(p.targets)[r]);
}

}  // namespace

template <class T>
void xent_fwd(const XentParams& p, XentTotals* totals) {
  const int64_t N = p.rows, V = p.vocab, chunks = CEIL_DIV(N, kChunkRows);
  const T* logits = static_cast<const T*>(p.logits);
  T* lse = static_cast<T*>(p.lse);
  std::vector<XentTotals> part(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static) if (N * V > kGrain)
  for (int64_t c = 0; c < chunks; ++c) {
    XentTotals acc;
    for (int64_t r = c * kChunkRows; r < std::min(N, (c + 1) * kChunkRows); ++r) {
      const T* xr = logits + r * p.logits_row_stride;
      T m = xr[0];
      int64_t arg = 0;  // first maximum, as torch.argmax
      for (int64_t j = 1; j < V; ++j)
        if (xr[j] > m) {
          m = xr[j];
          arg = j;
        }
      double s = 0;
      for (int64_t j = 0; j < V; ++j) s += std::exp(double(xr[j] - m));
      const double l = std::log(s) + double(m);
      lse[r] = T(l);
      const int64_t t = target_at(p, r);
      if (t == p.ignore_index) continue;
      acc.loss_sum += l - double(xr[t]);
      acc.count += 1;
      acc.correct += arg == t;
    }
    part[size_t(c)] = acc;
  }
  XentTotals sum;
  for (const XentTotals& a : part) {
    sum.loss_sum += a.loss_sum;
    sum.count += a.count;
    sum.correct += a.correct;
  }
  *totals = sum;
}

template <class T>
void xent_bwd(const XentParams& p) {
  const int64_t N = p.rows, V = p.vocab;
  const T* logits = static_cast<const T*>(p.logits);
  const T* lse = static_cast<const T*>(p.lse);
  T* dl = static_cast<T*>(p.dlogits);
  const T scale = T(p.grad_scale);
#pragma omp parallel for schedule(static) if (N * V > kGrain)
  for (int64_t r = 0; r < N; ++r) {
    const T* xr = logits + r * p.logits_row_stride;
    T* dr = dl + r * p.dlogits_row_stride;
    const int64_t t = target_at(p, r);
    if (t == p.ignore_index) {
      std::fill(dr, dr + V, T(0));
      continue;
    }
    for (int64_t j = 0; j < V; ++j) dr[j] = scale * std::exp(xr[j] - lse[r]);
    dr[t] -= scale;
  }
}

template void xent_fwd<float>(const XentParams&, XentTotals*);
template void xent_fwd<double>(const XentParams&, XentTotals*);
template void xent_bwd<float>(const XentParams&);
template void xent_bwd<double>(const XentParams&);

}  // namespace ssm::kernels::cpu
