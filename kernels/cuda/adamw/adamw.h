// CUDA multi-tensor AdamW step and global sum of squares (for grad-norm clipping): one
// launch over a whole list of tensors. The list is packed into device workspace (one host to
// device copy of its descriptors); fixed 4096-element chunks, so results never depend on the
// launch or on timing.
//
//   AdamwParams p; p.lr = 3e-4; p.step = t; p.num_tensors = n; p.tensors = host_list;
//   size_t bytes = multi_tensor_workspace(n, p.tensors);             // device scratch
//   Status s = adamw_step(DType::f32, p, scratch, bytes, stream);      // params, m, v in place
//   s = sum_squares(DType::f32, n, p.tensors, scratch, bytes, sumsq, stream);  // *sumsq (device f64)
//
// AdamW: m = β1·m + (1-β1)·g; v = β2·v + (1-β2)·g²; w = w·(1 - lr·wd) - lr/bc1 · m / (√v/√bc2 + eps),
// in the master dtype (f32 or f64), as the CPU kernel. sum_squares reads only numel and grad
// (f32, bf16 or f64 grads), accumulates in f64 per chunk, then adds the chunks in order.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/common/adamw_params.h"
#include "kernels/common/dtype.h"
#include "kernels/cuda/common/status.h"

namespace ssm::kernels::cuda {

size_t multi_tensor_workspace(int64_t num_tensors, const AdamwTensor* tensors);
Status adamw_step(DType t, const AdamwParams& p, void* workspace, size_t workspace_bytes, cudaStream_t stream);
Status sum_squares(DType t, int64_t num_tensors, const AdamwTensor* tensors, void* workspace, size_t workspace_bytes,
                   double* sumsq, cudaStream_t stream);

}  // namespace ssm::kernels::cuda
