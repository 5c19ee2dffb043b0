// embedding, concat, split, index_select and gather: forward against naive loops, float64
// gradchecks (repeated ids, non-contiguous inputs), deterministic backward across thread
// counts and bounds / shape errors.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <random>

#include "framework/ops/ops.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

using test::gradcheck;
using test::rand_f64;
using V = std::vector<Tensor>;

Tensor random_ids(const Dims& shape, int64_t bound, uint32_t seed, DType dt = DType::i64) {
  std::mt19937 gen(seed);
  std::vector<double> v(size_t(shape.numel()));
  for (double& x : v) x = double(gen() % uint32_t(bound));
  return Tensor::from_vector(v, shape, dt);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// ---- embedding ----------------------------------------------------------------------------

TEST(Embedding, ForwardMatchesNaive) {
  NoGradGuard ng;
  Tensor w = rand_f64({7, 5}, 1, -1, 1, false);
  for (DType dt : {DType::i64, DType::i32}) {
    Tensor ids = random_ids({2, 3}, 7, 2, dt);
    Tensor y = embedding(w, ids);
    ASSERT_EQ(y.shape(), (Dims{2, 3, 5}));
    std::vector<double> yv = y.to_vector(), wv = w.to_vector(), iv = ids.to_vector();
    for (size_t n = 0; n < 6; ++n)
      for (size_t d = 0; d < 5; ++d) EXPECT_EQ(yv[n * 5 + d], wv[size_t(iv[n]) * 5 + d]);
  }
}

TEST(Embedding, GradcheckWithRepeatedIds) {
  Tensor ids = Tensor::from_vector({3, 1, 3, 0, 3, 1, 6}, {7}, DType::i32);
  EXPECT_TRUE(gradcheck([ids](const V& in) { return embedding(in[0], ids); }, {rand_f64({7, 4}, 3)}));
  Tensor ids2 = random_ids({2, 5}, 4, 4);
  EXPECT_TRUE(gradcheck([ids2](const V& in) { return embedding(in[0], ids2); }, {rand_f64({4, 3}, 5)}));
  // A transposed (column-major) table is copied inside.
  EXPECT_TRUE(gradcheck([ids2](const V& in) { return embedding(transpose(in[0], 0, 1), ids2); },
                        {rand_f64({3, 4}, 6)}));
}

TEST(Embedding, BackwardIsDeterministicAndOrdered) {
  Rng rng(7);
  const int64_t N = 4099, Vn = 53, D = 67;
  Tensor w0 = randn({Vn, D}, rng), dy = randn({N, D}, rng);
  Tensor ids = random_ids({N}, Vn, 8);
  std::vector<Tensor> g(2);
  const int prev = omp_get_max_threads();
  for (int k = 0; k < 2; ++k) {
    omp_set_num_threads(k + 1);
    Tensor w = clone(w0).set_requires_grad(true);
    backward(embedding(w, ids), dy);
    g[size_t(k)] = w.grad();
  }
  omp_set_num_threads(prev);
  EXPECT_EQ(std::memcmp(g[0].raw_data(), g[1].raw_data(), g[0].nbytes()), 0);
  // Bitwise equal to a sequential accumulation in ascending position order.
  std::vector<float> ref(size_t(Vn * D), 0.f);
  const float* dyv = dy.data<float>();
  std::vector<double> iv = ids.to_vector();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) ref[size_t(int64_t(iv[size_t(n)]) * D + d)] += dyv[n * D + d];
  EXPECT_EQ(std::memcmp(ref.data(), g[0].raw_data(), g[0].nbytes()), 0);
}

TEST(Embedding, OutOfRangeIdsAreReported) {
  Tensor w = Tensor::zeros({5, 3});
  std::string m = error_of([&] { embedding(w, Tensor::from_vector({0, 4, 9, 1}, {2, 2}, DType::i64)); });
  EXPECT_NE(m.find("id 9 at flat position 2"), std::string::npos) << m;
  EXPECT_NE(m.find("V = 5"), std::string::npos) << m;
  m = error_of([&] { embedding(w, Tensor::from_vector({-1}, {1}, DType::i32)); });
  EXPECT_NE(m.find("id -1"), std::string::npos) << m;
  m = error_of([&] { embedding(w, Tensor::zeros({2})); });
  EXPECT_NE(m.find("int32 or int64"), std::string::npos) << m;
}

// ---- concat / split -----------------------------------------------------------------------

TEST(Concat, ForwardAndGradcheck) {
  NoGradGuard ng;
  Tensor a = Tensor::from_vector({1, 2, 3, 4}, {2, 2}, DType::f64);
  Tensor b = Tensor::from_vector({5, 6}, {2, 1}, DType::f64);
  EXPECT_EQ(concat({a, b}, 1).to_vector(), (std::vector<double>{1, 2, 5, 3, 4, 6}));
  EXPECT_EQ(concat({a, transpose(a, 0, 1)}, 0).to_vector(), (std::vector<double>{1, 2, 3, 4, 1, 3, 2, 4}));
  // Integer tensors concatenate too (no gradient).
  EXPECT_EQ(concat({Tensor::from_vector({1}, {1}, DType::i64), Tensor::from_vector({2, 3}, {2}, DType::i64)}, 0)
                .to_vector(),
            (std::vector<double>{1, 2, 3}));
}

TEST(Concat, Gradcheck) {
  EXPECT_TRUE(gradcheck([](const V& in) { return concat({in[0], transpose(in[1], 0, 1), in[2]}, -1); },
                        {rand_f64({3, 2}, 9), rand_f64({4, 3}, 10), rand_f64({3, 1}, 11)}));
  // Only some inputs need a gradient; one input used twice.
  Tensor c = rand_f64({2, 3}, 12, -1, 1, false);
  EXPECT_TRUE(gradcheck([c](const V& in) { return concat({in[0], c, in[0]}, 0); }, {rand_f64({1, 3}, 13)}));
}

TEST(Concat, Errors) {
  std::string m = error_of([] { concat({Tensor::zeros({2, 3}), Tensor::zeros({3, 3})}, 1); });
  EXPECT_NE(m.find("tensor 1 f32[3, 3] cpu does not match tensor 0 f32[2, 3] cpu off dim 1"), std::string::npos) << m;
  m = error_of([] { concat({Tensor::zeros({2}), Tensor::zeros({2}, DType::f64)}, 0); });
  EXPECT_NE(m.find("dtype"), std::string::npos) << m;
  EXPECT_THROW(concat({}, 0), Error);
}

TEST(Split, ViewsAndGradcheck) {
  Tensor x = rand_f64({3, 6}, 14);
  {
    NoGradGuard ng;
    std::vector<Tensor> p = split(x, {2, 1, 3}, 1);
    ASSERT_EQ(p.size(), 3u);
    EXPECT_EQ(p[2].shape(), (Dims{3, 3}));
    EXPECT_TRUE(p[1].shares_storage(x));  // views, no copy
    EXPECT_EQ(p[1].to_vector(), narrow(x, 1, 2, 1).to_vector());
  }
  // Piece 1 is unused (its gradient is zero), piece 0 enters twice.
  EXPECT_TRUE(gradcheck(
      [](const V& in) {
        std::vector<Tensor> p = split(in[0], {2, 1, 3}, 1);
        return concat({square(p[2]), p[0], mul(p[0], 3.0)}, 1);
      },
      {x}));
  EXPECT_TRUE(gradcheck([](const V& in) { return split(transpose(in[0], 0, 1), {2, 4}, 0)[1]; }, {x}));
  std::string m = error_of([&] { split(x, {2, 2}, 1); });
  EXPECT_NE(m.find("sizes sum to 4 but dim 1 of"), std::string::npos) << m;
}

// ---- index_select / gather ------------------------------------------------------------------

TEST(IndexSelect, ForwardMatchesNaive) {
  NoGradGuard ng;
  Tensor x = rand_f64({4, 5, 3}, 15, -1, 1, false);
  std::vector<double> xv = x.to_vector();
  Tensor idx = Tensor::from_vector({4, 0, 4, 2}, {4}, DType::i32);
  std::vector<double> y = index_select(x, 1, idx).to_vector();
  const int64_t id[4] = {4, 0, 4, 2};
  for (int64_t a = 0; a < 4; ++a)
    for (int64_t k = 0; k < 4; ++k)
      for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(y[size_t((a * 4 + k) * 3 + c)], xv[size_t((a * 5 + id[k]) * 3 + c)]);
  Tensor rows = index_select(x, 0, Tensor::from_vector({3, 3}, {2}, DType::i64));
  EXPECT_EQ(rows.to_vector(), concat({select(x, 0, 3).unsqueeze(0), select(x, 0, 3).unsqueeze(0)}, 0).to_vector());
}

TEST(IndexSelect, Gradcheck) {
  Tensor idx = Tensor::from_vector({2, 0, 2, 2, 1}, {5}, DType::i64);
  for (int d : {0, 1, 2}) {
    SCOPED_TRACE(testing::Message() << "dim " << d);
    EXPECT_TRUE(gradcheck([idx, d](const V& in) { return index_select(in[0], d, idx); }, {rand_f64({3, 4, 3}, 16)}));
  }
  EXPECT_TRUE(gradcheck([idx](const V& in) { return index_select(transpose(in[0], 0, 2), 1, idx); },
                        {rand_f64({3, 4, 5}, 17)}));
}

TEST(Gather, ForwardMatchesNaiveAndGradcheck) {
  Tensor x = rand_f64({3, 5, 4}, 18);
  // index (2, 6, 3): smaller than x off dim 1, larger along it, with repeats.
  Tensor idx = random_ids({2, 6, 3}, 5, 19, DType::i32);
  {
    NoGradGuard ng;
    std::vector<double> y = gather(x, 1, idx).to_vector(), xv = x.to_vector(), iv = idx.to_vector();
    for (int64_t a = 0; a < 2; ++a)
      for (int64_t j = 0; j < 6; ++j)
        for (int64_t c = 0; c < 3; ++c) {
          size_t o = size_t((a * 6 + j) * 3 + c);
          EXPECT_EQ(y[o], xv[size_t((a * 5 + int64_t(iv[o])) * 4 + c)]);
        }
  }
  EXPECT_TRUE(gradcheck([idx](const V& in) { return gather(in[0], 1, idx); }, {x}));
  Tensor idx0 = random_ids({4, 2, 4}, 3, 20);
  EXPECT_TRUE(gradcheck([idx0](const V& in) { return gather(in[0], 0, idx0); }, {x}));
  Tensor idx2 = random_ids({3, 5, 7}, 4, 21);
  EXPECT_TRUE(gradcheck([idx2](const V& in) { return gather(in[0], -1, idx2); }, {x}));
  EXPECT_TRUE(gradcheck([idx2](const V& in) { return gather(permute(in[0], {1, 2, 0}), 2, idx2); },
                        {rand_f64({4, 3, 5}, 22)}));
}

TEST(Gather, DeterministicBackwardAcrossThreadCounts) {
  Rng rng(23);
  Tensor x0 = randn({64, 301}, rng), seed_g = randn({64, 517}, rng), seed_s = randn({600, 301}, rng);
  Tensor gidx = random_ids({64, 517}, 301, 24), sidx = random_ids({600}, 64, 25, DType::i32);
  std::vector<Tensor> g[2];
  const int prev = omp_get_max_threads();
  for (int k = 0; k < 2; ++k) {
    omp_set_num_threads(k + 1);
    Tensor x = clone(x0).set_requires_grad(true);
    backward(gather(x, 1, gidx), seed_g);
    Tensor a = x.grad();
    x.zero_grad();
    backward(index_select(x, 0, sidx), seed_s);
    g[k] = {a, x.grad()};
  }
  omp_set_num_threads(prev);
  for (int k = 0; k < 2; ++k) EXPECT_EQ(std::memcmp(g[0][k].raw_data(), g[1][k].raw_data(), g[0][k].nbytes()), 0);
}

TEST(IndexOps, Errors) {
  Tensor x = Tensor::zeros({3, 4});
  std::string m = error_of([&] { index_select(x, 1, Tensor::from_vector({1, 4}, {2}, DType::i64)); });
  EXPECT_NE(m.find("index 4 at position 1"), std::string::npos) << m;
  EXPECT_NE(m.find("[0, 4) for dim 1 of x f32[3, 4] cpu"), std::string::npos) << m;
  m = error_of([&] { index_select(x, 0, Tensor::zeros({2, 2}, DType::i64)); });
  EXPECT_NE(m.find("must be 1-D"), std::string::npos) << m;
  m = error_of([&] { gather(x, 0, Tensor::zeros({2}, DType::i64)); });
  EXPECT_NE(m.find("must have the rank of x"), std::string::npos) << m;
  m = error_of([&] { gather(x, 0, Tensor::zeros({2, 5}, DType::i64)); });
  EXPECT_NE(m.find("larger than x f32[3, 4] cpu in dim 1"), std::string::npos) << m;
  m = error_of([&] { gather(x, 1, Tensor::from_vector({0, -3}, {1, 2}, DType::i32)); });
  EXPECT_NE(m.find("index -3 at flat position 1"), std::string::npos) << m;
}

}  // namespace
}  // namespace ssm
