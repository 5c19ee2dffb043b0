#include "framework/core/allocator.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "framework/core/error.h"

#if defined(SSM_WITH_CUDA)
#include <cuda_runtime.h>
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

Allocator* g_cuda_allocator = nullptr;  // installed once by the CUDA backend at start-up

}  // namespace

Allocator& allocator_for(Device d) {
  static CpuAllocator cpu;
  if (d.is_cpu()) return cpu;
  SSM_CHECK(cuda_compiled(), "device {} requested but this binary was built without CUDA support "
            "(rebuild with nvcc available, or use device: cpu)", d.str());
  SSM_CHECK(g_cuda_allocator != nullptr, "the CUDA allocator is not initialised");
  return *g_cuda_allocator;
}

void register_cuda_allocator(Allocator* a) { g_cuda_allocator = a; }

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  allocator_ = &allocator_for(device);
  data_ = allocator_->allocate(nbytes);
}

Storage::Storage(void* data, size_t nbytes, Device device, std::shared_ptr<void> keep_alive)
    : data_(data), nbytes_(nbytes), device_(device), keep_alive_(std::move(keep_alive)) {}

Storage::~Storage() {
  if (allocator_) allocator_->deallocate(data_, nbytes_);
}

}  // namespace ssm
