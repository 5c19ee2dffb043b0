// CUDA cross-entropy vs the CPU reference: loss and dlogits in f32 and bf16 at vocab sizes
// below, at and far above the 256-thread block (50257), ignored rows, (B, L, V) logits,
// int32 and int64 targets; stats (count, correct) equal to the CPU's; every row ignored gives
// 0 and a zero gradient; bitwise-identical reruns; outputs start as NaN (poisoned allocator).
#include <functional>

#include "tests/cuda/cuda_test_util.h"

namespace ssm {
namespace {

using test::gpu::as;
using test::gpu::gpu;
using test::gpu::norm_err;
using test::gpu::random;
using test::gpu::same_values;

class CudaXent : public test::gpu::CudaTest {};

using test::gpu::check_parity;
using test::gpu::Fn;

// Targets in [0, V) with about one in five equal to the ignore index -1.
Tensor targets(const Dims& shape, int64_t V, uint64_t seed, DType t) {
  std::mt19937_64 rng(seed);
  std::vector<double> v(size_t(shape.numel()));
  for (double& x : v) x = rng() % 5 == 0 ? -1.0 : double(rng() % uint64_t(V));
  return Tensor::from_vector(v, shape, t);
}

TEST_F(CudaXent, LossAndGradientMatchCpu) {
  const Dims shapes[] = {{37, 5}, {9, 256}, {2, 7, 1001}, {6, 50257}};
  uint64_t seed = 1;
  for (const Dims& s : shapes)
    for (DType it : {DType::i32, DType::i64}) {
      const int64_t V = s[s.size() - 1];
      Dims lead = s;
      lead.erase(lead.size() - 1);
      Tensor x = random(s, ++seed, DType::bf16, -4, 4), t = targets(lead, V, ++seed, it);
      check_parity("cross_entropy",
                   [](const std::vector<Tensor>& v) { return std::vector<Tensor>{ssm::cross_entropy(v[0], v[1], -1)}; },
                   {x, t}, {true, false});
    }
}

TEST_F(CudaXent, StatsMatchCpu) {
  Tensor x = random({200, 333}, 3, DType::f32, -3, 3), t = targets({200}, 333, 4, DType::i64);
  // Make half the non-ignored rows correct: their target is the row's argmax.
  std::vector<double> tv = t.to_vector(), xv = x.to_vector();
  for (size_t r = 0; r < 200; r += 2) {
    if (tv[r] < 0) continue;
    size_t best = 0;
    for (size_t j = 1; j < 333; ++j)
      if (xv[r * 333 + j] > xv[r * 333 + best]) best = j;
    tv[r] = double(best);
  }
  t = Tensor::from_vector(tv, Dims{200}, DType::i64);
  CrossEntropyStats cpu, ours;
  Tensor lc = ssm::cross_entropy(x, t, -1, &cpu);
  Tensor lg = ssm::cross_entropy(as(x, DType::f32, gpu()), as(t, DType::i64, gpu()), -1, &ours);
  EXPECT_EQ(ours.count, cpu.count);
  EXPECT_EQ(ours.correct, cpu.correct);
  EXPECT_GT(cpu.correct, 20);
  EXPECT_NEAR(lg.item(), lc.item(), 1e-5 * std::abs(lc.item()));
}

TEST_F(CudaXent, AllIgnoredGivesZeroLossAndGradient) {
  Tensor x = as(random({5, 70}, 5, DType::f32), DType::f32, gpu()).set_requires_grad(true);
  Tensor t = as(Tensor::from_vector(std::vector<double>(5, 7.0), Dims{5}, DType::i32), DType::i32, gpu());
  CrossEntropyStats st;
  Tensor loss = ssm::cross_entropy(x, t, 7, &st);
  ssm::backward(loss);
  EXPECT_EQ(loss.item(), 0.0);
  EXPECT_EQ(st.count, 0);
  for (double g : x.grad().to_vector()) EXPECT_EQ(g, 0.0);
}

TEST_F(CudaXent, OutOfRangeTargetNamedWhenStatsAreAsked) {
  Tensor x = as(random({3, 10}, 6, DType::f32), DType::f32, gpu());
  Tensor t = as(Tensor::from_vector(std::vector<double>{1, 10, 2}, Dims{3}, DType::i64), DType::i64, gpu());
  CrossEntropyStats st;
  try {
    ssm::cross_entropy(x, t, -1, &st);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("target 10 at flat position 1"), std::string::npos) << e.what();
  }
  // Without stats there is no sync: the bad row's loss is NaN instead of an error.
  EXPECT_TRUE(std::isnan(ssm::cross_entropy(x, t, -1).item()));
}

}  // namespace
}  // namespace ssm
