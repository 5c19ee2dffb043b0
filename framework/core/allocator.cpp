#include "framework/core/allocator.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "framework/core/error.h"

#if defined(SSM_WITH_CUDA)
#include "framework/core/cuda_allocator.h"
#include "framework/core/cuda_stream.h"
#endif

namespace ssm {
namespace {

// 64-byte aligned host memory. Statistics are atomics so data-loader and checkpoint
// threads can allocate concurrently.
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    size_t rounded = (std::max<size_t>(nbytes, 1) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    SSM_CHECK(p != nullptr, "out of host memory: allocating {} bytes ({} bytes already allocated)",
              nbytes, allocated_.load());
    int64_t now = allocated_.fetch_add(int64_t(nbytes)) + int64_t(nbytes);
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    ++allocs_;
    return p;
  }
  void deallocate(void* p, size_t nbytes) override {
    std::free(p);
    allocated_.fetch_sub(int64_t(nbytes));
  }
  AllocatorStats stats() const override {
    AllocatorStats s;
    s.allocated = allocated_.load();
    s.reserved = s.allocated;
    s.peak_allocated = peak_.load();
    s.num_allocs = allocs_.load();
    s.num_system_allocs = s.num_allocs;
    return s;
  }

 private:
  std::atomic<int64_t> allocated_{0}, peak_{0}, allocs_{0};
};

std::atomic<Allocator*> g_cuda_allocator{nullptr};  // installed by the CUDA backend at first use

}  // namespace

Allocator& allocator_for(Device d) {
  static CpuAllocator cpu;
  if (d.is_cpu()) return cpu;
  SSM_CHECK(cuda_compiled(), "device {} requested but this binary was built without CUDA support "
            "(rebuild with nvcc available, or use device: cpu)", d.str());
#if defined(SSM_WITH_CUDA)
  static const int n = cuda_device_count();  // fixed for the life of the process
  SSM_CHECK(n > 0, "device {} requested but no CUDA device is visible to this process", d.str());
  SSM_CHECK(d.index >= 0 && d.index < n, "device {} requested but only {} CUDA device(s) are visible (cuda:0..cuda:{})",
            d.str(), n, n - 1);
  if (g_cuda_allocator.load() == nullptr) cuda::caching_allocator();  // registers itself
#endif
  return *g_cuda_allocator.load();
}

void register_cuda_allocator(Allocator* a) { g_cuda_allocator.store(a); }

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  allocator_ = &allocator_for(device);
#if defined(SSM_WITH_CUDA)
  // The CUDA allocator serves the current device: make it the tensor's.
  if (device.is_cuda()) {
    cuda::DeviceGuard guard(device.index);
    data_ = allocator_->allocate(nbytes);
    return;
  }
#endif
  data_ = allocator_->allocate(nbytes);
}

Storage::Storage(void* data, size_t nbytes, Device device, std::shared_ptr<void> keep_alive)
    : data_(data), nbytes_(nbytes), device_(device), keep_alive_(std::move(keep_alive)) {}

Storage::~Storage() {
  if (allocator_) allocator_->deallocate(data_, nbytes_);
}

}  // namespace ssm
