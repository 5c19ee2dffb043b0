// softmax / log_softmax: forward against a naive loop along every dim, stability, float64
// gradchecks (every dim, transposed inputs), determinism across thread counts, errors.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>

#include "framework/ops/ops.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

using test::gradcheck;
using test::rand_f64;
using V = std::vector<Tensor>;

// Naive softmax of a contiguous (A, B, C) tensor along dim d.
std::vector<double> softmax_ref(const std::vector<double>& x, const Dims& s, int d, bool log) {
  std::vector<double> y(x.size());
  const int64_t st[3] = {s[1] * s[2], s[2], 1};
  for (int64_t a = 0; a < s[0]; ++a)
    for (int64_t b = 0; b < s[1]; ++b)
      for (int64_t c = 0; c < s[2]; ++c) {
        int64_t idx[3] = {a, b, c};
        if (idx[d] != 0) continue;  // one line per start
        int64_t base = a * st[0] + b * st[1] + c * st[2];
        double m = -INFINITY, sum = 0;
        for (int64_t k = 0; k < s[d]; ++k) m = std::max(m, x[size_t(base + k * st[d])]);
        for (int64_t k = 0; k < s[d]; ++k) sum += std::exp(x[size_t(base + k * st[d])] - m);
        for (int64_t k = 0; k < s[d]; ++k) {
          double v = x[size_t(base + k * st[d])];
          y[size_t(base + k * st[d])] = log ? v - m - std::log(sum) : std::exp(v - m) / sum;
        }
      }
  return y;
}

TEST(Softmax, ForwardMatchesNaiveAlongEveryDim) {
  NoGradGuard ng;
  Tensor x = rand_f64({3, 4, 5}, 1, -3, 3, false);
  for (int d = 0; d < 3; ++d)
    for (bool log : {false, true}) {
      SCOPED_TRACE(testing::Message() << "dim " << d << " log " << log);
      std::vector<double> got = (log ? log_softmax(x, d) : softmax(x, d)).to_vector();
      std::vector<double> ref = softmax_ref(x.to_vector(), x.shape(), d, log);
      for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(got[i], ref[i], 1e-12 * std::max(1.0, std::abs(ref[i])));
    }
  // Negative dims wrap; float32 matches the float64 reference.
  EXPECT_EQ(softmax(x, -1).to_vector(), softmax(x, 2).to_vector());
  std::vector<double> f = softmax(to(x, DType::f32), 1).to_vector(), r = softmax_ref(x.to_vector(), x.shape(), 1, false);
  for (size_t i = 0; i < r.size(); ++i) ASSERT_NEAR(f[i], r[i], 1e-6);
}

TEST(Softmax, StableForLargeLogits) {
  NoGradGuard ng;
  Tensor x = Tensor::from_vector({1000, 1001, 1002, -1000}, {1, 4}, DType::f32);
  std::vector<double> y = softmax(x, 1).to_vector(), ly = log_softmax(x, 1).to_vector();
  double z = 1 + std::exp(-1.0) + std::exp(-2.0);
  EXPECT_NEAR(y[2], 1 / z, 1e-6);
  EXPECT_NEAR(y[3], 0.0, 1e-30);
  EXPECT_NEAR(ly[2], -std::log(z), 1e-5);
  EXPECT_NEAR(ly[3], -2002 - std::log(z), 1e-2);
  for (double v : ly) EXPECT_TRUE(std::isfinite(v));
}

TEST(Softmax, Gradcheck) {
  Tensor x = rand_f64({3, 4, 5}, 2, -2, 2);
  for (int d : {0, 1, 2, -1}) {
    SCOPED_TRACE(testing::Message() << "dim " << d);
    EXPECT_TRUE(gradcheck([d](const V& in) { return softmax(in[0], d); }, {x}));
    EXPECT_TRUE(gradcheck([d](const V& in) { return log_softmax(in[0], d); }, {x}));
  }
  // Non-contiguous inputs: a transpose (collapses: read in place) and a permute whose outer
  // dims do not collapse (copied).
  EXPECT_TRUE(gradcheck([](const V& in) { return softmax(transpose(in[0], 0, 1), 1); }, {rand_f64({5, 3}, 3)}));
  EXPECT_TRUE(gradcheck([](const V& in) { return log_softmax(permute(in[0], {2, 0, 1}), 2); },
                        {rand_f64({3, 4, 5}, 4)}));
  EXPECT_TRUE(gradcheck([](const V& in) { return softmax(permute(in[0], {1, 2, 0}), 1); }, {rand_f64({3, 4, 5}, 5)}));
}

TEST(Softmax, DeterministicAcrossThreadCounts) {
  Rng rng(6);
  Tensor x0 = randn({37, 129, 11}, rng), seed = randn({37, 129, 11}, rng);
  for (int d : {1, 2})
    for (bool log : {false, true}) {
      std::vector<Tensor> out[2];
      const int prev = omp_get_max_threads();
      for (int t = 0; t < 2; ++t) {
        omp_set_num_threads(t + 1);
        Tensor x = clone(x0).set_requires_grad(true);
        Tensor y = log ? log_softmax(x, d) : softmax(x, d);
        backward(y, seed);
        out[t] = {y.detach(), x.grad()};
      }
      omp_set_num_threads(prev);
      for (int k = 0; k < 2; ++k)
        EXPECT_EQ(std::memcmp(out[0][k].raw_data(), out[1][k].raw_data(), out[0][k].nbytes()), 0)
            << "dim " << d << " log " << log << " output " << k;
    }
}

TEST(Softmax, Errors) {
  Tensor x = Tensor::zeros({2, 3});
  try {
    softmax(x, 2);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dim 2 out of range for x f32[2, 3] cpu"), std::string::npos) << e.what();
  }
  EXPECT_THROW(log_softmax(Tensor::zeros({2}, DType::i32), 0), Error);
}

}  // namespace
}  // namespace ssm
