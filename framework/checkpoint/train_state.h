// Model and optimizer state <-> checkpoint tensors, driven by parameter partition metadata.
//
//   // every rank of a dp × tp job, at a save point:
//   SaveRole role{.replicated = rank == 0, .tp_shards = grid.dp_rank() == 0,
//                 .zero_replicated = grid.tp_rank() == 0};
//   writer.save(snapshot_training_state(model, &adamw, nullptr, tp, role, meta, rank, world));
//   // any layout, later:
//   load_training_state(c, model, &adamw, tp);       // or load_zero_state(c, model, zero, tp)
//
// Logical tensor names: "model/<param>" and, for packed projections, one tensor per
// segment "model/<param>.<segment>" (e.g. model/layers.0.mixer.in_proj.weight.z); AdamW
// moments under "optim/exp_avg/..." and "optim/exp_avg_sq/...", whatever optimizer wrote
// them (plain AdamW or ZeRO-1 shards). Each rank contributes the pieces it uniquely owns;
// loading reads exactly the slice the current layout needs, whatever layout wrote it.
#pragma once
#include <string>
#include <vector>

#include "framework/checkpoint/checkpoint.h"
#include "framework/dist/zero.h"
#include "framework/nn/module.h"
#include "framework/optim/adamw.h"

namespace ssm::checkpoint {

// One logical tensor (or segment) of a parameter, and where this rank's piece sits.
struct LogicalPart {
  std::string name;        // logical name without the "model/" prefix
  nn::Parameter* param = nullptr;
  int dim = -1;            // split dim (-1: replicated)
  Dims global_shape;       // of the logical tensor
  int64_t global_start = 0;  // this rank's offset along `dim` within the logical tensor
  int64_t local_start = 0;   // offset along `dim` within the rank's parameter tensor
  int64_t local_size = 0;    // extent along `dim`
};
std::vector<LogicalPart> logical_parts(nn::Module& model, nn::TpPlacement tp);

// What this rank writes, so that every element is written exactly once.
struct SaveRole {
  bool replicated = true;       // tensors replicated across tp ranks (global rank 0)
  bool tp_shards = true;        // this rank's shards of tp-split tensors (dp rank 0 of each tp rank)
  bool zero_replicated = true;  // ZeRO-1 moment shards of replicated tensors (the dp group of tp rank 0)
};

// Copies (on the calling thread, before returning) everything needed to resume. `opt` and
// `zero` are alternatives (both may be null: parameters only). With ZeRO-1 every rank
// writes the moments of its own flat shard, as boxes of the logical tensors.
Snapshot snapshot_training_state(nn::Module& model, const optim::AdamW* opt, const dist::ZeroAdamW* zero,
                                 nn::TpPlacement tp, SaveRole role, nlohmann::json meta, int rank, int world);
// Single-process form: `owner` writes the replicated tensors.
Snapshot snapshot_training_state(nn::Module& model, const optim::AdamW* opt, nn::TpPlacement tp, bool owner,
                                 nlohmann::json meta, int rank, int world);

// Loads parameters (and optimizer moments when `opt` is given) from `c` for this layout.
// Errors name the missing tensor or the shape mismatch.
void load_training_state(const LoadedCheckpoint& c, nn::Module& model, optim::AdamW* opt, nn::TpPlacement tp);

// ZeRO-1: loads parameters, then this rank's shard of the moments and of the master weights
// (taken from the loaded parameters).
void load_zero_state(const LoadedCheckpoint& c, nn::Module& model, const dist::ZeroAdamW& zero, nn::TpPlacement tp);

// The flat element range [lo, hi) of a row-major tensor of `shape` as a few boxes
// (start, size), each contiguous in memory: at most 2·dim - 1 of them.
std::vector<std::pair<Dims, Dims>> flat_range_boxes(const Dims& shape, int64_t lo, int64_t hi);

}  // namespace ssm::checkpoint
