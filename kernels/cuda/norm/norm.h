// CUDA row normalisations (RMSNorm plain / gated / grouped / with residual add, LayerNorm),
// the same contract as kernels/cpu/norm.h except that the saved statistics (`mean`, `rstd`)
// are in the compute dtype acc_t<T>: f32 for f32 and bf16, f64 for f64.
//
//   NormParams p; p.rows = B * L; p.cols = D; p.group_size = D; p.x = x; ...   // x (B, L, D)
//   Status s = rms_norm_fwd(DType::bf16, p, stream);                           // rstd (R, G) f32
//   size_t n = norm_bwd_workspace(DType::bf16, b);                             // dweight partials
//   s = rms_norm_bwd(DType::bf16, b, n ? scratch : nullptr, stream);
//
// One block per row for the row statistics. dweight / dbias are deterministic: a first pass
// sums fixed 32-row chunks per column into (chunks, D) partials in the workspace, a second
// pass adds the chunks in order (no atomics; the result depends only on the sizes).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/common/dtype.h"
#include "kernels/common/norm_params.h"
#include "kernels/cuda/common/status.h"

namespace ssm::kernels::cuda {

// Device bytes of scratch the backward needs (0 when neither dweight nor dbias is asked).
size_t norm_bwd_workspace(DType t, const NormBwdParams& p);

Status rms_norm_fwd(DType t, const NormParams& p, cudaStream_t stream);
Status rms_norm_bwd(DType t, const NormBwdParams& p, void* workspace, cudaStream_t stream);
Status layer_norm_fwd(DType t, const NormParams& p, cudaStream_t stream);
Status layer_norm_bwd(DType t, const NormBwdParams& p, void* workspace, cudaStream_t stream);

}  // namespace ssm::kernels::cuda
