#include "kernels/cpu/reduce.h"

#include <omp.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "kernels/common/macros.h"

namespace ssm::kernels::cpu {
namespace {
constexpr int64_t kChunk = 1 << 16;  // elements per partial sum; independent of thread count
}

template <class T>
void reduce_rows(ReduceOp op, const ReduceParams& p) {
  const T* in = static_cast<const T*>(p.in);
  T* out = static_cast<T*>(p.out);
  if (p.rows == 0) return;
  if (op == ReduceOp::max) {
#pragma omp parallel for schedule(static) if (p.rows * p.cols > kChunk)
    for (int64_t r = 0; r < p.rows; ++r) {
      const T* row = in + r * p.cols;
      T best = -std::numeric_limits<T>::infinity();
      int64_t arg = 0;
      for (int64_t j = 0; j < p.cols; ++j)
        if (j == 0 || row[j] > best) {
          best = row[j];
          arg = j;
        }
      out[r] = T(p.scale) * best;
      if (p.argmax) p.argmax[r] = arg;
    }
    return;
  }
  if (p.rows >= 4 || p.cols <= kChunk) {
#pragma omp parallel for schedule(static) if (p.rows * p.cols > kChunk)
    for (int64_t r = 0; r < p.rows; ++r) {
      const T* row = in + r * p.cols;
      double acc = 0;
      for (int64_t j = 0; j < p.cols; ++j) acc += double(row[j]);
      out[r] = T(acc * p.scale);
    }
    return;
  }
  // Few very long rows: fixed chunks summed in parallel, partials combined in order.
  int64_t chunks = CEIL_DIV(p.cols, kChunk);
  std::vector<double> partial(size_t(p.rows * chunks));
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < p.rows * chunks; ++t) {
    int64_t r = t / chunks, c0 = (t % chunks) * kChunk, c1 = std::min(p.cols, c0 + kChunk);
    const T* row = in + r * p.cols;
    double acc = 0;
    for (int64_t j = c0; j < c1; ++j) acc += double(row[j]);
    partial[size_t(t)] = acc;
  }
  for (int64_t r = 0; r < p.rows; ++r) {
    double acc = 0;
    for (int64_t c = 0; c < chunks; ++c) acc += partial[size_t(r * chunks + c)];
    out[r] = T(acc * p.scale);
  }
}

template void reduce_rows<float>(ReduceOp, const ReduceParams&);
template void reduce_rows<double>(ReduceOp, const ReduceParams&);

}  // namespace ssm::kernels::cpu
