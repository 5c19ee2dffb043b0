// cross_entropy: loss, count and accuracy against a naive loop (ignored targets, int32 and
// int64), float64 gradchecks ((N, V), (B, L, V), transposed logits), the all-ignored case,
// determinism across thread counts and bounds errors.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>

#include "framework/ops/ops.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

using test::gradcheck;
using test::rand_f64;
using V = std::vector<Tensor>;

// Targets in [0, vocab) with about every fourth one ignored (-1).
Tensor make_targets(const Dims& shape, int64_t vocab, uint32_t seed, DType dt = DType::i64, bool ignore = true) {
  std::mt19937 gen(seed);
  std::vector<double> t(size_t(shape.numel()));
  for (double& v : t) v = (ignore && gen() % 4 == 0) ? -1.0 : double(gen() % uint32_t(vocab));
  return Tensor::from_vector(t, shape, dt);
}

struct Ref {
  double loss = 0;
  int64_t count = 0, correct = 0;
};
Ref xent_ref(const std::vector<double>& x, const std::vector<double>& t, int64_t vocab) {
  Ref r;
  double sum = 0;
  for (size_t n = 0; n < t.size(); ++n) {
    if (t[n] < 0) continue;
    const double* row = x.data() + n * size_t(vocab);
    double m = row[0];
    int64_t arg = 0;
    for (int64_t j = 1; j < vocab; ++j)
      if (row[j] > m) m = row[j], arg = j;
    double s = 0;
    for (int64_t j = 0; j < vocab; ++j) s += std::exp(row[j] - m);
    sum += m + std::log(s) - row[int64_t(t[n])];
    r.count += 1;
    r.correct += arg == int64_t(t[n]);
  }
  r.loss = sum / double(r.count);
  return r;
}

TEST(CrossEntropy, MatchesNaiveWithIgnoredTargets) {
  NoGradGuard ng;
  Tensor logits = rand_f64({3, 5, 7}, 1, -3, 3, false);
  for (DType dt : {DType::i64, DType::i32}) {
    Tensor t = make_targets({3, 5}, 7, 2, dt);
    CrossEntropyStats st;
    Tensor loss = cross_entropy(logits, t, -1, &st);
    Ref r = xent_ref(logits.to_vector(), t.to_vector(), 7);
    EXPECT_EQ(loss.dim(), 0);
    EXPECT_NEAR(loss.item(), r.loss, 1e-12);
    EXPECT_EQ(st.count, r.count);
    EXPECT_EQ(st.correct, r.correct);
    EXPECT_LT(st.count, 15);  // some targets were ignored
  }
  // Accuracy: targets set to the argmax are all correct.
  Tensor x = Tensor::from_vector({0, 5, 1, 9, 2, 3}, {2, 3}, DType::f64);
  CrossEntropyStats st;
  cross_entropy(x, Tensor::from_vector({1, 0}, {2}, DType::i32), -1, &st);
  EXPECT_EQ(st.count, 2);
  EXPECT_EQ(st.correct, 2);
  // A custom ignore_index; float32 against the float64 reference.
  Tensor t = make_targets({15}, 7, 3, DType::i64, false);
  Ref r = xent_ref(logits.to_vector(), t.to_vector(), 7);
  EXPECT_NEAR(cross_entropy(to(reshape(logits, {15, 7}), DType::f32), t, 100).item(), r.loss, 1e-5);
}

TEST(CrossEntropy, Gradcheck) {
  Tensor t2 = make_targets({6}, 5, 4), t3 = make_targets({2, 3}, 5, 5, DType::i32);
  EXPECT_TRUE(gradcheck([t2](const V& in) { return cross_entropy(in[0], t2); }, {rand_f64({6, 5}, 6, -2, 2)}));
  EXPECT_TRUE(gradcheck([t3](const V& in) { return cross_entropy(in[0], t3); }, {rand_f64({2, 3, 5}, 7, -2, 2)}));
  // Transposed logits (copied inside) and a non-unit upstream gradient (x 3).
  EXPECT_TRUE(gradcheck([t2](const V& in) { return mul(cross_entropy(transpose(in[0], 0, 1), t2), 3.0); },
                        {rand_f64({5, 6}, 8, -2, 2)}));
  // Row-strided logits (a narrowed vocab view is read in place).
  EXPECT_TRUE(gradcheck([t2](const V& in) { return cross_entropy(narrow(in[0], 1, 1, 5), t2); },
                        {rand_f64({6, 8}, 9, -2, 2)}));
}

TEST(CrossEntropy, AllIgnoredGivesZeroLossAndGradient) {
  Tensor x = rand_f64({4, 3}, 10);
  Tensor t = Tensor::from_vector({-1, -1, -1, -1}, {4}, DType::i64);
  CrossEntropyStats st;
  Tensor loss = cross_entropy(x, t, -1, &st);
  EXPECT_EQ(loss.item(), 0.0);
  EXPECT_EQ(st.count, 0);
  backward(loss);
  for (double g : x.grad().to_vector()) EXPECT_EQ(g, 0.0);
}

TEST(CrossEntropy, GradientIsSoftmaxMinusOnehotOverCount) {
  Tensor x = rand_f64({3, 4}, 11);
  Tensor t = Tensor::from_vector({2, -1, 0}, {3}, DType::i64);
  backward(cross_entropy(x, t));
  std::vector<double> g = x.grad().to_vector(), p = softmax(x.detach(), 1).to_vector();
  for (int n = 0; n < 3; ++n)
    for (int j = 0; j < 4; ++j) {
      double want = n == 1 ? 0.0 : (p[size_t(n * 4 + j)] - (j == (n == 0 ? 2 : 0))) / 2.0;
      EXPECT_NEAR(g[size_t(n * 4 + j)], want, 1e-15);
    }
}

TEST(CrossEntropy, DeterministicAcrossThreadCounts) {
  Rng rng(12);
  Tensor x0 = randn({301, 1001}, rng) * 3.0;
  Tensor t = make_targets({301}, 1001, 13);
  std::vector<Tensor> out[2];
  CrossEntropyStats st[2];
  const int prev = omp_get_max_threads();
  for (int k = 0; k < 2; ++k) {
    omp_set_num_threads(k + 1);
    Tensor x = clone(x0).set_requires_grad(true);
    Tensor loss = cross_entropy(x, t, -1, &st[k]);
    backward(loss);
    out[k] = {loss.detach(), x.grad()};
  }
  omp_set_num_threads(prev);
  for (int k = 0; k < 2; ++k)
    EXPECT_EQ(std::memcmp(out[0][k].raw_data(), out[1][k].raw_data(), out[0][k].nbytes()), 0) << "output " << k;
  EXPECT_EQ(st[0].count, st[1].count);
  EXPECT_EQ(st[0].correct, st[1].correct);
}

TEST(CrossEntropy, Errors) {
  Tensor x = Tensor::zeros({2, 3, 5});
  auto msg = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  std::string m = msg([&] { cross_entropy(x, Tensor::from_vector({0, 1, 5, 2, 3, 4}, {2, 3}, DType::i64)); });
  EXPECT_NE(m.find("target 5 at flat position 2"), std::string::npos) << m;
  EXPECT_NE(m.find("V = 5"), std::string::npos) << m;
  m = msg([&] { cross_entropy(x, Tensor::from_vector({0, -2, 1, 1, 1, 1}, {2, 3}, DType::i32)); });
  EXPECT_NE(m.find("target -2"), std::string::npos) << m;
  m = msg([&] { cross_entropy(x, Tensor::zeros({3, 2}, DType::i64)); });
  EXPECT_NE(m.find("targets i64[3, 2] cpu do not match the leading dims [2, 3]"), std::string::npos) << m;
  m = msg([&] { cross_entropy(x, Tensor::zeros({2, 3})); });
  EXPECT_NE(m.find("int32 or int64"), std::string::npos) << m;
  m = msg([&] { cross_entropy(Tensor::zeros({5}), Tensor::zeros({1}, DType::i64)); });
  EXPECT_NE(m.find("(N, V) or (B, L, V)"), std::string::npos) << m;
}

}  // namespace
}  // namespace ssm
