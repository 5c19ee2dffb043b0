// Batched GEMM in row-major terms:  C[b] = alpha * op(A[b]) · op(B[b]) + beta * C[b]
//   op(A[b]) : (M, K)   op(B[b]) : (K, N)   C[b] : (M, N)
// Each matrix is addressed by (row stride, col stride = 1 after normalisation) — a
// transposed operand is just `trans_a/trans_b` plus its own leading dimension.
#pragma once
#include <cstdint>

namespace ssm::kernels {

struct GemmParams {
  int64_t batch = 1, M = 0, N = 0, K = 0;
  bool trans_a = false, trans_b = false;  // A stored (K, M) / B stored (N, K) when set
  int64_t lda = 0, ldb = 0, ldc = 0;      // leading dimension (row stride) of each matrix
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;  // batch strides (0 = broadcast)
  double alpha = 1.0, beta = 0.0;
  const void* a = nullptr;  // (batch, M, K) or (batch, K, M)
  const void* b = nullptr;  // (batch, K, N) or (batch, N, K)
  void* c = nullptr;        // (batch, M, N)
};

}  // namespace ssm::kernels
