// Modules: named parameters with partition metadata, nested submodules.
//
//   class Mlp : public nn::Module {
//    public:
//     Mlp(nn::Init& init, int64_t d, int64_t f) {
//       up_ = &add_param("up.weight", init.normal({f, d}, 0.02));
//       down_ = &add_param("down.weight", init.normal({d, f}, 0.02));
//     }
//     Tensor forward(const Tensor& x) { return linear(silu(linear(x, up_->value)), down_->value); }
//    private:
//     nn::Parameter *up_, *down_;
//   };
//   for (nn::Parameter* p : mlp.parameters()) ...   // "up.weight", "down.weight"
//
// Tensor parallelism: build with the tp group's placement; every add_param() then keeps this
// rank's slice of the same full initial tensor, so any layout starts from the same weights.
//
//   nn::Init init(seed, nn::TpPlacement::over(grid.tp()));   // rank r of the tp group
//   nn::LanguageModel lm(cfg, init);                          // shards, plus the tp collectives
//
// Partition metadata says how a parameter is laid out across tensor-parallel ranks and,
// for packed projections, which logical segments it concatenates (Mamba-2 in_proj rows are
// [z | x | B | C | dt]): resharding and export are then slicing and concatenation driven by
// this metadata, with no per-layer special cases.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "framework/core/rng.h"
#include "framework/core/tensor.h"
#include "framework/dist/tp.h"

namespace ssm::nn {

struct Segment {
  std::string name;  // "z", "x", "B", "C", "dt"; "" for an unpacked parameter
  int64_t size = 0;  // global size along the partition dim
};

struct Partition {
  int dim = -1;                   // -1: replicated on every tp rank; else the split dim
  std::vector<Segment> segments;  // along `dim`; each segment is split evenly across ranks
  bool replicated() const { return dim < 0; }
};

struct Parameter {
  std::string name;   // dotted, relative to the module that owns it (full names from parameters())
  Tensor value;       // this rank's shard (fp32 master on CPU/GPU), a leaf that requires grad
  Dims global_shape;  // shape of the full (tp = 1) tensor
  Partition partition;
  bool weight_decay = true;
};

// Tensor-parallel placement of the model being built (rank 0 of 1 without TP), and the
// communicator its layers' collectives run on. A placement without a communicator is
// enough to slice parameters (checkpoint resharding, export); running forward at size > 1
// needs one.
struct TpPlacement {
  int rank = 0, size = 1;
  dist::CommPtr comm;  // the tp group; null without tensor parallelism
  // The placement of this rank in the tp group `tp` (null: rank 0 of 1).
  static TpPlacement over(const dist::CommPtr& tp);
};

// The differentiable tp collectives of framework/dist/tp.h, identities at tp size 1:
//   tp_copy     forward identity,   backward Σ over tp ranks  (input of column-parallel layers)
//   tp_reduce   forward Σ,          backward identity         (output of row-parallel layers)
//   tp_gather   forward all-gather along dim, backward own slice (logits for generation)
Tensor tp_copy(const Tensor& x, const TpPlacement& tp);
Tensor tp_reduce(const Tensor& x, const TpPlacement& tp);
Tensor tp_gather(const Tensor& x, const TpPlacement& tp, int dim = -1);

// Everything a module needs to create its parameters: deterministic full-size init (so
// every tp layout starts from the same weights), then slicing of this rank's shard.
class Init {
 public:
  Init(uint64_t seed, TpPlacement tp = {}, Device device = Device::cpu(), DType dtype = DType::f32)
      : rng_(seed), tp_(tp), device_(device), dtype_(dtype) {}
  // Full-size tensors (host, dtype of the parameters); each call draws fresh counters.
  Tensor normal(const Dims& shape, double std);
  Tensor uniform(const Dims& shape, double lo, double hi);
  Tensor constant(const Dims& shape, double value);
  Tensor from_values(const std::vector<double>& v, const Dims& shape);
  Rng& rng() { return rng_; }
  const TpPlacement& tp() const { return tp_; }
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }

 private:
  Rng rng_;
  TpPlacement tp_;
  Device device_;
  DType dtype_;
};

// Slice of `full` that tp rank `tp.rank` owns under `part` (each segment split evenly).
Tensor shard_of(const Tensor& full, const Partition& part, TpPlacement tp);

class Module {
 public:
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  virtual ~Module() = default;

  // Every parameter of this module and its children, depth first in registration order,
  // with full dotted names ("layers.3.mixer.in_proj.weight").
  std::vector<std::pair<std::string, Parameter*>> named_parameters();
  std::vector<Parameter*> parameters();
  int64_t num_parameters();  // global (unsharded) count
  Parameter* find(const std::string& full_name);  // nullptr when absent

 protected:
  // `full` is the full-size initial value; this rank keeps its shard.
  Parameter& add_param(const std::string& name, const Tensor& full, const Init& init, Partition part = {},
                       bool weight_decay = true);
  template <class M>
  M& add_module(const std::string& name, std::unique_ptr<M> m) {
    M& ref = *m;
    children_.emplace_back(name, std::move(m));
    return ref;
  }

 private:
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Parameter*>>& out);
  std::vector<std::unique_ptr<Parameter>> params_;
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
};

}  // namespace ssm::nn
