// attention: forward against a naive softmax loop, float64 gradchecks (GQA, offsets, strided
// views of one fused qkv buffer, packed documents), argument errors, and KV-cache decoding
// against the full causal forward.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <random>

#include "framework/ops/ops.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

using test::gradcheck;
using test::rand_f64;
using V = std::vector<Tensor>;

// Plain attention over host values in double: every score computed, masked, softmaxed.
// q (B, Lq, Hq, P), k and v (B, Lk, Hkv, P) in logical order; seq ids (B, L) or empty.
std::vector<double> naive_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t q_offset, double scale,
                                    const std::vector<int>& sq = {}, const std::vector<int>& sk = {}) {
  const int64_t B = q.size(0), Lq = q.size(1), Hq = q.size(2), P = q.size(3), Lk = k.size(1), Hkv = k.size(2);
  const std::vector<double> qv = q.to_vector(), kv = k.to_vector(), vv = v.to_vector();
  std::vector<double> out(size_t(B * Lq * Hq * P), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < Lq; ++i)
      for (int64_t h = 0; h < Hq; ++h) {
        const int64_t hk = h / (Hq / Hkv);
        std::vector<double> s(size_t(Lk), -std::numeric_limits<double>::infinity());
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < Lk; ++j) {
          bool visible = j <= q_offset + i;
          if (!sq.empty()) visible = visible && sq[size_t(b * Lq + i)] == sk[size_t(b * Lk + j)];
          if (!visible) continue;
          double d = 0;
          for (int64_t p = 0; p < P; ++p)
            d += qv[size_t(((b * Lq + i) * Hq + h) * P + p)] * kv[size_t(((b * Lk + j) * Hkv + hk) * P + p)];
          s[size_t(j)] = scale * d;
          mx = std::max(mx, s[size_t(j)]);
        }
        if (mx == -std::numeric_limits<double>::infinity()) continue;  // sees nothing: zeros
        double z = 0;
        for (int64_t j = 0; j < Lk; ++j) z += std::exp(s[size_t(j)] - mx);
        for (int64_t j = 0; j < Lk; ++j) {
          const double pj = std::exp(s[size_t(j)] - mx) / z;
          for (int64_t p = 0; p < P; ++p)
            out[size_t(((b * Lq + i) * Hq + h) * P + p)] += pj * vv[size_t(((b * Lk + j) * Hkv + hk) * P + p)];
        }
      }
  return out;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

Tensor seq_ids(const std::vector<int>& ids, int64_t B, int64_t L) {
  std::vector<double> d(ids.begin(), ids.end());
  return Tensor::from_vector(d, {B, L}, DType::i32);
}

TEST(Attention, ForwardMatchesNaive) {
  const int64_t B = 2, Hq = 6, Hkv = 2, P = 5;
  struct Case {
    int64_t Lq, Lk;
    std::optional<int64_t> offset;
    double scale;
  };
  // Self-attention; queries at the end of a longer key range (default offset Lk - Lq);
  // an explicit offset that hides the last keys; a negative one leaving rows with no key;
  // a custom scale; no key at all.
  for (Case c : {Case{7, 7, {}, 0.0}, Case{3, 9, {}, 0.0}, Case{4, 9, 2, 0.0}, Case{5, 6, -2, 0.0}, Case{6, 6, {}, 0.7},
                 Case{3, 0, {}, 0.0}}) {
    Tensor q = rand_f64({B, c.Lq, Hq, P}, 1, -2, 2, false);
    Tensor k = rand_f64({B, c.Lk, Hkv, P}, 2, -2, 2, false);
    Tensor v = rand_f64({B, c.Lk, Hkv, P}, 3, -1, 1, false);
    AttentionOptions o;
    o.q_offset = c.offset;
    o.scale = c.scale;
    const int64_t off = c.offset.value_or(c.Lk - c.Lq);
    const double scale = c.scale != 0 ? c.scale : 1.0 / std::sqrt(double(P));
    std::vector<double> want = naive_attention(q, k, v, off, scale);
    Tensor y = attention(q, k, v, o);
    EXPECT_EQ(y.shape(), (Dims{B, c.Lq, Hq, P}));
    EXPECT_LT(max_abs_diff(y.to_vector(), want), 1e-12) << "Lq=" << c.Lq << " Lk=" << c.Lk << " offset=" << off;
    // float32 against the float64 loop.
    Tensor y32 = attention(to(q, DType::f32), to(k, DType::f32), to(v, DType::f32), o);
    EXPECT_EQ(y32.dtype(), DType::f32);
    EXPECT_LT(max_abs_diff(y32.to_vector(), want), 1e-5);
  }
}

TEST(Attention, ForwardPackedDocuments) {
  const int64_t B = 2, L = 8, Hq = 4, Hkv = 4, P = 3;
  Tensor q = rand_f64({B, L, Hq, P}, 4, -1, 1, false);
  Tensor k = rand_f64({B, L, Hkv, P}, 5, -1, 1, false);
  Tensor v = rand_f64({B, L, Hkv, P}, 6, -1, 1, false);
  std::vector<int> ids = {0, 0, 0, 1, 1, 2, 2, 2, /* batch 1 */ 5, 5, 5, 5, 5, 7, 7, 9};
  AttentionOptions o;
  o.seq_idx_q = seq_ids(ids, B, L);
  o.seq_idx_k = o.seq_idx_q;
  std::vector<double> want = naive_attention(q, k, v, 0, 1.0 / std::sqrt(double(P)), ids, ids);
  EXPECT_LT(max_abs_diff(attention(q, k, v, o).to_vector(), want), 1e-12);
  // Documents actually cut: the packed result differs from plain causal attention.
  EXPECT_GT(max_abs_diff(attention(q, k, v).to_vector(), want), 1e-3);
}

TEST(Attention, GradcheckGqa) {
  // Hq = 6 query heads over Hkv = 2 kv heads (group of 3), odd sizes.
  Tensor q = rand_f64({2, 5, 6, 3}, 10), k = rand_f64({2, 5, 2, 3}, 11), v = rand_f64({2, 5, 2, 3}, 12);
  EXPECT_TRUE(gradcheck([](const V& in) { return attention(in[0], in[1], in[2]); }, {q, k, v}));
  // Multi-query (Hkv = 1) with a custom scale.
  Tensor k1 = rand_f64({2, 5, 1, 3}, 13), v1 = rand_f64({2, 5, 1, 3}, 14);
  AttentionOptions o;
  o.scale = 0.9;
  EXPECT_TRUE(gradcheck([o](const V& in) { return attention(in[0], in[1], in[2], o); }, {q, k1, v1}));
}

TEST(Attention, GradcheckOffsets) {
  Tensor q = rand_f64({1, 3, 4, 3}, 20), k = rand_f64({1, 7, 2, 3}, 21), v = rand_f64({1, 7, 2, 3}, 22);
  // Lq < Lk: queries are the last 3 positions of 7.
  EXPECT_TRUE(gradcheck([](const V& in) { return attention(in[0], in[1], in[2]); }, {q, k, v}));
  // Explicit offsets: keys past the last query never seen (their dk, dv are zero), and a
  // negative offset where the first query sees nothing.
  for (int64_t off : {int64_t{1}, int64_t{-1}}) {
    AttentionOptions o;
    o.q_offset = off;
    EXPECT_TRUE(gradcheck([o](const V& in) { return attention(in[0], in[1], in[2], o); }, {q, k, v}))
        << "q_offset " << off;
  }
}

TEST(Attention, GradcheckPackedDocuments) {
  const int64_t B = 2, L = 6;
  Tensor q = rand_f64({B, L, 4, 3}, 30), k = rand_f64({B, L, 2, 3}, 31), v = rand_f64({B, L, 2, 3}, 32);
  AttentionOptions o;
  o.seq_idx_q = seq_ids({0, 0, 1, 1, 1, 2, 4, 4, 4, 4, 6, 6}, B, L);
  o.seq_idx_k = o.seq_idx_q;
  EXPECT_TRUE(gradcheck([o](const V& in) { return attention(in[0], in[1], in[2], o); }, {q, k, v}));
}

TEST(Attention, GradcheckStridedViews) {
  const int64_t B = 2, L = 5, Hq = 4, Hkv = 2, P = 3;
  // q, k, v as views of one fused projection (B, L, (Hq + 2 Hkv) P): no copies.
  Tensor qkv = rand_f64({B, L, (Hq + 2 * Hkv) * P}, 40);
  auto split = [=](const Tensor& t) {
    Tensor q = view(narrow(t, -1, 0, Hq * P), {B, L, Hq, P});
    Tensor k = view(narrow(t, -1, Hq * P, Hkv * P), {B, L, Hkv, P});
    Tensor v = view(narrow(t, -1, (Hq + Hkv) * P, Hkv * P), {B, L, Hkv, P});
    return V{q, k, v};
  };
  {
    V s = split(qkv);
    EXPECT_FALSE(s[0].is_contiguous());
    std::vector<double> want = naive_attention(s[0], s[1], s[2], 0, 1.0 / std::sqrt(double(P)));
    EXPECT_LT(max_abs_diff(attention(s[0], s[1], s[2]).to_vector(), want), 1e-12);
  }
  EXPECT_TRUE(gradcheck(
      [=](const V& in) {
        V s = split(in[0]);
        return attention(s[0], s[1], s[2]);
      },
      {qkv}));
  // Head-major storage (B, H, L, P) transposed to (B, L, H, P), and a head dim that is not
  // unit-stride (stored (B, L, P, H)), which the op copies.
  Tensor qh = rand_f64({B, Hq, L, P}, 41), kt = rand_f64({B, L, P, Hkv}, 42), v = rand_f64({B, L, Hkv, P}, 43);
  EXPECT_TRUE(gradcheck([](const V& in) { return attention(transpose(in[0], 1, 2), transpose(in[1], 2, 3), in[2]); },
                        {qh, kt, v}));
}

template <class F>
void expect_error(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    for (const std::string& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << "missing '" << n << "' in: " << e.what();
  }
}

TEST(Attention, ErrorsNameTheTensors) {
  Tensor q = Tensor::zeros({2, 5, 6, 4}), k = Tensor::zeros({2, 5, 4, 4}), v = Tensor::zeros({2, 5, 4, 4});
  expect_error([&] { attention(q, k, v); }, {"attention", "[2, 5, 6, 4]", "[2, 5, 4, 4]", "multiple"});
  Tensor k3 = Tensor::zeros({2, 5, 3, 8}), v3 = Tensor::zeros({2, 5, 3, 8});
  Tensor q3 = Tensor::zeros({2, 5, 6, 4});
  expect_error([&] { attention(q3, k3, v3); }, {"head dim", "[2, 5, 6, 4]", "[2, 5, 3, 8]"});
  Tensor kb = Tensor::zeros({3, 5, 3, 4}), vb = Tensor::zeros({3, 5, 3, 4});
  expect_error([&] { attention(q3, kb, vb); }, {"batch", "[3, 5, 3, 4]"});
  Tensor kk = Tensor::zeros({2, 5, 3, 4});
  expect_error([&] { attention(q3, kk, Tensor::zeros({2, 6, 3, 4})); }, {"same shape", "[2, 6, 3, 4]"});
  expect_error([&] { attention(q3, kk, Tensor::zeros({2, 5, 3, 4}, DType::f64)); }, {"dtype", "f64"});
  expect_error([&] { attention(Tensor::zeros({2, 5, 24}), kk, kk); }, {"(B, L, H, P)", "[2, 5, 24]"});
  AttentionOptions o;
  o.seq_idx_q = Tensor::zeros({2, 5}, DType::i32);
  expect_error([&] { attention(q3, kk, kk, o); }, {"together"});
  o.seq_idx_k = Tensor::zeros({2, 5}, DType::i64);
  expect_error([&] { attention(q3, kk, kk, o); }, {"seq_idx_k", "i64[2, 5]"});
  o.seq_idx_k = Tensor::zeros({2, 4}, DType::i32);
  expect_error([&] { attention(q3, kk, kk, o); }, {"seq_idx_k", "[2, 4]"});
}

TEST(KvCache, DecodeMatchesFullCausalAttention) {
  const int64_t B = 2, L = 70, Hq = 4, Hkv = 2, P = 8, prompt = 5;
  Tensor q = rand_f64({B, L, Hq, P}, 50, -2, 2, false);
  Tensor k = rand_f64({B, L, Hkv, P}, 51, -2, 2, false);
  Tensor v = rand_f64({B, L, Hkv, P}, 52, -1, 1, false);
  const std::vector<double> full = attention(q, k, v).to_vector();  // (B, L, Hq, P)
  auto rows = [&](const std::vector<double>& all, int64_t b, int64_t i) {
    const size_t row = size_t(Hq * P);
    return std::vector<double>(all.begin() + long((b * L + i) * Hq * P),
                               all.begin() + long((b * L + i) * Hq * P + row));
  };

  NoGradGuard ng;
  KvCache cache = KvCache::make(B, L + 3, Hkv, P, DType::f64);
  // Prefill the prompt in one call, then one token per step (65 steps).
  cache.append(narrow(k, 1, 0, prompt), narrow(v, 1, 0, prompt));
  const std::vector<double> pre = cache.attend(narrow(q, 1, 0, prompt)).to_vector();  // (B, prompt, Hq, P)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < prompt; ++i) {
      std::vector<double> got(pre.begin() + long((b * prompt + i) * Hq * P),
                              pre.begin() + long((b * prompt + i + 1) * Hq * P));
      EXPECT_LT(max_abs_diff(got, rows(full, b, i)), 1e-13) << "prefill b=" << b << " i=" << i;
    }
  for (int64_t i = prompt; i < L; ++i) {
    cache.append(narrow(k, 1, i, 1), narrow(v, 1, i, 1));
    EXPECT_EQ(cache.length, i + 1);
    const std::vector<double> y = cache.attend(narrow(q, 1, i, 1)).to_vector();  // (B, 1, Hq, P)
    for (int64_t b = 0; b < B; ++b) {
      std::vector<double> got(y.begin() + long(b * Hq * P), y.begin() + long((b + 1) * Hq * P));
      ASSERT_LT(max_abs_diff(got, rows(full, b, i)), 1e-13) << "step " << i << " b=" << b;
    }
  }
  // Full: three free positions left, four do not fit.
  expect_error(
      [&] {
        cache.append(Tensor::zeros({B, 4, Hkv, P}, DType::f64), Tensor::zeros({B, 4, Hkv, P}, DType::f64));
      },
      {"capacity"});
  expect_error(
      [&] {
        cache.append(Tensor::zeros({B, 1, Hkv + 1, P}, DType::f64), Tensor::zeros({B, 1, Hkv + 1, P}, DType::f64));
      },
      {"KvCache::append", "[2, 1, 3, 8]"});
  cache.reset();
  EXPECT_EQ(cache.length, 0);
}

TEST(KvCache, RefusesInputsThatNeedGradients) {
  KvCache cache = KvCache::make(1, 4, 1, 2, DType::f64);
  Tensor k = rand_f64({1, 1, 1, 2}, 60), v = rand_f64({1, 1, 1, 2}, 61);
  expect_error([&] { cache.append(k, v); }, {"NoGradGuard"});
  NoGradGuard ng;
  cache.append(k, v);
  EXPECT_EQ(cache.length, 1);
}

}  // namespace
}  // namespace ssm
