#include <gtest/gtest.h>

#include "framework/ops/ops.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

using test::gradcheck;
using test::rand_f64;
using V = std::vector<Tensor>;

TEST(Elementwise, UnaryGradcheck) {
  // Positive inputs for log/sqrt/rsqrt.
  Tensor x = rand_f64({3, 5}, 1, 0.2, 2.0);
  Tensor y = rand_f64({4, 3}, 2, -3.0, 3.0);
  EXPECT_TRUE(gradcheck([](const V& in) { return ssm::log(in[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](const V& in) { return ssm::sqrt(in[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](const V& in) { return ssm::rsqrt(in[0]); }, {x}));
  for (auto f : {+[](const Tensor& t) { return ssm::neg(t); }, +[](const Tensor& t) { return ssm::exp(t); },
                 +[](const Tensor& t) { return ssm::tanh(t); }, +[](const Tensor& t) { return ssm::sigmoid(t); },
                 +[](const Tensor& t) { return ssm::silu(t); }, +[](const Tensor& t) { return ssm::softplus(t); },
                 +[](const Tensor& t) { return ssm::gelu(t); }, +[](const Tensor& t) { return ssm::square(t); }}) {
    EXPECT_TRUE(gradcheck([f](const V& in) { return f(in[0]); }, {y}));
    // Non-contiguous input: a transposed view.
    EXPECT_TRUE(gradcheck([f](const V& in) { return f(ssm::transpose(in[0], 0, 1)); }, {y}));
  }
}

TEST(Elementwise, BinaryBroadcastGradcheck) {
  Tensor a = rand_f64({2, 3, 4}, 3);
  Tensor b = rand_f64({3, 1}, 4, 0.5, 1.5);  // broadcast over batch and last dim
  Tensor c = rand_f64({4}, 5, 0.5, 1.5);
  EXPECT_TRUE(gradcheck([](const V& in) { return ssm::add(in[0], in[1]); }, {a, b}));
  EXPECT_TRUE(gradcheck([](const V& in) { return ssm::sub(in[0], in[1]); }, {a, c}));
  EXPECT_TRUE(gradcheck([](const V& in) { return ssm::mul(in[0], in[1]); }, {a, b}));
  EXPECT_TRUE(gradcheck([](const V& in) { return ssm::div(in[0], in[1]); }, {a, c}));
  EXPECT_TRUE(gradcheck([](const V& in) { return ssm::div(in[1], in[0]); }, {rand_f64({3, 4}, 6, 1, 2), b}));
  EXPECT_TRUE(gradcheck([](const V& in) { return in[0] * 3.0 + 1.5; }, {a}));
  // The same tensor used twice accumulates both contributions.
  EXPECT_TRUE(gradcheck([](const V& in) { return ssm::mul(in[0], in[0]); }, {a}));
  // Broadcast of a transposed (non-contiguous) operand.
  EXPECT_TRUE(gradcheck([](const V& in) { return ssm::mul(in[0], ssm::transpose(in[1], 0, 1)); },
                        {rand_f64({2, 4, 3}, 7), rand_f64({3, 4}, 8)}));
}

TEST(Elementwise, WhereGradcheck) {
  Tensor cond = Tensor::from_vector({1, 0, 1, 0, 0, 1}, {2, 3}, DType::f64);
  EXPECT_TRUE(gradcheck([cond](const V& in) { return ssm::where(cond, in[0], in[1]); },
                        {rand_f64({2, 3}, 9), rand_f64({3}, 10)}));
}

TEST(Elementwise, ForwardValues) {
  Tensor a = Tensor::from_vector({1, 2, 3, 4}, {2, 2});
  Tensor b = Tensor::from_vector({10, 20}, {2});
  EXPECT_EQ(ssm::add(a, b).to_vector(), (std::vector<double>{11, 22, 13, 24}));
  EXPECT_EQ(ssm::mul(a, b).to_vector(), (std::vector<double>{10, 40, 30, 80}));
  std::vector<double> s = ssm::silu(Tensor::from_vector({0, 1}, {2}, DType::f64)).to_vector();
  EXPECT_DOUBLE_EQ(s[0], 0.0);
  EXPECT_NEAR(s[1], 1.0 / (1.0 + std::exp(-1.0)), 1e-15);
}

TEST(Elementwise, ErrorsNameShapesAndDevices) {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4});
  try {
    ssm::add(a, b);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[4]"), std::string::npos) << e.what();
  }
  Tensor d = Tensor::zeros({2, 3}, DType::f64);
  EXPECT_THROW(ssm::add(a, d), Error);  // no implicit dtype promotion
}

}  // namespace
}  // namespace ssm
