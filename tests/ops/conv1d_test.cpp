// causal_conv1d and causal_conv1d_step: forward (and final state) against a naive loop over
// every width 1..8, float64 gradchecks of x, weight, bias and initial_state (strided inputs,
// packed documents, final state as an output, L < K-1), the step reproducing the parallel
// forward token by token, determinism across thread counts and error messages.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include "framework/ops/ops.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

using test::gradcheck;
using test::rand_f64;
using V = std::vector<Tensor>;

// Document ids (B, L): runs of random length, ids increasing along each row.
Tensor make_seq_idx(int64_t B, int64_t L, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<double> v(size_t(B * L));
  for (int64_t b = 0; b < B; ++b) {
    int doc = 0;
    for (int64_t t = 0; t < L; ++t) {
      if (t > 0 && gen() % 4 == 0) ++doc;
      v[size_t(b * L + t)] = doc;
    }
  }
  return Tensor::from_vector(v, {B, L}, DType::i32);
}

struct NaiveConv {
  std::vector<double> y, fin;  // (B, C, L), (B, C, K-1)
};

// The definition, written out directly: xpad index s < 0 reads the initial state and belongs
// to the document of position 0.
NaiveConv naive_conv(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& init, const Tensor& seq,
                     bool silu) {
  const int64_t B = x.shape()[0], C = x.shape()[1], L = x.shape()[2], K = w.shape()[1];
  std::vector<double> xv = x.to_vector(), wv = w.to_vector();
  std::vector<double> bv = bias.defined() ? bias.to_vector() : std::vector<double>(size_t(C), 0.0);
  std::vector<double> iv = init.defined() ? init.to_vector() : std::vector<double>(size_t(B * C * (K - 1)), 0.0);
  std::vector<double> sv = seq.defined() ? seq.to_vector() : std::vector<double>(size_t(B * L), 0.0);
  auto input = [&](int64_t b, int64_t c, int64_t s) {
    return s >= 0 ? xv[size_t((b * C + c) * L + s)] : iv[size_t((b * C + c) * (K - 1) + (K - 1 + s))];
  };
  auto doc = [&](int64_t b, int64_t s) { return sv[size_t(b * L + std::max<int64_t>(s, 0))]; };
  NaiveConv r;
  r.y.resize(size_t(B * C * L));
  r.fin.resize(size_t(B * C * (K - 1)));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t t = 0; t < L; ++t) {
        double acc = bv[size_t(c)];
        for (int64_t k = 0; k < K; ++k) {
          const int64_t s = t - (K - 1) + k;
          if (doc(b, s) == doc(b, t)) acc += wv[size_t(c * K + k)] * input(b, c, s);
        }
        r.y[size_t((b * C + c) * L + t)] = silu ? acc / (1.0 + std::exp(-acc)) : acc;
      }
      for (int64_t j = 0; j < K - 1; ++j) {
        const int64_t s = L - (K - 1) + j;
        r.fin[size_t((b * C + c) * (K - 1) + j)] = doc(b, s) == doc(b, L - 1) ? input(b, c, s) : 0.0;
      }
    }
  return r;
}

void expect_close(const std::vector<double>& a, const std::vector<double>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], tol * std::max(1.0, std::abs(b[i]))) << "at " << i;
}

TEST(Conv1dOp, ForwardMatchesNaiveForEveryWidth) {
  NoGradGuard ng;
  const int64_t B = 2, C = 3, L = 13;
  for (int64_t K = 1; K <= 8; ++K)
    for (int variant = 0; variant < 4; ++variant) {
      const bool silu = variant & 1, extras = variant & 2;
      SCOPED_TRACE(testing::Message() << "K " << K << " silu " << silu << " bias/init/seq_idx " << extras);
      // x read through a transposed view of a (B, L, C) activation.
      Tensor x = transpose(rand_f64({B, L, C}, 100 + K, -2, 2, false), 1, 2);
      Tensor w = rand_f64({C, K}, 200 + K, -1, 1, false);
      Conv1dArgs a;
      a.silu = silu;
      a.return_final_state = true;
      if (extras) {
        a.bias = rand_f64({C}, 300 + K, -1, 1, false);
        a.initial_state = rand_f64({B, C, K - 1}, 400 + K, -1, 1, false);
        a.seq_idx = make_seq_idx(B, L, uint32_t(500 + K));
      }
      ConvResult r = causal_conv1d(x, w, a);
      NaiveConv ref = naive_conv(x, w, a.bias, a.initial_state, a.seq_idx, silu);
      ASSERT_EQ(r.y.shape(), (Dims{B, C, L}));
      ASSERT_EQ(r.final_state.shape(), (Dims{B, C, K - 1}));
      expect_close(r.y.to_vector(), ref.y, 1e-13);
      expect_close(r.final_state.to_vector(), ref.fin, 1e-15);
    }
}

TEST(Conv1dOp, Float32MatchesFloat64Reference) {
  NoGradGuard ng;
  const int64_t B = 3, C = 5, L = 37, K = 4;
  Tensor x = rand_f64({B, C, L}, 1, -2, 2, false), w = rand_f64({C, K}, 2, -1, 1, false);
  Tensor bias = rand_f64({C}, 3, -1, 1, false), init = rand_f64({B, C, K - 1}, 4, -1, 1, false);
  Conv1dArgs a{to(bias, DType::f32), true, Tensor(), to(init, DType::f32), true};
  ConvResult r = causal_conv1d(to(x, DType::f32), to(w, DType::f32), a);
  EXPECT_EQ(r.y.dtype(), DType::f32);
  NaiveConv ref = naive_conv(x, w, bias, init, Tensor(), true);
  expect_close(r.y.to_vector(), ref.y, 1e-5);
  expect_close(r.final_state.to_vector(), ref.fin, 1e-6);
}

// y and the final state in one output, so that gradients arriving at both are checked.
Tensor both(const ConvResult& r) { return concat({flatten(r.y), flatten(r.final_state)}, 0); }

TEST(Conv1dOp, GradcheckEveryInput) {
  const int64_t B = 2, C = 3, L = 9, K = 4;
  Tensor x = rand_f64({B, C, L}, 10, -2, 2), w = rand_f64({C, K}, 11), bias = rand_f64({C}, 12);
  Tensor init = rand_f64({B, C, K - 1}, 13);
  for (bool silu : {false, true}) {
    SCOPED_TRACE(testing::Message() << "silu " << silu);
    EXPECT_TRUE(gradcheck(
        [silu](const V& in) {
          return causal_conv1d(in[0], in[1], {in[2], silu, Tensor(), in[3], false}).y;
        },
        {x, w, bias, init}));
    EXPECT_TRUE(gradcheck(
        [silu](const V& in) { return both(causal_conv1d(in[0], in[1], {in[2], silu, Tensor(), in[3], true})); },
        {x, w, bias, init}));
  }
  // No bias, no initial state.
  EXPECT_TRUE(gradcheck([](const V& in) { return causal_conv1d(in[0], in[1], {.silu = true}).y; }, {x, w}));
  // Only the final state reaches the loss (y gets a zero gradient).
  EXPECT_TRUE(gradcheck(
      [](const V& in) { return causal_conv1d(in[0], in[1], {in[2], true, Tensor(), in[3], true}).final_state; },
      {x, w, bias, init}));
}

TEST(Conv1dOp, GradcheckStridedInputs) {
  const int64_t B = 2, C = 3, L = 7, K = 3;
  // x as the transpose of (B, L, C), weight as the transpose of (K, C), the initial state as
  // a permuted (K-1, B, C) and the bias as every other element of a (2C) vector.
  EXPECT_TRUE(gradcheck(
      [](const V& in) {
        Conv1dArgs a{reshape(narrow(reshape(in[2], {C, 2}), 1, 0, 1), {C}), true, Tensor(), permute(in[3], {1, 2, 0}),
                     true};
        return both(causal_conv1d(transpose(in[0], 1, 2), transpose(in[1], 0, 1), a));
      },
      {rand_f64({B, L, C}, 20, -2, 2), rand_f64({K, C}, 21), rand_f64({2 * C}, 22), rand_f64({K - 1, B, C}, 23)}));
}

TEST(Conv1dOp, GradcheckPackedDocumentsAndShortSequences) {
  const int64_t B = 2, C = 3, K = 4;
  for (int64_t L : {int64_t(11), int64_t(2), int64_t(1)}) {
    SCOPED_TRACE(testing::Message() << "L " << L);
    Tensor seq = make_seq_idx(B, L, uint32_t(30 + L));
    EXPECT_TRUE(gradcheck(
        [seq](const V& in) { return both(causal_conv1d(in[0], in[1], {in[2], true, seq, in[3], true})); },
        {rand_f64({B, C, L}, 31, -2, 2), rand_f64({C, K}, 32), rand_f64({C}, 33), rand_f64({B, C, K - 1}, 34)}));
  }
  // L = 0: the initial state passes through to the final state, and so does its gradient.
  {
    NoGradGuard ng;
    Tensor init = rand_f64({B, C, K - 1}, 38, -1, 1, false);
    ConvResult r = causal_conv1d(Tensor::zeros({B, C, 0}, DType::f64), rand_f64({C, K}, 39, -1, 1, false),
                                 {.silu = true, .seq_idx = Tensor::zeros({B, 0}, DType::i32), .initial_state = init,
                                  .return_final_state = true});
    EXPECT_EQ(r.y.shape(), (Dims{B, C, 0}));
    expect_close(r.final_state.to_vector(), init.to_vector(), 0);
  }
  EXPECT_TRUE(gradcheck(
      [](const V& in) {
        return causal_conv1d(Tensor::zeros({B, C, 0}, DType::f64), in[0], {.initial_state = in[1], .return_final_state = true})
            .final_state;
      },
      {rand_f64({C, K}, 40), rand_f64({B, C, K - 1}, 41)}));
  // Width 1: no state at all.
  EXPECT_TRUE(gradcheck([](const V& in) { return causal_conv1d(in[0], in[1], {.bias = in[2], .silu = true}).y; },
                        {rand_f64({2, 3, 5}, 35), rand_f64({3, 1}, 36), rand_f64({3}, 37)}));
}

TEST(Conv1dOp, StepReproducesParallelForward) {
  NoGradGuard ng;
  const int64_t B = 2, C = 5, L = 70;
  for (int64_t K : {int64_t(1), int64_t(2), int64_t(4), int64_t(8)})
    for (DType dt : {DType::f64, DType::f32}) {
      SCOPED_TRACE(testing::Message() << "K " << K << " " << dtype_name(dt));
      Tensor x = to(rand_f64({B, C, L}, 40, -2, 2, false), dt), w = to(rand_f64({C, K}, 41, -1, 1, false), dt);
      Tensor bias = to(rand_f64({C}, 42, -1, 1, false), dt), init = to(rand_f64({B, C, K - 1}, 43, -1, 1, false), dt);
      ConvResult r = causal_conv1d(x, w, {bias, true, Tensor(), init, true});
      // A window laid out (K, B, C) and seen as (B, C, K): the step takes any strides.
      Tensor store = Tensor::zeros({K, B, C}, dt);
      Tensor window = store.permute({1, 2, 0});
      copy_(window.narrow(2, 1, K - 1), init);
      std::vector<double> ys = r.y.to_vector();
      for (int64_t t = 0; t < L; ++t) {
        Tensor yt = causal_conv1d_step(window, x.select(2, t), w, bias, true);
        ASSERT_EQ(yt.shape(), (Dims{B, C}));
        std::vector<double> v = yt.to_vector();
        for (int64_t i = 0; i < B * C; ++i) {
          const double ref = ys[size_t(i * L + t)];
          // Same arithmetic in the same order: equal up to the last bit of the dtype.
          ASSERT_NEAR(v[size_t(i)], ref, (dt == DType::f64 ? 1e-14 : 1e-6) * std::max(1.0, std::abs(ref)))
              << "t " << t << " i " << i;
        }
      }
      expect_close(contiguous(window.narrow(2, 1, K - 1)).to_vector(), r.final_state.to_vector(), 0);
    }
}

TEST(Conv1dOp, DeterministicAcrossThreadCounts) {
  const int64_t B = 3, C = 64, L = 301, K = 4;
  Rng rng(50);
  Tensor x0 = randn({B, L, C}, rng), w0 = randn({C, K}, rng), b0 = randn({C}, rng), i0 = randn({B, C, K - 1}, rng);
  Tensor seed = randn({B, C, L}, rng);
  auto run = [&] {
    Tensor x = clone(x0).set_requires_grad(true), w = clone(w0).set_requires_grad(true);
    Tensor b = clone(b0).set_requires_grad(true), i = clone(i0).set_requires_grad(true);
    Tensor y = causal_conv1d(transpose(x, 1, 2), w, {b, true, Tensor(), i, false}).y;
    backward(y, seed);
    return V{y.detach(), x.grad(), w.grad(), b.grad(), i.grad()};
  };
  const int prev = omp_get_max_threads();
  omp_set_num_threads(1);
  V a = run();
  omp_set_num_threads(2);
  V b = run();
  omp_set_num_threads(prev);
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(std::memcmp(a[i].raw_data(), b[i].raw_data(), a[i].nbytes()), 0) << "output " << i;
}

void expect_error(const std::function<void()>& f, std::initializer_list<const char*> parts) {
  try {
    f();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    for (const char* p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(Conv1dOp, ErrorsNameTheTensors) {
  Tensor x = Tensor::zeros({2, 3, 7}), w = Tensor::zeros({3, 4});
  expect_error([&] { causal_conv1d(Tensor::zeros({3, 7}), w); }, {"causal_conv1d", "x f32[3, 7] cpu", "(B, C, L)"});
  expect_error([&] { causal_conv1d(x, Tensor::zeros({5, 4})); },
               {"causal_conv1d", "weight f32[5, 4] cpu", "x f32[2, 3, 7] cpu"});
  expect_error([&] { causal_conv1d(x, Tensor::zeros({3, 9})); }, {"K = 9", "1..8"});
  expect_error([&] { causal_conv1d(x, w, {.bias = Tensor::zeros({4})}); }, {"bias f32[4] cpu", "(C)"});
  expect_error([&] { causal_conv1d(x, w, {Tensor(), false, Tensor(), Tensor::zeros({2, 3, 4})}); },
               {"initial_state f32[2, 3, 4] cpu", "[2, 3, 3]"});
  expect_error([&] { causal_conv1d(x, w, {.seq_idx = Tensor::zeros({2, 7})}); }, {"seq_idx", "i32"});
  expect_error([&] { causal_conv1d(x, w, {.seq_idx = Tensor::zeros({2, 6}, DType::i32)}); },
               {"seq_idx i32[2, 6] cpu", "(B, L)"});
  expect_error([&] { causal_conv1d(x, Tensor::zeros({3, 4}, DType::f64)); }, {"causal_conv1d", "dtype"});
  expect_error([&] { causal_conv1d(Tensor::zeros({2, 3, 7}, DType::i32), Tensor::zeros({3, 4}, DType::i32)); },
               {"floating-point"});

  Tensor xt = Tensor::zeros({2, 3});
  expect_error([&] { causal_conv1d_step(Tensor::zeros({2, 3, 3}), xt, w, Tensor(), true); },
               {"causal_conv1d_step", "conv_state f32[2, 3, 3] cpu", "(B, C, K)"});
  expect_error([&] { causal_conv1d_step(Tensor::zeros({2, 3, 4}), Tensor::zeros({2, 3, 1}), w, Tensor(), true); },
               {"causal_conv1d_step", "(B, C)"});
  Tensor wg = Tensor::zeros({3, 4}).set_requires_grad(true);
  expect_error([&] { causal_conv1d_step(Tensor::zeros({2, 3, 4}), xt, wg, Tensor(), true); }, {"NoGradGuard"});
  NoGradGuard ng;
  EXPECT_NO_THROW(causal_conv1d_step(Tensor::zeros({2, 3, 4}), xt, wg, Tensor(), true));
}

}  // namespace
}  // namespace ssm
