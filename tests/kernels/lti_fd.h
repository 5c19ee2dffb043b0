// Test helpers for the LTI kernels (conv1d, S4D, S5): seeded random arrays, central finite
// differences in float64, and error measures.
//
//   std::vector<double> w = randn(12, /*seed=*/3);
//   auto num = fd_grad(w, [&] { return loss(); });   // d loss / d w, one entry per element
//   EXPECT_LT(grad_err(analytic, num), 1e-6);
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace ssm::test::lti {

inline std::vector<double> randn(size_t n, uint32_t seed, double scale = 1.0) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> dist(0.0, scale);
  std::vector<double> v(n);
  for (double& x : v) x = dist(gen);
  return v;
}

inline std::vector<double> uniform(size_t n, uint32_t seed, double lo, double hi) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(n);
  for (double& x : v) x = dist(gen);
  return v;
}

template <class T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

// sum_i a_i r_i in a fixed order: the scalar loss whose gradient the kernels compute when
// they are handed r as the upstream gradient.
inline double dot(const std::vector<double>& a, const std::vector<double>& r) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * r[i];
  return s;
}

// Central differences of f() with respect to every element of x (x is perturbed in place
// and restored).
template <class F>
std::vector<double> fd_grad(std::vector<double>& x, F&& f, double eps = 1e-6) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + eps;
    const double fp = f();
    x[i] = x0 - eps;
    const double fm = f();
    x[i] = x0;
    g[i] = (fp - fm) / (2.0 * eps);
  }
  return g;
}

// Relative error of a gradient against its finite-difference estimate: entry i is measured
// against max(|num_i|, 0.1 * max|num|), i.e. relatively for every entry within 10x of the
// largest and against the tensor's scale below that. Central differences at eps = 1e-6 carry
// an absolute rounding error of ~1e-10 |f|, which a purely per-entry measure would charge to
// entries that are zero up to rounding.
inline double grad_err(const std::vector<double>& ana, const std::vector<double>& num) {
  double mx = 0.0;
  for (double v : num) mx = std::max(mx, std::abs(v));
  const double floor = std::max(0.1 * mx, 1e-300);
  double err = 0.0;
  for (size_t i = 0; i < num.size(); ++i) {
    err = std::max(err, std::abs(ana[i] - num[i]) / std::max(std::abs(num[i]), floor));
  }
  return err;
}

// max_i |a_i - b_i| / max(max_i |b_i|, tiny): error of a forward output against a reference.
inline double max_rel(const std::vector<double>& a, const std::vector<double>& b) {
  double mx = 0.0, err = 0.0;
  for (size_t i = 0; i < b.size(); ++i) {
    mx = std::max(mx, std::abs(b[i]));
    err = std::max(err, std::abs(a[i] - b[i]));
  }
  return err / std::max(mx, 1e-300);
}

}  // namespace ssm::test::lti
