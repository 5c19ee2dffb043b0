// MoE top-k routing: dispatch plan invariants, weights vs a sort-based oracle, the HF
// load-balancing loss on a hand-computed case, finite-difference gradients, determinism.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "kernels/cpu/moe.h"
#include "tests/kernels/attn_fd.h"

namespace ssm::kernels {
namespace {

constexpr int64_t kPad = 2;  // logits rows are strided: X + kPad elements apart

template <class T>
struct Routing {
  int64_t n = 0, X = 0, K = 0;
  std::vector<T> logits;  // (n, X) with row stride X + kPad
  std::vector<T> w;       // (n, K)
  std::vector<int32_t> e, offsets, tok, slot, pos;
  T aux = T(-1), z = T(-1);

  Routing(int64_t tokens, int64_t experts, int64_t k) : n(tokens), X(experts), K(k) {
    logits.assign(n * (X + kPad), T(0));
  }
  T& logit(int64_t t, int64_t x) { return logits[t * (X + kPad) + x]; }
  void randomize(uint32_t seed) {
    auto r = attn_fd::randn<double>(n * X, seed, 1.5);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t x = 0; x < X; ++x) logit(t, x) = T(r[t * X + x]);
  }
  void fwd() {
    w.assign(n * K, T(0));
    e.assign(n * K, -1);
    offsets.assign(X + 1, -1);
    tok.assign(n * K, -1);
    slot.assign(n * K, -1);
    pos.assign(n * K, -1);
    MoeRouteParams p;
    p.tokens = n; p.experts = X; p.top_k = K; p.logits_row_stride = X + kPad;
    p.logits = logits.data(); p.weights = w.data(); p.expert_index = e.data();
    p.expert_offsets = offsets.data(); p.token_index = tok.data(); p.slot = slot.data();
    p.position = pos.data(); p.aux_loss = &aux; p.z_loss = &z;
    cpu::moe_route_fwd<T>(p);
  }
  // dlogits (n, X) packed, from the last fwd()'s choices.
  std::vector<T> bwd(const std::vector<T>* dw, const T* d_aux, const T* d_z) {
    std::vector<T> dl(n * (X + 1), T(0));  // row stride X + 1: a different stride than logits
    MoeRouteBwdParams p;
    p.tokens = n; p.experts = X; p.top_k = K;
    p.logits_row_stride = X + kPad; p.dlogits_row_stride = X + 1;
    p.logits = logits.data(); p.expert_index = e.data(); p.expert_offsets = offsets.data();
    p.dweights = dw ? dw->data() : nullptr; p.d_aux_loss = d_aux; p.d_z_loss = d_z;
    p.dlogits = dl.data();
    cpu::moe_route_bwd<T>(p);
    std::vector<T> packed;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t x = 0; x < X; ++x) packed.push_back(dl[t * (X + 1) + x]);
    return packed;
  }
};

// Oracle for probabilities and choices: softmax in double, then a stable sort by
// descending probability (equal probabilities keep ascending expert order).
void naive_route(Routing<double>& r, std::vector<double>& probs, std::vector<int32_t>& choice) {
  probs.assign(r.n * r.X, 0);
  choice.clear();
  for (int64_t t = 0; t < r.n; ++t) {
    double m = -INFINITY, z = 0;
    for (int64_t x = 0; x < r.X; ++x) m = std::max(m, r.logit(t, x));
    for (int64_t x = 0; x < r.X; ++x) z += std::exp(r.logit(t, x) - m);
    for (int64_t x = 0; x < r.X; ++x) probs[t * r.X + x] = std::exp(r.logit(t, x) - m) / z;
    std::vector<int32_t> idx(r.X);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(),
                     [&](int32_t a, int32_t b) { return probs[t * r.X + a] > probs[t * r.X + b]; });
    choice.insert(choice.end(), idx.begin(), idx.begin() + r.K);
  }
}

// Builds the logits of a token whose softmax is `probs` and whose logsumexp is `c`.
void set_token(Routing<double>& r, int64_t t, std::vector<double> probs, double c) {
  for (int64_t x = 0; x < r.X; ++x) r.logit(t, x) = std::log(probs[x]) + c;
}

// 4 tokens, 3 experts; token t has probabilities p_t and logsumexp c_t:
//   p_0 = (0.5, 0.3, 0.2)  c_0 =  0       top-2: {0, 1}     top-1: 0
//   p_1 = (0.1, 0.6, 0.3)  c_1 =  1       top-2: {1, 2}     top-1: 1
//   p_2 = (0.2, 0.2, 0.6)  c_2 = -2       top-2: {2, 0}     top-1: 2   (0 beats 1 on the tie)
//   p_3 = (0.7, 0.1, 0.2)  c_3 =  0.5     top-2: {0, 2}     top-1: 0
// Mean probabilities P = (1.5, 1.2, 1.3) / 4 = (0.375, 0.3, 0.325).
// top-2 counts n = (3, 2, 3): HF tokens_per_expert summed over slots = n / T = (.75, .5, .75)
//   aux = 3 * (0.75*0.375 + 0.5*0.3 + 0.75*0.325) = 3 * 0.675   = 2.025
// top-1 counts n = (2, 1, 1):
//   aux = 3 * (0.5*0.375 + 0.25*0.3 + 0.25*0.325) = 3 * 0.34375 = 1.03125
// z-loss = mean(c_t^2) = (0 + 1 + 4 + 0.25) / 4 = 1.3125 (independent of k)
// top-2 plan: expert 0 <- (t0,s0) (t2,s1) (t3,s0); expert 1 <- (t0,s1) (t1,s0);
//             expert 2 <- (t1,s1) (t2,s0) (t3,s1); offsets (0, 3, 5, 8).
TEST(MoeRoute, HandComputedFourTokensThreeExperts) {
  for (int64_t k : {1, 2}) {
    SCOPED_TRACE(::testing::Message() << "k=" << k);
    Routing<double> r(4, 3, k);
    set_token(r, 0, {0.5, 0.3, 0.2}, 0.0);
    set_token(r, 1, {0.1, 0.6, 0.3}, 1.0);
    set_token(r, 2, {0.2, 0.2, 0.6}, -2.0);
    set_token(r, 3, {0.7, 0.1, 0.2}, 0.5);
    r.fwd();
    EXPECT_NEAR(r.z, 1.3125, 1e-12);
    if (k == 2) {
      EXPECT_NEAR(r.aux, 2.025, 1e-12);
      EXPECT_EQ(r.e, (std::vector<int32_t>{0, 1, 1, 2, 2, 0, 0, 2}));
      const std::vector<double> w = {0.5, 0.3, 0.6, 0.3, 0.6, 0.2, 0.7, 0.2};
      for (size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(r.w[i], w[i], 1e-12) << i;
      EXPECT_EQ(r.offsets, (std::vector<int32_t>{0, 3, 5, 8}));
      EXPECT_EQ(r.tok, (std::vector<int32_t>{0, 2, 3, 0, 1, 1, 2, 3}));
      EXPECT_EQ(r.slot, (std::vector<int32_t>{0, 1, 0, 1, 0, 1, 0, 1}));
      EXPECT_EQ(r.pos, (std::vector<int32_t>{0, 3, 4, 5, 6, 1, 2, 7}));
    } else {
      EXPECT_NEAR(r.aux, 1.03125, 1e-12);
      EXPECT_EQ(r.e, (std::vector<int32_t>{0, 1, 2, 0}));
      EXPECT_EQ(r.offsets, (std::vector<int32_t>{0, 2, 3, 4}));
      EXPECT_EQ(r.tok, (std::vector<int32_t>{0, 3, 1, 2}));
    }
  }
}

void expect_valid_plan(const Routing<double>& r) {
  const int64_t n = r.n, X = r.X, K = r.K;
  ASSERT_EQ(r.offsets[0], 0);
  ASSERT_EQ(r.offsets[X], n * K);
  std::vector<int> seen(n * K, 0), per_token(n, 0);
  for (int64_t x = 0; x < X; ++x) {
    ASSERT_LE(r.offsets[x], r.offsets[x + 1]);
    for (int32_t q = r.offsets[x]; q < r.offsets[x + 1]; ++q) {
      const int32_t t = r.tok[q], s = r.slot[q];
      ASSERT_TRUE(t >= 0 && t < n && s >= 0 && s < K) << q;
      if (q > r.offsets[x]) {
        EXPECT_LT(r.tok[q - 1], t) << "expert " << x << " not ascending";
      }
      EXPECT_EQ(r.e[t * K + s], x);      // the entry is in the list of the expert it chose
      EXPECT_EQ(r.pos[t * K + s], q);    // inverse map
      ++seen[t * K + s];
      ++per_token[t];
    }
  }
  for (int64_t i = 0; i < n * K; ++i) EXPECT_EQ(seen[i], 1) << "(token, slot) " << i;
  for (int64_t t = 0; t < n; ++t) EXPECT_EQ(per_token[t], K) << "token " << t;
}

TEST(MoeRoute, PlanIsPermutationAndWeightsAreTopKProbs) {
  for (int64_t k : {1, 2, 3}) {
    SCOPED_TRACE(::testing::Message() << "k=" << k);
    Routing<double> r(37, 5, k);
    r.randomize(100 + k);
    // exact ties: token 3 has two equal maxima, token 8 is uniform, token 11 ties for second
    for (int64_t x = 0; x < 5; ++x) {
      r.logit(3, x) = x == 1 || x == 4 ? 4.0 : -0.5 * double(x);
      r.logit(8, x) = 0.25;
      r.logit(11, x) = x == 0 ? 5.0 : x == 2 || x == 3 ? 3.0 : -1.0;
    }
    r.fwd();
    expect_valid_plan(r);
    std::vector<double> probs;
    std::vector<int32_t> choice;
    naive_route(r, probs, choice);
    EXPECT_EQ(r.e, choice);
    for (int64_t t = 0; t < r.n; ++t)
      for (int64_t s = 0; s < k; ++s)
        EXPECT_NEAR(r.w[t * k + s], probs[t * 5 + choice[t * k + s]], 1e-15);
    EXPECT_EQ(r.e[3 * k], 1);  // lower index first on the tie
    if (k >= 2) {
      EXPECT_EQ(r.e[3 * k + 1], 4);
      EXPECT_EQ(r.e[8 * k + 1], 1);
      EXPECT_EQ(r.e[11 * k + 1], 2);
    }
  }
}

// The losses against a transcription of HF load_balancing_loss_func (one-hot (T, k, X) mask,
// mean over tokens, sum against the mean probabilities, times X) on random logits.
TEST(MoeRoute, LossesMatchHfFormulation) {
  for (int64_t k : {1, 2}) {
    Routing<double> r(300, 7, k);  // more than one reduction chunk
    r.randomize(200 + k);
    r.fwd();
    std::vector<double> probs;
    std::vector<int32_t> choice;
    naive_route(r, probs, choice);
    std::vector<double> tokens_per_expert(k * 7, 0.0), prob_per_expert(7, 0.0);  // (k, X), (X)
    double z = 0;
    for (int64_t t = 0; t < r.n; ++t) {
      for (int64_t s = 0; s < k; ++s) tokens_per_expert[s * 7 + choice[t * k + s]] += 1.0 / r.n;
      double m = -INFINITY, sum = 0;
      for (int64_t x = 0; x < 7; ++x) {
        prob_per_expert[x] += probs[t * 7 + x] / r.n;
        m = std::max(m, r.logit(t, x));
      }
      for (int64_t x = 0; x < 7; ++x) sum += std::exp(r.logit(t, x) - m);
      z += std::pow(m + std::log(sum), 2) / r.n;
    }
    double aux = 0;
    for (int64_t s = 0; s < k; ++s)
      for (int64_t x = 0; x < 7; ++x) aux += tokens_per_expert[s * 7 + x] * prob_per_expert[x];
    aux *= 7;
    EXPECT_NEAR(r.aux, aux, 1e-12 * aux) << "k=" << k;
    EXPECT_NEAR(r.z, z, 1e-12 * z) << "k=" << k;
  }
}

// d/dlogits of  sum(w * R) + a * aux + b * zloss  against central differences. Random logits
// keep every top-k choice at least ~1e-3 away from a tie, far beyond eps = 1e-6.
TEST(MoeRoute, GradientMatchesFiniteDifferences) {
  for (int64_t k : {1, 2}) {
    SCOPED_TRACE(::testing::Message() << "k=" << k);
    Routing<double> r(11, 6, k);
    r.randomize(300 + k);
    const auto R = attn_fd::randn<double>(r.n * k, 400 + k);
    const double a = 0.7, b = -0.3;
    auto loss = [&] {
      r.fwd();
      double l = a * r.aux + b * r.z;
      for (int64_t i = 0; i < r.n * k; ++i) l += r.w[i] * R[i];
      return l;
    };
    loss();
    const std::vector<int32_t> choices = r.e;
    const auto analytic = r.bwd(&R, &a, &b);
    std::vector<double> numeric;
    for (int64_t t = 0; t < r.n; ++t)
      for (int64_t x = 0; x < r.X; ++x) numeric.push_back(attn_fd::central_diff(loss, r.logit(t, x)));
    EXPECT_LT(attn_fd::rel_err(analytic, numeric), 1e-6);
    loss();
    EXPECT_EQ(r.e, choices);  // no choice flipped inside the FD stencil
    // Each term alone, with the other upstream gradients absent (null pointers).
    auto only = [&](const std::vector<double>* dw, const double* da, const double* dz, auto&& f) {
      r.fwd();
      const auto an = r.bwd(dw, da, dz);
      std::vector<double> nu;
      for (int64_t t = 0; t < r.n; ++t)
        for (int64_t x = 0; x < r.X; ++x) nu.push_back(attn_fd::central_diff(f, r.logit(t, x)));
      EXPECT_LT(attn_fd::rel_err(an, nu), 1e-6);
    };
    only(nullptr, &a, nullptr, [&] { r.fwd(); return a * r.aux; });
    only(nullptr, nullptr, &b, [&] { r.fwd(); return b * r.z; });
  }
}

TEST(MoeRoute, Float32MatchesDouble) {
  Routing<double> d(257, 8, 2);
  Routing<float> f(257, 8, 2);
  d.randomize(500);
  f.randomize(500);
  d.fwd();
  f.fwd();
  EXPECT_EQ(f.e, d.e);  // random logits: no near-ties at float precision for this seed
  EXPECT_EQ(f.tok, d.tok);
  for (size_t i = 0; i < d.w.size(); ++i) EXPECT_NEAR(f.w[i], d.w[i], 1e-5 * d.w[i]);
  EXPECT_NEAR(f.aux, d.aux, 1e-5 * d.aux);
  EXPECT_NEAR(f.z, d.z, 1e-5 * d.z);
  const auto Rd = attn_fd::randn<double>(257 * 2, 501);
  const std::vector<float> Rf(Rd.begin(), Rd.end());
  const double ad = 0.5, bd = 0.25;
  const float af = 0.5f, bf = 0.25f;
  const auto gd = d.bwd(&Rd, &ad, &bd);
  const auto gf = f.bwd(&Rf, &af, &bf);
  EXPECT_LT(attn_fd::rel_err(std::vector<double>(gf.begin(), gf.end()), gd), 1e-5);
}

TEST(MoeRoute, NoTokens) {
  Routing<double> r(0, 4, 2);
  r.fwd();
  EXPECT_EQ(r.offsets, (std::vector<int32_t>{0, 0, 0, 0, 0}));
  EXPECT_EQ(r.aux, 0.0);
  EXPECT_EQ(r.z, 0.0);
}

TEST(MoeRoute, BitwiseIdenticalAcrossThreadCounts) {
  const int saved = omp_get_max_threads();
  std::vector<float> first_w, first_g;
  std::vector<int32_t> first_tok;
  float first_aux = 0, first_z = 0;
  for (int threads : {1, 2, 3, 5}) {
    omp_set_num_threads(threads);
    Routing<float> r(1000, 16, 2);  // four reduction chunks
    r.randomize(600);
    r.fwd();
    const auto R = attn_fd::randn<float>(1000 * 2, 601);
    const float a = 0.01f, b = 0.001f;
    const auto g = r.bwd(&R, &a, &b);
    if (threads == 1) {
      first_w = r.w; first_g = g; first_tok = r.tok; first_aux = r.aux; first_z = r.z;
      continue;
    }
    EXPECT_EQ(0, std::memcmp(r.w.data(), first_w.data(), first_w.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(g.data(), first_g.data(), first_g.size() * sizeof(float)));
    EXPECT_EQ(r.tok, first_tok);
    EXPECT_EQ(0, std::memcmp(&r.aux, &first_aux, sizeof(float))) << threads;
    EXPECT_EQ(0, std::memcmp(&r.z, &first_z, sizeof(float))) << threads;
  }
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace ssm::kernels
