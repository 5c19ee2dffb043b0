// Parameters of causal grouped-query attention (the Jamba attention layer: no positional
// encoding, no bias). Query head h reads kv head h / (Hq / Hkv).
//
//   AttentionParams p;
//   p.batch = 2; p.len_q = p.len_k = 7; p.heads_q = 8; p.heads_kv = 2; p.head_dim = 16;
//   // q, k, v, out stored contiguous as (B, L, H, P): row stride H*P, head stride P.
//   p.q_batch_stride = 7 * 8 * 16; p.q_row_stride = 8 * 16; p.q_head_stride = 16;  ... same for k, v, out
//   p.q = q; p.k = k; p.v = v; p.out = out; p.lse = lse;
//   cpu::attention_fwd<float>(p);            // out (2, 7, 8, 16), lse (2, 8, 7)
//
// Masking: query i sits at absolute position q_offset + i and sees key j when
//   j <= q_offset + i                                  (causal; q_offset = Lk - Lq when decoding
//                                                       against a KV cache)
//   and seq_idx_q[b, i] == seq_idx_k[b, j]             (packed documents; both or neither set)
// A query that sees no key gets out = 0 and lse = +inf (as flash-attention does: +inf makes
// the recomputed probabilities exp(s - lse) vanish in the backward without a special case).
#pragma once
#include <cmath>
#include <cstdint>

namespace ssm::kernels {

struct AttentionParams {
  int64_t batch = 0;     // B
  int64_t len_q = 0;     // Lq
  int64_t len_k = 0;     // Lk
  int64_t heads_q = 0;   // Hq, a multiple of heads_kv
  int64_t heads_kv = 0;  // Hkv
  int64_t head_dim = 0;  // P
  int64_t q_offset = 0;  // absolute position of query 0 (may be any value; see masking above)
  double softmax_scale = 0.0;  // scores are scale * q·k; 0 selects 1/sqrt(P)

  // Element strides. The head dim is contiguous (stride 1) in q, k, v, out.
  int64_t q_batch_stride = 0, q_row_stride = 0, q_head_stride = 0;
  int64_t k_batch_stride = 0, k_row_stride = 0, k_head_stride = 0;
  int64_t v_batch_stride = 0, v_row_stride = 0, v_head_stride = 0;
  int64_t o_batch_stride = 0, o_row_stride = 0, o_head_stride = 0;

  const void* q = nullptr;  // (B, Lq, Hq, P)
  const void* k = nullptr;  // (B, Lk, Hkv, P)
  const void* v = nullptr;  // (B, Lk, Hkv, P)
  void* out = nullptr;      // (B, Lq, Hq, P); forward output, backward input
  void* lse = nullptr;      // (B, Hq, Lq) contiguous; forward output, backward input

  // Packed documents (optional): int32 document id per position, contiguous along L.
  const int32_t* seq_idx_q = nullptr;  // (B, Lq)
  const int32_t* seq_idx_k = nullptr;  // (B, Lk)
  int64_t seq_idx_q_batch_stride = 0, seq_idx_k_batch_stride = 0;
};

// The backward reads everything above (q, k, v, out, lse, masks) plus dout, and writes
// dq, dk, dv (overwritten, not accumulated).
struct AttentionBwdParams : AttentionParams {
  int64_t do_batch_stride = 0, do_row_stride = 0, do_head_stride = 0;
  int64_t dq_batch_stride = 0, dq_row_stride = 0, dq_head_stride = 0;
  int64_t dk_batch_stride = 0, dk_row_stride = 0, dk_head_stride = 0;
  int64_t dv_batch_stride = 0, dv_row_stride = 0, dv_head_stride = 0;

  const void* dout = nullptr;  // (B, Lq, Hq, P)
  void* dq = nullptr;          // (B, Lq, Hq, P)
  void* dk = nullptr;          // (B, Lk, Hkv, P), summed over the Hq/Hkv query heads of a group
  void* dv = nullptr;          // (B, Lk, Hkv, P), likewise
};

// Host side: launchers resolve the default once and pass the number to the kernels.
inline double attention_softmax_scale(const AttentionParams& p) {
  return p.softmax_scale != 0.0 ? p.softmax_scale : 1.0 / std::sqrt(double(p.head_dim));
}

}  // namespace ssm::kernels
