#include "tests/support/gradcheck.h"

#include <cmath>

#include "framework/ops/backward.h"
#include "framework/ops/random.h"
#include "framework/ops/view.h"

namespace ssm::test {

Tensor rand_f64(const Dims& shape, uint64_t seed, double lo, double hi, bool requires_grad) {
  Rng rng(seed);
  Tensor t = uniform(shape, lo, hi, rng, DType::f64);
  if (requires_grad) t.set_requires_grad(true);
  return t;
}

double max_rel_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  std::vector<double> x = a.to_vector(), y = b.to_vector();
  double m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i)
    m = std::max(m, std::abs(x[i] - y[i]) / std::max(1.0, std::abs(y[i])));
  return m;
}

namespace {
double dot(const Tensor& out, const std::vector<double>& r) {
  std::vector<double> v = out.to_vector();
  double s = 0;
  for (size_t i = 0; i < v.size(); ++i) s += v[i] * r[i];
  return s;
}
}  // namespace

::testing::AssertionResult gradcheck(const TensorFn& f, const std::vector<Tensor>& inputs,
                                     const GradcheckOptions& opts) {
  std::vector<Tensor> leaves;
  for (const Tensor& x : inputs) {
    if (x.defined() && x.requires_grad()) {
      if (x.dtype() != DType::f64 || !x.device().is_cpu())
        return ::testing::AssertionFailure() << "gradcheck needs f64 cpu inputs, got " << x.describe();
      Tensor leaf;
      {
        NoGradGuard ng;
        leaf = clone(x).detach();
      }
      leaf.set_requires_grad(true);
      leaves.push_back(leaf);
    } else {
      leaves.push_back(x);
    }
  }
  Tensor out = f(leaves);
  if (!out.requires_grad()) return ::testing::AssertionFailure() << "output does not require grad";
  Rng rng(opts.seed);
  Tensor r = randn(out.shape(), rng, out.dtype());
  std::vector<double> rv = r.to_vector();
  ssm::backward(out, r);

  for (size_t k = 0; k < leaves.size(); ++k) {
    Tensor& x = leaves[k];
    if (!x.defined() || !x.requires_grad()) continue;
    Tensor analytic = x.grad();
    std::vector<double> a = analytic.defined() ? analytic.to_vector() : std::vector<double>(size_t(x.numel()), 0.0);
    double* data = x.data<double>();
    NoGradGuard ng;
    for (int64_t i = 0; i < x.numel(); ++i) {
      double orig = data[i];
      data[i] = orig + opts.eps;
      double fp = dot(f(leaves), rv);
      data[i] = orig - opts.eps;
      double fm = dot(f(leaves), rv);
      data[i] = orig;
      double numeric = (fp - fm) / (2 * opts.eps);
      double err = std::abs(numeric - a[size_t(i)]);
      if (!(err <= opts.atol + opts.rtol * std::max(std::abs(numeric), std::abs(a[size_t(i)])))) {
        return ::testing::AssertionFailure() << "input " << k << " " << x.describe() << " element " << i
                                             << ": analytic " << a[size_t(i)] << " vs numeric " << numeric
                                             << " (|diff| " << err << ")";
      }
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace ssm::test

namespace ssm::test {

::testing::AssertionResult gradcheck_leaves(const std::function<Tensor()>& f, const std::vector<Tensor>& leaves,
                                            const GradcheckOptions& opts, int64_t max_per_leaf) {
  for (const Tensor& x : leaves) {
    if (x.dtype() != DType::f64 || !x.device().is_cpu() || !x.is_contiguous() || !x.requires_grad())
      return ::testing::AssertionFailure() << "gradcheck_leaves needs contiguous f64 cpu leaves, got " << x.describe();
    Tensor(x).zero_grad();
  }
  Tensor out = f();
  Rng rng(opts.seed);
  Tensor r = randn(out.shape(), rng, out.dtype());
  std::vector<double> rv = r.to_vector();
  ssm::backward(out, r);
  auto value = [&] {
    NoGradGuard ng;
    std::vector<double> v = f().to_vector();
    double s = 0;
    for (size_t i = 0; i < v.size(); ++i) s += v[i] * rv[i];
    return s;
  };
  for (size_t k = 0; k < leaves.size(); ++k) {
    const Tensor& x = leaves[k];
    Tensor g = x.grad();
    std::vector<double> a = g.defined() ? g.to_vector() : std::vector<double>(size_t(x.numel()), 0.0);
    double* data = static_cast<double*>(x.raw_data());
    int64_t n = x.numel(), stride = std::max<int64_t>(1, n / std::max<int64_t>(1, max_per_leaf));
    for (int64_t i = 0; i < n; i += stride) {
      double orig = data[i];
      data[i] = orig + opts.eps;
      double fp = value();
      data[i] = orig - opts.eps;
      double fm = value();
      data[i] = orig;
      double numeric = (fp - fm) / (2 * opts.eps);
      double err = std::abs(numeric - a[size_t(i)]);
      if (!(err <= opts.atol + opts.rtol * std::max(std::abs(numeric), std::abs(a[size_t(i)]))))
        return ::testing::AssertionFailure() << "leaf " << k << " " << x.describe() << " element " << i << ": analytic "
                                             << a[size_t(i)] << " vs numeric " << numeric;
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace ssm::test
