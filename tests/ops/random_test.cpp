#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>

#include "framework/ops/ops.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

TEST(Random, NormalMomentsAndReproducibility) {
  Rng a(42), b(42);
  Tensor x = randn({20000}, a), y = randn({20000}, b);
  EXPECT_EQ(x.to_vector(), y.to_vector());
  std::vector<double> v = x.to_vector();
  double mean = 0, var = 0;
  for (double t : v) mean += t;
  mean /= double(v.size());
  for (double t : v) var += (t - mean) * (t - mean);
  var /= double(v.size());
  EXPECT_NEAR(mean, 0.0, 0.03);
  EXPECT_NEAR(var, 1.0, 0.05);
  // The stream advances: the next draw differs, and a restored state repeats it.
  RngState s = a.state();
  Tensor z1 = rand({5}, a);
  a.set_state(s);
  EXPECT_EQ(rand({5}, a).to_vector(), z1.to_vector());
  EXPECT_NE(z1.to_vector(), x.narrow(0, 0, 5).to_vector());
}

TEST(Random, IndependentOfThreadCount) {
  omp_set_num_threads(1);
  Rng a(3);
  std::vector<double> one = dropout(ones({4000}), 0.3, a).to_vector();
  omp_set_num_threads(2);
  Rng b(3);
  EXPECT_EQ(dropout(ones({4000}), 0.3, b).to_vector(), one);
}

TEST(Dropout, ScalesKeptValuesAndDropsAboutP) {
  Rng rng(9);
  std::vector<double> v = dropout(ones({10000}), 0.25, rng).to_vector();
  int dropped = 0;
  for (double x : v) {
    if (x == 0.0)
      ++dropped;
    else
      EXPECT_NEAR(x, 1.0 / 0.75, 1e-6);
  }
  EXPECT_NEAR(dropped / 10000.0, 0.25, 0.02);
  Tensor x = ones({3});
  EXPECT_TRUE(dropout(x, 0.5, rng, /*training=*/false).same(x));
  EXPECT_THROW(dropout(x, 1.0, rng), Error);
}

TEST(Dropout, GradcheckUsesTheSameMask) {
  // Each call draws a fresh mask, so the checked function re-seeds its Rng.
  auto f = [](const std::vector<Tensor>& in) {
    Rng r(5);
    return dropout(mul(in[0], in[0]), 0.4, r);
  };
  EXPECT_TRUE(test::gradcheck(f, {test::rand_f64({4, 7}, 1)}));
}

TEST(Printing, ShowsValuesAndElides) {
  Tensor t = Tensor::from_vector({1, 2, 3, 4}, {2, 2});
  std::string s = to_string(t);
  EXPECT_NE(s.find("f32[2, 2] cpu"), std::string::npos) << s;
  EXPECT_NE(s.find("[[1, 2],\n [3, 4]]"), std::string::npos) << s;
  std::string big = to_string(arange(100, DType::f32));
  EXPECT_NE(big.find("..."), std::string::npos) << big;
  EXPECT_NE(big.find("99"), std::string::npos) << big;
}

}  // namespace
}  // namespace ssm
