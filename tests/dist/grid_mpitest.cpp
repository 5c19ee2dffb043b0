// The dp × tp grid: validation messages, group membership and the device helper.
#include <gtest/gtest.h>

#include <string>

#include "framework/dist/grid.h"
#include "tests/dist/mpi_env.h"

namespace ssm {
namespace {

using dist::ProcessGrid;

std::string error_of(int world, int tp, int dp) {
  try {
    ProcessGrid::validate(world, tp, dp);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Grid, ValidationInfersDpAndNamesTheSizes) {
  EXPECT_EQ(ProcessGrid::validate(8, 2, 0), 4);
  EXPECT_EQ(ProcessGrid::validate(8, 2, 4), 4);
  EXPECT_EQ(ProcessGrid::validate(1, 1, 0), 1);
  std::string e = error_of(4, 3, 0);
  EXPECT_NE(e.find("parallel.tp = 3 does not divide the world size 4"), std::string::npos) << e;
  e = error_of(4, 2, 3);
  EXPECT_NE(e.find("parallel.dp = 3 × parallel.tp = 2 = 6 ranks, but the world size is 4"), std::string::npos) << e;
  e = error_of(4, 0, 0);
  EXPECT_NE(e.find("parallel.tp = 0 must be >= 1"), std::string::npos) << e;
  e = error_of(4, 1, -1);
  EXPECT_NE(e.find("parallel.dp = -1"), std::string::npos) << e;
}

TEST(Grid, ConstructorRejectsALayoutThatDoesNotFitTheWorld) {
  const auto& w = test::world();
  // Every rank validates before any split, so all of them throw and none is left waiting.
  EXPECT_THROW(ProcessGrid(w, w->size() + 1), Error);
  EXPECT_THROW(ProcessGrid(w, 1, w->size() + 1), Error);
}

TEST(Grid, TpGroupsAreConsecutiveRanks) {
  const auto& w = test::world();
  const int n = w->size(), r = w->rank();
  for (int tp = 1; tp <= n; ++tp) {
    if (n % tp) continue;
    ProcessGrid g(w, tp);
    EXPECT_EQ(g.tp_size(), tp);
    EXPECT_EQ(g.dp_size(), n / tp);
    EXPECT_EQ(g.tp_rank(), r % tp);
    EXPECT_EQ(g.dp_rank(), r / tp);
    EXPECT_EQ(g.tp()->size(), tp);
    EXPECT_EQ(g.tp()->rank(), r % tp);
    EXPECT_EQ(g.dp()->size(), n / tp);
    EXPECT_EQ(g.dp()->rank(), r / tp);
    EXPECT_EQ(g.tp()->name(), "tp");
    // Members of my tp group: world ranks (r / tp)·tp .. +tp-1; of my dp group: r % tp + k·tp.
    Tensor members = g.tp()->all_gather(Tensor::from_vector({double(r)}, {1}, DType::i32));
    for (int k = 0; k < tp; ++k) EXPECT_EQ(members.to_vector()[size_t(k)], (r / tp) * tp + k);
    members = g.dp()->all_gather(Tensor::from_vector({double(r)}, {1}, DType::i32));
    for (int k = 0; k < n / tp; ++k) EXPECT_EQ(members.to_vector()[size_t(k)], r % tp + k * tp);
    EXPECT_NE(g.describe().find("tp " + std::to_string(tp)), std::string::npos) << g.describe();
  }
}

TEST(Grid, DivisibilityCheckNamesTheQuantity) {
  ProcessGrid g(test::world(), test::world()->size());
  EXPECT_NO_THROW(g.check_tp_divides(12 * g.tp_size(), "Mamba-2 heads (model.nheads)"));
  if (g.tp_size() > 1) {
    try {
      g.check_tp_divides(2 * g.tp_size() + 1, "Mamba-2 heads (model.nheads)");
      FAIL() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("Mamba-2 heads (model.nheads) = " + std::to_string(2 * g.tp_size() + 1) +
                                           " is not divisible by tp = " + std::to_string(g.tp_size())),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(Grid, LocalRankToDevice) {
  EXPECT_EQ(dist::device_for_local_rank(0, 0), Device::cpu());
  EXPECT_EQ(dist::device_for_local_rank(3, 0), Device::cpu());
  EXPECT_EQ(dist::device_for_local_rank(1, 2), Device::cuda(1));
  EXPECT_THROW(dist::device_for_local_rank(2, 2), Error);
  EXPECT_THROW(dist::device_for_local_rank(-1, 2), Error);
}

}  // namespace
}  // namespace ssm
