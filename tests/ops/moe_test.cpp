// moe_ffn: forward and gradients against a naive composition of existing ops, float64
// gradchecks of every input (aux_loss included), routing invariants, thread-count
// determinism and argument errors.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <numeric>

#include "framework/ops/ops.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

using test::gradcheck;
using test::max_rel_diff;
using test::rand_f64;
using V = std::vector<Tensor>;

struct MoeInputs {
  Tensor x, router_w, w_gate, w_up, w_down;
  V all() const { return {x, router_w, w_gate, w_up, w_down}; }
};

// Router weights larger than the experts' so that logits spread out and the top-k choice
// is far from ties.
MoeInputs make_inputs(int64_t T, int64_t D, int64_t X, int64_t F, uint64_t seed, bool requires_grad = true) {
  return {rand_f64({T, D}, seed, -1, 1, requires_grad), rand_f64({X, D}, seed + 1, -2, 2, requires_grad),
          rand_f64({X, F, D}, seed + 2, -0.7, 0.7, requires_grad),
          rand_f64({X, F, D}, seed + 3, -0.7, 0.7, requires_grad),
          rand_f64({X, D, F}, seed + 4, -0.7, 0.7, requires_grad)};
}

// Experts of the k largest entries of a row, descending, ties to the lower index (the
// documented rule), and the gap between the k-th and the (k+1)-th logit.
std::vector<int64_t> top_k(const std::vector<double>& row, int64_t k, double* gap) {
  std::vector<int64_t> idx(row.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return row[size_t(a)] > row[size_t(b)]; });
  if (gap) *gap = size_t(k) < row.size() ? row[size_t(idx[size_t(k - 1)])] - row[size_t(idx[size_t(k)])] : 1e300;
  idx.resize(size_t(k));
  return idx;
}

// Smallest top-k margin over tokens, in logits: a finite-difference step must not flip it.
double min_topk_gap(const MoeInputs& in, int64_t k) {
  NoGradGuard ng;
  Tensor logits = matmul(in.x, in.router_w, false, true);
  const int64_t T = logits.size(0), X = logits.size(1);
  std::vector<double> l = logits.to_vector();
  double gap = 1e300;
  for (int64_t t = 0; t < T; ++t) {
    double g;
    top_k(std::vector<double>(l.begin() + long(t * X), l.begin() + long((t + 1) * X)), k, &g);
    gap = std::min(gap, g);
  }
  return gap;
}

struct NaiveMoe {
  Tensor out, aux_loss;
  std::vector<int64_t> counts;
};

// The same block from matmul, silu, mul, exp, sum: every expert runs on every token and
// a dense (T, X) matrix of routing weights (zero where not chosen) mixes the results.
NaiveMoe naive_moe(const MoeInputs& in, int64_t k, double aux_coef, double z_coef) {
  const int64_t T = in.x.size(0), X = in.router_w.size(0);
  Tensor logits = matmul(in.x, in.router_w, false, true);  // (T, X)
  Tensor m = max(logits, {-1}, true);                      // (T, 1)
  Tensor e = exp(logits - m);
  Tensor se = sum(e, {-1}, true);
  Tensor probs = e / se;     // (T, X)
  Tensor lse = log(se) + m;  // (T, 1)
  std::vector<double> pv = probs.to_vector();
  std::vector<double> chosen(size_t(T * X), 0.0);  // (T, X) 1 where routed
  NaiveMoe r;
  r.counts.assign(size_t(X), 0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t x : top_k(std::vector<double>(pv.begin() + long(t * X), pv.begin() + long((t + 1) * X)), k, nullptr)) {
      chosen[size_t(t * X + x)] = 1.0;
      ++r.counts[size_t(x)];
    }
  Tensor mask = Tensor::from_vector(chosen, {T, X}, DType::f64);
  Tensor route = probs * mask;  // (T, X) weights, not renormalised
  for (int64_t x = 0; x < X; ++x) {
    Tensor a = matmul(in.x, select(in.w_gate, 0, x), false, true);         // (T, F)
    Tensor b = matmul(in.x, select(in.w_up, 0, x), false, true);           // (T, F)
    Tensor y = matmul(silu(a) * b, select(in.w_down, 0, x), false, true);  // (T, D)
    Tensor term = y * narrow(route, 1, x, 1);
    r.out = r.out.defined() ? r.out + term : term;
  }
  std::vector<double> frac(static_cast<size_t>(X));
  for (int64_t x = 0; x < X; ++x) frac[size_t(x)] = double(r.counts[size_t(x)]) / double(T);
  Tensor balance = sum(mean(probs, {0}) * Tensor::from_vector(frac, {X}, DType::f64)) * double(X);
  Tensor z = mean(square(lse));
  r.aux_loss = balance * aux_coef + z * z_coef;
  return r;
}

TEST(Moe, ForwardAndGradientsMatchNaiveComposition) {
  const int64_t T = 9, D = 5, X = 4, F = 6;
  const double aux_coef = 0.03, z_coef = 0.002;
  for (int64_t k : {int64_t{1}, int64_t{2}, int64_t{4}}) {
    MoeInputs in = make_inputs(T, D, X, F, 100 + uint64_t(k));
    {
      NoGradGuard ng;
      MoeOutput got = moe_ffn(in.x, in.router_w, in.w_gate, in.w_up, in.w_down, k, aux_coef, z_coef);
      NaiveMoe want = naive_moe(in, k, aux_coef, z_coef);
      EXPECT_EQ(got.out.shape(), (Dims{T, D}));
      EXPECT_EQ(got.aux_loss.dim(), 0);
      EXPECT_LT(max_rel_diff(got.out, want.out), 1e-13) << "k=" << k;
      EXPECT_NEAR(got.aux_loss.item(), want.aux_loss.item(), 1e-13) << "k=" << k;
      EXPECT_EQ(got.counts, want.counts);
      EXPECT_NEAR(aux_coef * got.balance_loss + z_coef * got.z_loss, got.aux_loss.item(), 1e-14);
      if (k == X) {  // every expert sees every token
        EXPECT_NEAR(got.balance_loss, double(k), 1e-12);
      }
    }

    // The same loss through both graphs: the hand-written backward equals autograd of the ops.
    Tensor r = rand_f64({T, D}, 7, -1, 1, false);
    V leaves = in.all();
    auto grads = [&](bool fused) {
      for (Tensor& t : leaves) t.zero_grad();
      Tensor loss;
      if (fused) {
        MoeOutput m = moe_ffn(in.x, in.router_w, in.w_gate, in.w_up, in.w_down, k, aux_coef, z_coef);
        loss = sum(m.out * r) + m.aux_loss;
      } else {
        NaiveMoe m = naive_moe(in, k, aux_coef, z_coef);
        loss = sum(m.out * r) + m.aux_loss;
      }
      ssm::backward(loss);
      std::vector<std::vector<double>> g;
      for (Tensor& t : leaves) g.push_back(t.grad().to_vector());
      return g;
    };
    const auto fused = grads(true), naive = grads(false);
    for (size_t i = 0; i < leaves.size(); ++i) {
      ASSERT_EQ(fused[i].size(), naive[i].size());
      for (size_t j = 0; j < fused[i].size(); ++j)
        ASSERT_NEAR(fused[i][j], naive[i][j], 1e-12) << "k=" << k << " input " << i << " element " << j;
    }
  }
}

TEST(Moe, EveryTokenReachesExactlyKExperts) {
  // T > 256 so the router's per-chunk partial sums are exercised.
  const int64_t T = 301, D = 6, X = 5, F = 4;
  MoeInputs in = make_inputs(T, D, X, F, 200, false);
  for (int64_t k = 1; k <= X; ++k) {
    MoeOutput m = moe_ffn(in.x, in.router_w, in.w_gate, in.w_up, in.w_down, k);
    ASSERT_EQ(m.counts.size(), size_t(X));
    EXPECT_EQ(std::accumulate(m.counts.begin(), m.counts.end(), int64_t{0}), T * k) << "k=" << k;
    for (int64_t c : m.counts) EXPECT_TRUE(c >= 0 && c <= T);
    if (k == X) {
      for (int64_t c : m.counts) EXPECT_EQ(c, T);
    }
    EXPECT_EQ(m.aux_loss.item(), 0.0);  // both coefficients zero
    EXPECT_GT(m.balance_loss, 0.0);
  }
}

TEST(Moe, GradcheckEveryInput) {
  const int64_t T = 7, D = 4, X = 4, F = 3, k = 2;
  MoeInputs in = make_inputs(T, D, X, F, 300);
  // Finite differences move logits by about eps * |x| ~ 1e-6: the choice must not flip.
  ASSERT_GT(min_topk_gap(in, k), 1e-3);
  Tensor r1 = rand_f64({T, D}, 301, -1, 1, false);
  auto f = [=](const V& v) {
    MoeOutput m = moe_ffn(v[0], v[1], v[2], v[3], v[4], k, /*aux_coef=*/0.3, /*z_coef=*/0.05);
    return sum(m.out * r1) + m.aux_loss;
  };
  EXPECT_TRUE(gradcheck(f, in.all()));
  // aux_loss alone (no gradient arrives at out), and out alone.
  EXPECT_TRUE(
      gradcheck([=](const V& v) { return moe_ffn(v[0], v[1], v[2], v[3], v[4], k, 0.3, 0.05).aux_loss; }, in.all()));
  EXPECT_TRUE(gradcheck([=](const V& v) { return moe_ffn(v[0], v[1], v[2], v[3], v[4], k).out; }, in.all()));
}

TEST(Moe, GradcheckNonContiguousAndIdleExpert) {
  const int64_t T = 6, D = 3, X = 4, F = 5, k = 2;
  // x > 0 and a router row of -3s: expert 3 never wins, so its weights get zero gradient.
  MoeInputs in = make_inputs(T, D, X, F, 400);
  in.x = rand_f64({D, T}, 401, 0.5, 1.5);  // stored transposed, passed as a (T, D) view
  {
    NoGradGuard ng;
    fill_(narrow(in.router_w, 0, 3, 1), -3.0);
  }
  MoeInputs view_in = in;
  {
    NoGradGuard ng;
    view_in.x = transpose(in.x, 0, 1);
  }
  ASSERT_GT(min_topk_gap(view_in, k), 1e-3);
  {
    NoGradGuard ng;
    MoeOutput m = moe_ffn(view_in.x, in.router_w, in.w_gate, in.w_up, in.w_down, k);
    ASSERT_EQ(m.counts[3], 0);
  }
  auto f = [=](const V& v) {
    // x transposed, and w_down given as a transposed view of a (X, F, D) buffer.
    MoeOutput m = moe_ffn(transpose(v[0], 0, 1), v[1], v[2], v[3], transpose(v[4], 1, 2), k, 0.2, 0.1);
    return sum(m.out * 1.5) + m.aux_loss;
  };
  Tensor w_down_t = rand_f64({X, F, D}, 402, -0.7, 0.7);
  EXPECT_TRUE(gradcheck(f, {in.x, in.router_w, in.w_gate, in.w_up, w_down_t}));
}

TEST(Moe, DeterministicAcrossThreadCounts) {
  const int64_t T = 300, D = 16, X = 4, F = 24, k = 2;
  MoeInputs in64 = make_inputs(T, D, X, F, 500, false);
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    V in;
    for (const Tensor& t : in64.all()) {
      Tensor f = to(t, DType::f32).detach();
      f.set_requires_grad(true);
      in.push_back(f);
    }
    MoeOutput m = moe_ffn(in[0], in[1], in[2], in[3], in[4], k, 0.01, 0.001);
    ssm::backward(sum(m.out * m.out) + m.aux_loss);
    std::vector<std::vector<double>> res = {m.out.to_vector(), {m.aux_loss.item()}};
    for (const Tensor& t : in) res.push_back(t.grad().to_vector());
    return res;
  };
  const int before = omp_get_max_threads();
  auto one = run(1), two = run(2), three = run(3);
  omp_set_num_threads(before);
  EXPECT_EQ(one, two);
  EXPECT_EQ(one, three);
}

TEST(Moe, ErrorsNameTheTensors) {
  auto z = [](const Dims& s, DType t = DType::f32) { return Tensor::zeros(s, t); };
  const Tensor x = z({5, 4}), r = z({3, 4}), g = z({3, 6, 4}), u = z({3, 6, 4}), d = z({3, 4, 6});
  auto expect_error = [](auto f, const std::vector<std::string>& needles) {
    try {
      f();
      ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
      for (const std::string& n : needles)
        EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << "missing '" << n << "' in: " << e.what();
    }
  };
  EXPECT_NO_THROW(moe_ffn(x, r, g, u, d, 2));
  expect_error([&] { moe_ffn(z({5, 3}), r, g, u, d, 2); }, {"moe_ffn", "router_w", "[5, 3]"});
  expect_error([&] { moe_ffn(z({2, 5, 4}), r, g, u, d, 2); }, {"(T, D)", "[2, 5, 4]"});
  expect_error([&] { moe_ffn(x, r, z({2, 6, 4}), u, d, 2); }, {"w_gate", "[2, 6, 4]"});
  expect_error([&] { moe_ffn(x, r, g, z({3, 5, 4}), d, 2); }, {"w_up", "[3, 5, 4]"});
  expect_error([&] { moe_ffn(x, r, g, u, z({3, 6, 4}), 2); }, {"w_down", "(X, D, F)", "[3, 6, 4]"});
  expect_error([&] { moe_ffn(x, r, g, u, d, 0); }, {"top_k", "[1, 3]"});
  expect_error([&] { moe_ffn(x, r, g, u, d, 4); }, {"top_k"});
  expect_error([&] { moe_ffn(x, z({3, 4}, DType::f64), g, u, d, 2); }, {"dtype", "f64[3, 4]"});
}

}  // namespace
}  // namespace ssm
