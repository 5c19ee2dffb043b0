// Performance smoke test: prints achieved bandwidth of the memory-bound kernels against a
// device-to-device cudaMemcpy (the copy ceiling) and GEMM rates, with loose floors that
// catch a broken fast path (a GEMM that silently fell back to the SIMT kernel, a copy that
// lost coalescing). Not a benchmark (bench/ holds those); skipped under memcheck by
// tools/gpu-check.sh. Timed with CUDA events: median of 10 runs after 2 warm-ups.
#include <functional>

#include "tests/cuda/cuda_test_util.h"

#if defined(SSM_WITH_CUDA)
#include <cuda_runtime.h>
#endif

namespace ssm {
namespace {

using test::gpu::as;
using test::gpu::gpu;
using test::gpu::random;

class CudaPerf : public test::gpu::CudaTest {
 protected:
  void SetUp() override {
    test::gpu::CudaTest::SetUp();
#if defined(SSM_WITH_CUDA)
    if (!IsSkipped()) cuda::caching_allocator().set_poison(false);  // no memset per allocation
#endif
  }
};

#if defined(SSM_WITH_CUDA)

double median_ms(const std::function<void()>& f) {
  cuda::Event a(0, true), b(0, true);
  for (int i = 0; i < 2; ++i) f();
  std::vector<float> t;
  for (int i = 0; i < 10; ++i) {
    a.record(cuda::current_stream(0));
    f();
    b.record(cuda::current_stream(0));
    b.synchronize();
    t.push_back(a.elapsed_ms(b));
  }
  std::sort(t.begin(), t.end());
  return 0.5 * (t[4] + t[5]);
}

TEST_F(CudaPerf, MemoryBoundKernelsAgainstCopyCeiling) {
  const int64_t n = int64_t(1) << 28;  // 2^28 f32 = 1 GiB
  Tensor x = ssm::full({n}, 1.5, DType::f32, gpu()), y = ssm::full({n}, 0.5, DType::f32, gpu());
  double ceiling_ms = median_ms([&] {
    SSM_CUDA_CHECK(cudaMemcpyAsync(y.raw_data(), x.raw_data(), x.nbytes(), cudaMemcpyDeviceToDevice, nullptr));
  });
  auto gbs = [](double bytes, double ms) { return bytes / ms / 1e6; };
  double ceiling = gbs(2.0 * double(x.nbytes()), ceiling_ms);
  std::printf("[ perf ] %-34s %8.1f GB/s (read + write)\n", "cudaMemcpy D2D (ceiling)", ceiling);
  struct Row {
    const char* name;
    double bytes;
    std::function<void()> f;
    bool floor = true;  // a transposed copy is uncoalesced on one side: reported, not judged
  };
  Tensor xb = ssm::to(x, DType::bf16), yb = ssm::to(y, DType::bf16);
  Tensor sq = x.view({16384, 16384}), sqo = y.view({16384, 16384});
  Tensor rows = x.view({16384, 16384});
  double fb = double(x.nbytes()), hb = double(xb.nbytes());
  std::vector<Row> table = {
      {"copy_ f32 contiguous", 2 * fb, [&] { copy_(y, x); }},
      {"copy_ bf16 contiguous", 2 * hb, [&] { copy_(yb, xb); }},
      {"cast f32 -> bf16", fb + hb, [&] { copy_(yb, x); }},
      {"add_ f32 (y += a x)", 3 * fb, [&] { add_(y, x, 0.5); }},
      {"add_ bf16", 3 * hb, [&] { add_(yb, xb, 0.5); }},
      {"mul f32 (new output)", 3 * fb, [&] { Tensor z = ssm::mul(x, y); }},
      {"silu bf16 (new output)", 2 * hb, [&] { Tensor z = ssm::silu(xb); }},
      {"transpose copy f32 16384^2", 2 * fb, [&] { copy_(sqo, sq.transpose(0, 1)); }, false},
      {"row sum f32 16384x16384", fb, [&] { Tensor s = ssm::sum(rows, {1}); }},
      {"full sum f32 2^28", fb, [&] { Tensor s = ssm::sum(x); }},
  };
  for (const Row& r : table) {
    double g = gbs(r.bytes, median_ms(r.f));
    std::printf("[ perf ] %-34s %8.1f GB/s  %5.1f%% of copy\n", r.name, g, 100 * g / ceiling);
    // Loose floor: catches a kernel that lost coalescing or parallelism, not a tuning regression.
    if (r.floor) {
      EXPECT_GT(g, 0.25 * ceiling) << r.name;
    }
  }
}

TEST_F(CudaPerf, GemmRates) {
  struct Case {
    DType t;
    int64_t n;
    double floor_tflops;  // far below cuBLASLt, far above the SIMT fallback
  };
  for (Case c : {Case{DType::bf16, 4096, 150}, Case{DType::f32, 4096, 10}, Case{DType::f64, 2048, 5}}) {
    Tensor a = as(random({c.n, c.n}, 1, DType::f32), c.t, gpu()), b = as(random({c.n, c.n}, 2, DType::f32), c.t, gpu());
    double ms = median_ms([&] { Tensor y = ssm::matmul(a, b, false, true); });
    double tflops = 2.0 * double(c.n) * double(c.n) * double(c.n) / ms / 1e9;
    std::printf("[ perf ] GEMM %-4s %5lld^3 (a·bᵀ)            %8.1f TFLOP/s\n", dtype_name(c.t), (long long)c.n, tflops);
    EXPECT_GT(tflops, c.floor_tflops) << dtype_name(c.t);
  }
  set_matmul_allow_tf32(true);
  Tensor a = as(random({4096, 4096}, 3, DType::f32), DType::f32, gpu());
  double ms = median_ms([&] { Tensor y = ssm::matmul(a, a); });
  set_matmul_allow_tf32(false);
  std::printf("[ perf ] GEMM f32 4096^3 with TF32 allowed       %8.1f TFLOP/s\n", 2.0 * 4096.0 * 4096 * 4096 / ms / 1e9);
}

#else

TEST_F(CudaPerf, SkippedWithoutCuda) {}

#endif

}  // namespace
}  // namespace ssm
