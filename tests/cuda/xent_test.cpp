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

// Runs f on the inputs in dtype t on device d, then backward of Σ_k sum(out_k · c_k) with
// fixed random cotangents c_k: returns the outputs followed by the gradients of the inputs
// marked in `diff`, all as f64 cpu tensors. Integer inputs keep their dtype.
using Fn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
std::vector<Tensor> run(const Fn& f, const std::vector<Tensor>& in0, const std::vector<bool>& diff, DType t, Device d) {
  std::vector<Tensor> in;
  for (size_t i = 0; i < in0.size(); ++i) {
    const bool is_int = in0[i].dtype() == DType::i32 || in0[i].dtype() == DType::i64;
    Tensor x = as(in0[i], is_int ? in0[i].dtype() : t, d);
    if (diff[i]) x.set_requires_grad(true);
    in.push_back(x);
  }
  std::vector<Tensor> outs = f(in);
  Tensor loss;
  for (size_t k = 0; k < outs.size(); ++k) {
    Tensor c = as(random(outs[k].shape(), 100 + k, DType::bf16), t, d);
    Tensor term = ssm::sum(outs[k] * c);
    loss = loss.defined() ? loss + term : term;
  }
  ssm::backward(loss);
  std::vector<Tensor> r;
  for (const Tensor& o : outs) r.push_back(as(o, DType::f64));
  for (size_t i = 0; i < in.size(); ++i)
    if (diff[i]) r.push_back(as(in[i].grad(), DType::f64));
  return r;
}

// GPU f32 within 2·(CPU f32 error) + 1e-5 of the CPU f64 result (normwise), GPU bf16 within
// `bf16_tol`; both bitwise identical when run twice (deterministic).
void check_parity(const char* what, const Fn& f, const std::vector<Tensor>& in, const std::vector<bool>& diff,
                  double bf16_tol = 2e-2) {
  auto ref = run(f, in, diff, DType::f64, Device::cpu());
  auto naive = run(f, in, diff, DType::f32, Device::cpu());
  auto g32 = run(f, in, diff, DType::f32, gpu());
  auto g32b = run(f, in, diff, DType::f32, gpu());
  auto g16 = run(f, in, diff, DType::bf16, gpu());
  auto g16b = run(f, in, diff, DType::bf16, gpu());
  ASSERT_EQ(ref.size(), g32.size());
  for (size_t k = 0; k < ref.size(); ++k) {
    std::vector<double> r = ref[k].to_vector();
    const double en = norm_err(naive[k].to_vector(), r), e32 = norm_err(g32[k].to_vector(), r),
                 e16 = norm_err(g16[k].to_vector(), r);
    EXPECT_LE(e32, 2 * en + 1e-5) << what << " result " << k << " " << ref[k].describe() << " (cpu f32 " << en << ")";
    EXPECT_LE(e16, bf16_tol) << what << " result " << k << " " << ref[k].describe();
    EXPECT_TRUE(same_values(g32[k], g32b[k])) << what << " f32 rerun, result " << k;
    EXPECT_TRUE(same_values(g16[k], g16b[k])) << what << " bf16 rerun, result " << k;
  }
}

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
