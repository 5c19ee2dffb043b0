// CUDA streams, events and device selection, with every runtime call checked.
// Only in CUDA builds (SSM_WITH_CUDA); nothing here is needed by CPU code.
//
//   SSM_CUDA_CHECK(cudaMemsetAsync(p, 0, n, stream));      // failure -> ssm::Error with call and file:line
//   cuda::Stream side = cuda::Stream::create(0);             // an owned stream on cuda:0
//   {
//     cuda::StreamGuard on(side);                            // ops on cuda:0 now enqueue on `side`
//     Tensor y = ssm::exp(x);
//   }
//   cuda::Event done(0);  done.record(side.raw());  done.synchronize();
//
// Ops enqueue on the *current stream* of their device: the legacy default stream unless a
// StreamGuard says otherwise (a thread-local setting, like the current device in CUDA
// itself). The caching allocator keeps one pool per stream, so memory freed on one stream
// is reused only by later work of that stream, in stream order.
//
// Debug mode: with SSM_CUDA_SYNC=1 in the environment (or set_launch_sync(true)), every op
// synchronises after its launch, so an asynchronous fault is reported by the op that caused it.
#pragma once
#if defined(SSM_WITH_CUDA)
#include <cuda_runtime_api.h>

#include "framework/core/error.h"

namespace ssm::cuda {

namespace detail {
// Throws ssm::Error("file:line: CUDA call `call` failed: <message> (<name>)"), with a hint
// to rerun under SSM_CUDA_SYNC=1 when the error may come from an earlier asynchronous launch.
[[noreturn]] void throw_cuda_error(cudaError_t e, const char* call, const char* file, int line);
}  // namespace detail

// SSM_CUDA_SYNC debug mode: ops synchronise after each launch and report failures as theirs.
// Read from the environment once; set_launch_sync overrides it.
bool launch_sync();
void set_launch_sync(bool on);

// Switches the calling thread's current device for a scope (no-op when already current).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = -1;
};

// An owned CUDA stream (move-only); destroyed with the object.
class Stream {
 public:
  // A new stream on `device`. Blocking by default: it still orders with the legacy default
  // stream, so mixing it with code that uses the default stream stays correct.
  static Stream create(int device, bool non_blocking = false);
  Stream(Stream&& o) noexcept;
  Stream& operator=(Stream&& o) noexcept;
  ~Stream();

  cudaStream_t raw() const { return stream_; }
  int device() const { return device_; }
  void synchronize() const;

 private:
  Stream(cudaStream_t s, int device) : stream_(s), device_(device) {}
  cudaStream_t stream_ = nullptr;
  int device_ = 0;
};

// An owned CUDA event on `device`; timing events can measure elapsed time.
class Event {
 public:
  explicit Event(int device, bool timing = false);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void record(cudaStream_t stream);
  void wait(cudaStream_t stream) const;  // `stream` waits for this event (no host block)
  void synchronize() const;              // the host waits
  float elapsed_ms(const Event& later) const;  // both recorded, timing events
  cudaEvent_t raw() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
  int device_ = 0;
};

// The calling thread's current stream for `device` (nullptr = legacy default stream).
cudaStream_t current_stream(int device);
void set_current_stream(int device, cudaStream_t stream);

// Makes `stream` current on its device for a scope.
class StreamGuard {
 public:
  explicit StreamGuard(const Stream& s) : StreamGuard(s.device(), s.raw()) {}
  StreamGuard(int device, cudaStream_t stream);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  int device_;
  cudaStream_t prev_;
};

// Waits for all work on `device`'s current stream.
void synchronize(int device);

}  // namespace ssm::cuda

#define SSM_CUDA_CHECK(expr)                                                        \
  do {                                                                              \
    cudaError_t ssm_cuda_err_ = (expr);                                             \
    if (ssm_cuda_err_ != cudaSuccess) [[unlikely]]                                  \
      ::ssm::cuda::detail::throw_cuda_error(ssm_cuda_err_, #expr, __FILE__, __LINE__); \
  } while (0)

#endif  // SSM_WITH_CUDA
