// Counter-based randomness for the data layer: every draw is a pure function of
// (seed, stream, position), so a batch depends only on (seed, step, rank, row) and is the
// same on every machine, thread count and resume point.
//
//   ssm::data::PhiloxStream rng(/*seed=*/7, /*stream=*/global_row);
//   uint32_t colour = 2 + rng.below(vocab - 2);                    // uniform, no modulo bias
//   uint64_t w = ssm::data::feistel_permute(i, num_windows, seed, epoch);  // bijection on [0, n)
#pragma once
#include <bit>
#include <cstdint>

#include "kernels/common/philox.h"

namespace ssm::data {

// splitmix64 finaliser: turns structured values (task ids, seeds 0, 1, 2...) into
// well-spread keys.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A sequential reader of the Philox4x32 stream (seed, stream): block c gives words 4c..4c+3.
class PhiloxStream {
 public:
  PhiloxStream(uint64_t seed, uint64_t stream) : seed_(seed), stream_(stream) {}

  uint32_t next_u32() {
    if (pos_ == 4) {
      block_ = kernels::philox4x32(counter_++, stream_, seed_);
      pos_ = 0;
    }
    return block_.v[pos_++];
  }

  // Uniform in [0, n) for 1 <= n <= 2^32, by rejection (Lemire): exact, so the same draws
  // give the same value everywhere.
  uint32_t below(uint64_t n) {
    if (n <= 1) return 0;
    uint64_t m = uint64_t(next_u32()) * n;
    uint32_t low = uint32_t(m);
    if (low < n) {
      const uint32_t threshold = uint32_t((uint64_t(1) << 32) % n);
      while (low < threshold) {
        m = uint64_t(next_u32()) * n;
        low = uint32_t(m);
      }
    }
    return uint32_t(m >> 32);
  }

 private:
  uint64_t seed_, stream_;
  uint64_t counter_ = 0;
  kernels::Philox4 block_{};
  int pos_ = 4;
};

// A keyed bijection of [0, n) in O(1) memory: a balanced Feistel network on the smallest
// even number of bits covering n (at most 4n values), with cycle-walking until the value
// falls back inside [0, n). `tweak` selects an independent permutation (the epoch).
inline uint64_t feistel_permute(uint64_t x, uint64_t n, uint64_t seed, uint64_t tweak) {
  if (n <= 1) return 0;
  const int bits = std::bit_width(n - 1);  // ceil(log2 n)
  const int half = (bits + 1) / 2;
  const uint64_t mask = (uint64_t(1) << half) - 1;
  constexpr int kRounds = 6;
  do {
    uint64_t left = x >> half, right = x & mask;
    for (int r = 0; r < kRounds; ++r) {
      const uint64_t f = kernels::philox4x32(right | (uint64_t(r) << 40), tweak, seed).v[0] & mask;
      const uint64_t next_right = left ^ f;
      left = right;
      right = next_right;
    }
    x = (left << half) | right;
  } while (x >= n);
  return x;
}

}  // namespace ssm::data
