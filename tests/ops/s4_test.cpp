// s4d / s4d_step and s5 / s5_step: forward and final state against a naive std::complex
// recurrence (both discretisations, complex and real S4D, conjugate-symmetric and plain S5,
// S5 over several scan chunks), float64 gradchecks of every input including the initial
// states and with the final state as an output, strided inputs, steps reproducing the
// parallel forward over 70 tokens, determinism across thread counts and error messages.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <complex>
#include <cstring>
#include <functional>

#include "framework/ops/ops.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

using test::gradcheck;
using test::rand_f64;
using V = std::vector<Tensor>;
using cplx = std::complex<double>;

constexpr S4Discretization kDiscs[] = {S4Discretization::zoh, S4Discretization::bilinear};
const char* disc_name(S4Discretization d) { return d == S4Discretization::zoh ? "zoh" : "bilinear"; }

// abar and the input factor f (bbar = f B) of one mode, from the textbook formulas.
std::pair<cplx, cplx> discretize(S4Discretization d, double dt, cplx a) {
  if (d == S4Discretization::zoh) {
    cplx abar = std::exp(dt * a);
    return {abar, (abar - 1.0) / a};
  }
  return {(1.0 + dt * a / 2.0) / (1.0 - dt * a / 2.0), dt / (1.0 - dt * a / 2.0)};
}

std::vector<double> vec_or(const Tensor& t, size_t n) { return t.defined() ? t.to_vector() : std::vector<double>(n, 0.0); }

struct LtiRef {
  std::vector<double> y, fin_re, fin_im;
};

void expect_close(const std::vector<double>& a, const std::vector<double>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], tol * std::max(1.0, std::abs(b[i]))) << "at " << i;
}

// ---- S4D ------------------------------------------------------------------------------------

// Random S4D weights (H, N) requiring grad; stable A (Re A < 0), dt in [0.05, 0.5].
S4dWeights rand_s4d(int64_t H, int64_t N, bool complex, S4Discretization disc, uint64_t seed, bool grad = true) {
  S4dWeights w;
  w.log_dt = rand_f64({H}, seed, std::log(0.05), std::log(0.5), grad);
  w.A_re = rand_f64({H, N}, seed + 1, -1.0, -0.1, grad);
  w.B_re = rand_f64({H, N}, seed + 2, -1, 1, grad);
  w.C_re = rand_f64({H, N}, seed + 3, -1, 1, grad);
  if (complex) {
    w.A_im = rand_f64({H, N}, seed + 4, -3, 3, grad);
    w.B_im = rand_f64({H, N}, seed + 5, -1, 1, grad);
    w.C_im = rand_f64({H, N}, seed + 6, -1, 1, grad);
  }
  w.D = rand_f64({H}, seed + 7, -1, 1, grad);
  w.complex = complex;
  w.disc = disc;
  return w;
}

// The weights as gradcheck inputs 1..8 (undefined ones pass through), and back.
V s4d_inputs(const S4dWeights& w) { return {w.log_dt, w.A_re, w.A_im, w.B_re, w.B_im, w.C_re, w.C_im, w.D}; }
S4dWeights s4d_from(const V& in, size_t at, const S4dWeights& like) {
  S4dWeights w = like;
  w.log_dt = in[at];
  w.A_re = in[at + 1];
  w.A_im = in[at + 2];
  w.B_re = in[at + 3];
  w.B_im = in[at + 4];
  w.C_re = in[at + 5];
  w.C_im = in[at + 6];
  w.D = in[at + 7];
  return w;
}

// u (B, H, L), the recurrence written out per (b, h, n).
LtiRef naive_s4d(const Tensor& u, const S4dWeights& w, const Tensor& h0_re, const Tensor& h0_im) {
  const int64_t B = u.shape()[0], H = u.shape()[1], L = u.shape()[2], N = w.A_re.shape()[1];
  const size_t HN = size_t(H * N);
  std::vector<double> uv = u.to_vector(), ldt = w.log_dt.to_vector(), d = vec_or(w.D, size_t(H));
  std::vector<double> ar = w.A_re.to_vector(), br = w.B_re.to_vector(), cr = w.C_re.to_vector();
  std::vector<double> ai = w.complex ? w.A_im.to_vector() : std::vector<double>(HN, 0.0);
  std::vector<double> bi = w.complex ? w.B_im.to_vector() : std::vector<double>(HN, 0.0);
  std::vector<double> ci = w.complex ? w.C_im.to_vector() : std::vector<double>(HN, 0.0);
  std::vector<double> h0r = vec_or(h0_re, size_t(B) * HN), h0i = vec_or(h0_im, size_t(B) * HN);
  const double scale = w.complex ? 2.0 : 1.0;
  LtiRef r;
  r.y.assign(size_t(B * H * L), 0.0);
  r.fin_re.resize(size_t(B) * HN);
  r.fin_im.resize(size_t(B) * HN);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const double dt = std::exp(ldt[size_t(h)]);
      for (int64_t n = 0; n < N; ++n) {
        const size_t i = size_t(h * N + n), s = size_t(b) * HN + i;
        auto [abar, f] = discretize(w.disc, dt, cplx(ar[i], ai[i]));
        const cplx bbar = f * cplx(br[i], bi[i]), c(cr[i], ci[i]);
        cplx x(h0r[s], h0i[s]);
        for (int64_t t = 0; t < L; ++t) {
          x = abar * x + bbar * uv[size_t((b * H + h) * L + t)];
          r.y[size_t((b * H + h) * L + t)] += scale * (c * x).real();
        }
        r.fin_re[s] = x.real();
        r.fin_im[s] = x.imag();
      }
      for (int64_t t = 0; t < L; ++t) {
        const size_t k = size_t((b * H + h) * L + t);
        r.y[k] += d[size_t(h)] * uv[k];
      }
    }
  return r;
}

TEST(S4dOp, ForwardMatchesNaive) {
  NoGradGuard ng;
  const int64_t B = 2, H = 3, N = 5, L = 23;
  for (bool complex : {true, false})
    for (S4Discretization disc : kDiscs) {
      SCOPED_TRACE(testing::Message() << (complex ? "complex " : "real ") << disc_name(disc));
      S4dWeights w = rand_s4d(H, N, complex, disc, 10, false);
      Tensor u = transpose(rand_f64({B, L, H}, 1, -2, 2, false), 1, 2);  // strided (B, H, L)
      Tensor h0r = rand_f64({B, H, N}, 2, -1, 1, false), h0i = rand_f64({B, H, N}, 3, -1, 1, false);
      S4Result r = s4d(u, w, h0r, h0i, true);
      LtiRef ref = naive_s4d(u, w, h0r, h0i);
      ASSERT_EQ(r.y.shape(), (Dims{B, H, L}));
      ASSERT_EQ(r.final_state_re.shape(), (Dims{B, H, N}));
      expect_close(r.y.to_vector(), ref.y, 1e-11);
      expect_close(r.final_state_re.to_vector(), ref.fin_re, 1e-12);
      expect_close(r.final_state_im.to_vector(), ref.fin_im, 1e-12);
      // No initial state, no D, no final state.
      w.D = Tensor();
      S4Result r0 = s4d(u, w);
      EXPECT_FALSE(r0.final_state_re.defined());
      expect_close(r0.y.to_vector(), naive_s4d(u, w, Tensor(), Tensor()).y, 1e-11);
      // float32 against the float64 reference.
      S4dWeights w32 = w;
      for (Tensor* t : {&w32.log_dt, &w32.A_re, &w32.A_im, &w32.B_re, &w32.B_im, &w32.C_re, &w32.C_im})
        if (t->defined()) *t = to(*t, DType::f32);
      Tensor y32 = s4d(to(u, DType::f32), w32).y;
      EXPECT_EQ(y32.dtype(), DType::f32);
      expect_close(y32.to_vector(), naive_s4d(u, w, Tensor(), Tensor()).y, 2e-5);
    }
}

TEST(S4dOp, GradcheckEveryInput) {
  const int64_t B = 2, H = 3, N = 2, L = 9;
  for (bool complex : {true, false})
    for (S4Discretization disc : kDiscs) {
      SCOPED_TRACE(testing::Message() << (complex ? "complex " : "real ") << disc_name(disc));
      S4dWeights w = rand_s4d(H, N, complex, disc, 20);
      V in{rand_f64({B, L, H}, 30, -2, 2)};  // u, read through a transposed view
      for (const Tensor& t : s4d_inputs(w)) in.push_back(t);
      in.push_back(rand_f64({B, H, N}, 31));  // h0_re
      in.push_back(rand_f64({B, H, N}, 32));  // h0_im
      // y and both halves of the final state feed the loss.
      EXPECT_TRUE(gradcheck(
          [w](const V& x) {
            S4Result r = s4d(transpose(x[0], 1, 2), s4d_from(x, 1, w), x[9], x[10], true);
            return concat({flatten(r.y), flatten(r.final_state_re), flatten(r.final_state_im)}, 0);
          },
          in));
      // y alone, no initial state.
      EXPECT_TRUE(gradcheck([w](const V& x) { return s4d(transpose(x[0], 1, 2), s4d_from(x, 1, w)).y; },
                            V(in.begin(), in.begin() + 9)));
    }
}

TEST(S4dOp, GradcheckStridedWeights) {
  const int64_t B = 2, H = 3, N = 4, L = 6;
  S4dWeights w = rand_s4d(H, N, true, S4Discretization::zoh, 40);
  // A_re as -exp(log_A_re) of a transposed (N, H) parameter, C_re from a transposed one too,
  // as models compute them.
  EXPECT_TRUE(gradcheck(
      [w](const V& x) {
        S4dWeights v = w;
        v.A_re = neg(exp(transpose(x[1], 0, 1)));
        v.C_re = transpose(x[2], 0, 1);
        return s4d(x[0], v).y;
      },
      {rand_f64({B, H, L}, 41, -2, 2), rand_f64({N, H}, 42, -2, 0), rand_f64({N, H}, 43)}));
}

TEST(S4dOp, StepReproducesParallelForward) {
  NoGradGuard ng;
  const int64_t B = 2, H = 3, N = 4, L = 70;
  for (bool complex : {true, false})
    for (S4Discretization disc : kDiscs) {
      SCOPED_TRACE(testing::Message() << (complex ? "complex " : "real ") << disc_name(disc));
      S4dWeights w = rand_s4d(H, N, complex, disc, 50, false);
      Tensor u = rand_f64({B, H, L}, 51, -2, 2, false);
      Tensor h0r = rand_f64({B, H, N}, 52, -1, 1, false), h0i = rand_f64({B, H, N}, 53, -1, 1, false);
      S4Result r = s4d(u, w, h0r, h0i, true);
      Tensor sr = clone(h0r), si = clone(h0i);
      std::vector<double> ys = r.y.to_vector();
      for (int64_t t = 0; t < L; ++t) {
        std::vector<double> v = s4d_step(sr, si, u.select(2, t), w).to_vector();
        for (int64_t i = 0; i < B * H; ++i)
          ASSERT_NEAR(v[size_t(i)], ys[size_t(i * L + t)], 1e-13 * std::max(1.0, std::abs(ys[size_t(i * L + t)])))
              << "t " << t << " i " << i;
      }
      expect_close(sr.to_vector(), r.final_state_re.to_vector(), 1e-13);
      expect_close(si.to_vector(), r.final_state_im.to_vector(), 1e-13);
    }
}

// ---- S5 -------------------------------------------------------------------------------------

S5Weights rand_s5(int64_t H, int64_t P, bool conj_sym, S4Discretization disc, uint64_t seed, bool grad = true) {
  S5Weights w;
  w.lambda_re = rand_f64({P}, seed, -1.0, -0.1, grad);
  w.lambda_im = rand_f64({P}, seed + 1, -3, 3, grad);
  w.log_dt = rand_f64({P}, seed + 2, std::log(0.05), std::log(0.5), grad);
  w.B_re = rand_f64({P, H}, seed + 3, -1, 1, grad);
  w.B_im = rand_f64({P, H}, seed + 4, -1, 1, grad);
  w.C_re = rand_f64({H, P}, seed + 5, -1, 1, grad);
  w.C_im = rand_f64({H, P}, seed + 6, -1, 1, grad);
  w.D = rand_f64({H}, seed + 7, -1, 1, grad);
  w.conj_sym = conj_sym;
  w.disc = disc;
  return w;
}

V s5_inputs(const S5Weights& w) { return {w.lambda_re, w.lambda_im, w.log_dt, w.B_re, w.B_im, w.C_re, w.C_im, w.D}; }
S5Weights s5_from(const V& in, size_t at, const S5Weights& like) {
  S5Weights w = like;
  w.lambda_re = in[at];
  w.lambda_im = in[at + 1];
  w.log_dt = in[at + 2];
  w.B_re = in[at + 3];
  w.B_im = in[at + 4];
  w.C_re = in[at + 5];
  w.C_im = in[at + 6];
  w.D = in[at + 7];
  return w;
}

// u (B, L, H): the plain sequential recurrence.
LtiRef naive_s5(const Tensor& u, const S5Weights& w, const Tensor& h0_re, const Tensor& h0_im) {
  const int64_t B = u.shape()[0], L = u.shape()[1], H = u.shape()[2], P = w.lambda_re.shape()[0];
  std::vector<double> uv = u.to_vector(), lr = w.lambda_re.to_vector(), li = w.lambda_im.to_vector();
  std::vector<double> ldt = w.log_dt.to_vector(), br = w.B_re.to_vector(), bi = w.B_im.to_vector();
  std::vector<double> cr = w.C_re.to_vector(), ci = w.C_im.to_vector(), d = vec_or(w.D, size_t(H));
  std::vector<double> h0r = vec_or(h0_re, size_t(B * P)), h0i = vec_or(h0_im, size_t(B * P));
  std::vector<cplx> abar(static_cast<size_t>(P)), bbar(static_cast<size_t>(P * H));
  for (int64_t p = 0; p < P; ++p) {
    auto [ab, f] = discretize(w.disc, std::exp(ldt[size_t(p)]), cplx(lr[size_t(p)], li[size_t(p)]));
    abar[size_t(p)] = ab;
    for (int64_t h = 0; h < H; ++h) bbar[size_t(p * H + h)] = f * cplx(br[size_t(p * H + h)], bi[size_t(p * H + h)]);
  }
  const double scale = w.conj_sym ? 2.0 : 1.0;
  LtiRef r;
  r.y.resize(size_t(B * L * H));
  r.fin_re.resize(size_t(B * P));
  r.fin_im.resize(size_t(B * P));
  for (int64_t b = 0; b < B; ++b) {
    std::vector<cplx> x(static_cast<size_t>(P));
    for (int64_t p = 0; p < P; ++p) x[size_t(p)] = cplx(h0r[size_t(b * P + p)], h0i[size_t(b * P + p)]);
    for (int64_t t = 0; t < L; ++t) {
      const double* ut = &uv[size_t((b * L + t) * H)];
      for (int64_t p = 0; p < P; ++p) {
        cplx bu = 0;
        for (int64_t h = 0; h < H; ++h) bu += bbar[size_t(p * H + h)] * ut[h];
        x[size_t(p)] = abar[size_t(p)] * x[size_t(p)] + bu;
      }
      for (int64_t h = 0; h < H; ++h) {
        cplx cx = 0;
        for (int64_t p = 0; p < P; ++p) cx += cplx(cr[size_t(h * P + p)], ci[size_t(h * P + p)]) * x[size_t(p)];
        r.y[size_t((b * L + t) * H + h)] = scale * cx.real() + d[size_t(h)] * ut[h];
      }
    }
    for (int64_t p = 0; p < P; ++p) {
      r.fin_re[size_t(b * P + p)] = x[size_t(p)].real();
      r.fin_im[size_t(b * P + p)] = x[size_t(p)].imag();
    }
  }
  return r;
}

TEST(S5Op, ForwardMatchesNaiveOverSeveralChunks) {
  NoGradGuard ng;
  const int64_t B = 2, H = 3, P = 5;
  for (int64_t L : {int64_t(1), int64_t(64), int64_t(200)})  // 200 = 3 chunks of 64 + 8
    for (bool conj_sym : {true, false})
      for (S4Discretization disc : kDiscs) {
        SCOPED_TRACE(testing::Message() << "L " << L << " conj_sym " << conj_sym << " " << disc_name(disc));
        S5Weights w = rand_s5(H, P, conj_sym, disc, 60, false);
        Tensor u = transpose(rand_f64({B, H, L}, 61, -2, 2, false), 1, 2);  // strided (B, L, H)
        Tensor h0r = rand_f64({B, P}, 62, -1, 1, false), h0i = rand_f64({B, P}, 63, -1, 1, false);
        S4Result r = s5(u, w, h0r, h0i, true);
        LtiRef ref = naive_s5(u, w, h0r, h0i);
        ASSERT_EQ(r.y.shape(), (Dims{B, L, H}));
        ASSERT_EQ(r.final_state_re.shape(), (Dims{B, P}));
        expect_close(r.y.to_vector(), ref.y, 1e-11);
        expect_close(r.final_state_re.to_vector(), ref.fin_re, 1e-11);
        expect_close(r.final_state_im.to_vector(), ref.fin_im, 1e-11);
      }
  // float32, no initial state, no D.
  S5Weights w = rand_s5(H, P, true, S4Discretization::zoh, 64, false);
  w.D = Tensor();
  Tensor u = rand_f64({B, 100, H}, 65, -2, 2, false);
  S5Weights w32 = w;
  for (Tensor* t : {&w32.lambda_re, &w32.lambda_im, &w32.log_dt, &w32.B_re, &w32.B_im, &w32.C_re, &w32.C_im})
    *t = to(*t, DType::f32);
  expect_close(s5(to(u, DType::f32), w32).y.to_vector(), naive_s5(u, w, Tensor(), Tensor()).y, 2e-5);
}

TEST(S5Op, GradcheckEveryInputAcrossChunks) {
  const int64_t B = 2, H = 3, P = 4, L = 67;  // one full scan chunk of 64 and a short one
  for (bool conj_sym : {true, false})
    for (S4Discretization disc : kDiscs) {
      SCOPED_TRACE(testing::Message() << "conj_sym " << conj_sym << " " << disc_name(disc));
      S5Weights w = rand_s5(H, P, conj_sym, disc, 70);
      V in{rand_f64({B, H, L}, 71, -2, 2)};  // u, read through a transposed view
      for (const Tensor& t : s5_inputs(w)) in.push_back(t);
      in.push_back(rand_f64({B, P}, 72));  // h0_re
      in.push_back(rand_f64({B, P}, 73));  // h0_im
      EXPECT_TRUE(gradcheck(
          [w](const V& x) {
            S4Result r = s5(transpose(x[0], 1, 2), s5_from(x, 1, w), x[9], x[10], true);
            return concat({flatten(r.y), flatten(r.final_state_re), flatten(r.final_state_im)}, 0);
          },
          in));
    }
  // Short sequence, y only, no D, no initial state, a transposed C.
  S5Weights w = rand_s5(H, P, true, S4Discretization::zoh, 74);
  EXPECT_TRUE(gradcheck(
      [w](const V& x) {
        S5Weights v = w;
        v.D = Tensor();
        v.C_re = transpose(x[1], 0, 1);
        return s5(x[0], v).y;
      },
      {rand_f64({B, 5, H}, 75, -2, 2), rand_f64({P, H}, 76)}));
}

TEST(S5Op, StepReproducesParallelForward) {
  NoGradGuard ng;
  const int64_t B = 2, H = 3, P = 6, L = 70;
  for (bool conj_sym : {true, false})
    for (S4Discretization disc : kDiscs) {
      SCOPED_TRACE(testing::Message() << "conj_sym " << conj_sym << " " << disc_name(disc));
      S5Weights w = rand_s5(H, P, conj_sym, disc, 80, false);
      Tensor u = rand_f64({B, L, H}, 81, -2, 2, false);
      Tensor h0r = rand_f64({B, P}, 82, -1, 1, false), h0i = rand_f64({B, P}, 83, -1, 1, false);
      S4Result r = s5(u, w, h0r, h0i, true);
      // The state as strided views of one (B, 2, P) buffer.
      Tensor store = Tensor::zeros({B, 2, P}, DType::f64);
      Tensor sr = store.select(1, 0), si = store.select(1, 1);
      copy_(sr, h0r);
      copy_(si, h0i);
      std::vector<double> ys = r.y.to_vector();
      for (int64_t t = 0; t < L; ++t) {
        std::vector<double> v = s5_step(sr, si, u.select(1, t), w).to_vector();
        // The parallel forward scans in chunks (different rounding), the step sequentially.
        for (int64_t i = 0; i < B * H; ++i) {
          const int64_t b = i / H, h = i % H;
          const double ref = ys[size_t((b * L + t) * H + h)];
          ASSERT_NEAR(v[size_t(i)], ref, 1e-12 * std::max(1.0, std::abs(ref))) << "t " << t << " i " << i;
        }
      }
      expect_close(contiguous(sr).to_vector(), r.final_state_re.to_vector(), 1e-12);
      expect_close(contiguous(si).to_vector(), r.final_state_im.to_vector(), 1e-12);
    }
}

// ---- both -----------------------------------------------------------------------------------

TEST(LtiOps, DeterministicAcrossThreadCounts) {
  const int64_t B = 3, H = 8, N = 6, L = 301;
  Rng rng(90);
  Tensor u0 = randn({B, L, H}, rng), seed = randn({B, L, H}, rng), h0 = randn({B, N}, rng);
  auto run = [&](bool use_s5) {
    Tensor u = clone(u0).set_requires_grad(true);
    Tensor hr = clone(h0).set_requires_grad(true);
    V leaves{u, hr};
    Tensor y;
    if (use_s5) {
      S5Weights w = rand_s5(H, N, true, S4Discretization::zoh, 91);
      for (Tensor* t : {&w.lambda_re, &w.lambda_im, &w.log_dt, &w.B_re, &w.B_im, &w.C_re, &w.C_im, &w.D}) {
        *t = to(*t, DType::f32).detach().set_requires_grad(true);
        leaves.push_back(*t);
      }
      y = s5(u, w, hr, Tensor()).y;
    } else {
      S4dWeights w = rand_s4d(H, N, true, S4Discretization::zoh, 92);
      for (Tensor* t : {&w.log_dt, &w.A_re, &w.A_im, &w.B_re, &w.B_im, &w.C_re, &w.C_im, &w.D}) {
        *t = to(*t, DType::f32).detach().set_requires_grad(true);
        leaves.push_back(*t);
      }
      Tensor h0s = reshape(expand(unsqueeze(hr, 1), {B, H, N}), {B, H, N});
      y = transpose(s4d(transpose(u, 1, 2), w, h0s, Tensor()).y, 1, 2);
    }
    backward(y, seed);
    V out{y.detach()};
    for (const Tensor& t : leaves) out.push_back(t.grad());
    return out;
  };
  for (bool use_s5 : {false, true}) {
    SCOPED_TRACE(use_s5 ? "s5" : "s4d");
    const int prev = omp_get_max_threads();
    omp_set_num_threads(1);
    V a = run(use_s5);
    omp_set_num_threads(2);
    V b = run(use_s5);
    omp_set_num_threads(prev);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_TRUE(a[i].defined() && b[i].defined()) << "output " << i;
      EXPECT_EQ(std::memcmp(a[i].raw_data(), b[i].raw_data(), a[i].nbytes()), 0) << "output " << i;
    }
  }
}

void expect_error(const std::function<void()>& f, std::initializer_list<const char*> parts) {
  try {
    f();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    for (const char* p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(LtiOps, ErrorsNameTheTensors) {
  NoGradGuard ng;
  const int64_t B = 2, H = 3, N = 4, L = 5, P = 6;
  S4dWeights w = rand_s4d(H, N, true, S4Discretization::zoh, 100, false);
  Tensor u = Tensor::zeros({B, H, L}, DType::f64);
  expect_error([&] { s4d(Tensor::zeros({B, H}, DType::f64), w); }, {"s4d", "u f64[2, 3] cpu", "(B, H, L)"});
  S4dWeights bad = w;
  bad.B_re = Tensor::zeros({H, N + 1}, DType::f64);
  expect_error([&] { s4d(u, bad); }, {"s4d", "B_re f64[3, 5] cpu", "(H, N)"});
  bad = w;
  bad.C_im = Tensor();
  expect_error([&] { s4d(u, bad); }, {"s4d", "C_im", "complex"});
  bad.complex = false;  // S4D-Real ignores the imaginary planes
  EXPECT_NO_THROW(s4d(u, bad));
  bad = w;
  bad.log_dt = Tensor::zeros({H + 1}, DType::f64);
  expect_error([&] { s4d(u, bad); }, {"log_dt f64[4] cpu", "(H)"});
  bad = w;
  bad.D = Tensor::zeros({H}, DType::f32);
  expect_error([&] { s4d(u, bad); }, {"s4d", "dtype"});
  expect_error([&] { s4d(u, w, Tensor::zeros({B, H, N + 1}, DType::f64)); }, {"h0_re f64[2, 3, 5] cpu", "(B, H, N)"});
  Tensor sr = Tensor::zeros({B, H, N}, DType::f64);
  expect_error([&] { s4d_step(sr, Tensor::zeros({B, H, 1}, DType::f64), u.select(2, 0), w); },
               {"s4d_step", "state_im f64[2, 3, 1] cpu"});
  expect_error([&] { s4d_step(sr, sr, u, w); }, {"s4d_step", "(B, H)"});

  S5Weights v = rand_s5(H, P, true, S4Discretization::zoh, 110, false);
  Tensor us = Tensor::zeros({B, L, H}, DType::f64);
  expect_error([&] { s5(Tensor::zeros({B, L}, DType::f64), v); }, {"s5", "(B, L, H)"});
  S5Weights bv = v;
  bv.B_re = Tensor::zeros({H, P}, DType::f64);
  expect_error([&] { s5(us, bv); }, {"s5", "B_re f64[3, 6] cpu", "(P, H)"});
  bv = v;
  bv.lambda_im = Tensor();
  expect_error([&] { s5(us, bv); }, {"s5", "lambda_im", "defined"});
  bv = v;
  bv.log_dt = Tensor::zeros({P - 1}, DType::f64);
  expect_error([&] { s5(us, bv); }, {"log_dt f64[5] cpu", "(P)"});
  expect_error([&] { s5(us, v, Tensor(), Tensor::zeros({B, P, 2}, DType::f64)); }, {"h0_im", "(B, P)"});
  expect_error([&] { s5_step(Tensor::zeros({B, P}, DType::f64), Tensor(), us.select(1, 0), v); },
               {"s5_step", "state_im"});
  expect_error([&] { s5(to(us, DType::f32), v); }, {"s5", "dtype"});

  // Steps refuse to run inside a graph.
  GradMode::set_enabled(true);
  S5Weights vg = v;
  vg.D = rand_f64({H}, 111);
  expect_error([&] { s5_step(Tensor::zeros({B, P}, DType::f64), Tensor::zeros({B, P}, DType::f64), us.select(1, 0), vg); },
               {"s5_step", "NoGradGuard"});
  S4dWeights wg = w;
  wg.D = rand_f64({H}, 112);
  expect_error([&] { s4d_step(sr, sr, u.select(2, 0), wg); }, {"s4d_step", "NoGradGuard"});
}

}  // namespace
}  // namespace ssm
