// AdamW against a naive scalar reference over several steps (f64: 1e-12; f32: 1e-5),
// weight-decay exclusion and its override, parameters without gradients, state accessors
// and exact resume, argument errors.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>

#include "framework/ops/ops.h"
#include "framework/optim/optim.h"

namespace ssm {
namespace {

using optim::AdamW;
using optim::AdamWOptions;

std::vector<double> random_values(size_t n, std::mt19937& gen) {
  std::normal_distribution<double> nd;
  std::vector<double> v(n);
  for (double& x : v) x = nd(gen);
  return v;
}

// Textbook AdamW on one scalar (Loshchilov & Hutter, with PyTorch's eps placement).
struct RefAdamW {
  double p, m = 0, v = 0;
  void step(double g, double lr, double b1, double b2, double eps, double wd, int64_t t) {
    p -= lr * wd * p;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    const double mhat = m / (1 - std::pow(b1, double(t)));
    const double vhat = v / (1 - std::pow(b2, double(t)));
    p -= lr * mhat / (std::sqrt(vhat) + eps);
  }
};

void run_against_reference(DType dt, double tol) {
  std::mt19937 gen(1);
  const Dims sw{5, 3}, sb{7};  // a decayed matrix and an excluded vector
  Tensor w = Tensor::from_vector(random_values(15, gen), sw, dt).set_requires_grad(true);
  Tensor b = Tensor::from_vector(random_values(7, gen), sb, dt).set_requires_grad(true);
  std::vector<RefAdamW> rw, rb;
  for (double x : w.to_vector()) rw.push_back({x});
  for (double x : b.to_vector()) rb.push_back({x});
  AdamWOptions o;
  o.beta1 = 0.9;
  o.beta2 = 0.95;
  o.eps = 1e-8;
  o.weight_decay = 0.1;
  AdamW opt({{"layer.weight", w}, {"layer.bias", b}}, o);
  EXPECT_TRUE(opt.slot("layer.weight").decay);
  EXPECT_FALSE(opt.slot("layer.bias").decay);
  for (int64_t t = 1; t <= 6; ++t) {
    const double lr = 1e-2 / double(t);  // a changing (scheduled) lr
    std::vector<double> gw = random_values(15, gen), gb = random_values(7, gen);
    w.set_grad(Tensor::from_vector(gw, sw, dt));
    b.set_grad(Tensor::from_vector(gb, sb, dt));
    // The reference sees the gradients as the optimizer does (rounded to dt).
    gw = w.grad().to_vector();
    gb = b.grad().to_vector();
    opt.step(lr);
    for (size_t i = 0; i < rw.size(); ++i) rw[i].step(gw[i], lr, 0.9, 0.95, 1e-8, 0.1, t);
    for (size_t i = 0; i < rb.size(); ++i) rb[i].step(gb[i], lr, 0.9, 0.95, 1e-8, 0.0, t);
  }
  EXPECT_EQ(opt.step_count(), 6);
  std::vector<double> pw = w.to_vector(), pb = b.to_vector();
  std::vector<double> mw = opt.slot("layer.weight").exp_avg.to_vector(), vw = opt.slot("layer.weight").exp_avg_sq.to_vector();
  for (size_t i = 0; i < rw.size(); ++i) {
    EXPECT_NEAR(pw[i], rw[i].p, tol * std::max(1.0, std::abs(rw[i].p))) << "weight " << i;
    EXPECT_NEAR(mw[i], rw[i].m, tol * std::max(1.0, std::abs(rw[i].m))) << "m " << i;
    EXPECT_NEAR(vw[i], rw[i].v, tol * std::max(1.0, std::abs(rw[i].v))) << "v " << i;
  }
  for (size_t i = 0; i < rb.size(); ++i) EXPECT_NEAR(pb[i], rb[i].p, tol * std::max(1.0, std::abs(rb[i].p))) << "bias " << i;
}

TEST(AdamW, MatchesScalarReferenceF64) { run_against_reference(DType::f64, 1e-12); }
TEST(AdamW, MatchesScalarReferenceF32) { run_against_reference(DType::f32, 1e-5); }

TEST(AdamW, WeightDecayExclusionAndOverride) {
  // Zero gradients: m = v = 0, so the only change is the decoupled decay p *= 1 - lr·wd.
  Tensor w = Tensor::from_vector({1, -2, 3, 4}, {2, 2}, DType::f64).set_requires_grad(true);
  Tensor n = Tensor::from_vector({1, 2}, {2}, DType::f64).set_requires_grad(true);
  Tensor e = Tensor::from_vector({5, 6}, {1, 2}, DType::f64).set_requires_grad(true);
  for (Tensor* t : {&w, &n, &e}) t->set_grad(Tensor::zeros(t->shape(), DType::f64));
  AdamWOptions o;
  o.weight_decay = 0.5;
  o.no_decay = [](const std::string& name, const Tensor& p) { return optim::no_decay(name, p) || name == "embedding"; };
  AdamW opt({{"w", w}, {"norm.weight", n}, {"embedding", e}}, o);
  opt.step(0.1);
  EXPECT_EQ(w.to_vector(), (std::vector<double>{0.95, -1.9, 0.95 * 3, 0.95 * 4}));
  EXPECT_EQ(n.to_vector(), (std::vector<double>{1, 2}));  // 1-D: excluded by the default rule
  EXPECT_EQ(e.to_vector(), (std::vector<double>{5, 6}));  // excluded by name
}

TEST(AdamW, ParamsWithoutGradAreUntouched) {
  Tensor a = Tensor::from_vector({1, 2, 3}, {3}).set_requires_grad(true);
  Tensor b = Tensor::from_vector({4, 5, 6}, {3}).set_requires_grad(true);
  AdamW opt({{"a", a}, {"b", b}});
  a.set_grad(Tensor::from_vector({1, 1, 1}, {3}));
  opt.step(0.1);
  EXPECT_EQ(b.to_vector(), (std::vector<double>{4, 5, 6}));
  EXPECT_EQ(opt.slot("b").exp_avg.to_vector(), (std::vector<double>{0, 0, 0}));
  // First step with g = 1: mhat = vhat = 1, update = lr / (1 + eps).
  for (double v : opt.slot("a").exp_avg.to_vector()) EXPECT_NEAR(v, 0.1, 1e-7);
  std::vector<double> av = a.to_vector();
  EXPECT_NEAR(av[0], 1 - 0.1, 1e-6);
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
}

TEST(AdamW, ResumeFromSavedStateIsExact) {
  std::mt19937 gen(2);
  std::vector<double> init = random_values(40, gen);
  std::vector<std::vector<double>> grads;
  for (int s = 0; s < 6; ++s) grads.push_back(random_values(40, gen));
  AdamWOptions o;
  o.weight_decay = 0.01;
  // Uninterrupted: 6 steps.
  Tensor p = Tensor::from_vector(init, {8, 5}).set_requires_grad(true);
  AdamW opt({{"p", p}}, o);
  for (int s = 0; s < 6; ++s) {
    p.set_grad(Tensor::from_vector(grads[size_t(s)], {8, 5}));
    opt.step(1e-3);
  }
  // Interrupted after 3 steps: a fresh optimizer loads (param, m, v, step) and goes on.
  Tensor q = Tensor::from_vector(init, {8, 5}).set_requires_grad(true);
  Tensor saved_p, saved_m, saved_v;
  int64_t saved_step = 0;
  {
    AdamW first({{"p", q}}, o);
    for (int s = 0; s < 3; ++s) {
      q.set_grad(Tensor::from_vector(grads[size_t(s)], {8, 5}));
      first.step(1e-3);
    }
    NoGradGuard ng;
    saved_p = clone(q);
    saved_m = clone(first.slot("p").exp_avg);
    saved_v = clone(first.slot("p").exp_avg_sq);
    saved_step = first.step_count();
  }
  Tensor r = clone(saved_p).set_requires_grad(true);
  AdamW second({{"p", r}}, o);
  second.load_slot_state("p", saved_m, saved_v);
  second.set_step_count(saved_step);
  for (int s = 3; s < 6; ++s) {
    r.set_grad(Tensor::from_vector(grads[size_t(s)], {8, 5}));
    second.step(1e-3);
  }
  EXPECT_EQ(std::memcmp(p.raw_data(), r.raw_data(), p.nbytes()), 0);
  EXPECT_EQ(second.step_count(), 6);
}

TEST(AdamW, DeterministicAcrossThreadCounts) {
  Rng rng(3);
  Tensor p0 = randn({300, 257}, rng), g = randn({300, 257}, rng);  // several kernel chunks
  Tensor out[2];
  const int prev = omp_get_max_threads();
  for (int k = 0; k < 2; ++k) {
    omp_set_num_threads(k + 1);
    Tensor p = clone(p0).set_requires_grad(true);
    AdamW opt({{"p", p}});
    for (int s = 0; s < 3; ++s) {
      p.set_grad(clone(g));
      opt.step(1e-2);
    }
    out[k] = p;
  }
  omp_set_num_threads(prev);
  EXPECT_EQ(std::memcmp(out[0].raw_data(), out[1].raw_data(), out[0].nbytes()), 0);
}

TEST(AdamW, Errors) {
  Tensor a = Tensor::zeros({2, 3}).set_requires_grad(true);
  auto msg = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(msg([&] { AdamW({{"a", a}, {"a", Tensor::zeros({1})}}); }).find("'a' appears twice"), std::string::npos);
  EXPECT_NE(msg([&] { AdamW({{"a", a}, {"b", a}}); }).find("already given"), std::string::npos);
  EXPECT_NE(msg([&] { AdamW({{"t", Tensor::zeros({3, 2}).transpose(0, 1)}}); }).find("must be contiguous"),
            std::string::npos);
  EXPECT_NE(msg([&] { AdamW({{"h", Tensor::zeros({2}, DType::bf16)}}); }).find("f32 or f64 master"), std::string::npos);
  AdamWOptions bad;
  bad.beta2 = 1.0;
  EXPECT_NE(msg([&] { AdamW({{"a", a}}, bad); }).find("betas"), std::string::npos);
  AdamW opt({{"a", a}});
  EXPECT_NE(msg([&] { opt.slot("nope"); }).find("no parameter named 'nope'"), std::string::npos);
  EXPECT_NE(msg([&] { opt.load_slot_state("a", Tensor::zeros({3}), Tensor::zeros({2, 3})); }).find("does not match"),
            std::string::npos);
}

}  // namespace
}  // namespace ssm
