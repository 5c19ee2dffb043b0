// ZeRO-1 checkpoint pieces: a rank's shard is a flat element range of each parameter, which
// the checkpoint stores as a few rectangular boxes of the logical tensors. The boxes of any
// range tile it exactly, in order, each one contiguous in memory.
#include <gtest/gtest.h>

#include <random>

#include "framework/checkpoint/train_state.h"

namespace ssm {
namespace {

int64_t flat_index(const Dims& shape, const Dims& at) {
  int64_t i = 0;
  for (int d = 0; d < shape.size(); ++d) i = i * shape[d] + at[d];
  return i;
}

TEST(ZeroCheckpoint, FlatRangeBoxesTileTheRange) {
  std::mt19937 gen(5);
  const Dims shapes[] = {{7}, {3, 5}, {4, 1, 6}, {2, 3, 4, 5}, {1, 1}, {5, 3, 1}};
  for (const Dims& shape : shapes) {
    const int64_t n = shape.numel();
    for (int trial = 0; trial < 40; ++trial) {
      int64_t lo = std::uniform_int_distribution<int64_t>(0, n)(gen);
      int64_t hi = std::uniform_int_distribution<int64_t>(0, n)(gen);
      if (lo > hi) std::swap(lo, hi);
      if (trial == 0) lo = 0, hi = n;  // the whole tensor: one box
      const auto boxes = checkpoint::flat_range_boxes(shape, lo, hi);
      if (trial == 0) {
        EXPECT_EQ(boxes.size(), 1u) << shape.str();
      }
      EXPECT_LE(int(boxes.size()), std::max(1, 2 * shape.size() - 1)) << shape.str();
      int64_t next = lo;  // boxes come in flat order and each is one contiguous run
      for (const auto& [start, size] : boxes) {
        ASSERT_EQ(start.size(), shape.size());
        EXPECT_EQ(flat_index(shape, start), next) << shape.str() << " [" << lo << ", " << hi << ")";
        for (int d = 0; d < shape.size(); ++d) ASSERT_LE(start[d] + size[d], shape[d]);
        // Contiguous: after the first dim whose extent is > 1, every dim is full.
        int d0 = 0;
        while (d0 < shape.size() && size[d0] == 1) ++d0;
        for (int d = d0 + 1; d < shape.size(); ++d) EXPECT_EQ(size[d], shape[d]) << shape.str();
        next += size.numel();
      }
      EXPECT_EQ(next, hi) << shape.str() << " [" << lo << ", " << hi << ")";
    }
  }
  EXPECT_TRUE(checkpoint::flat_range_boxes({3, 4}, 5, 5).empty());
  EXPECT_THROW(checkpoint::flat_range_boxes({3, 4}, 2, 13), Error);
}

}  // namespace
}  // namespace ssm
