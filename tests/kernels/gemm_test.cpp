// CPU GEMM: OpenBLAS path and the built-in fallback against a naive triple loop, every
// transpose combination, odd sizes, batches, alpha/beta.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/cpu/gemm.h"

namespace ssm::kernels::cpu {
namespace {

template <class T>
void check(bool ta, bool tb, bool builtin) {
  const int64_t batch = 3, M = 37, N = 29, K = 70;
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<T> a(size_t(batch * M * K)), b(size_t(batch * K * N)), c(size_t(batch * M * N));
  for (auto& x : a) x = T(u(rng));
  for (auto& x : b) x = T(u(rng));
  for (auto& x : c) x = T(u(rng));
  std::vector<T> c0 = c;
  GemmParams p;
  p.batch = batch;
  p.M = M;
  p.N = N;
  p.K = K;
  p.trans_a = ta;
  p.trans_b = tb;
  p.lda = ta ? M : K;
  p.ldb = tb ? K : N;
  p.ldc = N;
  p.stride_a = M * K;
  p.stride_b = K * N;
  p.stride_c = M * N;
  p.alpha = 0.5;
  p.beta = 2.0;
  p.a = a.data();
  p.b = b.data();
  p.c = c.data();
  builtin ? gemm_builtin<T>(p) : gemm<T>(p);
  for (int64_t q = 0; q < batch; ++q)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) {
          double av = ta ? a[size_t(q * M * K + k * M + i)] : a[size_t(q * M * K + i * K + k)];
          double bv = tb ? b[size_t(q * K * N + j * K + k)] : b[size_t(q * K * N + k * N + j)];
          s += av * bv;
        }
        double want = 0.5 * s + 2.0 * double(c0[size_t(q * M * N + i * N + j)]);
        ASSERT_NEAR(double(c[size_t(q * M * N + i * N + j)]), want, sizeof(T) == 4 ? 1e-4 : 1e-12)
            << "ta " << ta << " tb " << tb << " builtin " << builtin;
      }
}

TEST(Gemm, AllTransposesBothPathsMatchNaive) {
  for (bool builtin : {false, true})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        check<float>(ta, tb, builtin);
        check<double>(ta, tb, builtin);
      }
}

}  // namespace
}  // namespace ssm::kernels::cpu
