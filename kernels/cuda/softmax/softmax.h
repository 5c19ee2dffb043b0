// CUDA softmax / log_softmax along one axis of an (O, N, I) strided view, the same contract
// as kernels/cpu/softmax.h (SoftmaxParams). f32 and bf16 compute in fp32, f64 in f64.
//
//   SoftmaxParams p; p.outer = B * L; p.n = V; p.inner = 1; p.x = x; p.y = y; ...  // x (B, L, V)
//   Status s = softmax_fwd(DType::bf16, p, stream);
//   s = softmax_bwd(DType::bf16, b, stream);  // reads y and dy, writes dx
//
// One block per line (o, i); the max and sums are fixed block trees (deterministic). The
// fastest layout is inner == 1 (the op moves the softmax dim last when that is cheap).
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/common/dtype.h"
#include "kernels/common/softmax_params.h"
#include "kernels/cuda/common/status.h"

namespace ssm::kernels::cuda {

Status softmax_fwd(DType t, const SoftmaxParams& p, cudaStream_t stream);
Status softmax_bwd(DType t, const SoftmaxParams& p, cudaStream_t stream);

}  // namespace ssm::kernels::cuda
