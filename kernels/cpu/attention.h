// CPU reference causal grouped-query attention (float, double), forward and backward.
//
//   AttentionParams p = ...;                // sizes, strides, q/k/v/out/lse (attention_params.h)
//   cpu::attention_fwd<double>(p);          // out = softmax(scale·q·kᵀ + mask)·v, lse per row
//   AttentionBwdParams g; static_cast<AttentionParams&>(g) = p;
//   g.dout = dout; g.dq = dq; g.dk = dk; g.dv = dv; (+ their strides)
//   cpu::attention_bwd<double>(g);          // dq, dk, dv
//
// The forward is a one-pass online softmax per query row (running max, rescaled sum); the
// backward is flash-attention style: P is recomputed from q, k and the saved lse, and
// D_i = rowsum(dO ∘ O). The forward is parallel over (b, query head, row); the backward over
// (b, kv head), so one thread owns every dk/dv row of a kv head and sums the query heads of
// its group in a fixed order: results are identical for any thread count.
#pragma once
#include "kernels/common/attention_params.h"

namespace ssm::kernels::cpu {

// Writes out (B, Lq, Hq, P) and lse (B, Hq, Lq).
template <class T>
void attention_fwd(const AttentionParams& p);

// Reads q, k, v, out, lse, dout; writes (overwrites) dq, dk, dv.
template <class T>
void attention_bwd(const AttentionBwdParams& p);

}  // namespace ssm::kernels::cpu
