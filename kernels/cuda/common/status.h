// How CUDA kernel launchers report failure without knowing about the framework: they
// return a Status naming the failing call and the library's error string, and the ops
// layer turns it into ssm::Error with the op, tensors and device.
//
//   Status s = unary(DType::f32, UnaryOp::exp, params, stream);
//   if (!s.ok()) ... s.call == "kernel launch", s.error == "invalid configuration argument"
#pragma once
#include <cuda_runtime_api.h>

namespace ssm::kernels::cuda {

struct Status {
  const char* call = nullptr;   // the failing call ("kernel launch", "cublasLtMatmul"); null on success
  const char* error = nullptr;  // the library's error string (static storage)
  int code = 0;                 // the library's status code

  bool ok() const { return call == nullptr; }
  static Status success() { return {}; }
  // Status of the last kernel launch on this thread (cudaGetLastError also clears it).
  static Status from_cuda(cudaError_t e, const char* call) {
    if (e == cudaSuccess) return {};
    return {call, cudaGetErrorString(e), int(e)};
  }
  static Status last_launch(const char* what = "kernel launch") { return from_cuda(cudaGetLastError(), what); }
};

}  // namespace ssm::kernels::cuda

// Returns early from a launcher when a CUDA runtime call fails.
#define SSM_KERNEL_TRY_CUDA(expr)                                                          \
  do {                                                                                     \
    cudaError_t ssm_kernel_err_ = (expr);                                                  \
    if (ssm_kernel_err_ != cudaSuccess) return ::ssm::kernels::cuda::Status::from_cuda(ssm_kernel_err_, #expr); \
  } while (0)
