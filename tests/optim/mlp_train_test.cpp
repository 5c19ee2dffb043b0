// A tiny MLP trained end to end with the whole stack (ops, autograd, AdamW, clipping,
// schedule) on a learnable synthetic task: three concentric rings in the plane.
#include <gtest/gtest.h>

#include <cmath>

#include "framework/ops/ops.h"
#include "framework/ops/loss.h"
#include "framework/optim/optim.h"

namespace ssm {
namespace {

TEST(MlpTraining, LearnsConcentricRings) {
  // Data: N points, class = which ring (radius bands) the point is in; not linearly separable.
  const int64_t N = 384;
  Rng data_rng(1);
  std::vector<double> u = uniform({N, 2}, -1.5, 1.5, data_rng, DType::f64).to_vector();
  std::vector<double> labels(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    double r = std::hypot(u[size_t(2 * i)], u[size_t(2 * i + 1)]);
    labels[size_t(i)] = r < 0.6 ? 0 : r < 1.1 ? 1 : 2;
  }
  Tensor x = Tensor::from_vector(u, {N, 2});
  Tensor y = Tensor::from_vector(labels, {N}, DType::i32);

  Rng init(2);
  auto param = [&](Dims shape, double std) {
    Tensor t = mul(randn(shape, init), std);
    t.set_requires_grad(true);
    return t;
  };
  Tensor w1 = param({32, 2}, 0.7), b1 = param({32}, 0.0), w2 = param({32, 32}, 0.18), b2 = param({32}, 0.0),
         w3 = param({3, 32}, 0.18), b3 = param({3}, 0.0);
  auto forward = [&] { return linear(tanh(linear(tanh(linear(x, w1, b1)), w2, b2)), w3, b3); };

  optim::AdamW opt({{"w1", w1}, {"b1", b1}, {"w2", w2}, {"b2", b2}, {"w3", w3}, {"b3", b3}},
                   {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 1e-4});
  optim::LrSchedule sched{optim::LrKind::cosine, 1e-2, 1e-3, 20, 400};
  double first = 0, last = 0;
  for (int step = 0; step < 400; ++step) {
    opt.zero_grad();
    Tensor loss = cross_entropy(forward(), y);
    backward(loss);
    optim::clip_grad_norm(opt.params(), 5.0);
    opt.step(sched.lr_at(step));
    (step == 0 ? first : last) = loss.item();
  }
  CrossEntropyStats st;
  {
    NoGradGuard ng;
    cross_entropy(forward(), y, -1, &st);
  }
  // Chance is 1/3 accuracy and ~1.1 loss; a linear classifier cannot separate rings.
  EXPECT_GT(first, 0.9);
  EXPECT_LT(last, 0.25) << "first loss " << first;
  EXPECT_GT(double(st.correct) / double(st.count), 0.9);
}

}  // namespace
}  // namespace ssm
