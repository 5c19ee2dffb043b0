// Counter-based random stream (Philox4x32-10, kernels/common/philox.h).
//
// An Rng is (seed, stream, offset). Each request for n values reserves n counters
// [offset, offset + n) and moves offset past them; value i of the request depends only on
// (seed, stream, offset + i). So the numbers never depend on the thread count or the
// device, and saving (seed, stream, offset) in a checkpoint resumes the exact sequence.
//
//   Rng rng(1234);
//   Tensor w = ssm::randn({768, 768}, rng);    // framework/ops/random.h
//   RngState s = rng.state();  ...  rng.set_state(s);
#pragma once
#include <cstdint>

namespace ssm {

struct RngState {
  uint64_t seed = 0, stream = 0, offset = 0;
  bool operator==(const RngState&) const = default;
};

class Rng {
 public:
  explicit Rng(uint64_t seed = 0, uint64_t stream = 0) : s_{seed, stream, 0} {}
  // Reserves `n` counters and returns the first.
  uint64_t reserve(uint64_t n) {
    uint64_t base = s_.offset;
    s_.offset += n;
    return base;
  }
  // An independent stream (e.g. per layer, per data-parallel rank) with the same seed.
  Rng fork(uint64_t stream) const { return Rng(s_.seed, stream); }
  uint64_t seed() const { return s_.seed; }
  uint64_t stream() const { return s_.stream; }
  RngState state() const { return s_; }
  void set_state(const RngState& s) { s_ = s; }

 private:
  RngState s_;
};

}  // namespace ssm
