// Small helpers shared by the CPU and CUDA kernels. No framework types here.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define SSM_HD __host__ __device__ __forceinline__
#else
#define SSM_HD inline
#endif

#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))

// BOOL_SWITCH(cond, kName, ...) turns a runtime bool into a compile-time constant
// kName visible inside the body; used to instantiate kernels on flags sparingly.
#define BOOL_SWITCH(COND, CONST_NAME, ...)      \
  [&] {                                         \
    if (COND) {                                 \
      constexpr bool CONST_NAME = true;         \
      return __VA_ARGS__();                     \
    } else {                                    \
      constexpr bool CONST_NAME = false;        \
      return __VA_ARGS__();                     \
    }                                           \
  }()

namespace ssm::kernels {
// Maximum tensor rank handled by strided kernels.
constexpr int kMaxDims = 8;
}  // namespace ssm::kernels
