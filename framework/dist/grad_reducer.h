// Data-parallel gradient averaging in buckets, overlapped with backward.
//
//   dist::GradReducer reducer(model_params, grid.dp(), {.bucket_mb = 25});
//   for (each step) {
//     for (each micro-batch but the last) ssm::backward(loss_i);   // accumulate locally
//     ssm::backward(loss_last, Tensor(), reducer.hook());         // buckets launch as they fill
//     reducer.finish();               // every param.grad() = mean over dp ranks
//     opt.step(lr); opt.zero_grad();
//   }
//
// Parameters are packed in reverse order (backward produces the last layers' gradients
// first) into flat buckets of about bucket_mb MiB, one dtype per bucket (bf16 and f32
// gradients are reduced in f32, f64 in f64). When the last gradient of a bucket is final —
// autograd::BackwardOptions::on_leaf_ready — its non-blocking all-reduce starts while
// backward continues. Buckets start in index order on every rank (MPI and NCCL need the
// same collective order everywhere), so a bucket that fills early waits for its
// predecessors. Every rank must pass the same parameters in the same order.
//
// After finish() every parameter has a defined gradient: one that never received a
// gradient on this rank (unused in this step's graph) contributes zeros to the mean.
#pragma once
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "framework/autograd/tape.h"
#include "framework/dist/communicator.h"

namespace ssm::dist {

struct GradReducerOptions {
  double bucket_mb = 25.0;  // bucket capacity in MiB; a larger parameter gets a bucket of its own
};

class GradReducer {
 public:
  GradReducer(std::vector<Tensor> params, std::shared_ptr<Communicator> dp, GradReducerOptions options = {});
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // Options for ssm::backward that launch each bucket's reduction as soon as it is final.
  // Use them on the backward that completes the step's gradients (the last micro-batch).
  autograd::BackwardOptions hook();
  // Completes every bucket (launching those whose parameters never became ready) and
  // writes the dp mean into each parameter's grad().
  void finish();

  int num_buckets() const { return int(buckets_.size()); }
  // Indices (into the constructor's params) of the parameters in bucket b.
  std::vector<int> bucket_params(int b) const;
  // Buckets of the last finished step whose reduction started before finish() (overlap).
  int launched_early() const { return launched_early_; }

 private:
  struct Slot {
    Tensor param;
    int bucket = 0;
    int64_t offset = 0;  // in the bucket's flat buffer
    bool ready = false;
  };
  struct Bucket {
    std::vector<int> slots;
    Tensor buffer;  // (Σ numel) f32 or f64
    int pending = 0;
    std::unique_ptr<Work> work;
  };
  void on_ready(const Tensor& leaf);
  void stage(Slot& s);  // copies the slot's gradient (or zeros) into its bucket
  void launch_ready();  // starts every ready bucket whose predecessors started

  std::shared_ptr<Communicator> dp_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::unordered_map<const TensorImpl*, int> index_;
  int next_launch_ = 0;
  int launched_early_ = 0;
  int early_this_step_ = 0;
  bool in_finish_ = false;
};

}  // namespace ssm::dist
