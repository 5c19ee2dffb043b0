// Batched GEMM on the GPU through cuBLASLt, for the row-major GemmParams of
// kernels/common/gemm_params.h:  C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b] (+ bias).
//
//   CublasLtGemm gemm;                                       // one per device, owned by the caller
//   GemmOptions o; o.bias = b;                               // b (N), added to every row of C
//   Status s = gemm.run(DType::bf16, params, o, workspace, CublasLtGemm::kWorkspaceBytes, stream);
//
// Precision: bf16 inputs accumulate in fp32 (output rounded to bf16); f32 runs true fp32
// (CUBLAS_COMPUTE_32F) unless allow_tf32 is set; f64 runs in f64. cuBLASLt is column-major,
// so a row-major C = op(A)·op(B) is issued as the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ with the
// operands swapped: no copies, transposes are flags.
//
// Plans (descriptors + the heuristic's algorithm) are cached per problem shape, layout,
// alignment and dtype, so steady-state calls only enqueue. Where cuBLASLt offers no
// algorithm (an unusual alignment or type/epilogue combination) or K = 0, a plain tiled
// kernel computes the same product, only slower.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>

#include "kernels/common/dtype.h"
#include "kernels/common/gemm_params.h"
#include "kernels/cuda/common/status.h"

namespace ssm::kernels::cuda {

struct GemmOptions {
  const void* bias = nullptr;  // (N) of C's dtype, contiguous; broadcast over rows and batches
  bool allow_tf32 = false;     // f32 only: tensor-core TF32 (~1e-3 relative error) instead of fp32
};

class CublasLtGemm {
 public:
  // 32 MiB: what NVIDIA recommends for Hopper; the caller allocates it once per stream.
  static constexpr size_t kWorkspaceBytes = size_t(32) << 20;

  CublasLtGemm();  // cheap: the cuBLASLt handle is created on the first run()
  ~CublasLtGemm();
  CublasLtGemm(const CublasLtGemm&) = delete;
  CublasLtGemm& operator=(const CublasLtGemm&) = delete;

  // Enqueues the product on `stream` (thread-safe). `workspace` (device memory of
  // `workspace_bytes`) must not be used concurrently by another stream.
  Status run(DType t, const GemmParams& p, const GemmOptions& o, void* workspace, size_t workspace_bytes,
             cudaStream_t stream);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ssm::kernels::cuda
