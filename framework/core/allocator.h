// Memory for tensors. CPU memory is 64-byte aligned; CUDA memory comes from the
// caching allocator registered by the CUDA backend (framework/core/cuda_allocator).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "framework/core/device.h"

namespace ssm {

struct AllocatorStats {
  int64_t allocated = 0;       // bytes handed out and not yet returned
  int64_t reserved = 0;        // bytes held from the system (>= allocated)
  int64_t peak_allocated = 0;  // high-water mark of `allocated`
  int64_t num_allocs = 0;      // calls to allocate()
  int64_t num_system_allocs = 0;  // calls that reached malloc/cudaMalloc
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* p, size_t nbytes) = 0;
  virtual AllocatorStats stats() const = 0;
};

// The process-wide allocator for a device. CPU: aligned malloc with statistics.
Allocator& allocator_for(Device d);
// Installs the CUDA allocator; the CUDA backend registers its caching allocator at first use.
void register_cuda_allocator(Allocator* a);

// A reference-counted block of device memory shared by tensors and views.
class Storage {
 public:
  Storage(size_t nbytes, Device device);
  // Wraps memory owned elsewhere (e.g. an mmap'd shard); `keep_alive` is released last.
  Storage(void* data, size_t nbytes, Device device, std::shared_ptr<void> keep_alive);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  Allocator* allocator_ = nullptr;  // null when not owning
  std::shared_ptr<void> keep_alive_;
};

}  // namespace ssm
