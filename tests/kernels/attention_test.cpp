// Causal GQA attention: CPU kernel vs a naive materialised-softmax loop, finite-difference
// gradients, KV-cache decoding, packed documents and thread-count determinism.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/attention.h"
#include "tests/kernels/attn_fd.h"

namespace ssm::kernels {
namespace {

// A (B, L, H, P) tensor in its own buffer, either row-major (B, L, H, P) or head-major
// (B, H, L, P), with `pad` unused elements after every head vector, row and batch so that no
// stride equals the packed one.
template <class T>
struct Tensor4 {
  int64_t B = 0, L = 0, H = 0, P = 0;
  int64_t sb = 0, sl = 0, sh = 0;
  std::vector<T> data;

  Tensor4() = default;
  Tensor4(int64_t b, int64_t l, int64_t h, int64_t p, bool head_major, int64_t pad)
      : B(b), L(l), H(h), P(p) {
    if (head_major) {
      sl = P + pad;
      sh = L * sl + pad;
      sb = H * sh + pad;
    } else {
      sh = P + pad;
      sl = H * sh + pad;
      sb = L * sl + pad;
    }
    data.assign(B * sb + 1, T(0));
  }
  T& operator()(int64_t b, int64_t l, int64_t h, int64_t d) { return data[b * sb + l * sl + h * sh + d]; }
  T operator()(int64_t b, int64_t l, int64_t h, int64_t d) const {
    return data[b * sb + l * sl + h * sh + d];
  }
  void fill_randn(uint32_t seed) {
    auto r = attn_fd::randn<double>(B * L * H * P, seed);
    size_t n = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t l = 0; l < L; ++l)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t d = 0; d < P; ++d) (*this)(b, l, h, d) = T(r[n++]);
  }
  std::vector<double> flat() const {  // (B, L, H, P) packed, for comparisons
    std::vector<double> f;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t l = 0; l < L; ++l)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t d = 0; d < P; ++d) f.push_back(double((*this)(b, l, h, d)));
    return f;
  }
};

struct Shape {
  int64_t B, Lq, Lk, Hq, Hkv, P, q_offset;
  bool head_major = false;
};

// Everything one call needs; params() points an AttentionBwdParams at the buffers.
template <class T>
struct Problem {
  Shape s;
  Tensor4<T> q, k, v, out, dout, dq, dk, dv;
  std::vector<T> lse;                 // (B, Hq, Lq)
  std::vector<int32_t> sq, sk;        // (B, Lq), (B, Lk); empty = no packing
  double scale = 0.0;

  explicit Problem(const Shape& sh, uint32_t seed) : s(sh) {
    const bool hm = sh.head_major;
    q = Tensor4<T>(s.B, s.Lq, s.Hq, s.P, hm, 1);
    k = Tensor4<T>(s.B, s.Lk, s.Hkv, s.P, hm, 2);
    v = Tensor4<T>(s.B, s.Lk, s.Hkv, s.P, !hm, 3);
    out = Tensor4<T>(s.B, s.Lq, s.Hq, s.P, hm, 1);
    dout = Tensor4<T>(s.B, s.Lq, s.Hq, s.P, !hm, 2);
    dq = Tensor4<T>(s.B, s.Lq, s.Hq, s.P, !hm, 3);
    dk = Tensor4<T>(s.B, s.Lk, s.Hkv, s.P, hm, 1);
    dv = Tensor4<T>(s.B, s.Lk, s.Hkv, s.P, !hm, 2);
    lse.assign(s.B * s.Hq * s.Lq, T(0));
    q.fill_randn(seed);
    k.fill_randn(seed + 1);
    v.fill_randn(seed + 2);
    dout.fill_randn(seed + 3);
  }

  AttentionBwdParams params() {
    AttentionBwdParams p;
    p.batch = s.B; p.len_q = s.Lq; p.len_k = s.Lk; p.heads_q = s.Hq; p.heads_kv = s.Hkv;
    p.head_dim = s.P; p.q_offset = s.q_offset; p.softmax_scale = scale;
    auto set = [](const Tensor4<T>& t, int64_t& b, int64_t& r, int64_t& h) { b = t.sb; r = t.sl; h = t.sh; };
    set(q, p.q_batch_stride, p.q_row_stride, p.q_head_stride);
    set(k, p.k_batch_stride, p.k_row_stride, p.k_head_stride);
    set(v, p.v_batch_stride, p.v_row_stride, p.v_head_stride);
    set(out, p.o_batch_stride, p.o_row_stride, p.o_head_stride);
    set(dout, p.do_batch_stride, p.do_row_stride, p.do_head_stride);
    set(dq, p.dq_batch_stride, p.dq_row_stride, p.dq_head_stride);
    set(dk, p.dk_batch_stride, p.dk_row_stride, p.dk_head_stride);
    set(dv, p.dv_batch_stride, p.dv_row_stride, p.dv_head_stride);
    p.q = q.data.data(); p.k = k.data.data(); p.v = v.data.data(); p.out = out.data.data();
    p.lse = lse.data(); p.dout = dout.data.data();
    p.dq = dq.data.data(); p.dk = dk.data.data(); p.dv = dv.data.data();
    if (!sq.empty()) {
      p.seq_idx_q = sq.data(); p.seq_idx_k = sk.data();
      p.seq_idx_q_batch_stride = s.Lq; p.seq_idx_k_batch_stride = s.Lk;
    }
    return p;
  }
  void fwd() { cpu::attention_fwd<T>(params()); }
  void bwd() { cpu::attention_bwd<T>(params()); }
};

// The oracle: materialise every score row, mask with -inf, softmax, multiply by v.
template <class T>
void naive_attention(Problem<T>& pr, std::vector<double>& out, std::vector<double>& lse) {
  const Shape& s = pr.s;
  const double scale = pr.scale != 0.0 ? pr.scale : 1.0 / std::sqrt(double(s.P));
  const double inf = std::numeric_limits<double>::infinity();
  out.assign(s.B * s.Lq * s.Hq * s.P, 0.0);
  lse.assign(s.B * s.Hq * s.Lq, 0.0);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.Hq; ++h)
      for (int64_t i = 0; i < s.Lq; ++i) {
        const int64_t hk = h / (s.Hq / s.Hkv);
        std::vector<double> sc(s.Lk, -inf);
        for (int64_t j = 0; j < s.Lk; ++j) {
          bool vis = j <= s.q_offset + i;
          if (!pr.sq.empty()) vis = vis && pr.sq[b * s.Lq + i] == pr.sk[b * s.Lk + j];
          if (!vis) continue;
          double d = 0;
          for (int64_t x = 0; x < s.P; ++x) d += double(pr.q(b, i, h, x)) * double(pr.k(b, j, hk, x));
          sc[j] = scale * d;
        }
        double m = -inf;
        for (double x : sc) m = std::max(m, x);
        double* o = &out[((b * s.Lq + i) * s.Hq + h) * s.P];
        if (m == -inf) {
          lse[(b * s.Hq + h) * s.Lq + i] = inf;
          continue;
        }
        double z = 0;
        for (double x : sc) z += std::exp(x - m);
        for (int64_t j = 0; j < s.Lk; ++j) {
          const double pj = std::exp(sc[j] - m) / z;
          for (int64_t x = 0; x < s.P; ++x) o[x] += pj * double(pr.v(b, j, hk, x));
        }
        lse[(b * s.Hq + h) * s.Lq + i] = m + std::log(z);
      }
}

std::vector<double> finite_lse(const std::vector<double>& l) {  // +inf -> 0, for rel_err
  std::vector<double> r(l);
  for (double& x : r) x = std::isinf(x) ? 0.0 : x;
  return r;
}

void expect_matches_naive(Problem<double>& pr, double tol) {
  pr.fwd();
  std::vector<double> out, lse;
  naive_attention(pr, out, lse);
  EXPECT_LT(attn_fd::rel_err(pr.out.flat(), out), tol);
  std::vector<double> got_lse(pr.lse.begin(), pr.lse.end());
  for (size_t i = 0; i < lse.size(); ++i) EXPECT_EQ(std::isinf(got_lse[i]), std::isinf(lse[i])) << i;
  EXPECT_LT(attn_fd::rel_err(finite_lse(got_lse), finite_lse(lse)), tol);
}

TEST(Attention, ForwardMatchesNaive) {
  const Shape shapes[] = {
      {2, 1, 1, 3, 3, 5, 0},         {2, 7, 7, 3, 3, 5, 0},         {1, 33, 33, 3, 3, 4, 0, true},
      {2, 7, 7, 8, 2, 5, 0, true},   {2, 33, 33, 4, 1, 6, 0},       {2, 1, 1, 4, 1, 3, 0},
      {2, 1, 9, 4, 1, 5, 8},         {2, 1, 17, 3, 3, 5, 16, true}, {1, 4, 11, 8, 2, 3, 7},
      {2, 5, 5, 2, 1, 3, 2},         {2, 5, 5, 2, 2, 3, -2},        {1, 6, 4, 2, 1, 3, 0},
  };
  uint32_t seed = 10;
  for (const Shape& s : shapes) {
    SCOPED_TRACE(::testing::Message() << "B" << s.B << " Lq" << s.Lq << " Lk" << s.Lk << " Hq" << s.Hq
                                      << " Hkv" << s.Hkv << " P" << s.P << " off" << s.q_offset);
    Problem<double> pr(s, seed += 7);
    expect_matches_naive(pr, 1e-12);
    pr.scale = 0.37;  // an explicit scale replaces 1/sqrt(P)
    expect_matches_naive(pr, 1e-12);
  }
}

// q, k, v as views into one fused projection output (B, L, (Hq + 2 Hkv) P), the layout an
// in_proj produces: strides the kernel must follow without copies.
TEST(Attention, ForwardOnPackedQkv) {
  const int64_t B = 2, L = 9, Hq = 4, Hkv = 2, P = 3, W = (Hq + 2 * Hkv) * P;
  auto qkv = attn_fd::randn<double>(B * L * W, 99);
  Problem<double> pr({B, L, L, Hq, Hkv, P, 0}, 1);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l)
      for (int64_t d = 0; d < P; ++d) {
        for (int64_t h = 0; h < Hq; ++h) pr.q(b, l, h, d) = qkv[(b * L + l) * W + h * P + d];
        for (int64_t h = 0; h < Hkv; ++h) {
          pr.k(b, l, h, d) = qkv[(b * L + l) * W + (Hq + h) * P + d];
          pr.v(b, l, h, d) = qkv[(b * L + l) * W + (Hq + Hkv + h) * P + d];
        }
      }
  pr.fwd();
  AttentionParams p = pr.params();
  std::vector<double> out(B * L * Hq * P), lse(B * Hq * L);
  p.q = qkv.data(); p.k = qkv.data() + Hq * P; p.v = qkv.data() + (Hq + Hkv) * P;
  p.q_batch_stride = p.k_batch_stride = p.v_batch_stride = L * W;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = W;
  p.q_head_stride = p.k_head_stride = p.v_head_stride = P;
  p.out = out.data(); p.o_batch_stride = L * Hq * P; p.o_row_stride = Hq * P; p.o_head_stride = P;
  p.lse = lse.data();
  cpu::attention_fwd<double>(p);
  EXPECT_EQ(out, pr.out.flat());
  EXPECT_EQ(lse, std::vector<double>(pr.lse.begin(), pr.lse.end()));
}

// d/d(q, k, v) of sum(out * dout) by central differences through the kernel's own forward.
void expect_grads_match_fd(Problem<double>& pr) {
  pr.fwd();
  pr.bwd();
  auto loss = [&] {
    pr.fwd();
    double l = 0;
    auto o = pr.out.flat(), r = pr.dout.flat();
    for (size_t i = 0; i < o.size(); ++i) l += o[i] * r[i];
    return l;
  };
  struct Pair { Tensor4<double>* x; Tensor4<double>* g; const char* name; };
  for (Pair t : {Pair{&pr.q, &pr.dq, "dq"}, Pair{&pr.k, &pr.dk, "dk"}, Pair{&pr.v, &pr.dv, "dv"}}) {
    std::vector<double> numeric;
    for (int64_t b = 0; b < t.x->B; ++b)
      for (int64_t l = 0; l < t.x->L; ++l)
        for (int64_t h = 0; h < t.x->H; ++h)
          for (int64_t d = 0; d < t.x->P; ++d) numeric.push_back(attn_fd::central_diff(loss, (*t.x)(b, l, h, d)));
    const auto analytic = t.g->flat();
    for (double a : analytic) ASSERT_TRUE(std::isfinite(a)) << t.name;
    EXPECT_LT(attn_fd::rel_err(analytic, numeric), 1e-6) << t.name;
  }
}

TEST(Attention, GradientsMatchFiniteDifferences) {
  {
    SCOPED_TRACE("GQA 4:1, Lq = Lk");
    Problem<double> pr({2, 5, 5, 4, 1, 3, 0}, 21);
    expect_grads_match_fd(pr);
  }
  {
    SCOPED_TRACE("MHA, chunk of queries against a longer cache, head-major");
    Problem<double> pr({2, 3, 7, 2, 2, 4, 4, true}, 22);
    expect_grads_match_fd(pr);
  }
  {
    SCOPED_TRACE("GQA 2:1, packed documents, one query with no visible key");
    Problem<double> pr({2, 9, 9, 4, 2, 3, 0}, 23);
    pr.sk = {0, 0, 0, 1, 1, 1, 1, 2, 2, /* b=1 */ 5, 5, 6, 6, 6, 6, 6, 7, 7};
    pr.sq = pr.sk;
    pr.sq[4] = 9;  // document 9 has no keys: row 4 of batch 0 attends to nothing
    pr.scale = 0.6;
    expect_grads_match_fd(pr);
    for (int64_t h = 0; h < 4; ++h) {
      EXPECT_TRUE(std::isinf(pr.lse[h * 9 + 4]) && pr.lse[h * 9 + 4] > 0);
      for (int64_t d = 0; d < 3; ++d) {
        EXPECT_EQ(pr.out(0, 4, h, d), 0.0);
        EXPECT_EQ(pr.dq(0, 4, h, d), 0.0);
      }
    }
  }
}

// Two documents packed in one row give, position for position, what each gives alone
// (forward and all three gradients).
TEST(Attention, PackedDocumentsEqualSeparateRuns) {
  const int64_t La = 5, Lb = 8, L = La + Lb, Hq = 4, Hkv = 2, P = 3;
  Problem<double> packed({2, L, L, Hq, Hkv, P, 0}, 31);
  // batch 0 holds [a | b], batch 1 holds [b | a] (document ids need not be 0-based or sorted)
  packed.sk.assign(2 * L, 0);
  for (int64_t i = 0; i < L; ++i) {
    packed.sk[i] = i < La ? 3 : 4;
    packed.sk[L + i] = i < Lb ? 1 : 0;
  }
  packed.sq = packed.sk;
  packed.fwd();
  packed.bwd();
  for (int64_t b = 0; b < 2; ++b)
    for (int doc = 0; doc < 2; ++doc) {
      const bool first = doc == 0;
      const int64_t len = (b == 0) == first ? La : Lb;
      const int64_t start = first ? 0 : L - len;
      Problem<double> alone({1, len, len, Hq, Hkv, P, 0}, 0);
      auto copy = [&](Tensor4<double>& dst, const Tensor4<double>& src) {
        for (int64_t l = 0; l < len; ++l)
          for (int64_t h = 0; h < dst.H; ++h)
            for (int64_t d = 0; d < P; ++d) dst(0, l, h, d) = src(b, start + l, h, d);
      };
      copy(alone.q, packed.q); copy(alone.k, packed.k); copy(alone.v, packed.v);
      copy(alone.dout, packed.dout);
      alone.fwd();
      alone.bwd();
      auto expect_same = [&](const Tensor4<double>& x, const Tensor4<double>& y, const char* what) {
        for (int64_t l = 0; l < len; ++l)
          for (int64_t h = 0; h < x.H; ++h)
            for (int64_t d = 0; d < P; ++d)
              EXPECT_NEAR(x(0, l, h, d), y(b, start + l, h, d), 1e-13) << what << " b" << b << " l" << l;
      };
      expect_same(alone.out, packed.out, "out");
      expect_same(alone.dq, packed.dq, "dq");
      expect_same(alone.dk, packed.dk, "dk");
      expect_same(alone.dv, packed.dv, "dv");
      for (int64_t h = 0; h < Hq; ++h)
        for (int64_t l = 0; l < len; ++l)
          EXPECT_NEAR(alone.lse[h * len + l], packed.lse[(b * Hq + h) * L + start + l], 1e-13);
    }
}

// Token-by-token decoding against a growing KV cache (Lq = 1, q_offset = t, Lk = t + 1)
// reproduces the full causal forward at every step.
TEST(Attention, DecodeWithGrowingCacheMatchesFullForward) {
  const int64_t B = 2, L = 70, Hq = 6, Hkv = 2, P = 8;
  Problem<double> full({B, L, L, Hq, Hkv, P, 0}, 41);
  full.fwd();
  const AttentionParams whole = full.params();
  std::vector<double> out(B * Hq * P), lse(B * Hq);  // one step: (B, 1, Hq, P), (B, Hq, 1)
  for (int64_t t = 0; t < L; ++t) {
    AttentionParams p = whole;
    p.len_q = 1;
    p.len_k = t + 1;
    p.q_offset = t;
    p.q = full.q.data.data() + t * full.q.sl;  // query row t; the cache is rows [0, t] of k, v
    p.out = out.data(); p.o_batch_stride = Hq * P; p.o_row_stride = Hq * P; p.o_head_stride = P;
    p.lse = lse.data();
    cpu::attention_fwd<double>(p);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < Hq; ++h) {
        EXPECT_NEAR(lse[b * Hq + h], full.lse[(b * Hq + h) * L + t], 1e-12) << "t" << t;
        for (int64_t d = 0; d < P; ++d)
          EXPECT_NEAR(out[(b * Hq + h) * P + d], full.out(b, t, h, d), 1e-12) << "t" << t;
      }
  }
}

// float32 (inputs rounded from the same draws) against float64: the forward against the naive
// loop, the backward against the double kernel that the finite-difference test vouches for.
TEST(Attention, Float32MatchesDoubleReference) {
  const Shape s{2, 33, 33, 8, 2, 16, 0};
  Problem<double> ref(s, 51);
  Problem<float> f(s, 51);
  f.fwd();
  std::vector<double> out, lse;
  naive_attention(ref, out, lse);
  EXPECT_LT(attn_fd::rel_err(f.out.flat(), out), 1e-5);
  std::vector<double> got_lse(f.lse.begin(), f.lse.end());
  EXPECT_LT(attn_fd::rel_err(got_lse, lse), 1e-5);
  f.bwd();
  ref.fwd();
  ref.bwd();
  EXPECT_LT(attn_fd::rel_err(f.dq.flat(), ref.dq.flat()), 1e-5);
  EXPECT_LT(attn_fd::rel_err(f.dk.flat(), ref.dk.flat()), 1e-5);
  EXPECT_LT(attn_fd::rel_err(f.dv.flat(), ref.dv.flat()), 1e-5);
}

TEST(Attention, BitwiseIdenticalAcrossThreadCounts) {
  const Shape s{3, 45, 45, 8, 2, 16, 0};
  const int saved = omp_get_max_threads();
  std::vector<std::vector<float>> first;
  for (int threads : {1, 2, 3, 5}) {
    omp_set_num_threads(threads);
    Problem<float> pr(s, 61);
    pr.sk.assign(s.B * s.Lk, 0);
    for (int64_t i = 0; i < s.B * s.Lk; ++i) pr.sk[i] = int32_t(i % s.Lk >= 20);
    pr.sq = pr.sk;
    pr.fwd();
    pr.bwd();
    std::vector<std::vector<float>> got = {pr.out.data, pr.lse, pr.dq.data, pr.dk.data, pr.dv.data};
    if (first.empty()) {
      first = got;
      continue;
    }
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_EQ(0, std::memcmp(got[i].data(), first[i].data(), got[i].size() * sizeof(float)))
          << "tensor " << i << " threads " << threads;
  }
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace ssm::kernels
