// CPU batched GEMM (float, double). Uses OpenBLAS when the build found it, otherwise a
// cache-blocked loop nest. Work is split into fixed row blocks, each computed whole by one
// thread, so results do not depend on the thread count.
//
//   GemmParams p; p.M = 2; p.N = 3; p.K = 4; p.lda = 4; p.ldb = 3; p.ldc = 3;
//   p.a = a; p.b = b; p.c = c;  gemm<float>(p);   // c(2,3) = a(2,4)·b(4,3)
#pragma once
#include "kernels/common/gemm_params.h"
#include "kernels/common/macros.h"

namespace ssm::kernels::cpu {

template <class T>
void gemm(const GemmParams& p);

// The built-in blocked GEMM (what gemm() runs without OpenBLAS); always compiled so
// tests can check it on machines that have OpenBLAS.
template <class T>
void gemm_builtin(const GemmParams& p);

// True when OpenBLAS is linked (reported by `ssm --version` and tests).
bool gemm_uses_blas();

}  // namespace ssm::kernels::cpu
