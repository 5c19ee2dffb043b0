// rms_norm, rms_norm_gated, add_rms_norm and layer_norm: forward against naive loops,
// float64 gradchecks (groups, both gate orders, strided and transposed views), determinism
// across thread counts and error messages.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>

#include "framework/ops/ops.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

using test::gradcheck;
using test::rand_f64;
using V = std::vector<Tensor>;

double silu_ref(double v) { return v / (1.0 + std::exp(-v)); }

// Naive gated grouped RMSNorm over rows of length E (z empty = no gate, w empty = ones).
std::vector<double> rms_ref(const std::vector<double>& x, const std::vector<double>& z, const std::vector<double>& w,
                            int64_t E, int64_t gs, bool norm_before_gate, double eps) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r < x.size() / size_t(E); ++r)
    for (int64_t g = 0; g < E / gs; ++g) {
      std::vector<double> h(static_cast<size_t>(gs));
      double ss = 0;
      for (int64_t j = 0; j < gs; ++j) {
        size_t i = r * size_t(E) + size_t(g * gs + j);
        h[size_t(j)] = (!z.empty() && !norm_before_gate) ? x[i] * silu_ref(z[i]) : x[i];
        ss += h[size_t(j)] * h[size_t(j)];
      }
      double rs = 1.0 / std::sqrt(ss / double(gs) + eps);
      for (int64_t j = 0; j < gs; ++j) {
        size_t i = r * size_t(E) + size_t(g * gs + j);
        double v = h[size_t(j)] * rs * (w.empty() ? 1.0 : w[size_t(g * gs + j)]);
        if (!z.empty() && norm_before_gate) v *= silu_ref(z[i]);
        y[i] = v;
      }
    }
  return y;
}

void expect_close(const std::vector<double>& a, const std::vector<double>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], tol * std::max(1.0, std::abs(b[i]))) << "at " << i;
}

TEST(Norm, RmsNormForwardMatchesNaive) {
  NoGradGuard ng;
  Tensor x = rand_f64({3, 5, 7}, 1, -2, 2, false), w = rand_f64({7}, 2, 0.5, 1.5, false);
  expect_close(rms_norm(x, w, 1e-5).to_vector(), rms_ref(x.to_vector(), {}, w.to_vector(), 7, 7, false, 1e-5), 1e-12);
  expect_close(rms_norm(x, Tensor(), 1e-3).to_vector(), rms_ref(x.to_vector(), {}, {}, 7, 7, false, 1e-3), 1e-12);
  // float32 against the float64 reference.
  Tensor y32 = rms_norm(to(x, DType::f32), to(w, DType::f32), 1e-5);
  expect_close(y32.to_vector(), rms_ref(x.to_vector(), {}, w.to_vector(), 7, 7, false, 1e-5), 1e-5);
}

TEST(Norm, GatedGroupedForwardMatchesNaive) {
  NoGradGuard ng;
  const int64_t E = 12;
  Tensor x = rand_f64({2, 3, E}, 3, -2, 2, false), z = rand_f64({2, 3, E}, 4, -3, 3, false);
  Tensor w = rand_f64({E}, 5, 0.5, 1.5, false);
  for (int64_t gs : {int64_t(12), int64_t(4), int64_t(3)})
    for (bool nbg : {false, true}) {
      SCOPED_TRACE(testing::Message() << "group_size " << gs << " norm_before_gate " << nbg);
      expect_close(rms_norm_gated(x, z, w, 1e-5, gs, nbg).to_vector(),
                   rms_ref(x.to_vector(), z.to_vector(), w.to_vector(), E, gs, nbg, 1e-5), 1e-12);
    }
  // group_size 0 means one group over E.
  expect_close(rms_norm_gated(x, z, w, 1e-5).to_vector(), rms_norm_gated(x, z, w, 1e-5, E).to_vector(), 0);
}

TEST(Norm, AddRmsNormAndLayerNormForward) {
  NoGradGuard ng;
  Tensor x = rand_f64({4, 9}, 6, -2, 2, false), res = rand_f64({4, 9}, 7, -2, 2, false);
  Tensor w = rand_f64({9}, 8, 0.5, 1.5, false), b = rand_f64({9}, 9, -1, 1, false);
  NormedResidual o = add_rms_norm(x, res, w, 1e-5);
  std::vector<double> sum = add(x, res).to_vector();
  expect_close(o.residual.to_vector(), sum, 0);
  expect_close(o.normed.to_vector(), rms_ref(sum, {}, w.to_vector(), 9, 9, false, 1e-5), 1e-12);

  std::vector<double> xv = x.to_vector(), wv = w.to_vector(), bv = b.to_vector(), ref(xv.size());
  for (size_t r = 0; r < 4; ++r) {
    double m = 0, v = 0;
    for (size_t j = 0; j < 9; ++j) m += xv[r * 9 + j] / 9;
    for (size_t j = 0; j < 9; ++j) v += (xv[r * 9 + j] - m) * (xv[r * 9 + j] - m) / 9;
    for (size_t j = 0; j < 9; ++j) ref[r * 9 + j] = (xv[r * 9 + j] - m) / std::sqrt(v + 1e-5) * wv[j] + bv[j];
  }
  expect_close(layer_norm(x, w, b, 1e-5).to_vector(), ref, 1e-12);
}

TEST(Norm, RmsNormGradcheck) {
  Tensor x = rand_f64({3, 2, 7}, 10, -2, 2), w = rand_f64({7}, 11, 0.5, 1.5);
  EXPECT_TRUE(gradcheck([](const V& in) { return rms_norm(in[0], in[1], 1e-5); }, {x, w}));
  EXPECT_TRUE(gradcheck([](const V& in) { return rms_norm(in[0], Tensor(), 1e-5); }, {x}));
  // Transposed (copied inside) and narrowed (row-strided, read in place) inputs.
  EXPECT_TRUE(gradcheck([](const V& in) { return rms_norm(transpose(in[0], 0, 1), in[1], 1e-5); },
                        {rand_f64({7, 5}, 12), w}));
  EXPECT_TRUE(gradcheck([](const V& in) { return rms_norm(narrow(in[0], 1, 2, 7), in[1], 1e-5); },
                        {rand_f64({5, 11}, 13), w}));
}

TEST(Norm, RmsNormGatedGradcheck) {
  const int64_t E = 12;
  Tensor x = rand_f64({3, E}, 14, -2, 2), z = rand_f64({3, E}, 15, -3, 3), w = rand_f64({E}, 16, 0.5, 1.5);
  for (int64_t gs : {int64_t(12), int64_t(4), int64_t(3)})
    for (bool nbg : {false, true}) {
      SCOPED_TRACE(testing::Message() << "group_size " << gs << " norm_before_gate " << nbg);
      EXPECT_TRUE(gradcheck([gs, nbg](const V& in) { return rms_norm_gated(in[0], in[1], in[2], 1e-5, gs, nbg); },
                            {x, z, w}));
    }
  // A transposed gate and no weight.
  EXPECT_TRUE(gradcheck(
      [](const V& in) { return rms_norm_gated(in[0], transpose(in[1], 0, 1), Tensor(), 1e-5, 4, false); },
      {x, rand_f64({E, 3}, 17, -3, 3)}));
}

TEST(Norm, AddRmsNormGradcheck) {
  Tensor x = rand_f64({2, 3, 5}, 18, -2, 2), r = rand_f64({2, 3, 5}, 19, -2, 2), w = rand_f64({5}, 20, 0.5, 1.5);
  // Both outputs feed the result, so both backward paths are checked.
  EXPECT_TRUE(gradcheck(
      [](const V& in) {
        NormedResidual o = add_rms_norm(in[0], in[1], in[2], 1e-5);
        return add(o.normed, square(o.residual));
      },
      {x, r, w}));
  EXPECT_TRUE(gradcheck([](const V& in) { return add_rms_norm(in[0], in[1], in[2], 1e-5).normed; }, {x, r, w}));
  EXPECT_TRUE(gradcheck([](const V& in) { return add_rms_norm(in[0], in[1], in[2], 1e-5).residual; }, {x, r, w}));
}

TEST(Norm, LayerNormGradcheck) {
  Tensor x = rand_f64({3, 7}, 21, -2, 2), w = rand_f64({7}, 22, 0.5, 1.5), b = rand_f64({7}, 23);
  EXPECT_TRUE(gradcheck([](const V& in) { return layer_norm(in[0], in[1], in[2], 1e-5); }, {x, w, b}));
  EXPECT_TRUE(gradcheck([](const V& in) { return layer_norm(in[0], Tensor(), Tensor(), 1e-5); }, {x}));
  EXPECT_TRUE(gradcheck([](const V& in) { return layer_norm(transpose(in[0], 0, 1), in[1], in[2], 1e-5); },
                        {rand_f64({7, 4}, 24), w, b}));
}

// Runs f with 1 and with 2 threads and expects bitwise-identical outputs.
template <class F>
void expect_thread_invariant(F&& f) {
  const int prev = omp_get_max_threads();
  omp_set_num_threads(1);
  std::vector<Tensor> a = f();
  omp_set_num_threads(2);
  std::vector<Tensor> b = f();
  omp_set_num_threads(prev);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].shape(), b[i].shape());
    EXPECT_EQ(std::memcmp(a[i].raw_data(), b[i].raw_data(), a[i].nbytes()), 0) << "output " << i;
  }
}

TEST(Norm, DeterministicAcrossThreadCounts) {
  Rng rng(25);
  const int64_t R = 613, E = 96;  // large enough for the parallel paths; 8 groups of 12
  Tensor x0 = randn({R, E}, rng), z0 = randn({R, E}, rng), w0 = uniform({E}, 0.5, 1.5, rng);
  Tensor b0 = randn({E}, rng), seed = randn({R, E}, rng);
  auto run = [&](auto&& op) {
    return [&, op] {
      Tensor x = clone(x0).set_requires_grad(true), z = clone(z0).set_requires_grad(true);
      Tensor w = clone(w0).set_requires_grad(true), b = clone(b0).set_requires_grad(true);
      Tensor y = op(x, z, w, b);
      backward(y, seed);
      return std::vector<Tensor>{y.detach(), x.grad(), z.grad(), w.grad()};
    };
  };
  expect_thread_invariant(run([](auto& x, auto& z, auto& w, auto&) { return rms_norm_gated(x, z, w, 1e-5, 12); }));
  expect_thread_invariant(
      run([](auto& x, auto& z, auto& w, auto&) { return rms_norm_gated(x, z, w, 1e-5, 12, true); }));
  expect_thread_invariant(
      run([](auto& x, auto& z, auto& w, auto&) { return add(add_rms_norm(x, z, w, 1e-5).normed, z); }));
  expect_thread_invariant(run([](auto& x, auto& z, auto& w, auto& b) { return add(layer_norm(x, w, b, 1e-5), z); }));
}

void expect_error(const std::function<void()>& f, std::initializer_list<const char*> parts) {
  try {
    f();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    for (const char* p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(Norm, ErrorsNameTheTensors) {
  Tensor x = Tensor::zeros({2, 3, 4}), w = Tensor::zeros({5});
  expect_error([&] { rms_norm(x, w, 1e-5); }, {"rms_norm", "weight f32[5] cpu", "x f32[2, 3, 4] cpu"});
  expect_error([&] { rms_norm_gated(x, Tensor::zeros({2, 3, 5}), Tensor(), 1e-5); }, {"gate z", "[2, 3, 5]"});
  expect_error([&] { rms_norm_gated(x, x, Tensor(), 1e-5, 3); }, {"group_size 3", "[2, 3, 4]"});
  expect_error([&] { layer_norm(x, Tensor(), Tensor::zeros({3}), 1e-5); }, {"layer_norm", "bias f32[3] cpu"});
  expect_error([&] { add_rms_norm(x, Tensor::zeros({2, 3, 4}, DType::f64), Tensor(), 1e-5); }, {"dtype"});
  expect_error([&] { rms_norm(Tensor::zeros({2, 3}, DType::i64), Tensor(), 1e-5); }, {"floating-point"});
}

}  // namespace
}  // namespace ssm
