// clip_grad_norm (norm math, scaling, measure-only mode, skipped params, determinism) and
// LrSchedule values at the key steps of every kind.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <numbers>

#include "framework/ops/ops.h"
#include "framework/optim/optim.h"

namespace ssm {
namespace {

using optim::clip_grad_norm;
using optim::LrKind;
using optim::LrSchedule;

Tensor param_with_grad(const std::vector<double>& g, const Dims& shape, DType dt) {
  Tensor p = Tensor::zeros(shape, dt).set_requires_grad(true);
  p.set_grad(Tensor::from_vector(g, shape, dt));
  return p;
}

TEST(ClipGradNorm, NormAndScaling) {
  // Global norm of (3, 4) and (12) = 13; mixed dtypes; a parameter without a gradient.
  Tensor a = param_with_grad({3, 4}, {2}, DType::f64);
  Tensor b = param_with_grad({12}, {1, 1}, DType::f32);
  Tensor c = Tensor::zeros({3}).set_requires_grad(true);
  EXPECT_DOUBLE_EQ(clip_grad_norm({a, b, c}, 0.0), 13.0);  // measure only
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{3, 4}));
  EXPECT_DOUBLE_EQ(clip_grad_norm({a, b, c}, 20.0), 13.0);  // below the limit: unchanged
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{3, 4}));
  EXPECT_DOUBLE_EQ(clip_grad_norm({a, b, c}, 6.5), 13.0);  // scaled by 6.5 / (13 + 1e-6)
  const double s = 6.5 / (13.0 + 1e-6);
  std::vector<double> ga = a.grad().to_vector();
  EXPECT_DOUBLE_EQ(ga[0], 3 * s);
  EXPECT_DOUBLE_EQ(ga[1], 4 * s);
  EXPECT_NEAR(b.grad().to_vector()[0], 12 * s, 1e-5);
  EXPECT_NEAR(clip_grad_norm({a, b, c}, 0.0), 6.5, 1e-5);
  EXPECT_FALSE(c.grad().defined());
}

TEST(ClipGradNorm, NonFiniteNormIsReportedNotApplied) {
  Tensor a = param_with_grad({INFINITY, 1}, {2}, DType::f32);
  EXPECT_TRUE(std::isinf(clip_grad_norm({a}, 1.0)));
  EXPECT_EQ(a.grad().to_vector()[1], 1.0);
}

TEST(ClipGradNorm, MatchesNaiveAndIsThreadInvariant) {
  Rng rng(4);
  Tensor g1 = randn({513, 257}, rng), g2 = randn({1001}, rng);
  double naive = 0;
  for (double v : g1.to_vector()) naive += v * v;
  for (double v : g2.to_vector()) naive += v * v;
  double n[2];
  const int prev = omp_get_max_threads();
  for (int k = 0; k < 2; ++k) {
    omp_set_num_threads(k + 1);
    Tensor a = Tensor::zeros(g1.shape()).set_requires_grad(true), b = Tensor::zeros(g2.shape()).set_requires_grad(true);
    a.set_grad(g1);
    b.set_grad(g2);
    n[k] = clip_grad_norm({a, b}, 0.0);
  }
  omp_set_num_threads(prev);
  EXPECT_EQ(n[0], n[1]);  // bitwise
  EXPECT_NEAR(n[0], std::sqrt(naive), 1e-12 * std::sqrt(naive));
}

TEST(LrSchedule, CosineKeySteps) {
  LrSchedule s{.kind = LrKind::cosine, .lr = 1e-3, .min_lr = 1e-4, .warmup_steps = 10, .total_steps = 110};
  EXPECT_DOUBLE_EQ(s.lr_at(0), 1e-4);         // lr · 1 / 10
  EXPECT_DOUBLE_EQ(s.lr_at(4), 5e-4);
  EXPECT_DOUBLE_EQ(s.lr_at(9), 1e-3);         // warmup end: the peak
  EXPECT_DOUBLE_EQ(s.lr_at(10), 1e-3);        // decay starts at the peak
  EXPECT_NEAR(s.lr_at(60), 5.5e-4, 1e-18);    // middle: (lr + min_lr) / 2
  EXPECT_NEAR(s.lr_at(35), 1e-4 + 9e-4 * 0.5 * (1 + std::cos(std::numbers::pi * 0.25)), 1e-18);
  EXPECT_DOUBLE_EQ(s.lr_at(110), 1e-4);       // end
  EXPECT_DOUBLE_EQ(s.lr_at(500), 1e-4);       // past the end: min_lr
  for (int64_t t = 10; t < 110; ++t) EXPECT_GE(s.lr_at(t), s.lr_at(t + 1));  // monotone decay
}

TEST(LrSchedule, LinearAndConstant) {
  LrSchedule lin{.kind = LrKind::linear, .lr = 2.0, .min_lr = 0.0, .warmup_steps = 0, .total_steps = 8};
  EXPECT_DOUBLE_EQ(lin.lr_at(0), 2.0);  // no warmup: the first step at the peak
  EXPECT_DOUBLE_EQ(lin.lr_at(4), 1.0);
  EXPECT_DOUBLE_EQ(lin.lr_at(6), 0.5);
  EXPECT_DOUBLE_EQ(lin.lr_at(8), 0.0);
  LrSchedule c{.kind = LrKind::constant, .lr = 0.3, .min_lr = 0.0, .warmup_steps = 3, .total_steps = 0};
  EXPECT_DOUBLE_EQ(c.lr_at(0), 0.1);
  EXPECT_DOUBLE_EQ(c.lr_at(2), 0.3);
  EXPECT_DOUBLE_EQ(c.lr_at(1000000), 0.3);
}

TEST(LrSchedule, IsAPureFunctionOfStep) {
  LrSchedule s{.kind = LrKind::cosine, .lr = 1e-3, .min_lr = 0, .warmup_steps = 5, .total_steps = 50};
  double first = s.lr_at(17);
  for (int64_t t = 0; t < 50; ++t) s.lr_at(t);
  EXPECT_EQ(s.lr_at(17), first);
}

TEST(LrSchedule, Validation) {
  EXPECT_THROW((LrSchedule{.kind = LrKind::cosine, .lr = 1e-3, .min_lr = 0, .warmup_steps = 0, .total_steps = 0}.lr_at(0)),
               Error);
  EXPECT_THROW((LrSchedule{.kind = LrKind::linear, .lr = 1e-3, .min_lr = 0, .warmup_steps = 20, .total_steps = 10}.validate()),
               Error);
  EXPECT_THROW((LrSchedule{.kind = LrKind::constant, .lr = 1e-3, .min_lr = 1e-2}.validate()), Error);
  EXPECT_THROW((LrSchedule{.kind = LrKind::constant, .lr = 1e-3}.lr_at(-1)), Error);
}

}  // namespace
}  // namespace ssm
