// Causal grouped-query attention (the Jamba attention layer: no positional encoding, no
// bias) and a per-layer KV cache for decoding.
//
//   // Training: q, k, v may be strided views of one fused projection (B, L, (Hq+2Hkv)*P).
//   Tensor q = view(narrow(qkv, -1, 0, Hq * P), {B, L, Hq, P});
//   Tensor k = view(narrow(qkv, -1, Hq * P, Hkv * P), {B, L, Hkv, P});
//   Tensor v = view(narrow(qkv, -1, (Hq + Hkv) * P, Hkv * P), {B, L, Hkv, P});
//   Tensor y = ssm::attention(q, k, v);                   // (B, L, Hq, P), differentiable
//
//   // Decoding (under NoGradGuard): prefill the prompt, then one token per step.
//   KvCache cache = KvCache::make(B, max_len, Hkv, P, DType::f32);
//   cache.append(k_prompt, v_prompt);  Tensor y0 = cache.attend(q_prompt);
//   cache.append(k_tok, v_tok);        Tensor y1 = cache.attend(q_tok);   // q_tok (B, 1, Hq, P)
//
// Query i sits at absolute position q_offset + i and sees key j when j <= q_offset + i and,
// with packed documents, when seq_idx_q[b, i] == seq_idx_k[b, j]. A query that sees no key
// returns zeros (and gets no gradient).
#pragma once
#include <cstdint>
#include <optional>

#include "framework/core/tensor.h"

namespace ssm {

struct AttentionOptions {
  double scale = 0.0;               // scores are scale * q·k; 0 selects 1/sqrt(P)
  std::optional<int64_t> q_offset;  // absolute position of query 0; unset means Lk - Lq
                                    // (queries are the last Lq positions of the keys)
  Tensor seq_idx_q;                 // (B, Lq) i32 document ids; optional, with seq_idx_k
  Tensor seq_idx_k;                 // (B, Lk) i32 document ids
};

// q (B, Lq, Hq, P), k and v (B, Lk, Hkv, P) with Hq % Hkv == 0 → (B, Lq, Hq, P), contiguous.
// Query head h reads kv head h / (Hq / Hkv). Any strides are accepted; inputs whose head
// dim is not unit-stride are copied. Gradients flow to q, k and v.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opts = {});

// Keys and values of one attention layer for incremental decoding. Not differentiable:
// append refuses inputs that would need a gradient.
struct KvCache {
  Tensor k;            // (B, capacity, Hkv, P)
  Tensor v;            // (B, capacity, Hkv, P)
  int64_t length = 0;  // positions [0, length) are filled

  static KvCache make(int64_t batch, int64_t capacity, int64_t heads_kv, int64_t head_dim, DType dtype = DType::f32,
                      Device device = Device::cpu());
  int64_t capacity() const { return k.defined() ? k.size(1) : 0; }
  // Writes k_new, v_new (B, Ln, Hkv, P) at positions [length, length + Ln).
  void append(const Tensor& k_new, const Tensor& v_new);
  // q (B, Lq, Hq, P) holds the queries of the last Lq appended positions (Lq = 1 when
  // decoding one token): causal attention over the cache with q_offset = length - Lq.
  Tensor attend(const Tensor& q, double scale = 0.0) const;
  void reset() { length = 0; }
};

}  // namespace ssm
