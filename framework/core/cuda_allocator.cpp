#include "framework/core/cuda_allocator.h"

#if defined(SSM_WITH_CUDA)
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "framework/core/cuda_stream.h"

namespace ssm::cuda {
namespace {

constexpr size_t kMinBlock = 512;

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (b >= 1024.0 && u < 6) {
    b /= 1024.0;
    ++u;
  }
  return fmt::format("{:.2f} {}", b, units[u]);
}

bool env_on(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && std::strcmp(v, "") != 0 && std::strcmp(v, "0") != 0;
}

}  // namespace

struct CachingAllocator::Impl {
  struct Block {
    size_t size;  // size class, bytes
    int device;
    cudaStream_t stream;
  };
  using PoolKey = std::tuple<int, cudaStream_t, size_t>;  // device, stream, size class

  mutable std::mutex mu;
  std::unordered_map<void*, Block> live;             // handed out
  std::map<PoolKey, std::vector<void*>> cached;      // freed, waiting for reuse
  std::vector<AllocatorStats> per_device;
  std::atomic<bool> poison{env_on("SSM_CUDA_POISON")};

  AllocatorStats& dev_stats(int d) {
    if (size_t(d) >= per_device.size()) per_device.resize(size_t(d) + 1);
    return per_device[size_t(d)];
  }

  // Frees the cached blocks of one device (all devices when device < 0). Caller holds mu.
  void release_cached(int device) {
    std::vector<int> synced;
    for (auto it = cached.begin(); it != cached.end();) {
      auto [d, stream, size] = it->first;
      if (device >= 0 && d != device) {
        ++it;
        continue;
      }
      DeviceGuard g(d);
      if (std::find(synced.begin(), synced.end(), d) == synced.end()) {
        // A cached block may still be read by queued kernels of its stream.
        SSM_CUDA_CHECK(cudaDeviceSynchronize());
        synced.push_back(d);
      }
      for (void* p : it->second) {
        SSM_CUDA_CHECK(cudaFree(p));
        dev_stats(d).reserved -= int64_t(size);
      }
      it = cached.erase(it);
    }
  }

  void* system_alloc(int device, size_t size, size_t requested) {
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // not sticky: clear it and retry with the cache released
      release_cached(device);
      e = cudaMalloc(&p, size);
    }
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      const AllocatorStats& s = dev_stats(device);
      SSM_FAIL(
          "CUDA out of memory on cuda:{}: tried to allocate {} ({} bytes, size class {} bytes); the device has {} "
          "free of {} total; this allocator holds {} allocated (peak {}) and {} reserved",
          device, human_bytes(double(requested)), requested, size, human_bytes(double(free_b)),
          human_bytes(double(total_b)), human_bytes(double(s.allocated)), human_bytes(double(s.peak_allocated)),
          human_bytes(double(s.reserved)));
    }
    if (e != cudaSuccess) detail::throw_cuda_error(e, "cudaMalloc", __FILE__, __LINE__);
    AllocatorStats& s = dev_stats(device);
    s.reserved += int64_t(size);
    ++s.num_system_allocs;
    return p;
  }
};

CachingAllocator::CachingAllocator() : impl_(std::make_unique<Impl>()) {}

CachingAllocator::~CachingAllocator() = default;

size_t CachingAllocator::round_size(size_t n) {
  if (n <= kMinBlock) return kMinBlock;
  SSM_CHECK(n <= (size_t(1) << 62), "CUDA allocation of {} bytes is beyond any device", n);
  // n in (2^k, 2^(k+1)]: round up to a multiple of 2^(k-2), i.e. 1.25, 1.5, 1.75 or 2 x 2^k.
  int k = std::bit_width(n - 1) - 1;
  size_t step = size_t(1) << (k - 2);
  return (n + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  int device = 0;
  SSM_CUDA_CHECK(cudaGetDevice(&device));
  cudaStream_t stream = current_stream(device);
  const size_t size = round_size(nbytes);
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->cached.find({device, stream, size});
    if (it != impl_->cached.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
    } else {
      p = impl_->system_alloc(device, size, nbytes);
    }
    impl_->live[p] = {size, device, stream};
    AllocatorStats& s = impl_->dev_stats(device);
    s.allocated += int64_t(size);
    s.peak_allocated = std::max(s.peak_allocated, s.allocated);
    ++s.num_allocs;
  }
  if (impl_->poison.load(std::memory_order_relaxed)) SSM_CUDA_CHECK(cudaMemsetAsync(p, 0xFF, size, stream));
  return p;
}

void CachingAllocator::deallocate(void* p, size_t) {
  if (p == nullptr) return;
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->live.find(p);
  if (it == impl_->live.end()) {
    // Called from destructors, which must not throw: report the bug and leak the block.
    std::fprintf(stderr, "ssm: CachingAllocator::deallocate of unknown pointer %p\n", p);
    return;
  }
  Impl::Block b = it->second;
  impl_->live.erase(it);
  impl_->cached[{b.device, b.stream, b.size}].push_back(p);
  impl_->dev_stats(b.device).allocated -= int64_t(b.size);
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  AllocatorStats t;
  for (const AllocatorStats& s : impl_->per_device) {
    t.allocated += s.allocated;
    t.reserved += s.reserved;
    t.peak_allocated += s.peak_allocated;
    t.num_allocs += s.num_allocs;
    t.num_system_allocs += s.num_system_allocs;
  }
  return t;
}

AllocatorStats CachingAllocator::stats(int device) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return size_t(device) < impl_->per_device.size() ? impl_->per_device[size_t(device)] : AllocatorStats{};
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->release_cached(-1);
}

void CachingAllocator::reset_peak(int device) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  AllocatorStats& s = impl_->dev_stats(device);
  s.peak_allocated = s.allocated;
}

void CachingAllocator::set_poison(bool on) { impl_->poison.store(on); }

CachingAllocator& caching_allocator() {
  static CachingAllocator* a = [] {
    auto* x = new CachingAllocator();  // intentionally never deleted (see header)
    register_cuda_allocator(x);
    return x;
  }();
  return *a;
}

}  // namespace ssm::cuda

#endif  // SSM_WITH_CUDA
