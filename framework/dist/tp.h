// Differentiable tensor-parallel collectives, in conjugate pairs (the backward of each is
// the forward of its partner), recorded on the autograd tape like any op:
//
//   forward                         backward
//   copy_to_tp        identity      all-reduce      (input of a column-parallel layer)
//   reduce_from_tp    all-reduce    identity        (output of a row-parallel layer)
//   scatter_to_tp     own slice     all-gather      (split a replicated tensor along dim)
//   gather_from_tp    all-gather    own slice       (assemble a split tensor, e.g. logits)
//   reduce_scatter_to_sp  reduce-scatter  all-gather  (row-parallel output, sequence parallel)
//   gather_from_sp    all-gather    reduce-scatter  (column-parallel input, sequence parallel)
//
// A Megatron MLP over tp ranks (w1 rows and w2 columns split, x replicated):
//
//   Tensor h = ssm::silu(ssm::linear(dist::copy_to_tp(x, grid.tp()), w1_local));  // (B, L, F/tp)
//   Tensor y = dist::reduce_from_tp(ssm::linear(h, w2_local), grid.tp());         // (B, L, D)
//
// With sequence parallelism x arrives as (B, L/tp, D): replace copy_to_tp by
// gather_from_sp(x, tp, 1) and reduce_from_tp by reduce_scatter_to_sp(y, tp, 1).
//
// Every tp rank must call these in the same order (they are collectives). The communicator
// is kept alive by the recorded backward.
#pragma once
#include <memory>

#include "framework/dist/communicator.h"

namespace ssm::dist {

using CommPtr = std::shared_ptr<Communicator>;

Tensor copy_to_tp(const Tensor& x, const CommPtr& tp);
Tensor reduce_from_tp(const Tensor& x, const CommPtr& tp);
// x.size(dim) divisible by tp size; returns this rank's contiguous block along dim.
Tensor scatter_to_tp(const Tensor& x, const CommPtr& tp, int dim = -1);
// x (.., n, ..) -> (.., tp·n, ..) in rank order.
Tensor gather_from_tp(const Tensor& x, const CommPtr& tp, int dim = -1);
// x (.., tp·m, ..) -> (.., m, ..): Σ over ranks, this rank's block.
Tensor reduce_scatter_to_sp(const Tensor& x, const CommPtr& tp, int dim = 1);
// x (.., n, ..) -> (.., tp·n, ..); the backward reduce-scatters the gradient.
Tensor gather_from_sp(const Tensor& x, const CommPtr& tp, int dim = 1);

}  // namespace ssm::dist
