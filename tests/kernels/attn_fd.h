// Finite-difference helpers for the attention and MoE kernel tests (float64 only).
//
//   std::vector<double> x = ...;
//   double g = attn_fd::central_diff([&] { return loss(x); }, x[i]);   // d loss / d x[i]
//   EXPECT_LT(attn_fd::rel_err(analytic, numeric), 1e-6);
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace attn_fd {

// (f(x + eps) - f(x - eps)) / (2 eps), perturbing the variable in place and restoring it.
template <class F>
double central_diff(F&& f, double& x, double eps = 1e-6) {
  const double x0 = x;
  x = x0 + eps;
  const double fp = f();
  x = x0 - eps;
  const double fm = f();
  x = x0;
  return (fp - fm) / (2 * eps);
}

// max_i |a_i - b_i| / max(max_i |b_i|, floor): one relative error for a whole gradient, so
// entries that are zero by structure (masked keys) do not blow up an entrywise ratio.
inline double rel_err(const std::vector<double>& a, const std::vector<double>& b,
                      double floor = 1e-12) {
  double diff = 0, scale = floor;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return diff / scale;
}

template <class T = double>
std::vector<T> randn(size_t n, uint32_t seed, double stddev = 1.0) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> dist(0.0, stddev);
  std::vector<T> v(n);
  for (auto& e : v) e = T(dist(gen));
  return v;
}

}  // namespace attn_fd
