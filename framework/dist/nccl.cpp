#include "framework/dist/nccl.h"

#if defined(SSM_WITH_NCCL)
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "framework/core/cuda_stream.h"
#endif

namespace ssm::dist {

#if !defined(SSM_WITH_NCCL)

bool nccl_compiled() { return false; }

std::shared_ptr<Communicator> nccl_communicator(const std::shared_ptr<Communicator>& bootstrap, Device device,
                                                const std::string& name) {
  SSM_FAIL("nccl_communicator '{}' on {}: this binary was built without NCCL (a CUDA build enables it when libnccl "
           "and nccl.h are found)", name, device.str());
}

#else

bool nccl_compiled() { return true; }

namespace {

using Clock = std::chrono::steady_clock;

void check_nccl(ncclResult_t r, const char* call, const std::string& what) {
  if (r != ncclSuccess) [[unlikely]]
    SSM_FAIL("{}: {} failed: {}", what, call, ncclGetErrorString(r));
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::bf16: return ncclBfloat16;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::min: return ncclMin;
  }
  return ncclSum;
}

// Events are shared by the Work handles and the watchdog; the last owner destroys them.
using EventPtr = std::shared_ptr<CUevent_st>;
EventPtr make_event() {
  cudaEvent_t e = nullptr;
  SSM_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return EventPtr(e, [](cudaEvent_t x) { cudaEventDestroy(x); });
}

// Watches the collectives of one communicator from a thread of its own: when one is not
// done by its deadline, or NCCL reports an asynchronous error, it aborts the NCCL
// communicator (so the kernels waiting for a dead peer exit and no host call stays
// blocked) and keeps the message for the next call on the communicator to throw.
class Watchdog {
 public:
  Watchdog(ncclComm_t comm, int device, double timeout_s, std::string label)
      : comm_(comm), device_(device), timeout_(timeout_s), label_(std::move(label)), thread_([this] { loop(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void track(EventPtr done, std::string what) {
    std::lock_guard<std::mutex> l(mu_);
    pending_.push_back({std::move(done), Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                           std::chrono::duration<double>(timeout_)),
                        std::move(what)});
  }
  // Empty while the communicator is healthy.
  std::string error() const {
    std::lock_guard<std::mutex> l(mu_);
    return error_;
  }
  bool aborted() const { return aborted_.load(); }

 private:
  struct Pending {
    EventPtr done;
    Clock::time_point deadline;
    std::string what;
  };

  void loop() {
    cudaSetDevice(device_);
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
      cv_.wait_for(l, std::chrono::milliseconds(50));
      if (!error_.empty()) continue;
      ncclResult_t async = ncclSuccess;
      if (ncclCommGetAsyncError(comm_, &async) == ncclSuccess && async != ncclSuccess && async != ncclInProgress) {
        fail(fmt::format("{}: NCCL reported an asynchronous error: {}", label_, ncclGetErrorString(async)));
        continue;
      }
      while (!pending_.empty()) {
        Pending& p = pending_.front();
        const cudaError_t q = cudaEventQuery(p.done.get());
        if (q == cudaSuccess) {
          pending_.pop_front();
          continue;
        }
        if (q != cudaErrorNotReady) {
          fail(fmt::format("{}: CUDA error while waiting: {}", p.what, cudaGetErrorString(q)));
        } else if (Clock::now() > p.deadline) {
          fail(fmt::format("{}: did not finish within {} s (SSM_COLLECTIVE_TIMEOUT_S): a peer rank is dead, hung, or "
                           "calls collectives in a different order", p.what, timeout_));
        }
        break;
      }
    }
  }
  // Called with mu_ held.
  void fail(std::string msg) {
    error_ = std::move(msg);
    std::fprintf(stderr, "ssm NCCL watchdog: %s; aborting the communicator\n", error_.c_str());
    aborted_ = true;
    ncclCommAbort(comm_);
    pending_.clear();
  }

  ncclComm_t comm_;
  int device_;
  double timeout_;
  std::string label_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> pending_;
  std::string error_;
  std::atomic<bool> aborted_{false};
  bool stop_ = false;
  std::thread thread_;  // last: starts after everything above is initialised
};

class NcclCommunicator final : public Communicator, public std::enable_shared_from_this<NcclCommunicator> {
 public:
  NcclCommunicator(ncclComm_t comm, std::shared_ptr<Communicator> bootstrap, int device, std::string name)
      : comm_(comm), bootstrap_(std::move(bootstrap)), device_(device), name_(std::move(name)),
        stream_(cuda::Stream::create(device, /*non_blocking=*/true)), ready_(make_event()) {
    watchdog_ = std::make_unique<Watchdog>(comm_, device_, collective_timeout_s(), describe());
  }
  ~NcclCommunicator() override {
    const bool aborted = watchdog_->aborted();
    watchdog_.reset();
    if (!aborted) ncclCommDestroy(comm_);
  }

  int rank() const override { return bootstrap_->rank(); }
  int size() const override { return bootstrap_->size(); }
  const std::string& name() const override { return name_; }
  const char* backend() const override { return "nccl"; }
  bool supports(Device d) const override { return d.is_cuda() && d.index == device_; }

  void check_healthy(const std::string& what) const {
    const std::string e = watchdog_->error();
    SSM_CHECK(e.empty(), "{}: the NCCL communicator was aborted earlier: {}", what, e);
  }
  // The caller's current stream waits (on the device, not the host) for `done`.
  void caller_waits(const EventPtr& done) const {
    cuda::DeviceGuard g(device_);
    SSM_CUDA_CHECK(cudaStreamWaitEvent(cuda::current_stream(device_), done.get(), 0));
  }

 protected:
  std::unique_ptr<Work> all_reduce_impl(const Tensor& buf, ReduceOp op, const std::string& what) override;
  void all_gather_impl(const Tensor& in, const Tensor& out, const std::string& what) override {
    caller_waits(launch(what, "ncclAllGather", [&](cudaStream_t s) {
      return ncclAllGather(in.raw_data(), out.raw_data(), size_t(in.numel()), nccl_type(in.dtype()), comm_, s);
    }));
  }
  void reduce_scatter_impl(const Tensor& in, const Tensor& out, ReduceOp op, const std::string& what) override {
    caller_waits(launch(what, "ncclReduceScatter", [&](cudaStream_t s) {
      return ncclReduceScatter(in.raw_data(), out.raw_data(), size_t(out.numel()), nccl_type(in.dtype()), nccl_op(op),
                               comm_, s);
    }));
  }
  void broadcast_impl(const Tensor& buf, int root, const std::string& what) override {
    caller_waits(launch(what, "ncclBroadcast", [&](cudaStream_t s) {
      return ncclBroadcast(buf.raw_data(), buf.raw_data(), size_t(buf.numel()), nccl_type(buf.dtype()), root, comm_, s);
    }));
  }
  void barrier_impl(const std::string& what) override;
  std::shared_ptr<Communicator> split_impl(int color, int key, const std::string& name,
                                           const std::string& what) override {
    return nccl_communicator(bootstrap_->split(color, key, name), Device::cuda(device_), name);
  }

 private:
  // Enqueues `op` on the communication stream after the work already on the caller's
  // stream; returns an event recorded after it (also handed to the watchdog).
  template <class F>
  EventPtr launch(const std::string& what, const char* call, F&& op) {
    check_healthy(what);
    cuda::DeviceGuard g(device_);
    SSM_CUDA_CHECK(cudaEventRecord(ready_.get(), cuda::current_stream(device_)));
    SSM_CUDA_CHECK(cudaStreamWaitEvent(stream_.raw(), ready_.get(), 0));
    check_nccl(op(stream_.raw()), call, what);
    EventPtr done = make_event();
    SSM_CUDA_CHECK(cudaEventRecord(done.get(), stream_.raw()));
    watchdog_->track(done, what);
    return done;
  }

  ncclComm_t comm_;
  std::shared_ptr<Communicator> bootstrap_;  // rank/size, splits
  int device_;
  std::string name_;
  cuda::Stream stream_;
  EventPtr ready_;
  std::unique_ptr<Watchdog> watchdog_;
};

class NcclWork final : public Work {
 public:
  NcclWork(std::shared_ptr<NcclCommunicator> comm, EventPtr done, std::string what)
      : comm_(std::move(comm)), done_(std::move(done)), what_(std::move(what)) {}
  ~NcclWork() override {
    // Memory safety: later work on the caller's stream must not reuse the buffer early.
    if (!waited_) try {
        comm_->caller_waits(done_);
      } catch (const Error&) {
      }
  }
  bool test() override {
    comm_->check_healthy(what_);
    const cudaError_t e = cudaEventQuery(done_.get());
    if (e == cudaErrorNotReady) return false;
    SSM_CUDA_CHECK(e);
    return true;
  }
  void wait() override {
    comm_->check_healthy(what_);
    if (!waited_) comm_->caller_waits(done_);
    waited_ = true;
  }

 private:
  std::shared_ptr<NcclCommunicator> comm_;
  EventPtr done_;
  std::string what_;
  bool waited_ = false;
};

std::unique_ptr<Work> NcclCommunicator::all_reduce_impl(const Tensor& buf, ReduceOp op, const std::string& what) {
  EventPtr done = launch(what, "ncclAllReduce", [&](cudaStream_t s) {
    return ncclAllReduce(buf.raw_data(), buf.raw_data(), size_t(buf.numel()), nccl_type(buf.dtype()), nccl_op(op),
                         comm_, s);
  });
  return std::make_unique<NcclWork>(shared_from_this(), std::move(done), what);
}

void NcclCommunicator::barrier_impl(const std::string& what) {
  // A one-element all-reduce, waited for on the host; the watchdog bounds the wait.
  const Tensor one = Tensor::zeros({1}, DType::i32, Device::cuda(device_));
  EventPtr done = launch(what, "ncclAllReduce", [&](cudaStream_t s) {
    return ncclAllReduce(one.raw_data(), one.raw_data(), 1, ncclInt32, ncclSum, comm_, s);
  });
  for (;;) {
    const cudaError_t e = cudaEventQuery(done.get());
    if (e == cudaSuccess) break;
    if (e != cudaErrorNotReady) SSM_CUDA_CHECK(e);
    check_healthy(what);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  caller_waits(done);
}

}  // namespace

std::shared_ptr<Communicator> nccl_communicator(const std::shared_ptr<Communicator>& bootstrap, Device device,
                                                const std::string& name) {
  SSM_CHECK(bootstrap != nullptr, "nccl_communicator '{}': no bootstrap communicator", name);
  const std::string what = fmt::format("creating NCCL communicator '{}' over {}", name, bootstrap->describe());
  SSM_CHECK(device.is_cuda() && device.index < cuda_device_count(), "{}: {} is not a CUDA device of this machine ({} "
            "visible)", what, device.str(), cuda_device_count());
  static_assert(sizeof(ncclUniqueId) % sizeof(int64_t) == 0);
  ncclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  const Tensor buf = Tensor::zeros({int64_t(sizeof(id) / sizeof(int64_t))}, DType::i64);
  if (bootstrap->rank() == 0) {
    check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId", what);
    std::memcpy(buf.raw_data(), &id, sizeof(id));
  }
  bootstrap->broadcast(buf, 0);
  std::memcpy(&id, buf.raw_data(), sizeof(id));
  bootstrap->barrier();  // everyone is here (with the bootstrap's deadline) before NCCL's blocking init
  cuda::DeviceGuard g(device.index);
  ncclComm_t comm = nullptr;
  check_nccl(ncclCommInitRank(&comm, bootstrap->size(), id, bootstrap->rank()), "ncclCommInitRank", what);
  return std::make_shared<NcclCommunicator>(comm, bootstrap, device.index, name);
}

#endif  // SSM_WITH_NCCL

}  // namespace ssm::dist
