#include "kernels/cpu/softmax.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace ssm::kernels::cpu {
namespace {
constexpr int64_t kGrain = 1 << 14;  // elements below which a call stays single-threaded
}

template <class T>
void softmax_fwd(const SoftmaxParams& p) {
  const int64_t N = p.n, I = p.inner, lines = p.outer * p.inner;
  const T* x = static_cast<const T*>(p.x);
  T* y = static_cast<T*>(p.y);
  const int64_t xs = p.x_strides.axis, ys = p.y_strides.axis;
#pragma omp parallel for schedule(static) if (lines * N > kGrain)
  for (int64_t l = 0; l < lines; ++l) {
    const int64_t o = l / I, i = l % I;
    const T* xl = x + o * p.x_strides.outer + i * p.x_strides.inner;
    T* yl = y + o * p.y_strides.outer + i * p.y_strides.inner;
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t k = 0; k < N; ++k) m = std::max(m, xl[k * xs]);
    // A fully masked line (all -inf) gives NaN, as in torch.
    double s = 0;
    for (int64_t k = 0; k < N; ++k) s += std::exp(double(xl[k * xs] - m));
    if (p.log) {
      // (x - m) - log s, not x - (m + log s): keeps the precision of small results when
      // the logits are large.
      const T log_s = T(std::log(s));
      for (int64_t k = 0; k < N; ++k) yl[k * ys] = (xl[k * xs] - m) - log_s;
    } else {
      const double inv = 1.0 / s;
      for (int64_t k = 0; k < N; ++k) yl[k * ys] = T(std::exp(double(xl[k * xs] - m)) * inv);
    }
  }
}

template <class T>
void softmax_bwd(const SoftmaxParams& p) {
  const int64_t N = p.n, I = p.inner, lines = p.outer * p.inner;
  const T* y = static_cast<const T*>(p.y);
  const T* dy = static_cast<const T*>(p.dy);
  T* dx = static_cast<T*>(p.dx);
  const int64_t ys = p.y_strides.axis, gs = p.dy_strides.axis, ds = p.dx_strides.axis;
#pragma omp parallel for schedule(static) if (lines * N > kGrain)
  for (int64_t l = 0; l < lines; ++l) {
    const int64_t o = l / I, i = l % I;
    const T* yl = y + o * p.y_strides.outer + i * p.y_strides.inner;
    const T* gl = dy + o * p.dy_strides.outer + i * p.dy_strides.inner;
    T* dl = dx + o * p.dx_strides.outer + i * p.dx_strides.inner;
    double s = 0;
    if (p.log) {
      for (int64_t k = 0; k < N; ++k) s += double(gl[k * gs]);
      for (int64_t k = 0; k < N; ++k) dl[k * ds] = gl[k * gs] - std::exp(yl[k * ys]) * T(s);
    } else {
      for (int64_t k = 0; k < N; ++k) s += double(gl[k * gs]) * double(yl[k * ys]);
      for (int64_t k = 0; k < N; ++k) dl[k * ds] = yl[k * ys] * (gl[k * gs] - T(s));
    }
  }
}

template void softmax_fwd<float>(const SoftmaxParams&);
template void softmax_fwd<double>(const SoftmaxParams&);
template void softmax_bwd<float>(const SoftmaxParams&);
template void softmax_bwd<double>(const SoftmaxParams&);

}  // namespace ssm::kernels::cpu
