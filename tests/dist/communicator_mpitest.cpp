// Collectives against values every rank can compute locally (rank r's input is a known
// function of r), at whatever world size mpirun started. The Collectives suite runs once per
// backend: "host" (MPI, or the self communicator without mpirun) on CPU tensors and "nccl"
// on CUDA tensors (skipped, with the reason, when the build or the machine has no NCCL/GPU).
// Strided inputs are tested on the host only: the dim and stride handling lives in the
// backend-independent base class.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "framework/dist/consistency.h"
#include "framework/dist/nccl.h"
#include "framework/ops/ops.h"
#include "tests/dist/mpi_env.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

using dist::ReduceOp;
using test::world;

// Rank r's tensor: element i = (r + 1) · (i + 1) (exact in every dtype for small sizes).
Tensor ranked(const Dims& shape, int r, DType dt, Device dev = Device::cpu()) {
  std::vector<double> v(size_t(shape.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = double(r + 1) * double(i + 1);
  return Tensor::from_vector(v, shape, dt, dev);
}

class Collectives : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "host") {
      comm_ = world();
      return;
    }
    comm_ = test::nccl_world();
    if (!comm_) GTEST_SKIP() << "NCCL backend not tested: " << test::nccl_unavailable_reason();
    dev_ = Device::cuda(test::local_rank());
  }
  std::shared_ptr<dist::Communicator> comm_;
  Device dev_ = Device::cpu();
};
INSTANTIATE_TEST_SUITE_P(Backends, Collectives, ::testing::Values("host", "nccl"),
                         [](const auto& info) { return info.param; });

// Expected element i of a reduction over ranks 0..n-1 of ranked().
double reduced(ReduceOp op, int n, size_t i) {
  const double base = double(i + 1);
  switch (op) {
    case ReduceOp::sum: return base * n * (n + 1) / 2;
    case ReduceOp::max: return base * n;
    case ReduceOp::min: return base;
  }
  return 0;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST_P(Collectives, AllReduceEveryDtypeAndOp) {
  const auto& w = comm_;
  for (DType dt : {DType::f32, DType::f64, DType::i32, DType::i64, DType::bf16})
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::max, ReduceOp::min}) {
      Tensor x = ranked({3, 5}, w->rank(), dt, dev_);
      w->all_reduce(x, op);
      const std::vector<double> got = x.to_vector();
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_EQ(got[i], reduced(op, w->size(), i)) << dtype_name(dt) << " " << dist::reduce_op_name(op) << " at " << i;
    }
}

TEST(Communicator, AllReduceStridedViewWritesBackInPlace) {
  const auto& w = world();
  Tensor base = ranked({4, 6}, w->rank(), DType::f64);
  Tensor before = clone(base);
  Tensor view = base.transpose(0, 1).narrow(0, 1, 3);  // (3, 4), non-contiguous: base[:, 1:4]
  w->all_reduce(view);
  const std::vector<double> b = before.to_vector(), a = base.to_vector();
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 6; ++j) {
      const size_t k = size_t(i * 6 + j);
      const double want = j >= 1 && j < 4 ? reduced(ReduceOp::sum, w->size(), k) : b[k];
      EXPECT_EQ(a[k], want) << i << "," << j;
    }
}

TEST_P(Collectives, AllReduceAsyncOverlapsSeveralRequests) {
  const auto& w = comm_;
  std::vector<Tensor> xs;
  std::vector<std::unique_ptr<dist::Work>> works;
  for (int k = 0; k < 3; ++k) {
    xs.push_back(ranked({7 + k}, w->rank(), DType::f32, dev_));
    works.push_back(w->all_reduce_async(xs.back()));
  }
  for (int k = 2; k >= 0; --k) works[size_t(k)]->wait();  // completion in any order
  for (int k = 0; k < 3; ++k) {
    const std::vector<double> got = xs[size_t(k)].to_vector();
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], reduced(ReduceOp::sum, w->size(), i));
  }
  EXPECT_THROW(w->all_reduce_async(Tensor::zeros({4, 3}, DType::f32, dev_).transpose(0, 1)), Error);  // contiguous only
}

TEST_P(Collectives, AllGather) {
  const auto& w = comm_;
  const int n = w->size();
  for (DType dt : {DType::f32, DType::bf16, DType::i32}) {
    Tensor got = w->all_gather(ranked({2, 3}, w->rank(), dt, dev_), 0);
    std::vector<Tensor> parts;
    for (int r = 0; r < n; ++r) parts.push_back(ranked({2, 3}, r, dt));
    ASSERT_EQ(got.shape(), (Dims{2 * n, 3}));
    EXPECT_EQ(got.device(), dev_);
    EXPECT_EQ(got.to_vector(), concat(parts, 0).to_vector()) << dtype_name(dt);
  }
  Tensor ids = w->all_gather(Tensor::from_vector({double(w->rank())}, {1}, DType::i64, dev_));
  for (int r = 0; r < n; ++r) EXPECT_EQ(ids.to_vector()[size_t(r)], r);
}

TEST(Communicator, AllGatherAlongEveryDim) {
  const auto& w = world();
  const int n = w->size();
  const Dims shape{2, 3, 5};
  for (int dim : {0, 1, 2, -1}) {
    Tensor x = ranked(shape, w->rank(), DType::f64);
    Tensor got = w->all_gather(transpose(x, 0, 1), dim);  // a non-contiguous input as well
    std::vector<Tensor> parts;
    for (int r = 0; r < n; ++r) parts.push_back(transpose(ranked(shape, r, DType::f64), 0, 1));
    Tensor want = concat(parts, dim);
    ASSERT_EQ(got.shape(), want.shape()) << "dim " << dim;
    EXPECT_EQ(got.to_vector(), want.to_vector()) << "dim " << dim;
  }
}

TEST_P(Collectives, ReduceScatter) {
  const auto& w = comm_;
  const int n = w->size();
  for (DType dt : {DType::f64, DType::f32, DType::bf16, DType::i64})
    for (int dim : {0, 1}) {
      if (dim > 0 && dev_.is_cuda()) continue;  // dims are moved to the front by the base class
      Dims shape{3, 3};
      shape[dim] = 2 * n;
      Tensor x = ranked(shape, w->rank(), dt, dev_);
      Tensor got = w->reduce_scatter(x, dim);
      // Σ_r (r+1)·(i+1) = (i+1)·n(n+1)/2, then this rank's block along dim.
      Tensor full = ranked(shape, 0, DType::f64) * (double(n) * (n + 1) / 2);
      Tensor want = full.narrow(dim, 2 * w->rank(), 2);
      ASSERT_EQ(got.shape(), want.shape());
      EXPECT_EQ(got.dtype(), dt);
      EXPECT_EQ(got.to_vector(), want.to_vector()) << dtype_name(dt) << " dim " << dim;
    }
  Tensor m = w->reduce_scatter(ranked({n, 2}, w->rank(), DType::f32, dev_), 0, ReduceOp::max);
  EXPECT_EQ(m.to_vector(), (std::vector<double>{double(n) * (2 * w->rank() + 1), double(n) * (2 * w->rank() + 2)}));
}

TEST_P(Collectives, BroadcastFromEveryRoot) {
  const auto& w = comm_;
  for (DType dt : {DType::bf16, DType::f64, DType::i32})
    for (int root = 0; root < w->size(); ++root) {
      Tensor x = ranked({4, 3}, w->rank(), dt, dev_);
      w->broadcast(x, root);
      EXPECT_EQ(x.to_vector(), ranked({4, 3}, root, dt).to_vector()) << dtype_name(dt) << " root " << root;
    }
  w->barrier();
}

TEST(Communicator, BroadcastIntoAStridedView) {
  const auto& w = world();
  for (int root = 0; root < w->size(); ++root) {
    Tensor x = ranked({4, 3}, w->rank(), DType::bf16);
    w->broadcast(x.transpose(0, 1), root);  // strided in place
    EXPECT_EQ(x.to_vector(), ranked({4, 3}, root, DType::bf16).to_vector()) << "root " << root;
  }
}

TEST_P(Collectives, RejectsTensorsOfAnotherDevice) {
  Tensor wrong;
  if (dev_.is_cuda())
    wrong = Tensor::zeros({3});
  else if (cuda_device_count() > 0)
    wrong = Tensor::zeros({3}, DType::f32, Device::cuda(0));
  else
    GTEST_SKIP() << "no GPU to make a tensor that the host backend must reject";
  if (comm_->supports(wrong.device())) GTEST_SKIP() << "the " << comm_->backend() << " backend handles both devices";
  try {
    comm_->all_reduce(wrong);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "cannot communicate tensors on " + wrong.device().str())) << e.what();
    EXPECT_TRUE(contains(e.what(), comm_->describe())) << e.what();
  }
}

TEST_P(Collectives, SplitIntoEvenAndOddRanks) {
  const auto& w = comm_;
  const int n = w->size(), r = w->rank();
  auto sub = w->split(r % 2, r, "parity");
  EXPECT_EQ(sub->name(), "parity");
  EXPECT_STREQ(sub->backend(), w->backend());
  EXPECT_EQ(sub->size(), (n - r % 2 + 1) / 2);
  EXPECT_EQ(sub->rank(), r / 2);
  Tensor x = Tensor::from_vector({double(r)}, {1}, DType::i64, dev_);
  sub->all_reduce(x);
  double want = 0;
  for (int q = r % 2; q < n; q += 2) want += q;
  EXPECT_EQ(x.item(), want);
  // A key reverses the order.
  auto rev = w->split(0, n - 1 - r, "reversed");
  EXPECT_EQ(rev->rank(), n - 1 - r);
}

TEST(Communicator, ErrorsNameOpRankAndTensor) {
  const auto& w = world();
  const std::string rank_part = "rank " + std::to_string(w->rank()) + " of " + std::to_string(w->size());
  try {
    w->broadcast(Tensor::zeros({2, 3}), w->size());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "broadcast")) << e.what();
    EXPECT_TRUE(contains(e.what(), rank_part)) << e.what();
    EXPECT_TRUE(contains(e.what(), "f32[2, 3]")) << e.what();
    EXPECT_TRUE(contains(e.what(), "'world'")) << e.what();
  }
  if (w->size() > 1) {
    try {
      w->reduce_scatter(Tensor::zeros({2 * w->size() + 1, 3}), 0);
      FAIL() << "expected an error";
    } catch (const Error& e) {
      EXPECT_TRUE(contains(e.what(), "reduce_scatter")) << e.what();
      EXPECT_TRUE(contains(e.what(), "not divisible")) << e.what();
      EXPECT_TRUE(contains(e.what(), rank_part)) << e.what();
    }
  }
  EXPECT_THROW(w->all_reduce(Tensor()), Error);
  EXPECT_THROW(w->split(-1, 0, "bad"), Error);
  w->barrier();  // every rank is still in step after the errors
}

TEST(Communicator, SelfCommunicatorIsTheIdentity) {
  auto self = dist::self_communicator("solo");
  EXPECT_EQ(self->size(), 1);
  EXPECT_EQ(self->rank(), 0);
  EXPECT_STREQ(self->backend(), "self");
  Tensor x = ranked({2, 3}, 4, DType::f64);
  self->all_reduce(x, ReduceOp::max);
  EXPECT_EQ(x.to_vector(), ranked({2, 3}, 4, DType::f64).to_vector());
  EXPECT_EQ(self->all_gather(x, 1).to_vector(), x.to_vector());
  EXPECT_EQ(self->reduce_scatter(x, 0).to_vector(), x.to_vector());
  EXPECT_EQ(self->split(3, 0, "sub")->name(), "sub");
}

TEST(Communicator, TimeoutComesFromTheEnvironment) {
  const char* old = std::getenv("SSM_COLLECTIVE_TIMEOUT_S");
  const std::string saved = old ? old : "";
  setenv("SSM_COLLECTIVE_TIMEOUT_S", "2.5", 1);
  EXPECT_EQ(dist::collective_timeout_s(), 2.5);
  for (const char* bad : {"0", "-3", "abc", "5s"}) {
    setenv("SSM_COLLECTIVE_TIMEOUT_S", bad, 1);
    EXPECT_THROW(dist::collective_timeout_s(), Error) << bad;
  }
  unsetenv("SSM_COLLECTIVE_TIMEOUT_S");
  EXPECT_EQ(dist::collective_timeout_s(), 60.0);
  if (old) setenv("SSM_COLLECTIVE_TIMEOUT_S", saved.c_str(), 1);
}

TEST(Consistency, FingerprintIsFnv1a) {
  EXPECT_EQ(dist::fingerprint(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(dist::fingerprint("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(dist::binary_fingerprint(), dist::binary_fingerprint());
}

TEST(Consistency, SameRecipeAndBinaryPass) {
  EXPECT_NO_THROW(dist::check_consistency(*world(), "model: {d_model: 64}\n", "build 1"));
}

TEST(Consistency, ADifferentRecipeOnRankOneFailsEveryRank) {
  const auto& w = world();
  if (w->size() < 2) GTEST_SKIP() << "needs two ranks";
  const std::string recipe = w->rank() == 1 ? "model: {d_model: 65}\n" : "model: {d_model: 64}\n";
  try {
    dist::check_consistency(*w, recipe, "build 1");
    FAIL() << "expected an error on every rank";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "the recipe differs across ranks")) << e.what();
    EXPECT_TRUE(contains(e.what(), "rank 1 has hash")) << e.what();
    EXPECT_FALSE(contains(e.what(), "rank 2 has hash")) << e.what();
    EXPECT_FALSE(contains(e.what(), "binary")) << e.what();
  }
  const std::string binary = w->rank() == w->size() - 1 ? "build 2" : "build 1";
  try {
    dist::check_consistency(*w, "same", binary);
    FAIL() << "expected an error on every rank";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "the binary differs")) << e.what();
    EXPECT_TRUE(contains(e.what(), "rank " + std::to_string(w->size() - 1) + " has hash")) << e.what();
  }
}

}  // namespace
}  // namespace ssm
