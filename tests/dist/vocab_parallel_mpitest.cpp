// Vocab-parallel cross-entropy and embedding against ssm::cross_entropy / ssm::embedding on
// the full vocab (computed by every rank from the same seeds): loss, stats and gradients.
// Megatron#7452 (a +log 2 in the TP loss) is exactly what these comparisons catch.
#include <gtest/gtest.h>

#include <cmath>

#include "framework/dist/grid.h"
#include "framework/dist/vocab_parallel.h"
#include "framework/ops/ops.h"
#include "tests/dist/mpi_env.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

using test::rand_f64;

std::vector<int> tp_sizes() {
  const int n = test::world()->size();
  std::vector<int> s{n};
  if (n % 2 == 0 && n > 2) s.push_back(2);
  return s;
}

Tensor shard_leaf(const Tensor& full, int rank, int parts, int dim) {
  NoGradGuard raw;
  const int64_t m = full.size(dim) / parts;
  return clone(full.detach().narrow(dim, rank * m, m)).set_requires_grad(true);
}

Tensor slice(const Tensor& full, int rank, int parts, int dim) {
  const int64_t m = full.size(dim) / parts;
  return contiguous(full.narrow(dim, rank * m, m));
}

// Targets (leading dims of logits) in [0, V), every 5th row ignored, row 0 at its argmax
// (so the accuracy count is exercised).
Tensor make_targets(const Tensor& logits, uint64_t seed, int64_t ignore) {
  const int64_t V = logits.size(-1), N = logits.numel() / V;
  const std::vector<double> u = rand_f64({N}, seed, 0, 1, false).to_vector();
  const std::vector<double> x = logits.to_vector();
  std::vector<double> t(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) t[size_t(i)] = i % 5 == 3 ? double(ignore) : std::floor(u[size_t(i)] * double(V));
  int64_t best = 0;
  for (int64_t j = 1; j < V; ++j)
    if (x[size_t(j)] > x[size_t(best)]) best = j;
  t[0] = double(best);
  Dims lead = logits.shape();
  lead.erase(lead.size() - 1);
  return Tensor::from_vector(t, lead, DType::i64);
}

struct XentCase {
  const char* name;
  Dims shape_over_tp;  // logits shape with V = last · tp
  DType dtype;
  double shift;        // added to the last rank's slice: a large max on one rank only
  double tol;
};

TEST(VocabParallel, CrossEntropyMatchesSingleRankLossStatsAndGradient) {
  const XentCase cases[] = {{"3d f64", {3, 5, 7}, DType::f64, 0.0, 1e-12},
                            {"2d f64 shifted", {11, 3}, DType::f64, 40.0, 1e-12},
                            {"3d f32", {2, 3, 5}, DType::f32, 0.0, 2e-5}};
  for (int tp : tp_sizes()) {
    dist::ProcessGrid grid(test::world(), tp);
    const int r = grid.tp_rank();
    for (const XentCase& c : cases) {
      SCOPED_TRACE(::testing::Message() << c.name << ", tp " << tp);
      Dims shape = c.shape_over_tp;
      const int64_t v_local = shape[shape.size() - 1];
      shape[shape.size() - 1] = v_local * tp;
      const uint64_t seed = 500 + 10 * uint64_t(grid.dp_rank());
      Tensor full64 = rand_f64(shape, seed, -3, 3, false);
      if (c.shift != 0) {
        Tensor last = full64.narrow(-1, (tp - 1) * v_local, v_local);
        add_(last, Tensor::scalar(c.shift, DType::f64));
      }
      const Tensor targets = make_targets(full64, seed + 1, -1);
      Tensor full = to(full64, c.dtype).set_requires_grad(true);

      CrossEntropyStats st1, st2;
      Tensor loss1 = cross_entropy(full, targets, -1, &st1);
      backward(loss1 * 1.7);
      Tensor local = shard_leaf(full, r, tp, -1);
      Tensor loss2 = dist::vocab_parallel_cross_entropy(local, targets, grid.tp(), -1, &st2);
      backward(loss2 * 1.7);

      EXPECT_EQ(loss2.dtype(), c.dtype);
      EXPECT_NEAR(loss2.item(), loss1.item(), c.tol * std::max(1.0, std::abs(loss1.item())));
      EXPECT_EQ(st2.count, st1.count);
      EXPECT_EQ(st2.correct, st1.correct);
      EXPECT_GE(st1.correct, 1);
      EXPECT_LT(test::max_rel_diff(local.grad(), slice(full.grad(), r, tp, -1)), c.tol);
    }
  }
}

TEST(VocabParallel, CrossEntropyIsTheSameOnEveryTpRank) {
  dist::ProcessGrid grid(test::world(), test::world()->size());
  Tensor full = rand_f64({4, 3 * grid.tp_size()}, 600, -2, 2, false);
  const Tensor targets = make_targets(full, 601, -1);
  Tensor loss = dist::vocab_parallel_cross_entropy(slice(full, grid.tp_rank(), grid.tp_size(), -1), targets, grid.tp());
  Tensor all = grid.tp()->all_gather(loss.view({1}));
  for (double v : all.to_vector()) EXPECT_EQ(v, loss.item());  // bit-identical
}

TEST(VocabParallel, CrossEntropyWithEveryRowIgnoredIsZero) {
  dist::ProcessGrid grid(test::world(), test::world()->size());
  Tensor local = rand_f64({3, 4}, 700);
  Tensor targets = Tensor::from_vector({-100, -100, -100}, {3}, DType::i32);
  CrossEntropyStats st;
  Tensor loss = dist::vocab_parallel_cross_entropy(local, targets, grid.tp(), -100, &st);
  EXPECT_EQ(loss.item(), 0.0);
  EXPECT_EQ(st.count, 0);
  backward(loss);
  for (double g : local.grad().to_vector()) EXPECT_EQ(g, 0.0);
}

TEST(VocabParallel, CrossEntropyRejectsOutOfRangeTargets) {
  dist::ProcessGrid grid(test::world(), test::world()->size());
  const int64_t V = 4 * grid.tp_size();
  Tensor targets = Tensor::from_vector({0, double(V)}, {2}, DType::i64);
  try {
    dist::vocab_parallel_cross_entropy(Tensor::zeros({2, 4}, DType::f64), targets, grid.tp());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("target " + std::to_string(V) + " at flat position 1"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("vocab size V = " + std::to_string(V)), std::string::npos) << e.what();
  }
}

TEST(VocabParallel, EmbeddingMatchesSingleRank) {
  for (int tp : tp_sizes()) {
    dist::ProcessGrid grid(test::world(), tp);
    const int r = grid.tp_rank();
    const int64_t V = 5 * tp, D = 3;
    Tensor w = rand_f64({V, D}, 800);
    // Ids hitting every rank's slice, some repeated (their gradients accumulate).
    std::vector<double> idv;
    for (int64_t i = 0; i < 9; ++i) idv.push_back(double((i * 7 + 2) % V));
    idv.push_back(idv[0]);
    idv.push_back(double(V - 1));
    idv.push_back(0);
    for (DType it : {DType::i32, DType::i64}) {
      SCOPED_TRACE(::testing::Message() << "tp " << tp << " " << dtype_name(it));
      w.zero_grad();
      Tensor ids = Tensor::from_vector(idv, {3, 4}, it);
      Tensor R = rand_f64({3, 4, D}, 801, -1, 1, false);
      Tensor ref = embedding(w, ids);
      backward(sum(ref * R));
      Tensor wl = shard_leaf(w, r, tp, 0);
      Tensor out = dist::vocab_parallel_embedding(wl, ids, grid.tp());
      EXPECT_EQ(out.shape(), ref.shape());
      EXPECT_EQ(out.to_vector(), ref.to_vector());  // one nonzero term per element: exact
      backward(sum(out * R));
      EXPECT_LT(test::max_rel_diff(wl.grad(), slice(w.grad(), r, tp, 0)), 1e-14);
    }
  }
}

TEST(VocabParallel, EmbeddingRejectsOutOfRangeIds) {
  dist::ProcessGrid grid(test::world(), test::world()->size());
  const int64_t V = 2 * grid.tp_size();
  try {
    dist::vocab_parallel_embedding(Tensor::zeros({2, 3}), Tensor::from_vector({1, double(V)}, {2}, DType::i32),
                                   grid.tp());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("id " + std::to_string(V) + " at flat position 1"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace ssm
