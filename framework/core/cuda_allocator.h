// The caching allocator for CUDA device memory. Installed with register_cuda_allocator()
// the first time a CUDA tensor is created; tensors use it through Storage, nobody calls it
// directly. Only in CUDA builds (SSM_WITH_CUDA).
//
//   Tensor x = Tensor::empty({1024, 1024}, DType::f32, Device::cuda(0));   // cudaMalloc once...
//   x = Tensor();                                                           // ...block cached
//   Tensor y = Tensor::empty({1024, 1024}, DType::f32, Device::cuda(0));   // same block, no cudaMalloc
//   AllocatorStats s = cuda::caching_allocator().stats(0);                  // allocated/reserved/peak
//
// Blocks are rounded up to size classes (512 bytes at least, then four classes per power of
// two, so at most 25% slack) and cached per (device, stream) when freed: a block is reused
// only by an allocation of the same class on the same stream, which the stream orders after
// every earlier use. A training loop therefore reaches a steady state with no
// cudaMalloc/cudaFree at all. A tensor used on a second stream must not be freed before
// that stream is done with it (synchronise, or keep it alive).
//
// Out of memory: the cache of the device is released and the cudaMalloc retried once;
// if it still fails, ssm::Error reports the requested size, the device's free/total memory
// and this allocator's usage. Debug: SSM_CUDA_POISON=1 (or set_poison) fills every new
// block with 0xFF bytes (NaN in every float dtype), so reads of unwritten memory show.
#pragma once
#if defined(SSM_WITH_CUDA)
#include <cstddef>
#include <memory>

#include "framework/core/allocator.h"

namespace ssm::cuda {

class CachingAllocator final : public Allocator {
 public:
  CachingAllocator();
  ~CachingAllocator() override;

  // On the current device and its current stream (Storage selects the device).
  void* allocate(size_t nbytes) override;
  void deallocate(void* p, size_t nbytes) override;
  AllocatorStats stats() const override;  // summed over devices
  AllocatorStats stats(int device) const;

  // Frees every cached (unused) block, after synchronising the devices that own them.
  void empty_cache();
  // Restarts peak tracking at the current allocation.
  void reset_peak(int device);
  void set_poison(bool on);

  // The size class a request of n bytes is served from.
  static size_t round_size(size_t n);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The process-wide allocator; created and registered on first use (never destroyed, so
// tensors released during static destruction still find it).
CachingAllocator& caching_allocator();

}  // namespace ssm::cuda

#endif  // SSM_WITH_CUDA
