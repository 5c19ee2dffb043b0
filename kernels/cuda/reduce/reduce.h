// CUDA row reductions over a contiguous (rows, cols) input, the same contract as
// kernels/cpu/reduce.h: out[r] = scale * reduce_j in[r, j], with the first index of the
// maximum in argmax[r] (device memory) when asked. f32 and bf16 accumulate in fp32, f64
// in f64. Deterministic: every sum is a fixed tree whose shape depends only on (rows,
// cols), never on timing (no atomics), so a rerun is bit-identical.
//
//   ReduceParams p; p.rows = B * L; p.cols = D; p.in = x; p.out = y;   // x (B, L, D) -> y (B, L)
//   size_t n = reduce_rows_workspace(DType::bf16, p);                  // scratch bytes, often 0
//   Status s = reduce_rows(DType::bf16, ReduceOp::sum, p, n ? scratch : nullptr, stream);
//
// Shapes: short rows (cols <= 1024) get one warp per row; longer rows one block per row;
// few very long rows are split into fixed 16K-column chunks whose partials a second pass
// combines in order (that pass needs the workspace).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/common/dtype.h"
#include "kernels/common/reduce_params.h"
#include "kernels/cuda/common/status.h"

namespace ssm::kernels::cuda {

// Device bytes of scratch that reduce_rows needs for p (0 for single-pass shapes).
size_t reduce_rows_workspace(DType t, const ReduceParams& p);
Status reduce_rows(DType t, ReduceOp op, const ReduceParams& p, void* workspace, cudaStream_t stream);

// Backward of a max reduction: grad_in (rows, cols) = grad_out[r] at column argmax[r], 0
// elsewhere. Every element of grad_in is written.
struct ArgmaxScatterParams {
  int64_t rows = 0, cols = 0;
  const void* grad_out = nullptr;   // (rows)
  const int64_t* argmax = nullptr;  // (rows)
  void* grad_in = nullptr;          // (rows, cols) contiguous
};
Status argmax_scatter(DType t, const ArgmaxScatterParams& p, cudaStream_t stream);

}  // namespace ssm::kernels::cuda
