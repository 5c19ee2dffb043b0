// Row reductions over a contiguous (rows, cols) input: out[r] = reduce_j in[r, j].
// Callers move the reduced axes last (a permuted copy) so one kernel serves every dim set.
#pragma once
#include <cstdint>

namespace ssm::kernels {

enum class ReduceOp : uint8_t { sum, max };

struct ReduceParams {
  int64_t rows = 0, cols = 0;
  const void* in = nullptr;  // (rows, cols) contiguous
  void* out = nullptr;       // (rows)
  int64_t* argmax = nullptr; // (rows) optional, for max: first index of the maximum
  double scale = 1.0;        // out = scale * reduction (mean = sum with scale 1/cols)
};

}  // namespace ssm::kernels
