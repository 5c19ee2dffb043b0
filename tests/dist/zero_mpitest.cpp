// ZeRO-1 AdamW against plain optim::AdamW fed the dp-mean gradient, over several steps with
// weight decay, a no-decay vector, an f32 parameter and sizes that do not divide by dp.
#include <gtest/gtest.h>

#include "framework/dist/zero.h"
#include "framework/ops/ops.h"
#include "framework/optim/adamw.h"
#include "framework/optim/clip.h"
#include "tests/dist/mpi_env.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

struct Spec {
  const char* name;
  Dims shape;
  DType dtype;
};
const Spec kSpecs[] = {{"w1", {5, 7}, DType::f64}, {"b1", {7}, DType::f64}, {"emb", {4, 3}, DType::f32},
                       {"w2", {3, 5}, DType::f64}, {"frozen", {2, 2}, DType::f64}};

std::vector<std::pair<std::string, Tensor>> make_params() {
  std::vector<std::pair<std::string, Tensor>> out;
  uint64_t seed = 1;
  for (const Spec& s : kSpecs) {
    Tensor v = test::rand_f64(s.shape, seed++, -1, 1, false);
    out.emplace_back(s.name, to(v, s.dtype).set_requires_grad(true));
  }
  return out;
}

// Rank r's gradient of parameter k at step t (the "frozen" one never gets a gradient).
Tensor grad_of(size_t k, int rank, int step) {
  const Spec& s = kSpecs[k];
  return to(test::rand_f64(s.shape, 100000 + 1000 * uint64_t(step) + 10 * uint64_t(k) + uint64_t(rank), -1, 1, false),
            s.dtype);
}

TEST(ZeroAdamW, MatchesPlainAdamWOnTheMeanGradient) {
  const auto& w = test::world();
  const int n = w->size();
  auto zp = make_params(), rp = make_params();
  dist::ZeroAdamW zero(zp, w, {.lr = 0.05, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1});
  optim::AdamW ref(rp, {.lr = 0.05, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1});

  for (const dist::ZeroAdamW::Group& g : zero.groups()) EXPECT_EQ(g.shard_size, (g.numel + n - 1) / n);
  for (int step = 0; step < 5; ++step) {
    const double lr = 0.05 * (1.0 - 0.1 * step);  // a schedule
    for (size_t k = 0; k + 1 < zp.size(); ++k) {
      zp[k].second.set_grad(grad_of(k, w->rank(), step));
      Tensor mean = Tensor::zeros(kSpecs[k].shape, DType::f64);
      for (int r = 0; r < n; ++r) add_(mean, to(grad_of(k, r, step), DType::f64));
      mul_(mean, 1.0 / n);
      rp[k].second.set_grad(to(mean, kSpecs[k].dtype));
    }
    zero.step(lr);
    ref.step(lr);
    zero.zero_grad();
    ref.zero_grad();
    for (size_t k = 0; k < zp.size(); ++k) {
      const double tol = kSpecs[k].dtype == DType::f32 ? 2e-6 : 1e-12;
      EXPECT_LT(test::max_rel_diff(zp[k].second, rp[k].second), tol) << kSpecs[k].name << " after step " << step;
    }
  }
  EXPECT_EQ(zero.step_count(), 5);
  // Never given a gradient anywhere: untouched, like optim::AdamW.
  EXPECT_EQ(zp.back().second.to_vector(), make_params().back().second.to_vector());
  // Every rank holds the same weights after the all-gather.
  Tensor mine = to(zp[0].second.detach(), DType::f64).view({1, -1});
  Tensor all = w->all_gather(mine, 0);
  for (int r = 1; r < n; ++r) EXPECT_EQ(all.narrow(0, r, 1).to_vector(), mine.to_vector());
}

// Clipping inside step(): the norm of the dp-mean gradient from the reduced shards equals
// optim::clip_grad_norm of the mean gradient, and the clipped update is plain AdamW's.
TEST(ZeroAdamW, ClipsWithTheGlobalNormOfTheMeanGradient) {
  const auto& w = test::world();
  const int n = w->size();
  auto zp = make_params(), rp = make_params();
  dist::ZeroAdamW zero(zp, w, {.lr = 0.05, .weight_decay = 0.1});
  optim::AdamW ref(rp, {.lr = 0.05, .weight_decay = 0.1});
  for (int step = 0; step < 3; ++step) {
    for (size_t k = 0; k + 1 < zp.size(); ++k) {
      zp[k].second.set_grad(grad_of(k, w->rank(), step));
      Tensor mean = Tensor::zeros(kSpecs[k].shape, DType::f64);
      for (int r = 0; r < n; ++r) add_(mean, to(grad_of(k, r, step), DType::f64));
      mul_(mean, 1.0 / n);
      rp[k].second.set_grad(to(mean, kSpecs[k].dtype));
    }
    const double max_norm = step == 2 ? 100.0 : 0.5;  // clipped, clipped, not clipped
    const double want = optim::clip_grad_norm(ref.params(), max_norm);
    dist::ZeroClip clip;
    clip.max_norm = max_norm;
    const double got = zero.step(0.05, clip);
    ref.step(0.05);
    zero.zero_grad();
    ref.zero_grad();
    // The f32 parameter's mean gradient is formed in f32 here and in f64 by the reference:
    // the norms, hence the clip factors, agree to ~1e-8, which the f64 weights then carry.
    EXPECT_NEAR(got, want, 1e-6 * want) << "step " << step;
    for (size_t k = 0; k < zp.size(); ++k) {
      const double tol = kSpecs[k].dtype == DType::f32 ? 2e-6 : 1e-8;
      EXPECT_LT(test::max_rel_diff(zp[k].second, rp[k].second), tol) << kSpecs[k].name << " after step " << step;
    }
  }
}

// Under tensor parallelism (here: the world as the tp group, dp = 1) split parameters'
// squares are summed over the tp ranks and replicated ones ("b1") count once.
TEST(ZeroAdamW, ClipNormCountsReplicatedParametersOnce) {
  const auto& w = test::world();
  auto zp = make_params();
  dist::ZeroAdamW zero(zp, dist::self_communicator("dp"), {.lr = 0.01});
  double want_sq = 0;
  for (size_t k = 0; k + 1 < zp.size(); ++k) {
    const bool replicated = std::string(kSpecs[k].name) == "b1";
    zp[k].second.set_grad(grad_of(k, replicated ? 0 : w->rank(), 0));
    for (int r = 0; r < (replicated ? 1 : w->size()); ++r)
      for (double v : to(grad_of(k, r, 0), DType::f64).to_vector()) want_sq += v * v;
  }
  dist::ZeroClip clip;
  clip.tp = w;
  clip.tp_replicated = [](const std::string& name) { return name == "b1"; };
  const double got = zero.step(0.01, clip);
  EXPECT_NEAR(got, std::sqrt(want_sq), 1e-12 * std::sqrt(want_sq));
}

TEST(ZeroAdamW, ShardsPartitionTheFlatVector) {
  const auto& w = test::world();
  auto zp = make_params();
  dist::ZeroAdamW zero(zp, w);
  ASSERT_EQ(zero.groups().size(), 2u);  // f64 masters, f32 masters
  EXPECT_EQ(zero.groups()[0].dtype, DType::f64);
  EXPECT_EQ(zero.groups()[0].numel, 35 + 7 + 15 + 4);
  EXPECT_EQ(zero.groups()[1].numel, 12);
  // The master shards, gathered, are the parameters in order (padding zero).
  const dist::ZeroAdamW::Group& g = zero.groups()[0];
  const std::vector<double> flat = w->all_gather(g.master, 0).to_vector();
  std::vector<double> want;
  for (const auto& [name, p] : zp)
    if (p.dtype() == DType::f64)
      for (double v : p.to_vector()) want.push_back(v);
  want.resize(flat.size(), 0.0);
  EXPECT_EQ(flat, want);
}

TEST(ZeroAdamW, RejectsBadParameters) {
  const auto& w = test::world();
  Tensor p = test::rand_f64({3}, 9);
  EXPECT_THROW(dist::ZeroAdamW({{"a", p}, {"a", test::rand_f64({3}, 10)}}, w), Error);
  EXPECT_THROW(dist::ZeroAdamW({{"a", p}, {"b", p}}, w), Error);
  EXPECT_THROW(dist::ZeroAdamW({{"t", test::rand_f64({3, 4}, 11).transpose(0, 1)}}, w), Error);
  EXPECT_THROW(dist::ZeroAdamW({{"a", p}}, w, {.beta1 = 1.0}), Error);
}

}  // namespace
}  // namespace ssm
