// Internal helpers shared by the ops files: argument checks, dtype dispatch and building
// kernel Params from tensors. Not part of the public API.
#pragma once
#include <initializer_list>

#include "framework/core/tensor.h"
#include "kernels/common/elementwise_params.h"

#if defined(SSM_WITH_CUDA)
#include "framework/core/cuda_stream.h"
#include "kernels/cuda/common/status.h"
#endif

namespace ssm::ops_detail {

// All defined tensors on one device; the error names the op and every tensor.
void check_same_device(const char* op, std::initializer_list<const Tensor*> ts);
// f32/f64 (CPU compute dtypes) or bf16 (CUDA); names the op on failure.
void check_float(const char* op, const Tensor& t);
void check_same_dtype(const char* op, std::initializer_list<const Tensor*> ts);
// Fails with a clear message for ops whose CUDA kernels are not built in.
[[noreturn]] void no_cuda_kernel(const char* op, const Tensor& t);

// `t` itself when contiguous (or undefined), else a contiguous copy made with recording
// suspended: for kernels that read plain arrays; the op records its own backward.
Tensor contiguous_raw(const Tensor& t);

// "op: what f32[3] cpu does not match ref_name f32[2, 5, 4] cpu (expected axes = [4])".
void check_shape(const char* op, const char* what, const Tensor& t, const Dims& want, const Tensor& ref,
                 const char* ref_name, const char* axes);

// Elementwise params for `out` (shape S) and inputs broadcastable to S.
kernels::ElementwiseParams make_params(const Tensor& out, std::initializer_list<const Tensor*> ins);

#if defined(SSM_WITH_CUDA)
// Turns a CUDA launcher's status into ssm::Error naming the op and device; in SSM_CUDA_SYNC
// debug mode it also waits for the stream, so a fault inside the kernel is reported here.
void check_cuda_launch(const char* op, const kernels::cuda::Status& s, Device d, cudaStream_t stream);

// Runs `launch(stream)` on d's current stream with d the current device, then checks it.
template <class F>
void cuda_launch(const char* op, Device d, F&& launch) {
  cuda::DeviceGuard guard(d.index);
  cudaStream_t stream = cuda::current_stream(d.index);
  check_cuda_launch(op, launch(stream), d, stream);
}
#endif

// Calls f.template operator()<T>() with T = float or double according to `t`.
template <class F>
decltype(auto) dispatch_float(const char* op, DType t, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    default: SSM_FAIL("{}: unsupported dtype {} on cpu (expected f32 or f64)", op, dtype_name(t));
  }
}

}  // namespace ssm::ops_detail

// SSM_CUDA_LAUNCH(op, device, expr): evaluates the kernel launcher call `expr` (which may
// use `stream`, the device's current stream) on `device` and checks its Status. In a CPU
// build it expands to the "no CUDA kernel" error and `expr` is never compiled, so ops files
// need no #if around their CUDA branches (only around the kernels/cuda includes).
#if defined(SSM_WITH_CUDA)
#define SSM_CUDA_LAUNCH(op, device, ...) \
  ::ssm::ops_detail::cuda_launch((op), (device), [&](cudaStream_t stream) { return (__VA_ARGS__); })
#else
#define SSM_CUDA_LAUNCH(op, device, ...) \
  SSM_FAIL("{}: device {} needs CUDA support, which this binary was built without", (op), (device).str())
#endif
