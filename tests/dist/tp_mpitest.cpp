// Tensor-parallel collectives against the single-rank computation, in float64: values and
// every gradient of a Megatron MLP (column-parallel, then row-parallel), with and without
// sequence parallelism, and the scatter/gather pair. Each rank also computes the single-rank
// reference itself (same seeds everywhere), so no result is trusted from another rank.
#include <gtest/gtest.h>

#include "framework/dist/grid.h"
#include "framework/dist/tp.h"
#include "framework/ops/ops.h"
#include "tests/dist/mpi_env.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

using test::rand_f64;

constexpr double kTol = 1e-12;

// The tp sizes this world supports: all ranks in one group, and tp = 2 with dp groups.
std::vector<int> tp_sizes() {
  const int n = test::world()->size();
  std::vector<int> s{n};
  if (n % 2 == 0 && n > 2) s.push_back(2);
  return s;
}

// A fresh leaf holding this rank's block of `full` along `dim`.
Tensor shard(const Tensor& full, int dim, int rank, int parts) {
  NoGradGuard raw;
  const int64_t m = full.size(dim) / parts;
  return clone(full.detach().narrow(dim, rank * m, m)).set_requires_grad(true);
}

Tensor slice(const Tensor& full, int dim, int rank, int parts) {
  const int64_t m = full.size(dim) / parts;
  return full.narrow(dim, rank * m, m);
}

Tensor mlp(const Tensor& x, const Tensor& w1, const Tensor& w2) { return linear(silu(linear(x, w1)), w2); }

TEST(TensorParallel, ColumnThenRowParallelMlpMatchesSingleRank) {
  for (int tp : tp_sizes()) {
    dist::ProcessGrid grid(test::world(), tp);
    const int r = grid.tp_rank();
    const int64_t B = 2, L = 3, D = 5, F = 3 * tp;
    // The same full tensors on every rank; dp groups get different data (seed + dp rank).
    const uint64_t s = 100 + 10 * uint64_t(grid.dp_rank());
    Tensor x = rand_f64({B, L, D}, s), w1 = rand_f64({F, D}, s + 1), w2 = rand_f64({D, F}, s + 2);
    Tensor R = rand_f64({B, L, D}, s + 3, -1, 1, false);

    Tensor y = mlp(x, w1, w2);
    backward(sum(y * R));

    Tensor xl = rand_f64({B, L, D}, s), w1l = shard(w1, 0, r, tp), w2l = shard(w2, 1, r, tp);
    Tensor h = silu(linear(dist::copy_to_tp(xl, grid.tp()), w1l));       // (B, L, F/tp)
    Tensor ytp = dist::reduce_from_tp(linear(h, w2l), grid.tp());         // (B, L, D)
    backward(sum(ytp * R));

    EXPECT_LT(test::max_rel_diff(ytp, y.detach()), kTol) << "tp " << tp;
    EXPECT_LT(test::max_rel_diff(xl.grad(), x.grad()), kTol) << "tp " << tp;
    EXPECT_LT(test::max_rel_diff(w1l.grad(), contiguous(slice(w1.grad(), 0, r, tp))), kTol) << "tp " << tp;
    EXPECT_LT(test::max_rel_diff(w2l.grad(), contiguous(slice(w2.grad(), 1, r, tp))), kTol) << "tp " << tp;
  }
}

TEST(TensorParallel, SequenceParallelMlpMatchesSingleRank) {
  for (int tp : tp_sizes()) {
    dist::ProcessGrid grid(test::world(), tp);
    const int r = grid.tp_rank();
    const int64_t B = 2, L = 3 * tp, D = 5, F = 2 * tp;
    const uint64_t s = 200 + 10 * uint64_t(grid.dp_rank());
    Tensor x = rand_f64({B, L, D}, s), w1 = rand_f64({F, D}, s + 1), w2 = rand_f64({D, F}, s + 2);
    Tensor R = rand_f64({B, L, D}, s + 3, -1, 1, false);
    Tensor y = mlp(x, w1, w2);
    backward(sum(y * R));

    // Rank r holds tokens [r·L/tp, (r+1)·L/tp) of the sequence and the matching rows of R;
    // its loss is its share, and the global loss is the sum over ranks.
    Tensor xl = shard(x, 1, r, tp), w1l = shard(w1, 0, r, tp), w2l = shard(w2, 1, r, tp);
    Tensor full = dist::gather_from_sp(xl, grid.tp(), 1);                     // (B, L, D)
    Tensor out = dist::reduce_scatter_to_sp(mlp(full, w1l, w2l), grid.tp(), 1);  // (B, L/tp, D)
    backward(sum(out * contiguous(slice(R, 1, r, tp))));

    EXPECT_LT(test::max_rel_diff(out, contiguous(slice(y.detach(), 1, r, tp))), kTol) << "tp " << tp;
    EXPECT_LT(test::max_rel_diff(xl.grad(), contiguous(slice(x.grad(), 1, r, tp))), kTol) << "tp " << tp;
    EXPECT_LT(test::max_rel_diff(w1l.grad(), contiguous(slice(w1.grad(), 0, r, tp))), kTol) << "tp " << tp;
    EXPECT_LT(test::max_rel_diff(w2l.grad(), contiguous(slice(w2.grad(), 1, r, tp))), kTol) << "tp " << tp;
  }
}

TEST(TensorParallel, ScatterThenGatherIsTheIdentityWithExactGradients) {
  for (int tp : tp_sizes()) {
    dist::ProcessGrid grid(test::world(), tp);
    const int r = grid.tp_rank();
    Tensor x = rand_f64({3, 2 * tp, 4}, 300), R = rand_f64({3, 2 * tp, 4}, 301, -1, 1, false);
    // Gradient of Σ R·silu(x) is R·silu'(x), assembled from the ranks' slices.
    Tensor ref = rand_f64({3, 2 * tp, 4}, 300);
    backward(sum(silu(ref) * R));

    Tensor local = dist::scatter_to_tp(x, grid.tp(), 1);  // (3, 2, 4)
    EXPECT_EQ(local.to_vector(), contiguous(slice(x.detach(), 1, r, tp)).to_vector());
    Tensor z = dist::gather_from_tp(silu(local), grid.tp(), 1);
    EXPECT_LT(test::max_rel_diff(z, silu(ref).detach()), kTol);
    backward(sum(z * R));
    EXPECT_LT(test::max_rel_diff(x.grad(), ref.grad()), kTol) << "tp " << tp;
  }
}

TEST(TensorParallel, TransposedInputsAndNoGradPassThrough) {
  dist::ProcessGrid grid(test::world(), test::world()->size());
  const int tp = grid.tp_size(), r = grid.tp_rank();
  Tensor x = rand_f64({2 * tp, 3}, 400);
  Tensor xt = transpose(x, 0, 1);  // (3, 2·tp) strided
  Tensor local = dist::scatter_to_tp(xt, grid.tp(), -1);
  EXPECT_EQ(local.to_vector(), contiguous(slice(xt.detach(), 1, r, tp)).to_vector());
  backward(sum(dist::gather_from_tp(local, grid.tp(), -1) * 2.0));
  for (double g : x.grad().to_vector()) EXPECT_EQ(g, 2.0);

  NoGradGuard off;  // plain collectives underneath, nothing recorded
  Tensor y = dist::reduce_from_tp(Tensor::from_vector({1, 2}, {2}, DType::f64), grid.tp());
  EXPECT_EQ(y.to_vector(), (std::vector<double>{double(tp), 2.0 * tp}));
  EXPECT_FALSE(y.requires_grad());
}

TEST(TensorParallel, ErrorsNameTheOpAndTheTensor) {
  dist::ProcessGrid grid(test::world(), test::world()->size());
  if (grid.tp_size() == 1) GTEST_SKIP() << "every size divides by 1";
  try {
    dist::scatter_to_tp(Tensor::zeros({3, grid.tp_size() + 1}), grid.tp(), -1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("scatter_to_tp"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not divisible"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ssm
