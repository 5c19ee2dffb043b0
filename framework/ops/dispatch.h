// Internal helpers shared by the ops files: argument checks, dtype dispatch and building
// kernel Params from tensors. Not part of the public API.
#pragma once
#include <initializer_list>

#include "framework/core/tensor.h"
#include "kernels/common/elementwise_params.h"

namespace ssm::ops_detail {

// All defined tensors on one device; the error names the op and every tensor.
void check_same_device(const char* op, std::initializer_list<const Tensor*> ts);
// f32/f64 (CPU compute dtypes) or bf16 (CUDA); names the op on failure.
void check_float(const char* op, const Tensor& t);
void check_same_dtype(const char* op, std::initializer_list<const Tensor*> ts);
// Fails with a clear message for ops whose CUDA kernels are not built in.
[[noreturn]] void no_cuda_kernel(const char* op, const Tensor& t);

// Elementwise params for `out` (shape S) and inputs broadcastable to S.
kernels::ElementwiseParams make_params(const Tensor& out, std::initializer_list<const Tensor*> ins);

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
