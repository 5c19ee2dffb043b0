// Parity harness for the CUDA tests: every op runs three times on the same input values,
//   ref   = CPU in float64 (the oracle),
//   naive = CPU in the test dtype's compute precision (f32 for f32/bf16, output rounded
//           to bf16 for bf16; a hand-written sequential loop where the CPU kernel is
//           more accurate than naive, e.g. sums accumulated in double),
//   ours  = GPU in the test dtype,
// and passes when err(ours) <= 2 * err(naive) + eps(dtype), where
//   err(x) = max_i |x_i - ref_i| / max(|ref_i|, mean_j |ref_j|)
// and eps is a few ulps of the dtype (f32 1e-6, bf16 one ulp 2^-7, f64 1e-12), once more for
// each extra rounding of an op chain (chain_eps): the GPU may be at most about twice as
// wrong as a plain same-precision computation.
//
//   SSM_REQUIRE_GPU();                                           // GTEST_SKIP with the reason
//   Tensor x = test::gpu::random({33, 65}, 1, DType::bf16);      // cpu, values rounded to bf16
//   EXPECT_TRUE(test::gpu::close_to_reference(ours, naive, ref, DType::bf16));
//
// Every test fixture turns on the allocator's poison mode, so each fresh CUDA block starts as
// NaN: an output element that a kernel fails to write cannot pass a comparison.
#pragma once
#include <functional>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "framework/ops/ops.h"

#if defined(SSM_WITH_CUDA)
#include "framework/core/cuda_allocator.h"
#include "framework/core/cuda_stream.h"
#endif

namespace ssm::test::gpu {

inline bool gpu_available(std::string* why) {
  if (!cuda_compiled()) {
    *why = "this binary was built without CUDA support (no nvcc, or SSM_CUDA=OFF)";
    return false;
  }
  if (cuda_device_count() == 0) {
    *why = "CUDA support is compiled in but no CUDA device is visible";
    return false;
  }
  return true;
}

#define SSM_REQUIRE_GPU()                                                     \
  do {                                                                        \
    std::string ssm_why_;                                                     \
    if (!::ssm::test::gpu::gpu_available(&ssm_why_)) GTEST_SKIP() << ssm_why_; \
  } while (0)

// Skips without a GPU; poisons every new CUDA block while the test runs.
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SSM_REQUIRE_GPU();
#if defined(SSM_WITH_CUDA)
    cuda::caching_allocator().set_poison(true);
#endif
  }
  void TearDown() override {
#if defined(SSM_WITH_CUDA)
    std::string why;
    if (gpu_available(&why)) cuda::caching_allocator().set_poison(false);
#endif
  }
};

inline Device gpu() { return Device::cuda(0); }

inline const char* name(DType t) { return dtype_name(t); }

// Values uniform in [lo, hi) rounded to `dtype`, contiguous on the cpu (fixed seed).
inline Tensor random(const Dims& shape, uint64_t seed, DType dtype, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(size_t(shape.numel()));
  for (double& x : v) x = u(rng);
  if (dtype == DType::i32 || dtype == DType::i64)
    for (double& x : v) x = std::floor(x);
  return Tensor::from_vector(v, shape, dtype);
}

// The same values in another dtype and/or device (a fresh tensor, no autograd history).
inline Tensor as(const Tensor& x, DType dtype, Device device = Device::cpu()) {
  NoGradGuard ng;
  Tensor y = to(to(x, dtype), device);  // cast where x lives (the CPU for test inputs), then move
  return clone(y).detach();
}

// The precision a naive computation of dtype `t` runs in on the CPU.
inline DType naive_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }

// Rounds a naive result to the storage dtype (bf16 outputs are rounded once, at the end).
inline Tensor round_to(const Tensor& naive, DType t) { return t == DType::bf16 ? as(naive, DType::bf16) : naive; }

inline double dtype_eps(DType t) {
  switch (t) {
    case DType::f64: return 1e-12;
    case DType::bf16: return 1.0 / 128;  // one bf16 ulp at the bottom of a binade
    default: return 1e-6;                // ~8 f32 ulps
  }
}

// Extra tolerance for a result that the GPU rounds to the dtype `roundings` times (once per
// op of a chain, e.g. mul then sum in a backward) while the naive CPU result is rounded once.
inline double chain_eps(DType t, int roundings) { return (roundings - 1) * dtype_eps(t); }

inline double rel_err(const std::vector<double>& x, const std::vector<double>& r) {
  double mean = 0;
  for (double v : r) mean += std::abs(v);
  mean = r.empty() ? 0 : mean / double(r.size());
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    double scale = std::max({std::abs(r[i]), mean, 1e-300});
    double e = std::abs(x[i] - r[i]) / scale;
    if (!(e <= worst)) worst = e;  // NaN wins
  }
  return worst;
}

// Normwise ||x - r|| / ||r||.
inline double norm_err(const std::vector<double>& x, const std::vector<double>& r) {
  double d = 0, n = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    d += (x[i] - r[i]) * (x[i] - r[i]);
    n += r[i] * r[i];
  }
  return std::sqrt(d) / std::max(std::sqrt(n), 1e-300);
}

inline ::testing::AssertionResult close_to_reference(const Tensor& ours, const Tensor& naive, const Tensor& ref,
                                                     DType t, double extra_eps = 0.0) {
  if (ours.shape() != ref.shape() || naive.shape() != ref.shape())
    return ::testing::AssertionFailure() << "shape mismatch: ours " << ours.describe() << ", naive "
                                         << naive.describe() << ", ref " << ref.describe();
  std::vector<double> o = ours.to_vector(), n = naive.to_vector(), r = ref.to_vector();
  double eo = rel_err(o, r), en = rel_err(n, r);
  double bound = 2 * en + dtype_eps(t) + extra_eps;
  if (!(eo <= bound)) {
    size_t worst = 0;
    double we = -1;
    for (size_t i = 0; i < o.size(); ++i) {
      double e = std::abs(o[i] - r[i]);
      if (!(e <= we)) {
        we = e;
        worst = i;
      }
    }
    return ::testing::AssertionFailure() << name(t) << " " << ours.describe() << ": err(ours) " << eo
                                         << " > 2 * err(naive) " << en << " + eps = " << bound << "; worst element "
                                         << worst << ": ours " << o[worst] << ", naive " << n[worst] << ", ref "
                                         << r[worst];
  }
  return ::testing::AssertionSuccess();
}

// Bit-exact equality of values (cast/copy/fill/max are exact).
inline ::testing::AssertionResult same_values(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape())
    return ::testing::AssertionFailure() << "shape " << a.describe() << " vs " << b.describe();
  std::vector<double> x = a.to_vector(), y = b.to_vector();
  for (size_t i = 0; i < x.size(); ++i) {
    bool both_nan = std::isnan(x[i]) && std::isnan(y[i]);
    if (!(x[i] == y[i]) && !both_nan)
      return ::testing::AssertionFailure() << a.describe() << " element " << i << ": " << x[i] << " vs " << y[i];
  }
  return ::testing::AssertionSuccess();
}

inline bool all_finite(const Tensor& t) {
  for (double v : t.to_vector())
    if (!std::isfinite(v)) return false;
  return true;
}


// ---- the parity harness shared by the fused-op tests ---------------------------------------
// Runs f on the inputs in dtype t on device d, then backward of Σ_k sum(out_k · c_k) with
// fixed random cotangents c_k: returns the outputs followed by the gradients of the inputs
// marked in `diff`, all as f64 cpu tensors. Integer inputs keep their dtype.
using Fn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
inline std::vector<Tensor> run(const Fn& f, const std::vector<Tensor>& in0, const std::vector<bool>& diff, DType t, Device d) {
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
inline void check_parity(const char* what, const Fn& f, const std::vector<Tensor>& in, const std::vector<bool>& diff,
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

}  // namespace ssm::test::gpu
