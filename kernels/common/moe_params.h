// Parameters of mixture-of-experts top-k routing (Jamba / Mixtral router, as Hugging Face
// JambaSparseMoeBlock computes it). Axes: T tokens (B*L flattened), X experts, k choices.
//
//   MoeRouteParams p;
//   p.tokens = 4; p.experts = 3; p.top_k = 2; p.logits_row_stride = 3;
//   p.logits = logits;                     // (4, 3)
//   p.weights = w; p.expert_index = e;     // (4, 2) each
//   p.expert_offsets = off; p.token_index = tok; p.slot = s; p.position = pos;
//   p.aux_loss = &aux; p.z_loss = &z;
//   cpu::moe_route_fwd<float>(p);
//   // expert x processes tokens tok[off[x] .. off[x+1]) (ascending); the output of token t is
//   // sum_s w[t, s] * expert_{e[t, s]}(x_t), whose expert row sits at plan position pos[t, s].
//
// Definitions (single layer, no attention mask, no token dropping):
//   probs[t, :]  = softmax(logits[t, :])
//   e[t, 0..k)   = experts of the k largest probs, descending; ties go to the lower index
//   w[t, s]      = probs[t, e[t, s]]                       (NOT renormalised, as HF Jamba)
//   n_x          = #{(t, s) : e[t, s] == x}                 (counts; sum_x n_x = T*k)
//   P_x          = (1/T) sum_t probs[t, x]
//   aux_loss     = X * sum_x (n_x / T) * P_x
//   z_loss       = (1/T) sum_t logsumexp(logits[t, :])^2
// aux_loss is exactly transformers' load_balancing_loss_func: its tokens_per_expert is the
// (k, X) per-slot mean of the one-hot mask, summed against P_x over both axes, so the counts
// are divided by T, not T*k (perfect balance gives aux_loss = k, not 1).
#pragma once
#include <cstdint>

namespace ssm::kernels {

struct MoeRouteParams {
  int64_t tokens = 0;             // T
  int64_t experts = 0;            // X
  int64_t top_k = 0;              // k, 1 <= k <= X (Jamba uses 2)
  int64_t logits_row_stride = 0;  // element stride between tokens; experts are contiguous

  const void* logits = nullptr;        // (T, X)
  void* weights = nullptr;             // (T, k) contiguous: routing weights w
  int32_t* expert_index = nullptr;     // (T, k) contiguous: chosen experts e
  int32_t* expert_offsets = nullptr;   // (X+1): CSR row starts of the dispatch plan
  int32_t* token_index = nullptr;      // (T*k): token of each plan entry, ascending per expert
  int32_t* slot = nullptr;             // (T*k): which of the token's k choices the entry is
  int32_t* position = nullptr;         // (T, k): plan position of (t, s), the inverse map
  void* aux_loss = nullptr;            // () load-balancing loss; may be null
  void* z_loss = nullptr;              // () router z-loss; may be null
};

// The backward recomputes the softmax from the logits (X is small) and reads the choices and
// counts the forward wrote. The selection is piecewise constant and n_x gets no gradient
// (as in HF), so only w, the P_x factor of aux_loss and z_loss carry gradient to the logits.
struct MoeRouteBwdParams {
  int64_t tokens = 0;   // T
  int64_t experts = 0;  // X
  int64_t top_k = 0;    // k
  int64_t logits_row_stride = 0, dlogits_row_stride = 0;

  const void* logits = nullptr;                // (T, X)
  const int32_t* expert_index = nullptr;       // (T, k) from the forward
  const int32_t* expert_offsets = nullptr;     // (X+1) from the forward (gives n_x)
  const void* dweights = nullptr;              // (T, k) contiguous; may be null (zero)
  const void* d_aux_loss = nullptr;            // (); may be null (zero)
  const void* d_z_loss = nullptr;              // (); may be null (zero)
  void* dlogits = nullptr;                     // (T, X), overwritten
};

}  // namespace ssm::kernels
