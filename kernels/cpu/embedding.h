// CPU row gathers of the indexing ops (float, double): embedding lookup and gather along a
// dim, each with a deterministic backward.
//
//   cpu::embedding_fwd<float>(p);    // out[n] = weight[ids[n]]
//   cpu::embedding_bwd<float>(g);    // dweight[v] = Σ_{n : ids[n] = v} dout[n], n ascending
//   cpu::gather_fwd<float>(q);       // y = x[..., index, ...] along q.dim
//   cpu::gather_bwd<float>(q);       // dx[..., index, ...] += dy   (dx zeroed by the caller)
//
// Determinism: the embedding backward groups positions by id (a counting sort that keeps
// positions in ascending order), then one thread owns each vocabulary row and sums its
// positions in that order. The gather backward gives each line along `dim` (fixed other
// coordinates) to one task: lines write disjoint lines of dx, each in index order.
#pragma once
#include "kernels/common/embedding_params.h"

namespace ssm::kernels::cpu {

template <class T>
void embedding_fwd(const EmbeddingParams& p);
template <class T>
void embedding_bwd(const EmbeddingBwdParams& p);

template <class T>
void gather_fwd(const GatherParams& p);
template <class T>
void gather_bwd(const GatherParams& p);

}  // namespace ssm::kernels::cpu
