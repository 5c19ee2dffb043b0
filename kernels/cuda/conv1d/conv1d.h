// CUDA causal depthwise conv1d (forward, backward, one-token step), the same contract as
// kernels/cpu/conv1d.h (Params in kernels/common/conv1d_params.h): f32 and bf16 storage
// with fp32 math, f64 in f64; widths K = 1..8 (K = 2, 3, 4 are compiled with the width as a
// constant, other widths take a generic path); fused bias + SiLU; seq_idx; initial/final state.
//
//   Conv1dParams p; p.batch = B; p.dim = D; p.seqlen = L; p.width = 4; p.x = x; ...   // (B, D, L)
//   Status s = causal_conv1d_fwd(DType::bf16, p, stream);
//   size_t n = causal_conv1d_bwd_workspace(DType::bf16, b);       // dweight/dbias partials
//   s = causal_conv1d_bwd(DType::bf16, b, n ? scratch : nullptr, stream);
//
// One block per (row b·D + d, tile of 128 positions along L): the tile and its K-1 halo are
// staged in shared memory, so with unit L stride every global load is coalesced; any other
// strides are correct, only slower. The backward is deterministic: dweight / dbias are summed
// per block into (D, B·tiles) partials, then added in that fixed order (no atomics).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/common/conv1d_params.h"
#include "kernels/common/dtype.h"
#include "kernels/cuda/common/status.h"

namespace ssm::kernels::cuda {

// out (and final_states when set).
Status causal_conv1d_fwd(DType t, const Conv1dParams& p, cudaStream_t stream);

// Device bytes of scratch the backward needs (0 when neither dweight nor dbias is asked).
size_t causal_conv1d_bwd_workspace(DType t, const Conv1dBwdParams& p);

// dx, dweight, dbias, dinitial_states (each optional, overwritten). `workspace` holds
// causal_conv1d_bwd_workspace(t, p) bytes, or is null when that is 0.
Status causal_conv1d_bwd(DType t, const Conv1dBwdParams& p, void* workspace, cudaStream_t stream);

// conv_state (B, D, K) rolls left by one and takes x; out = act(bias + w · state).
Status causal_conv1d_step(DType t, const Conv1dStepParams& p, cudaStream_t stream);

}  // namespace ssm::kernels::cuda
