// The CUDA caching allocator (size classes, reuse, per-stream pools, statistics, the
// out-of-memory error), streams/events, SSM_CUDA_CHECK and the SSM_CUDA_SYNC debug mode.
#include "tests/cuda/cuda_test_util.h"

#if defined(SSM_WITH_CUDA)
#include <cuda_runtime.h>

#include "framework/ops/dispatch.h"
#endif

namespace ssm {
namespace {

using test::gpu::as;
using test::gpu::gpu;
using test::gpu::random;

class CudaAllocator : public test::gpu::CudaTest {};

#if defined(SSM_WITH_CUDA)

TEST_F(CudaAllocator, SizeClassesRoundUpByAtMostAQuarter) {
  using A = cuda::CachingAllocator;
  EXPECT_EQ(A::round_size(1), 512u);
  EXPECT_EQ(A::round_size(512), 512u);
  EXPECT_EQ(A::round_size(513), 640u);
  EXPECT_EQ(A::round_size(1024), 1024u);
  EXPECT_EQ(A::round_size(1025), 1280u);
  for (size_t n : {size_t(777), size_t(123457), size_t(3) << 20, (size_t(1) << 30) + 1}) {
    size_t r = A::round_size(n);
    EXPECT_GE(r, n);
    EXPECT_LE(double(r), 1.25 * double(n) + 512) << n;
    EXPECT_EQ(A::round_size(r), r) << "a size class maps to itself";
  }
}

TEST_F(CudaAllocator, StatsTrackAllocatedReservedPeak) {
  cuda::CachingAllocator& a = cuda::caching_allocator();
  const AllocatorStats s0 = a.stats(0);
  const size_t bytes = size_t(3) << 20;
  {
    Tensor t = Tensor::empty({int64_t(bytes / 4)}, DType::f32, gpu());
    AllocatorStats s1 = a.stats(0);
    EXPECT_EQ(s1.allocated - s0.allocated, int64_t(cuda::CachingAllocator::round_size(bytes)));
    EXPECT_GE(s1.reserved, s1.allocated);
    EXPECT_GE(s1.peak_allocated, s1.allocated);
    EXPECT_EQ(s1.num_allocs, s0.num_allocs + 1);
  }
  AllocatorStats s2 = a.stats(0);
  EXPECT_EQ(s2.allocated, s0.allocated) << "freed memory returns to the cache";
  EXPECT_GE(s2.reserved, s0.reserved) << "the cache keeps it reserved";
  EXPECT_GE(s2.peak_allocated, s0.allocated + int64_t(bytes));
  a.reset_peak(0);
  EXPECT_EQ(a.stats(0).peak_allocated, a.stats(0).allocated);
  AllocatorStats total = a.stats();
  EXPECT_GE(total.reserved, s2.reserved);
}

// A training-loop-like sequence reaches a steady state with no cudaMalloc at all.
TEST_F(CudaAllocator, SteadyStateMakesNoSystemAllocations) {
  cuda::CachingAllocator& a = cuda::caching_allocator();
  Tensor w = as(random({64, 48}, 1, DType::f32), DType::f32, gpu()).set_requires_grad(true);
  Tensor x = as(random({5, 7, 48}, 2, DType::f32), DType::f32, gpu());
  auto step = [&] {
    Tensor loss = ssm::mean(ssm::silu(ssm::linear(x, w)) * 0.5 + ssm::square(ssm::linear(x, w)));
    ssm::backward(loss);
    w.zero_grad();
  };
  step();
  step();
  int64_t before = a.stats(0).num_system_allocs;
  for (int i = 0; i < 5; ++i) step();
  EXPECT_EQ(a.stats(0).num_system_allocs, before);
}

TEST_F(CudaAllocator, BlocksAreReusedOnlyOnTheirStream) {
  cuda::CachingAllocator& a = cuda::caching_allocator();
  const int64_t n = 777777;  // an unusual size class
  { Tensor t = Tensor::empty({n}, DType::f32, gpu()); }
  int64_t sys = a.stats(0).num_system_allocs;
  { Tensor t = Tensor::empty({n}, DType::f32, gpu()); }
  EXPECT_EQ(a.stats(0).num_system_allocs, sys) << "same stream, same class: reused";
  cuda::Stream side = cuda::Stream::create(0);
  {
    cuda::StreamGuard on(side);
    EXPECT_EQ(cuda::current_stream(0), side.raw());
    Tensor t = Tensor::empty({n}, DType::f32, gpu());
    EXPECT_EQ(a.stats(0).num_system_allocs, sys + 1) << "another stream has its own pool";
    // Ops run on the side stream and give the same results.
    Tensor x0 = random({1000}, 3, DType::f32, -5, 5);
    Tensor y = ssm::exp(as(x0, DType::f32, gpu()));
    EXPECT_TRUE(test::gpu::close_to_reference(y, ssm::exp(x0), ssm::exp(as(x0, DType::f64)), DType::f32));
    side.synchronize();
  }
  EXPECT_EQ(cuda::current_stream(0), nullptr);
}

TEST_F(CudaAllocator, EmptyCacheReleasesUnusedBlocks) {
  cuda::CachingAllocator& a = cuda::caching_allocator();
  { Tensor t = Tensor::empty({1 << 20}, DType::f32, gpu()); }
  a.empty_cache();
  AllocatorStats s = a.stats(0);
  EXPECT_EQ(s.reserved, s.allocated);
}

// Asking for a petabyte raises ssm::Error with the size, the device's memory and the
// allocator's usage, and leaves the allocator usable.
TEST_F(CudaAllocator, OutOfMemoryIsAnErrorWithContext) {
  const int64_t petabyte = int64_t(1) << 50;
  try {
    Tensor t = Tensor::empty({petabyte / 4}, DType::f32, gpu());
    FAIL() << "allocating 1 PiB succeeded?";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("out of memory"), std::string::npos) << m;
    EXPECT_NE(m.find("cuda:0"), std::string::npos) << m;
    EXPECT_NE(m.find(std::to_string(petabyte)), std::string::npos) << m;
    EXPECT_NE(m.find("1.00 PiB"), std::string::npos) << m;
    EXPECT_NE(m.find("free of"), std::string::npos) << m;
    EXPECT_NE(m.find("total"), std::string::npos) << m;
    EXPECT_NE(m.find("reserved"), std::string::npos) << m;
    std::printf("[ info ] %s\n", m.c_str());
  }
  Tensor ok = ssm::full({3}, 1.5, DType::f32, gpu());
  EXPECT_EQ(ok.to_vector(), (std::vector<double>{1.5, 1.5, 1.5}));
}

TEST_F(CudaAllocator, InvalidDeviceIsAnError) {
  try {
    Tensor t = Tensor::empty({3}, DType::f32, Device::cuda(99));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda:99"), std::string::npos) << e.what();
  }
}

TEST_F(CudaAllocator, PoisonFillsNewBlocksWithNaN) {
  // The fixture has poison on: fresh memory reads as NaN in every float dtype.
  for (DType t : {DType::f32, DType::bf16, DType::f64}) {
    Tensor e = Tensor::empty({5}, t, gpu());
    for (double v : e.to_vector()) EXPECT_TRUE(std::isnan(v)) << dtype_name(t);
  }
}

TEST_F(CudaAllocator, CudaCheckNamesTheCallAndError) {
  try {
    SSM_CUDA_CHECK(cudaSetDevice(12345));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("cudaSetDevice(12345)"), std::string::npos) << m;
    EXPECT_NE(m.find("allocator_test.cpp"), std::string::npos) << m;
    EXPECT_NE(m.find("cudaErrorInvalidDevice"), std::string::npos) << m;
  }
  // Not sticky: the device still works.
  EXPECT_EQ(ssm::full({2}, 3.0, DType::f32, gpu()).to_vector(), (std::vector<double>{3, 3}));
}

TEST_F(CudaAllocator, EventsTimeAndOrderStreams) {
  cuda::Stream s = cuda::Stream::create(0, /*non_blocking=*/true);
  cuda::Event start(0, true), stop(0, true);
  Tensor x = as(random({1 << 16}, 4, DType::f32), DType::f32, gpu());
  cuda::Event ready(0);
  ready.record(cuda::current_stream(0));
  Tensor y;
  {
    cuda::StreamGuard on(s);
    ready.wait(s.raw());  // x was written on the default stream
    start.record(s.raw());
    y = ssm::tanh(x);
    stop.record(s.raw());
  }
  stop.synchronize();
  EXPECT_GE(start.elapsed_ms(stop), 0.f);
  EXPECT_EQ(y.to_vector(), ssm::tanh(x).to_vector());
}

// SSM_CUDA_SYNC: ops synchronise after launching; a failed launch names the op.
TEST_F(CudaAllocator, SyncDebugModeAndLaunchErrorsNameTheOp) {
  bool was = cuda::launch_sync();
  cuda::set_launch_sync(true);
  Tensor x = as(random({33, 65}, 5, DType::f32), DType::f32, gpu());
  Tensor y = ssm::sum(ssm::matmul(ssm::silu(x), x, false, true), {1});
  EXPECT_EQ(y.shape(), (Dims{33}));
  cuda::set_launch_sync(was);
  kernels::cuda::Status bad{"kernel launch", "too many resources requested for launch", 7};
  try {
    ops_detail::check_cuda_launch("fancy_op", bad, gpu(), nullptr);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("fancy_op"), std::string::npos) << m;
    EXPECT_NE(m.find("too many resources"), std::string::npos) << m;
    EXPECT_NE(m.find("cuda:0"), std::string::npos) << m;
  }
}

#else

TEST_F(CudaAllocator, SkippedWithoutCuda) {}

#endif

}  // namespace
}  // namespace ssm
