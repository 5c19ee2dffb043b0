#include "framework/core/cuda_stream.h"

#if defined(SSM_WITH_CUDA)
#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace ssm::cuda {

namespace detail {

[[noreturn]] void throw_cuda_error(cudaError_t e, const char* call, const char* file, int line) {
  // Clears the error when it is not sticky, so the process can go on after catching it.
  cudaGetLastError();
  bool local = e == cudaErrorMemoryAllocation || e == cudaErrorInvalidValue || e == cudaErrorInvalidDevice ||
               e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver;
  std::string hint = local || launch_sync()
                         ? ""
                         : " (the failure may come from an earlier asynchronous kernel; rerun with SSM_CUDA_SYNC=1 "
                           "to have the failing op reported)";
  ::ssm::detail::throw_error(file, line, fmt::format("CUDA call {} failed: {} ({}){}", call, cudaGetErrorString(e),
                                                     cudaGetErrorName(e), hint));
}

}  // namespace detail

namespace {

constexpr int kMaxDevices = 64;

std::atomic<bool>& sync_flag() {
  static std::atomic<bool> flag = [] {
    const char* v = std::getenv("SSM_CUDA_SYNC");
    return v != nullptr && std::strcmp(v, "") != 0 && std::strcmp(v, "0") != 0;
  }();
  return flag;
}

thread_local std::array<cudaStream_t, kMaxDevices> t_current{};

int checked_index(int device) {
  SSM_CHECK(device >= 0 && device < kMaxDevices, "CUDA device index {} out of range [0, {})", device, kMaxDevices);
  return device;
}

}  // namespace

bool launch_sync() { return sync_flag().load(std::memory_order_relaxed); }
void set_launch_sync(bool on) { sync_flag().store(on); }

DeviceGuard::DeviceGuard(int device) {
  int cur = 0;
  SSM_CUDA_CHECK(cudaGetDevice(&cur));
  if (cur != device) {
    SSM_CUDA_CHECK(cudaSetDevice(device));
    prev_ = cur;
  }
}

DeviceGuard::~DeviceGuard() {
  if (prev_ >= 0) cudaSetDevice(prev_);  // a destructor must not throw; setting back a valid device cannot fail
}

Stream Stream::create(int device, bool non_blocking) {
  DeviceGuard g(device);
  cudaStream_t s = nullptr;
  SSM_CUDA_CHECK(cudaStreamCreateWithFlags(&s, non_blocking ? cudaStreamNonBlocking : cudaStreamDefault));
  return Stream(s, device);
}

Stream::Stream(Stream&& o) noexcept : stream_(o.stream_), device_(o.device_) { o.stream_ = nullptr; }

Stream& Stream::operator=(Stream&& o) noexcept {
  if (this != &o) {
    if (stream_) cudaStreamDestroy(stream_);
    stream_ = o.stream_;
    device_ = o.device_;
    o.stream_ = nullptr;
  }
  return *this;
}

Stream::~Stream() {
  if (stream_) cudaStreamDestroy(stream_);  // returns at once; pending work still completes
  stream_ = nullptr;
}

void Stream::synchronize() const { SSM_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

Event::Event(int device, bool timing) : device_(device) {
  DeviceGuard g(device);
  SSM_CUDA_CHECK(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming));
}

Event::~Event() {
  if (event_) cudaEventDestroy(event_);
}

void Event::record(cudaStream_t stream) {
  DeviceGuard g(device_);
  SSM_CUDA_CHECK(cudaEventRecord(event_, stream));
}

void Event::wait(cudaStream_t stream) const { SSM_CUDA_CHECK(cudaStreamWaitEvent(stream, event_, 0)); }

void Event::synchronize() const { SSM_CUDA_CHECK(cudaEventSynchronize(event_)); }

float Event::elapsed_ms(const Event& later) const {
  float ms = 0;
  SSM_CUDA_CHECK(cudaEventElapsedTime(&ms, event_, later.event_));
  return ms;
}

cudaStream_t current_stream(int device) { return t_current[size_t(checked_index(device))]; }

void set_current_stream(int device, cudaStream_t stream) { t_current[size_t(checked_index(device))] = stream; }

StreamGuard::StreamGuard(int device, cudaStream_t stream) : device_(device), prev_(current_stream(device)) {
  set_current_stream(device, stream);
}

StreamGuard::~StreamGuard() { set_current_stream(device_, prev_); }

void synchronize(int device) {
  DeviceGuard g(device);
  SSM_CUDA_CHECK(cudaStreamSynchronize(current_stream(device)));
}

}  // namespace ssm::cuda

#endif  // SSM_WITH_CUDA
