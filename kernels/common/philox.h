// Philox4x32-10 counter-based RNG (Salmon et al., SC'11). The same (seed, counter)
// gives the same four words on any device and any thread count, which is what makes
// initialisation and dropout reproducible across CPU/GPU and 1 vs N threads.
#pragma once
#include <cstdint>

#include "kernels/common/macros.h"

namespace ssm::kernels {

struct Philox4 {
  uint32_t v[4];
};

SSM_HD uint32_t philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = uint64_t(a) * uint64_t(b);
  *hi = uint32_t(p >> 32);
  return uint32_t(p);
}

// counter: 128-bit block index (we use the low 64 bits for the element block and the
// high 64 bits for a stream/subsequence id); key: the 64-bit seed.
SSM_HD Philox4 philox4x32(uint64_t counter, uint64_t stream, uint64_t seed) {
  uint32_t c0 = uint32_t(counter), c1 = uint32_t(counter >> 32);
  uint32_t c2 = uint32_t(stream), c3 = uint32_t(stream >> 32);
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    uint32_t lo0 = philox_mulhilo(0xD2511F53u, c0, &hi0);
    uint32_t lo1 = philox_mulhilo(0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Uniform in (0, 1]: never 0, so log() in Box-Muller is safe.
SSM_HD float philox_uniform(uint32_t x) { return (float(x >> 8) + 1.0f) * (1.0f / 16777216.0f); }
SSM_HD double philox_uniform_f64(uint32_t hi, uint32_t lo) {
  uint64_t x = (uint64_t(hi) << 32 | lo) >> 11;
  return (double(x) + 1.0) * (1.0 / 9007199254740992.0);
}

}  // namespace ssm::kernels
