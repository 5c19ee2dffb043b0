// CUDA elementwise kernels over strided operands: the same ElementwiseParams and the same
// semantics as kernels/cpu/elementwise.h, for f32, bf16 (loaded and computed in fp32,
// rounded to nearest even on store) and f64.
//
//   ElementwiseParams p;  p.ndim = 2; p.shape = {4, 3};
//   p.out = {y, {3, 1}}; p.a = {x, {3, 1}}; p.b = {bias, {0, 1}};       // bias broadcast over rows
//   Status s = binary(DType::bf16, BinaryOp::add, p, stream);            // y = x + bias, on `stream`
//
// Launchers enqueue on `stream` and return at once; a failed launch comes back as a Status.
// Before launching, axes that every operand walks contiguously are merged, so a
// contiguous or singly-strided tensor of any rank runs the flat (division-free) kernel;
// other layouts use an N-d kernel with 32-bit index arithmetic, split into pieces when a
// tensor has 2^31 elements or more.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/common/elementwise_params.h"
#include "kernels/cuda/common/status.h"

namespace ssm::kernels::cuda {

// out = alpha * op(a) + beta
Status unary(DType t, UnaryOp op, const ElementwiseParams& p, cudaStream_t stream);
// out = op(a, b)
Status binary(DType t, BinaryOp op, const ElementwiseParams& p, cudaStream_t stream);
// out = b * op'(a): the gradient of a unary op at `a` times the incoming gradient `b`
Status unary_bwd(DType t, UnaryOp op, const ElementwiseParams& p, cudaStream_t stream);
// out = c != 0 ? a : b   (all of dtype t)
Status where(DType t, const ElementwiseParams& p, cudaStream_t stream);
// out += alpha * a   (in place)
Status axpy(DType t, const ElementwiseParams& p, cudaStream_t stream);
// out = alpha converted to t (any dtype, integers included)
Status fill(DType t, const ElementwiseParams& p, cudaStream_t stream);
// out (dtype dst) = a (dtype src): any pair of dtypes, any strides, a broadcast to out
Status cast(DType dst, DType src, const ElementwiseParams& p, cudaStream_t stream);

}  // namespace ssm::kernels::cuda
