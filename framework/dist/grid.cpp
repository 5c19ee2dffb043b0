#include "framework/dist/grid.h"

namespace ssm::dist {

int ProcessGrid::validate(int world_size, int tp, int dp) {
  SSM_CHECK(world_size >= 1, "process grid: world size {} must be >= 1", world_size);
  SSM_CHECK(tp >= 1, "process grid: parallel.tp = {} must be >= 1", tp);
  SSM_CHECK(dp >= 0, "process grid: parallel.dp = {} must be >= 0 (0 = infer from the world size)", dp);
  SSM_CHECK(world_size % tp == 0,
            "process grid: parallel.tp = {} does not divide the world size {} (number of ranks started by mpirun)",
            tp, world_size);
  if (dp == 0) return world_size / tp;
  SSM_CHECK(int64_t(dp) * tp == world_size,
            "process grid: parallel.dp = {} × parallel.tp = {} = {} ranks, but the world size is {} (set dp = 0 to "
            "infer it)", dp, tp, int64_t(dp) * tp, world_size);
  return dp;
}

ProcessGrid::ProcessGrid(std::shared_ptr<Communicator> world, int tp, int dp) : world_(std::move(world)) {
  SSM_CHECK(world_ != nullptr, "process grid: no world communicator");
  dp_size_ = validate(world_->size(), tp, dp);
  tp_size_ = tp;
  const int r = world_->rank();
  // Consecutive ranks share a tp group; ranks with the same tp rank form a dp group.
  tp_ = world_->split(/*color=*/r / tp_size_, /*key=*/r % tp_size_, "tp");
  dp_ = world_->split(/*color=*/r % tp_size_, /*key=*/r / tp_size_, "dp");
}

void ProcessGrid::check_tp_divides(int64_t n, const std::string& what) const {
  SSM_CHECK(n % tp_size_ == 0, "{} = {} is not divisible by tp = {} (each tensor-parallel rank must own an equal "
            "share)", what, n, tp_size_);
}

std::string ProcessGrid::describe() const {
  return fmt::format("dp {} × tp {} (world rank {} = dp rank {}, tp rank {})", dp_size_, tp_size_, world_->rank(),
                     dp_rank(), tp_rank());
}

Device device_for_local_rank(int local_rank, int num_gpus) {
  SSM_CHECK(local_rank >= 0, "device_for_local_rank: local rank {} must be >= 0", local_rank);
  if (num_gpus <= 0) return Device::cpu();
  SSM_CHECK(local_rank < num_gpus,
            "local rank {} has no GPU of its own: this node has {} GPUs (start at most {} ranks per node)", local_rank,
            num_gpus, num_gpus);
  return Device::cuda(local_rank);
}

Device device_for_local_rank(int local_rank) { return device_for_local_rank(local_rank, cuda_device_count()); }

}  // namespace ssm::dist
