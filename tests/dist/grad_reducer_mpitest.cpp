// GradReducer: after finish() every gradient is the mean over dp ranks of the per-rank
// gradients (each rank recomputes all ranks' gradients locally to know the answer), for any
// bucket size, with buckets launched during backward.
#include <gtest/gtest.h>

#include "framework/dist/grad_reducer.h"
#include "framework/ops/ops.h"
#include "tests/dist/mpi_env.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

// A chain of layers h = tanh(h · a_i + b_i), so the last layers' gradients are final first;
// rank r's data depend on r. Parameters: a_i (D) f64, b_i (D) f64, and an f32 scale s (1).
struct Model {
  std::vector<Tensor> params;  // a_0, b_0, a_1, b_1, ..., s
  static constexpr int kLayers = 4;
  static constexpr int64_t kD = 5;

  Model() {
    for (int i = 0; i < kLayers; ++i) {
      params.push_back(test::rand_f64({kD}, 10 + uint64_t(i), 0.5, 1.5));
      params.push_back(test::rand_f64({kD}, 20 + uint64_t(i)));
    }
    params.push_back(Tensor::from_vector({0.75}, {1}, DType::f32).set_requires_grad(true));
  }
  Tensor loss(int rank) const {
    Tensor h = test::rand_f64({3, kD}, 1000 + uint64_t(rank), -1, 1, false);
    for (int i = 0; i < kLayers; ++i) h = tanh(h * params[size_t(2 * i)] + params[size_t(2 * i + 1)]);
    return sum(h * to(params.back(), DType::f64));
  }
  void zero_grad() {
    for (Tensor& p : params) p.zero_grad();
  }
};

// Σ over ranks of each parameter's gradient, computed on this rank alone, divided by n.
std::vector<std::vector<double>> expected_means(Model& m, int n) {
  std::vector<std::vector<double>> mean(m.params.size());
  for (int r = 0; r < n; ++r) {
    m.zero_grad();
    backward(m.loss(r));
    for (size_t i = 0; i < m.params.size(); ++i) {
      const std::vector<double> g = m.params[i].grad().to_vector();
      mean[i].resize(g.size(), 0.0);
      for (size_t k = 0; k < g.size(); ++k) mean[i][k] += g[k];
    }
  }
  for (auto& v : mean)
    for (double& x : v) x /= n;
  m.zero_grad();
  return mean;
}

TEST(GradReducer, MeanOfPerRankGradientsForAnyBucketSize) {
  const auto& w = test::world();
  Model m;
  const auto want = expected_means(m, w->size());
  std::vector<std::vector<std::vector<double>>> results;
  // 1e-6 MiB: one parameter per bucket; 1e-4: a few; 64: one bucket per dtype.
  for (double mb : {1e-6, 1e-4, 64.0}) {
    dist::GradReducer reducer(m.params, w, {.bucket_mb = mb});
    for (int step = 0; step < 2; ++step) {  // the reducer is reusable across steps
      m.zero_grad();
      backward(m.loss(w->rank()), Tensor(), reducer.hook());
      reducer.finish();
      std::vector<std::vector<double>> got;
      for (size_t i = 0; i < m.params.size(); ++i) {
        got.push_back(m.params[i].grad().to_vector());
        const double tol = m.params[i].dtype() == DType::f32 ? 1e-6 : 1e-14;
        EXPECT_LT(test::max_rel_diff(got.back(), want[i]), tol) << "param " << i << ", bucket_mb " << mb;
        EXPECT_EQ(m.params[i].grad().dtype(), m.params[i].dtype());
      }
      results.push_back(got);
    }
    if (mb == 1e-6) {
      EXPECT_EQ(reducer.num_buckets(), int(m.params.size()));
      EXPECT_EQ(reducer.bucket_params(0), std::vector<int>{int(m.params.size()) - 1});  // reverse order
      // Most buckets started before finish(): the last layers' gradients were final early.
      EXPECT_GE(reducer.launched_early(), reducer.num_buckets() - 1);
    }
    if (mb == 64.0) {
      EXPECT_EQ(reducer.num_buckets(), 2);  // the f32 scale, then the f64 vectors
    }
  }
  // The bucket layout does not change the result beyond the last bit.
  for (size_t k = 1; k < results.size(); ++k)
    for (size_t i = 0; i < m.params.size(); ++i) EXPECT_LT(test::max_rel_diff(results[k][i], results[0][i]), 1e-15);
}

TEST(GradReducer, UnusedParameterContributesZeros) {
  const auto& w = test::world();
  Tensor used = test::rand_f64({4}, 30), sometimes = test::rand_f64({3}, 31);
  dist::GradReducer reducer({used, sometimes}, w, {.bucket_mb = 1e-6});
  // Only rank 0 uses `sometimes` (gradient 2 everywhere); the mean is 2 / n.
  Tensor loss = sum(used * double(w->rank() + 1));
  if (w->rank() == 0) loss = loss + sum(sometimes * 2.0);
  backward(loss, Tensor(), reducer.hook());
  reducer.finish();
  const double n = w->size();
  for (double g : used.grad().to_vector()) EXPECT_DOUBLE_EQ(g, (n + 1) / 2);
  ASSERT_TRUE(sometimes.grad().defined());
  for (double g : sometimes.grad().to_vector()) EXPECT_DOUBLE_EQ(g, 2.0 / n);
}

TEST(GradReducer, FinishWithoutHookReducesEverything) {
  const auto& w = test::world();
  Tensor p = test::rand_f64({6}, 40);
  dist::GradReducer reducer({p}, w);
  backward(sum(p * double(w->rank())));  // plain backward: no early launch
  reducer.finish();
  EXPECT_EQ(reducer.launched_early(), 0);
  for (double g : p.grad().to_vector()) EXPECT_DOUBLE_EQ(g, (w->size() - 1) / 2.0);
}

TEST(GradReducer, CudaGradientsOverNccl) {
  const auto nccl = test::nccl_world();
  if (!nccl) GTEST_SKIP() << "NCCL backend not tested: " << test::nccl_unavailable_reason();
  const Device dev = Device::cuda(test::local_rank());
  const int n = nccl->size(), r = nccl->rank();
  // f32 and bf16 parameters (bf16 is reduced in an f32 bucket); gradients set directly.
  std::vector<Tensor> ps;
  for (DType dt : {DType::f32, DType::bf16, DType::f32}) ps.push_back(Tensor::zeros({3, 5}, dt, dev).set_requires_grad(true));
  dist::GradReducer reducer(ps, nccl, {.bucket_mb = 1e-4});
  for (size_t i = 0; i < ps.size(); ++i) {
    std::vector<double> g(15);
    for (size_t k = 0; k < g.size(); ++k) g[k] = double((r + 1) * int(k + i));
    ps[i].set_grad(Tensor::from_vector(g, {3, 5}, ps[i].dtype(), dev));
  }
  reducer.finish();
  for (size_t i = 0; i < ps.size(); ++i) {
    const std::vector<double> got = ps[i].grad().to_vector();
    for (size_t k = 0; k < got.size(); ++k) EXPECT_EQ(got[k], double(k + i) * (n + 1) / 2.0) << "param " << i;
  }
}

TEST(GradReducer, RejectsBadArguments) {
  const auto& w = test::world();
  Tensor p = test::rand_f64({2}, 50);
  EXPECT_THROW(dist::GradReducer({p, p}, w), Error);
  EXPECT_THROW(dist::GradReducer({p}, w, {.bucket_mb = 0}), Error);
  EXPECT_THROW(dist::GradReducer({Tensor::zeros({2}, DType::i32)}, w), Error);
  EXPECT_THROW(dist::GradReducer({p}, nullptr), Error);
}

}  // namespace
}  // namespace ssm
