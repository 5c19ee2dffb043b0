#include <gtest/gtest.h>
#include <omp.h>

#include "framework/ops/ops.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

Tensor leaf(const std::vector<double>& v, const Dims& shape) {
  Tensor t = Tensor::from_vector(v, shape, DType::f64);
  t.set_requires_grad(true);
  return t;
}

TEST(Autograd, ChainRuleAndAccumulation) {
  Tensor x = leaf({1, 2, 3}, {3});
  // y = sum(x*x + 3x) -> dy/dx = 2x + 3
  Tensor y = sum(add(mul(x, x), mul(x, 3.0)));
  backward(y);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{5, 7, 9}));
  // A second backward of a fresh graph accumulates into the leaf.
  backward(sum(x));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{6, 8, 10}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, GraphIsFreedAfterBackward) {
  Tensor x = leaf({1, 2}, {2});
  Tensor h = mul(x, 2.0);
  Tensor y = sum(h);
  backward(y);
  EXPECT_EQ(autograd::tape().num_nodes(), 0u);
  try {
    backward(y);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already freed"), std::string::npos) << e.what();
  }
  // Using a tensor of the freed graph as an input says to detach it.
  try {
    Tensor z = mul(h, x);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("detach"), std::string::npos) << e.what();
  }
  Tensor z = sum(mul(h.detach(), x));  // fine
  backward(z);
}

TEST(Autograd, NonScalarNeedsSeed) {
  Tensor x = leaf({1, 2}, {2});
  Tensor y = mul(x, x);
  try {
    backward(y);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-scalar"), std::string::npos) << e.what();
  }
  backward(y, Tensor::from_vector({1, 10}, {2}, DType::f64));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{2, 40}));
}

TEST(Autograd, NoGradRecordsNothing) {
  Tensor x = leaf({1, 2}, {2});
  {
    NoGradGuard ng;
    Tensor y = mul(x, x);
    EXPECT_FALSE(y.requires_grad());
  }
  EXPECT_EQ(autograd::tape().num_nodes(), 0u);
  Tensor c = Tensor::from_vector({1, 2}, {2}, DType::f64);
  EXPECT_FALSE(mul(c, c).requires_grad());
  EXPECT_THROW(backward(sum(c)), Error);
}

TEST(Autograd, LeafReadyHookFiresOnceAfterLastUse) {
  Tensor a = leaf({1, 2}, {2}), b = leaf({3, 4}, {2});
  Tensor y = sum(mul(add(a, b), a));  // a used twice, b once
  std::vector<std::string> order;
  autograd::BackwardOptions opts;
  opts.on_leaf_ready = [&](const Tensor& t) {
    order.push_back(t.same(a) ? "a" : t.same(b) ? "b" : "?");
    // The gradient is final when the hook fires.
    if (t.same(a)) {
      EXPECT_EQ(t.grad().to_vector(), (std::vector<double>{2 * 1 + 3, 2 * 2 + 4}));
    }
  };
  backward(y, Tensor(), opts);
  ASSERT_EQ(order.size(), 2u);
  EXPECT_NE(order[0], order[1]);
}

TEST(Autograd, DiamondGraphGradcheck) {
  // x feeds two branches that meet again: gradients from both paths must add.
  auto f = [](const std::vector<Tensor>& in) {
    Tensor h = tanh(in[0]);
    Tensor a = mul(h, in[1]);
    Tensor b = exp(h);
    return sum(mul(a, b), {1});
  };
  EXPECT_TRUE(test::gradcheck(f, {test::rand_f64({3, 4}, 1), test::rand_f64({4}, 2)}));
}

TEST(Autograd, ViewOpsGradcheck) {
  using V = std::vector<Tensor>;
  Tensor x = test::rand_f64({2, 3, 4}, 3);
  EXPECT_TRUE(test::gradcheck([](const V& in) { return mul(transpose(in[0], 0, 2), 2.0); }, {x}));
  EXPECT_TRUE(test::gradcheck([](const V& in) { return exp(permute(in[0], {1, 2, 0})); }, {x}));
  EXPECT_TRUE(test::gradcheck([](const V& in) { return exp(narrow(in[0], 2, 1, 2)); }, {x}));
  EXPECT_TRUE(test::gradcheck([](const V& in) { return exp(select(in[0], 1, 2)); }, {x}));
  EXPECT_TRUE(test::gradcheck([](const V& in) { return exp(reshape(transpose(in[0], 0, 1), {6, 4})); }, {x}));
  EXPECT_TRUE(test::gradcheck([](const V& in) { return exp(expand(unsqueeze(in[0], 1), {2, 5, 3, 4})); }, {x}));
  EXPECT_TRUE(test::gradcheck([](const V& in) { return exp(flatten(in[0], 1)); }, {x}));
  EXPECT_TRUE(test::gradcheck([](const V& in) { return tanh(to(to(in[0], DType::f32), DType::f64)); }, {x},
                              {1e-3, 1e-4, 1e-3}));
}

TEST(Autograd, ReductionsGradcheck) {
  using V = std::vector<Tensor>;
  Tensor x = test::rand_f64({3, 4, 5}, 4);
  EXPECT_TRUE(test::gradcheck([](const V& in) { return sum(in[0]); }, {x}));
  EXPECT_TRUE(test::gradcheck([](const V& in) { return sum(in[0], {0, 2}); }, {x}));
  EXPECT_TRUE(test::gradcheck([](const V& in) { return mean(in[0], {-1}, true); }, {x}));
  EXPECT_TRUE(test::gradcheck([](const V& in) { return max(in[0], {1}); }, {x}));
  EXPECT_TRUE(test::gradcheck([](const V& in) { return mean(transpose(in[0], 0, 2), {0}); }, {x}));
  std::vector<double> m = max(Tensor::from_vector({1, 5, 2, 7, 3, 0}, {2, 3}), {1}).to_vector();
  EXPECT_EQ(m, (std::vector<double>{5, 7}));
}

TEST(Autograd, MatmulGradcheck) {
  using V = std::vector<Tensor>;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Tensor a = test::rand_f64(ta ? Dims{5, 3} : Dims{3, 5}, 5);
      Tensor b = test::rand_f64(tb ? Dims{4, 5} : Dims{5, 4}, 6);
      EXPECT_TRUE(test::gradcheck([ta, tb](const V& in) { return matmul(in[0], in[1], ta, tb); }, {a, b}));
      Tensor ab = test::rand_f64(ta ? Dims{2, 5, 3} : Dims{2, 3, 5}, 7);
      Tensor bb = test::rand_f64(tb ? Dims{2, 4, 5} : Dims{2, 5, 4}, 8);
      EXPECT_TRUE(test::gradcheck([ta, tb](const V& in) { return matmul(in[0], in[1], ta, tb); }, {ab, bb}));
      // batched a with a shared 2-D b
      EXPECT_TRUE(test::gradcheck([ta, tb](const V& in) { return matmul(in[0], in[1], ta, tb); }, {ab, b}));
    }
  // Non-contiguous operands (transposed views) and linear with bias.
  Tensor x = test::rand_f64({2, 3, 4}, 9), w = test::rand_f64({6, 4}, 10), bias = test::rand_f64({6}, 11);
  EXPECT_TRUE(test::gradcheck([](const V& in) { return linear(in[0], in[1], in[2]); }, {x, w, bias}));
  EXPECT_TRUE(test::gradcheck(
      [](const V& in) { return matmul(transpose(in[0], 1, 2), permute(in[1], {0, 2, 1})); },
      {test::rand_f64({2, 4, 3}, 12), test::rand_f64({2, 5, 4}, 13)}));
}

TEST(Autograd, MatmulMatchesNaive) {
  Rng rng(3);
  Tensor a = randn({37, 70}, rng), b = randn({70, 29}, rng);
  Tensor c = matmul(a, b);
  std::vector<double> av = a.to_vector(), bv = b.to_vector(), cv = c.to_vector();
  for (int i = 0; i < 37; ++i)
    for (int j = 0; j < 29; ++j) {
      double s = 0;
      for (int k = 0; k < 70; ++k) s += av[size_t(i * 70 + k)] * bv[size_t(k * 29 + j)];
      ASSERT_NEAR(cv[size_t(i * 29 + j)], s, 1e-4);
    }
}

TEST(Autograd, DeterministicAcrossThreadCounts) {
  auto run = [](int threads) {
    omp_set_num_threads(threads);
    Rng rng(11);
    Tensor x = randn({64, 300}, rng), w = randn({300, 257}, rng);
    w.set_requires_grad(true);
    Tensor y = sum(square(tanh(matmul(x, w))));
    backward(y);
    std::vector<double> out = w.grad().to_vector();
    out.push_back(y.item());
    return out;
  };
  std::vector<double> one = run(1), two = run(2), four = run(4);
  omp_set_num_threads(2);
  EXPECT_EQ(one, two);
  EXPECT_EQ(one, four);
}

}  // namespace
}  // namespace ssm
