// The dp × tp process grid. Tensor-parallel groups are consecutive ranks (one node, the
// fastest links); data-parallel groups stride across them:
//
//   world 8, tp 2:   tp groups {0,1} {2,3} {4,5} {6,7};  dp groups {0,2,4,6} {1,3,5,7}
//
//   dist::ProcessGrid grid(rt.world(), /*tp=*/2);        // dp inferred: 8 / 2 = 4
//   grid.check_tp_divides(cfg.nheads, "Mamba-2 heads (model.nheads)");
//   Tensor y = dist::reduce_from_tp(partial, grid.tp());  // framework/dist/tp.h
//   dist::GradReducer dp_sync(params, grid.dp());          // framework/dist/grad_reducer.h
//
// The constructor is collective over `world` (it splits it twice); every rank validates the
// same sizes first, so a bad layout fails on every rank with the same message.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "framework/core/device.h"
#include "framework/dist/communicator.h"

namespace ssm::dist {

class ProcessGrid {
 public:
  // tp >= 1 must divide the world size; dp = 0 infers world / tp, otherwise dp · tp must
  // equal the world size.
  ProcessGrid(std::shared_ptr<Communicator> world, int tp, int dp = 0);

  // The checks of the constructor alone; returns the (possibly inferred) dp.
  static int validate(int world_size, int tp, int dp);

  const std::shared_ptr<Communicator>& world() const { return world_; }
  const std::shared_ptr<Communicator>& tp() const { return tp_; }
  const std::shared_ptr<Communicator>& dp() const { return dp_; }
  int tp_size() const { return tp_size_; }
  int dp_size() const { return dp_size_; }
  int tp_rank() const { return world_->rank() % tp_size_; }
  int dp_rank() const { return world_->rank() / tp_size_; }

  // Throws "<what> = n is not divisible by tp = k" (heads, groups, d_inner, experts, vocab).
  void check_tp_divides(int64_t n, const std::string& what) const;
  // "dp 2 × tp 2 (world rank 3 = dp rank 1, tp rank 1)".
  std::string describe() const;

 private:
  std::shared_ptr<Communicator> world_, tp_, dp_;
  int tp_size_ = 1, dp_size_ = 1;
};

// The device a rank drives: cuda:local_rank when the node has GPUs, else cpu. More ranks
// on a node than GPUs is an error (almost always a launch mistake).
Device device_for_local_rank(int local_rank, int num_gpus);
Device device_for_local_rank(int local_rank);  // num_gpus = cuda_device_count()

}  // namespace ssm::dist
