// CUDA embedding: forward gathers rows, backward sums the output gradient rows of each
// vocab id in ascending position order (deterministic, no float atomics).
//
//   EmbeddingParams p; p.num_ids = B * L; p.vocab = V; p.dim = D; p.ids = ids; ...  // ids (B, L)
//   Status s = embedding_fwd(DType::bf16, p, stream);               // out (B, L, D)
//   size_t n = embedding_bwd_workspace(b);                          // sort scratch
//   s = embedding_bwd(DType::bf16, b, scratch, n, stream);          // dweight (V, D), every row written
//
// Backward: a stable radix sort of (id, position) pairs groups the positions of each id in
// increasing order; each vocab row then owns the segment [start[v], end[v]) of the sorted
// positions and sums those dout rows in that order, so the result depends only on the ids.
// An id outside [0, V) gives a NaN row in the forward and is skipped by the backward (the op
// validates ids on the host where it can).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/common/dtype.h"
#include "kernels/common/embedding_params.h"
#include "kernels/cuda/common/status.h"

namespace ssm::kernels::cuda {

Status embedding_fwd(DType t, const EmbeddingParams& p, cudaStream_t stream);
// Device bytes of scratch embedding_bwd needs (N, V < 2^31: ids are sorted as int32).
size_t embedding_bwd_workspace(const EmbeddingBwdParams& p);
Status embedding_bwd(DType t, const EmbeddingBwdParams& p, void* workspace, size_t workspace_bytes,
                     cudaStream_t stream);

}  // namespace ssm::kernels::cuda
