#include "kernels/cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <type_traits>

#if defined(SSM_HAVE_OPENBLAS)
#include <cblas.h>
extern "C" void openblas_set_num_threads(int);
#endif

namespace ssm::kernels::cpu {
namespace {

constexpr int64_t kRowBlock = 64;  // rows of C per task: fixed, so the split never depends on threads

template <class T>
T load_a(const GemmParams& p, const T* a, int64_t i, int64_t k) {
  return p.trans_a ? a[k * p.lda + i] : a[i * p.lda + k];
}

// Fallback: C[i0:i1, :] = alpha * A·B + beta * C, accumulating in T over k in order.
template <class T>
void gemm_block_naive(const GemmParams& p, const T* a, const T* b, T* c, int64_t i0, int64_t i1) {
  constexpr int64_t kTileK = 256;
  for (int64_t i = i0; i < i1; ++i) {
    T* crow = c + i * p.ldc;
    if (p.beta == 0.0) {
      std::fill(crow, crow + p.N, T(0));
    } else if (p.beta != 1.0) {
      for (int64_t j = 0; j < p.N; ++j) crow[j] *= T(p.beta);
    }
  }
  // k-outer within tiles keeps B rows streaming; each C element still sums k in order.
  for (int64_t k0 = 0; k0 < p.K; k0 += kTileK) {
    int64_t k1 = std::min(p.K, k0 + kTileK);
    for (int64_t i = i0; i < i1; ++i) {
      T* crow = c + i * p.ldc;
      for (int64_t k = k0; k < k1; ++k) {
        T av = T(p.alpha) * load_a(p, a, i, k);
        if (p.trans_b) {
          for (int64_t j = 0; j < p.N; ++j) crow[j] += av * b[j * p.ldb + k];
        } else {
          const T* brow = b + k * p.ldb;
          for (int64_t j = 0; j < p.N; ++j) crow[j] += av * brow[j];
        }
      }
    }
  }
}

#if defined(SSM_HAVE_OPENBLAS)
void blas_once() {
  static std::once_flag once;
  // We parallelise over row blocks ourselves; BLAS threads would oversubscribe.
  std::call_once(once, [] { openblas_set_num_threads(1); });
}
template <class T>
void gemm_block_blas(const GemmParams& p, const T* a, const T* b, T* c, int64_t i0, int64_t i1) {
  const T* ablk = p.trans_a ? a + i0 : a + i0 * p.lda;
  auto ta = p.trans_a ? CblasTrans : CblasNoTrans;
  auto tb = p.trans_b ? CblasTrans : CblasNoTrans;
  int m = int(i1 - i0);
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, ta, tb, m, int(p.N), int(p.K), float(p.alpha), ablk, int(p.lda), b,
                int(p.ldb), float(p.beta), c + i0 * p.ldc, int(p.ldc));
  } else {
    cblas_dgemm(CblasRowMajor, ta, tb, m, int(p.N), int(p.K), p.alpha, ablk, int(p.lda), b, int(p.ldb),
                p.beta, c + i0 * p.ldc, int(p.ldc));
  }
}
#endif

}  // namespace

bool gemm_uses_blas() {
#if defined(SSM_HAVE_OPENBLAS)
  return true;
#else
  return false;
#endif
}

template <class T>
void gemm_impl(const GemmParams& p, bool use_blas) {
  if (p.M == 0 || p.N == 0 || p.batch == 0) return;
  const T* A = static_cast<const T*>(p.a);
  const T* B = static_cast<const T*>(p.b);
  T* C = static_cast<T*>(p.c);
  if (p.K == 0) {
    for (int64_t bi = 0; bi < p.batch; ++bi)
      for (int64_t i = 0; i < p.M; ++i)
        for (int64_t j = 0; j < p.N; ++j) {
          T& x = C[bi * p.stride_c + i * p.ldc + j];
          x = p.beta == 0.0 ? T(0) : T(p.beta) * x;
        }
    return;
  }
#if defined(SSM_HAVE_OPENBLAS)
  if (use_blas) blas_once();
#endif
  const int64_t row_blocks = CEIL_DIV(p.M, kRowBlock);
  const int64_t tasks = p.batch * row_blocks;
  const double flops = 2.0 * double(p.batch) * double(p.M) * double(p.N) * double(p.K);
#pragma omp parallel for schedule(static) if (tasks > 1 && flops > 2e6)
  for (int64_t t = 0; t < tasks; ++t) {
    int64_t bi = t / row_blocks, rb = t % row_blocks;
    int64_t i0 = rb * kRowBlock, i1 = std::min(p.M, i0 + kRowBlock);
    const T* a = A + bi * p.stride_a;
    const T* b = B + bi * p.stride_b;
    T* c = C + bi * p.stride_c;
#if defined(SSM_HAVE_OPENBLAS)
    if (use_blas) {
      gemm_block_blas<T>(p, a, b, c, i0, i1);
      continue;
    }
#endif
    gemm_block_naive<T>(p, a, b, c, i0, i1);
  }
}

template <class T>
void gemm(const GemmParams& p) {
  gemm_impl<T>(p, gemm_uses_blas());
}

template <class T>
void gemm_builtin(const GemmParams& p) {
  gemm_impl<T>(p, false);
}

template void gemm<float>(const GemmParams&);
template void gemm<double>(const GemmParams&);
template void gemm_builtin<float>(const GemmParams&);
template void gemm_builtin<double>(const GemmParams&);

}  // namespace ssm::kernels::cpu
