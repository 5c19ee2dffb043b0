// Parameters of the row-gather kernels of the indexing ops: embedding lookup and the
// general gather along one dim (torch.gather; index_select is a gather whose index is
// broadcast with stride 0 over the other dims).
//
//   EmbeddingParams p;                 // ids (N) into weight (V, D) -> out (N, D)
//   p.num_ids = N; p.vocab = V; p.dim = D; p.ids = ids; p.ids_i64 = true;
//   p.weight = w; p.weight_row_stride = D; p.out = out; p.out_row_stride = D;
//   cpu::embedding_fwd<float>(p);
//
//   GatherParams g;                    // y[b, j, d] = x[b, index[b, j, d], d]   (dim = 1)
//   g.ndim = 3; g.dim = 1; g.shape = index shape; g.x_dim_size = x.size(1);
//   g.x_strides / g.y_strides / g.index_strides = element strides; g.x = x; g.y = y; ...
//   cpu::gather_fwd<float>(g);
//
// Ids and index values must be in range (the caller checks and reports the bad value).
#pragma once
#include <cstdint>

#include "kernels/common/macros.h"

namespace ssm::kernels {

struct EmbeddingParams {
  int64_t num_ids = 0;  // N: all dims of the ids tensor flattened
  int64_t vocab = 0;    // V
  int64_t dim = 0;      // D
  bool ids_i64 = false; // int64 ids, else int32
  int64_t weight_row_stride = 0, out_row_stride = 0;  // D contiguous in both
  const void* ids = nullptr;     // (N) contiguous
  const void* weight = nullptr;  // (V, D) forward input
  void* out = nullptr;           // (N, D) forward output
};

struct EmbeddingBwdParams {
  int64_t num_ids = 0, vocab = 0, dim = 0;  // N, V, D
  bool ids_i64 = false;
  int64_t dout_row_stride = 0;   // D contiguous
  const void* ids = nullptr;     // (N) contiguous
  const void* dout = nullptr;    // (N, D)
  void* dweight = nullptr;       // (V, D) contiguous, overwritten
};

// y has the index's shape; x has it too except along `dim` (size x_dim_size). The same
// struct drives the backward, which accumulates dy into dx through the index: there `x`
// points at dx (zeroed by the caller) and `y` at dy.
struct GatherParams {
  int ndim = 0;
  int dim = 0;
  int64_t shape[kMaxDims] = {};          // index / y shape
  int64_t x_dim_size = 0;                // x.size(dim): the bound of the index values
  int64_t x_strides[kMaxDims] = {};      // element strides of x (dx)
  int64_t y_strides[kMaxDims] = {};      // element strides of y (dy)
  int64_t index_strides[kMaxDims] = {};  // 0 = broadcast (index_select)
  bool index_i64 = false;
  const void* index = nullptr;
  void* x = nullptr;  // forward: read; backward: dx, accumulated into
  void* y = nullptr;  // forward: written; backward: dy, read
};

}  // namespace ssm::kernels
