// Helpers for kernel tests: seeded random fills, row-major strides, and central finite
// differences in float64 for gradient checks.
//
//   std::mt19937 rng(7);
//   std::vector<double> x = ssm::test::uniform(rng, 12, -1.0, 1.0);
//   auto fd = ssm::test::fd_grad(x, [&] { return loss(x); });   // eps = 1e-6
//   EXPECT_LT(ssm::test::max_rel_err(analytic, fd), 1e-6);
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <vector>

namespace ssm::test {

inline std::vector<double> uniform(std::mt19937& rng, int64_t n, double lo, double hi) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Row-major element strides of `shape` written to st[0 .. rank).
inline void set_contiguous(int64_t* st, std::initializer_list<int64_t> shape) {
  int64_t s = 1;
  int k = int(shape.size());
  for (auto it = shape.end(); it != shape.begin();) {
    --it;
    st[--k] = s;
    s *= *it;
  }
}

// Copies a contiguous tensor of `shape` into a buffer laid out with `strides` (a permuted
// layout of the same size), to feed kernels strided views.
inline std::vector<double> relayout(const std::vector<double>& v, const std::vector<int64_t>& shape,
                                    const std::vector<int64_t>& strides) {
  std::vector<double> r(v.size());
  std::vector<int64_t> idx(shape.size(), 0);
  for (size_t i = 0; i < v.size(); ++i) {
    int64_t off = 0;
    for (size_t d = 0; d < shape.size(); ++d) off += idx[d] * strides[d];
    r[off] = v[i];
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return r;
}

template <class T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}
template <class T>
std::vector<double> to_double(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// d loss / d x[i] by central differences, for every i (x is perturbed in place and restored).
template <class F>
std::vector<double> fd_grad(std::vector<double>& x, F&& loss, double eps = 1e-6) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + eps;
    const double lp = loss();
    x[i] = x0 - eps;
    const double lm = loss();
    x[i] = x0;
    g[i] = (lp - lm) / (2 * eps);
  }
  return g;
}

// max_i |a_i - b_i| / max_i |b_i|: relative to the scale of the reference tensor, so entries
// that happen to be near zero do not turn round-off into a failure. 0 when both are zero.
inline double max_rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  if (a.size() != b.size()) return INFINITY;
  return scale > 0 ? diff / scale : diff;
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace ssm::test
