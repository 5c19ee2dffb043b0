#include "kernels/cpu/moe.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/common/macros.h"

namespace ssm::kernels::cpu {
namespace {

// Tokens per reduction chunk: partial sums over tokens are formed per chunk and combined in
// chunk order, so the split (and the rounding) depends on T only, never on the thread count.
constexpr int64_t kTokenChunk = 256;

// probs (X) = softmax(row (X)), max-subtracted like torch.softmax; returns logsumexp(row).
// The backward calls this too, so it sees bit-identical probabilities.
template <class T>
T softmax_row(const T* row, int64_t X, T* probs) {
  T m = row[0];
  for (int64_t x = 1; x < X; ++x) m = std::max(m, row[x]);
  T sum = T(0);
  for (int64_t x = 0; x < X; ++x) sum += probs[x] = std::exp(row[x] - m);
  const T inv = T(1) / sum;
  for (int64_t x = 0; x < X; ++x) probs[x] *= inv;
  return m + std::log(sum);
}

}  // namespace

template <class T>
void moe_route_fwd(const MoeRouteParams& p) {
  const int64_t n_tok = p.tokens, X = p.experts, K = p.top_k;
  const T* logits = static_cast<const T*>(p.logits);
  T* weights = static_cast<T*>(p.weights);
  const int64_t chunks = CEIL_DIV(n_tok, kTokenChunk);
  // (chunks, X+1): per chunk, sum_t probs[t, x] for x < X, and sum_t lse_t^2 at index X.
  std::vector<T> partial(chunks * (X + 1), T(0));

#pragma omp parallel
  {
    std::vector<T> probs(X);     // (X)
    std::vector<char> taken(X);  // (X) already chosen for this token
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      T* part = partial.data() + c * (X + 1);
      for (int64_t t = c * kTokenChunk; t < std::min(n_tok, (c + 1) * kTokenChunk); ++t) {
        const T lse = softmax_row(logits + t * p.logits_row_stride, X, probs.data());
        // k passes of argmax; strict '>' keeps the lower index on ties.
        std::fill(taken.begin(), taken.end(), 0);
        for (int64_t s = 0; s < K; ++s) {
          int64_t best = -1;
          for (int64_t x = 0; x < X; ++x)
            if (!taken[x] && (best < 0 || probs[x] > probs[best])) best = x;
          taken[best] = 1;
          weights[t * K + s] = probs[best];
          p.expert_index[t * K + s] = int32_t(best);
        }
        for (int64_t x = 0; x < X; ++x) part[x] += probs[x];
        part[X] += lse * lse;
      }
    }
  }

  // Dispatch plan: a counting sort of the (token, slot) pairs by expert. Visiting tokens in
  // ascending order keeps each expert's list ascending (a token never picks an expert twice).
  int32_t* offsets = p.expert_offsets;
  std::fill(offsets, offsets + X + 1, 0);
  for (int64_t i = 0; i < n_tok * K; ++i) ++offsets[p.expert_index[i] + 1];
  for (int64_t x = 0; x < X; ++x) offsets[x + 1] += offsets[x];
  std::vector<int32_t> cursor(offsets, offsets + X);  // (X) next free plan position
  for (int64_t t = 0; t < n_tok; ++t) {
    for (int64_t s = 0; s < K; ++s) {
      const int32_t pos = cursor[p.expert_index[t * K + s]]++;
      p.token_index[pos] = int32_t(t);
      p.slot[pos] = int32_t(s);
      p.position[t * K + s] = pos;
    }
  }

  // aux = X * sum_x (n_x / T) * P_x, z = mean_t lse_t^2; chunk partials summed in order.
  T aux = T(0), z = T(0);
  if (n_tok > 0) {
    for (int64_t x = 0; x < X; ++x) {
      T prob_sum = T(0);
      for (int64_t c = 0; c < chunks; ++c) prob_sum += partial[c * (X + 1) + x];
      const T count = T(offsets[x + 1] - offsets[x]);
      aux += (count / T(n_tok)) * (prob_sum / T(n_tok));
    }
    aux *= T(X);
    for (int64_t c = 0; c < chunks; ++c) z += partial[c * (X + 1) + X];
    z /= T(n_tok);
  }
  if (p.aux_loss) *static_cast<T*>(p.aux_loss) = aux;
  if (p.z_loss) *static_cast<T*>(p.z_loss) = z;
}

// Gradient of  L = sum_{t,s} dw[t,s] w[t,s] + a aux + b z  with respect to the logits.
// Through the probabilities:  g[t, x] = dL/dprobs[t, x]
//   = sum_s dw[t, s] [e[t, s] == x]  +  a X n_x / T^2
// (aux = X/T^2 sum_x n_x sum_t probs[t, x], with n_x held constant), then the softmax
// Jacobian: dlogits[t, x] = probs[t, x] (g[t, x] - sum_y g[t, y] probs[t, y]).
// The z-loss adds d(b lse_t^2 / T)/dlogits[t, x] = 2 b lse_t probs[t, x] / T.
template <class T>
void moe_route_bwd(const MoeRouteBwdParams& p) {
  const int64_t n_tok = p.tokens, X = p.experts, K = p.top_k;
  if (n_tok == 0) return;
  const T* logits = static_cast<const T*>(p.logits);
  const T* dweights = static_cast<const T*>(p.dweights);
  T* dlogits = static_cast<T*>(p.dlogits);
  const T d_aux = p.d_aux_loss ? *static_cast<const T*>(p.d_aux_loss) : T(0);
  const T d_z = p.d_z_loss ? *static_cast<const T*>(p.d_z_loss) : T(0);

  std::vector<T> g_aux(X);  // (X) the token-independent part of g
  for (int64_t x = 0; x < X; ++x) {
    const T count = T(p.expert_offsets[x + 1] - p.expert_offsets[x]);
    g_aux[x] = d_aux * T(X) * count / (T(n_tok) * T(n_tok));
  }
  const T z_coef = T(2) * d_z / T(n_tok);

#pragma omp parallel
  {
    std::vector<T> probs(X), g(X);  // (X) each
#pragma omp for schedule(static)
    for (int64_t t = 0; t < n_tok; ++t) {
      const T lse = softmax_row(logits + t * p.logits_row_stride, X, probs.data());
      std::copy(g_aux.begin(), g_aux.end(), g.begin());
      if (dweights)
        for (int64_t s = 0; s < K; ++s) g[p.expert_index[t * K + s]] += dweights[t * K + s];
      T gp = T(0);
      for (int64_t x = 0; x < X; ++x) gp += g[x] * probs[x];
      T* dl = dlogits + t * p.dlogits_row_stride;
      for (int64_t x = 0; x < X; ++x) dl[x] = probs[x] * (g[x] - gp + z_coef * lse);
    }
  }
}

template void moe_route_fwd<float>(const MoeRouteParams&);
template void moe_route_fwd<double>(const MoeRouteParams&);
template void moe_route_bwd<float>(const MoeRouteBwdParams&);
template void moe_route_bwd<double>(const MoeRouteBwdParams&);

}  // namespace ssm::kernels::cpu
