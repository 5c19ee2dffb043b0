// Element types as kernels see them. `bf16` is a plain 16-bit brain float with
// round-to-nearest-even conversion; CUDA kernels reinterpret it as __nv_bfloat16.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/common/macros.h"

namespace ssm {

enum class DType : uint8_t { f32 = 0, f64 = 1, bf16 = 2, i32 = 3, i64 = 4 };

SSM_HD constexpr int dtype_size(DType t) {
  return t == DType::f32 ? 4 : t == DType::f64 ? 8 : t == DType::bf16 ? 2 : t == DType::i32 ? 4 : 8;
}
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
  }
  return "?";
}
SSM_HD constexpr bool dtype_is_float(DType t) {
  return t == DType::f32 || t == DType::f64 || t == DType::bf16;
}

struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  SSM_HD explicit bf16(float f) : bits(from_float(f)) {}
  SSM_HD operator float() const { return to_float(bits); }

  SSM_HD static uint16_t from_float(float f) {
    uint32_t u;
#if defined(__CUDA_ARCH__)
    u = __float_as_uint(f);
#else
    std::memcpy(&u, &f, 4);
#endif
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);                                         // round to nearest even
    return uint16_t(u >> 16);
  }
  SSM_HD static float to_float(uint16_t b) {
    uint32_t u = uint32_t(b) << 16;
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, 4);
    return f;
#endif
  }
};
static_assert(sizeof(bf16) == 2);

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };

}  // namespace ssm
