// Model and optimizer state <-> checkpoint tensors, driven by parameter partition metadata.
//
// Logical tensor names: "model/<param>" and, for packed projections, one tensor per
// segment "model/<param>.<segment>" (e.g. model/layers.0.mixer.in_proj.weight.z); AdamW
// moments under "optim/exp_avg/..." and "optim/exp_avg_sq/...". Each rank contributes the
// slice of every logical tensor it holds; loading reads exactly the slice the current
// layout needs, whatever layout wrote it.
#pragma once
#include <string>
#include <vector>

#include "framework/checkpoint/checkpoint.h"
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

// Copies (on the calling thread, before returning) everything needed to resume. `owner`:
// whether this rank writes replicated tensors (tp rank 0 of dp rank 0).
Snapshot snapshot_training_state(nn::Module& model, const optim::AdamW* opt, nn::TpPlacement tp, bool owner,
                                 nlohmann::json meta, int rank, int world);

// Loads parameters (and optimizer moments when `opt` is given) from `c` for this layout.
// Errors name the missing tensor or the shape mismatch.
void load_training_state(const LoadedCheckpoint& c, nn::Module& model, optim::AdamW* opt, nn::TpPlacement tp);

}  // namespace ssm::checkpoint
