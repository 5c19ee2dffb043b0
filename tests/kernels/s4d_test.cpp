// S4D: the scan against a std::complex recurrence, the convolution-kernel form against the
// scan, every gradient against central differences, the step function against the scan,
// the initialisers against their formulas, and bitwise determinism across thread counts.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <complex>
#include <cstring>
#include <numbers>
#include <vector>

#include "kernels/cpu/s4d.h"
#include "tests/kernels/lti_fd.h"

namespace ssm::kernels::cpu {
namespace {

using test::lti::cast;
using test::lti::dot;
using test::lti::fd_grad;
using test::lti::grad_err;
using test::lti::max_rel;
using test::lti::randn;
using test::lti::uniform;
using cx = std::complex<double>;

struct Problem {
  int64_t B = 2, H = 3, L = 37, N = 4;
  bool is_real = false, channels_last = false, use_h0 = true;
  Discretization disc = Discretization::zoh;
  // Weights (H, N) / (H); activations u (B, H, L) or (B, L, H); states (B, H, N, 2).
  std::vector<double> a_re, a_im, b_re, b_im, c_re, c_im, log_dt, d, u, h0;

  void fill(uint32_t seed) {
    a_re = uniform(H * N, seed, -1.0, -0.1);
    a_im = uniform(H * N, seed + 1, -4.0, 4.0);
    b_re = randn(H * N, seed + 2);
    b_im = randn(H * N, seed + 3);
    c_re = randn(H * N, seed + 4, 0.5);
    c_im = randn(H * N, seed + 5, 0.5);
    log_dt = uniform(H, seed + 6, std::log(0.01), std::log(0.5));
    d = randn(H, seed + 7);
    u = randn(B * H * L, seed + 8);
    h0 = randn(B * H * N * 2, seed + 9);
  }
  int64_t at(int64_t b, int64_t h, int64_t t) const {
    return channels_last ? (b * L + t) * H + h : (b * H + h) * L + t;
  }
};

// All outputs and gradients of one run, in double.
struct Result {
  std::vector<double> y, hT, kernel;
  std::vector<double> du, da_re, da_im, db_re, db_im, dc_re, dc_im, dlog_dt, dd, dh0, dkernel;
};

// Typed copies of a Problem plus the Params pointing at them.
template <class T>
struct Bound {
  std::vector<T> a_re, a_im, b_re, b_im, c_re, c_im, log_dt, d, u, h0;
  std::vector<T> y, hT, kernel;
  S4dParams p;
  explicit Bound(const Problem& pb)
      : a_re(cast<T>(pb.a_re)), a_im(cast<T>(pb.a_im)), b_re(cast<T>(pb.b_re)),
        b_im(cast<T>(pb.b_im)), c_re(cast<T>(pb.c_re)), c_im(cast<T>(pb.c_im)),
        log_dt(cast<T>(pb.log_dt)), d(cast<T>(pb.d)), u(cast<T>(pb.u)), h0(cast<T>(pb.h0)),
        y(pb.B * pb.H * pb.L), hT(pb.B * pb.H * pb.N * 2), kernel(pb.H * pb.L) {
    p.batch = pb.B;
    p.dim = pb.H;
    p.seqlen = pb.L;
    p.dstate = pb.N;
    p.is_real = pb.is_real;
    p.disc = pb.disc;
    p.w = {a_re.data(), pb.is_real ? nullptr : a_im.data(), b_re.data(),
           pb.is_real ? nullptr : b_im.data(), c_re.data(), pb.is_real ? nullptr : c_im.data(),
           log_dt.data(), d.data()};
    p.u = u.data();
    p.y = y.data();
    p.u_batch_stride = p.y_batch_stride = pb.H * pb.L;
    p.u_h_stride = p.y_h_stride = pb.channels_last ? 1 : pb.L;
    p.u_l_stride = p.y_l_stride = pb.channels_last ? pb.H : 1;
    p.h0 = pb.use_h0 ? h0.data() : nullptr;
    p.hT = hT.data();
    p.h0_batch_stride = p.hT_batch_stride = pb.H * pb.N * 2;
    p.h0_h_stride = p.hT_h_stride = pb.N * 2;
    p.kernel = kernel.data();
  }
};

template <class T>
std::vector<double> dbl(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

enum class Form { scan, conv };

// Forward (scan, or kernel + convolution) and, when R is given, the backward with dy = R,
// dhT = R2 (scan) or through the kernel (conv).
template <class T>
Result run(const Problem& pb, Form form, const std::vector<double>* R = nullptr,
           const std::vector<double>* R2 = nullptr) {
  Bound<T> bd(pb);
  if (form == Form::scan) {
    s4d_fwd<T>(bd.p);
  } else {
    s4d_kernel_fwd<T>(bd.p);
    s4d_conv_fwd<T>(bd.p);
  }
  Result r;
  r.y = dbl(bd.y);
  r.hT = dbl(bd.hT);
  r.kernel = dbl(bd.kernel);
  if (!R) return r;
  const int64_t HN = pb.H * pb.N;
  S4dBwdParams q;
  static_cast<S4dParams&>(q) = bd.p;
  std::vector<T> dy = cast<T>(*R), dhT = cast<T>(R2 ? *R2 : std::vector<double>(bd.hT.size()));
  std::vector<T> du(bd.u.size(), T(9)), dh0(bd.h0.size(), T(9)), dkernel(bd.kernel.size(), T(9));
  std::vector<T> da_re(HN, T(9)), da_im(HN, T(9)), db_re(HN, T(9)), db_im(HN, T(9)),
      dc_re(HN, T(9)), dc_im(HN, T(9)), dlog_dt(pb.H, T(9)), dd(pb.H, T(9));
  q.dy = dy.data();
  q.dy_batch_stride = q.du_batch_stride = bd.p.u_batch_stride;
  q.dy_h_stride = q.du_h_stride = bd.p.u_h_stride;
  q.dy_l_stride = q.du_l_stride = bd.p.u_l_stride;
  q.du = du.data();
  q.g = {da_re.data(), da_im.data(), db_re.data(), db_im.data(),
         dc_re.data(), dc_im.data(), dlog_dt.data(), dd.data()};
  if (form == Form::scan) {
    q.dhT = R2 ? dhT.data() : nullptr;
    q.dhT_batch_stride = q.dh0_batch_stride = pb.H * pb.N * 2;
    q.dhT_h_stride = q.dh0_h_stride = pb.N * 2;
    q.dh0 = dh0.data();
    s4d_bwd<T>(q);
  } else {
    q.dkernel = dkernel.data();
    s4d_conv_bwd<T>(q);
    s4d_kernel_bwd<T>(q);
  }
  r.du = dbl(du);
  r.dh0 = dbl(dh0);
  r.dkernel = dbl(dkernel);
  r.da_re = dbl(da_re);
  r.da_im = dbl(da_im);
  r.db_re = dbl(db_re);
  r.db_im = dbl(db_im);
  r.dc_re = dbl(dc_re);
  r.dc_im = dbl(dc_im);
  r.dlog_dt = dbl(dlog_dt);
  r.dd = dbl(dd);
  return r;
}

// The model written with std::complex, straight from the paper's formulas.
Result naive(const Problem& pb) {
  const int64_t B = pb.B, H = pb.H, L = pb.L, N = pb.N;
  const double scale = pb.is_real ? 1.0 : 2.0;
  Result r;
  r.y.assign(B * H * L, 0.0);
  r.hT.assign(B * H * N * 2, 0.0);
  r.kernel.assign(H * L, 0.0);
  for (int64_t h = 0; h < H; ++h) {
    const double dt = std::exp(pb.log_dt[h]);
    std::vector<cx> dA(N), dB(N), C(N);
    for (int64_t n = 0; n < N; ++n) {
      const int64_t i = h * N + n;
      const double im = pb.is_real ? 0.0 : 1.0;
      const cx A(pb.a_re[i], im * pb.a_im[i]), Bc(pb.b_re[i], im * pb.b_im[i]);
      C[n] = cx(pb.c_re[i], im * pb.c_im[i]);
      if (pb.disc == Discretization::zoh) {
        dA[n] = std::exp(dt * A);
        dB[n] = (dA[n] - 1.0) / A * Bc;
      } else {
        dA[n] = (1.0 + dt * A / 2.0) / (1.0 - dt * A / 2.0);
        dB[n] = dt / (1.0 - dt * A / 2.0) * Bc;
      }
    }
    for (int64_t l = 0; l < L; ++l) {
      cx acc = 0.0;
      for (int64_t n = 0; n < N; ++n) acc += C[n] * dB[n] * std::pow(dA[n], double(l));
      r.kernel[h * L + l] = scale * acc.real();
    }
    for (int64_t b = 0; b < B; ++b) {
      std::vector<cx> s(N);
      for (int64_t n = 0; n < N; ++n) {
        const int64_t j = ((b * H + h) * N + n) * 2;
        if (pb.use_h0) s[n] = cx(pb.h0[j], pb.h0[j + 1]);
      }
      for (int64_t t = 0; t < L; ++t) {
        const double ut = pb.u[pb.at(b, h, t)];
        cx acc = 0.0;
        for (int64_t n = 0; n < N; ++n) {
          s[n] = dA[n] * s[n] + dB[n] * ut;
          acc += C[n] * s[n];
        }
        r.y[pb.at(b, h, t)] = scale * acc.real() + pb.d[h] * ut;
      }
      for (int64_t n = 0; n < N; ++n) {
        const int64_t j = ((b * H + h) * N + n) * 2;
        r.hT[j] = s[n].real();
        r.hT[j + 1] = s[n].imag();
      }
    }
  }
  return r;
}

std::string name(const Problem& pb) {
  return std::string(pb.disc == Discretization::zoh ? "zoh" : "bilinear") +
         (pb.is_real ? " real" : " complex") + (pb.use_h0 ? " h0" : "") +
         (pb.channels_last ? " (B,L,H)" : " (B,H,L)");
}

class S4dModes : public testing::TestWithParam<std::tuple<Discretization, bool>> {
 protected:
  Problem make(uint32_t seed) const {
    Problem pb;
    pb.disc = std::get<0>(GetParam());
    pb.is_real = std::get<1>(GetParam());
    pb.channels_last = seed % 2 == 1;
    pb.fill(seed);
    return pb;
  }
};

TEST_P(S4dModes, ScanMatchesNaiveRecurrence) {
  for (bool use_h0 : {false, true}) {
    Problem pb = make(200 + use_h0);
    pb.use_h0 = use_h0;
    SCOPED_TRACE(name(pb));
    Result ref = naive(pb), got = run<double>(pb, Form::scan);
    EXPECT_LT(max_rel(got.y, ref.y), 1e-12);
    EXPECT_LT(max_rel(got.hT, ref.hT), 1e-12);
  }
}

TEST_P(S4dModes, ConvolutionFormMatchesScan) {
  Problem pb = make(210);
  pb.use_h0 = false;  // the kernel form starts from a zero state
  SCOPED_TRACE(name(pb));
  Result ref = naive(pb), scan = run<double>(pb, Form::scan), conv = run<double>(pb, Form::conv);
  EXPECT_LT(max_rel(conv.kernel, ref.kernel), 1e-12);
  EXPECT_LT(max_rel(conv.y, scan.y), 1e-12);
}

TEST_P(S4dModes, ScanGradientsMatchFiniteDifferences) {
  Problem pb = make(220);
  SCOPED_TRACE(name(pb));
  Result fwd = run<double>(pb, Form::scan);
  const std::vector<double> R = randn(fwd.y.size(), 221), R2 = randn(fwd.hT.size(), 222);
  Result an = run<double>(pb, Form::scan, &R, &R2);
  auto loss = [&] {
    Result o = run<double>(pb, Form::scan);
    return dot(o.y, R) + dot(o.hT, R2);
  };
  EXPECT_LT(grad_err(an.du, fd_grad(pb.u, loss)), 1e-6) << "du";
  EXPECT_LT(grad_err(an.dh0, fd_grad(pb.h0, loss)), 1e-6) << "dh0";
  EXPECT_LT(grad_err(an.da_re, fd_grad(pb.a_re, loss)), 1e-6) << "dA_re";
  EXPECT_LT(grad_err(an.db_re, fd_grad(pb.b_re, loss)), 1e-6) << "dB_re";
  EXPECT_LT(grad_err(an.dc_re, fd_grad(pb.c_re, loss)), 1e-6) << "dC_re";
  EXPECT_LT(grad_err(an.dlog_dt, fd_grad(pb.log_dt, loss)), 1e-6) << "dlog_dt";
  EXPECT_LT(grad_err(an.dd, fd_grad(pb.d, loss)), 1e-6) << "dD";
  if (pb.is_real) {
    for (const auto* g : {&an.da_im, &an.db_im, &an.dc_im}) {
      for (double v : *g) EXPECT_EQ(v, 0.0);
    }
  } else {
    EXPECT_LT(grad_err(an.da_im, fd_grad(pb.a_im, loss)), 1e-6) << "dA_im";
    EXPECT_LT(grad_err(an.db_im, fd_grad(pb.b_im, loss)), 1e-6) << "dB_im";
    EXPECT_LT(grad_err(an.dc_im, fd_grad(pb.c_im, loss)), 1e-6) << "dC_im";
  }
}

TEST_P(S4dModes, ConvolutionFormGradientsMatchFiniteDifferences) {
  Problem pb = make(230);
  pb.use_h0 = false;
  SCOPED_TRACE(name(pb));
  Result fwd = run<double>(pb, Form::conv);
  const std::vector<double> R = randn(fwd.y.size(), 231);
  Result an = run<double>(pb, Form::conv, &R);
  auto loss = [&] { return dot(run<double>(pb, Form::conv).y, R); };
  EXPECT_LT(grad_err(an.du, fd_grad(pb.u, loss)), 1e-6) << "du";
  EXPECT_LT(grad_err(an.da_re, fd_grad(pb.a_re, loss)), 1e-6) << "dA_re";
  EXPECT_LT(grad_err(an.db_re, fd_grad(pb.b_re, loss)), 1e-6) << "dB_re";
  EXPECT_LT(grad_err(an.dc_re, fd_grad(pb.c_re, loss)), 1e-6) << "dC_re";
  EXPECT_LT(grad_err(an.dlog_dt, fd_grad(pb.log_dt, loss)), 1e-6) << "dlog_dt";
  EXPECT_LT(grad_err(an.dd, fd_grad(pb.d, loss)), 1e-6) << "dD";
  if (!pb.is_real) {
    EXPECT_LT(grad_err(an.da_im, fd_grad(pb.a_im, loss)), 1e-6) << "dA_im";
    EXPECT_LT(grad_err(an.db_im, fd_grad(pb.b_im, loss)), 1e-6) << "dB_im";
    EXPECT_LT(grad_err(an.dc_im, fd_grad(pb.c_im, loss)), 1e-6) << "dC_im";
  }
  // The scan's gradients of the same loss agree with the kernel path's.
  Result scan = run<double>(pb, Form::scan, &R);
  EXPECT_LT(max_rel(an.du, scan.du), 1e-11);
  EXPECT_LT(max_rel(an.da_re, scan.da_re), 1e-11);
  EXPECT_LT(max_rel(an.dlog_dt, scan.dlog_dt), 1e-11);
}

TEST_P(S4dModes, StepMatchesScan) {
  Problem pb = make(240);
  pb.L = 70;
  pb.channels_last = false;
  pb.fill(240);
  Result par = run<double>(pb, Form::scan);
  const int64_t B = pb.B, H = pb.H, N = pb.N;
  std::vector<double> state = pb.h0, ut(B * H), yt(B * H);
  Bound<double> bd(pb);
  S4dStepParams s;
  s.batch = B;
  s.dim = H;
  s.dstate = N;
  s.is_real = pb.is_real;
  s.disc = pb.disc;
  s.w = bd.p.w;
  s.u = ut.data();
  s.u_batch_stride = H;
  s.u_h_stride = 1;
  s.y = yt.data();
  s.y_batch_stride = H;
  s.y_h_stride = 1;
  s.state = state.data();
  s.state_batch_stride = H * N * 2;
  s.state_h_stride = N * 2;
  double err = 0.0, mx = 0.0;
  for (int64_t t = 0; t < pb.L; ++t) {
    for (int64_t i = 0; i < B * H; ++i) ut[i] = pb.u[i * pb.L + t];
    s4d_step<double>(s);
    for (int64_t i = 0; i < B * H; ++i) {
      err = std::max(err, std::abs(yt[i] - par.y[i * pb.L + t]));
      mx = std::max(mx, std::abs(par.y[i * pb.L + t]));
    }
  }
  EXPECT_LT(err / mx, 1e-14);
  EXPECT_LT(max_rel(state, par.hT), 1e-14);
}

TEST_P(S4dModes, FloatIsThreadCountInvariantAndCloseToDouble) {
  Problem pb = make(250);
  pb.B = 3;
  pb.H = 9;
  pb.L = 129;
  pb.N = 16;
  pb.fill(250);
  const std::vector<double> R = randn(pb.B * pb.H * pb.L, 251);
  const std::vector<double> R2 = randn(pb.B * pb.H * pb.N * 2, 252);
  const int saved = omp_get_max_threads();
  Result one[2], two[2];
  omp_set_num_threads(1);
  one[0] = run<float>(pb, Form::scan, &R, &R2);
  pb.use_h0 = false;
  one[1] = run<float>(pb, Form::conv, &R);
  pb.use_h0 = true;
  omp_set_num_threads(2);
  two[0] = run<float>(pb, Form::scan, &R, &R2);
  pb.use_h0 = false;
  two[1] = run<float>(pb, Form::conv, &R);
  pb.use_h0 = true;
  omp_set_num_threads(saved);
  for (int f = 0; f < 2; ++f) {
    const Result &a = one[f], &b = two[f];
    for (auto [x, y] : {std::pair{&a.y, &b.y}, {&a.hT, &b.hT}, {&a.kernel, &b.kernel},
                        {&a.du, &b.du}, {&a.da_re, &b.da_re}, {&a.da_im, &b.da_im},
                        {&a.db_re, &b.db_re}, {&a.db_im, &b.db_im}, {&a.dc_re, &b.dc_re},
                        {&a.dc_im, &b.dc_im}, {&a.dlog_dt, &b.dlog_dt}, {&a.dd, &b.dd},
                        {&a.dh0, &b.dh0}, {&a.dkernel, &b.dkernel}}) {
      ASSERT_EQ(x->size(), y->size());
      EXPECT_EQ(0, std::memcmp(x->data(), y->data(), x->size() * sizeof(double)));
    }
  }
  Result ref = run<double>(pb, Form::scan, &R, &R2);
  EXPECT_LT(max_rel(one[0].y, ref.y), 1e-5);
  EXPECT_LT(max_rel(one[0].du, ref.du), 1e-5);
  EXPECT_LT(max_rel(one[0].dc_re, ref.dc_re), 1e-5);
  EXPECT_LT(max_rel(one[0].da_re, ref.da_re), 1e-4);  // sums of L terms that partly cancel
}

INSTANTIATE_TEST_SUITE_P(
    Disc, S4dModes,
    testing::Combine(testing::Values(Discretization::zoh, Discretization::bilinear),
                     testing::Bool()),
    [](const auto& info) {
      return std::string(std::get<0>(info.param) == Discretization::zoh ? "Zoh" : "Bilinear") +
             (std::get<1>(info.param) ? "Real" : "Complex");
    });

// dt * sum_{k>=0} z^k/(k+1)! and its A-derivative dt^2 sum_{k>=1} k z^(k-1)/(k+1)!, summed far
// past double precision: the ZOH factor without the cancellation of (e^z - 1)/z.
std::pair<cx, cx> zoh_f_series(double dt, cx a) {
  const cx z = dt * a;
  cx f = 0.0, df = 0.0, zk = 1.0;  // zk = z^k
  double fact = 1.0;               // (k+1)!
  for (int k = 0; k < 30; ++k) {
    fact *= double(k + 1);
    f += zk / fact;
    if (k + 1 < 30) df += double(k + 1) * zk / (fact * double(k + 2));
    zk *= z;
  }
  return {dt * f, dt * dt * df};
}

TEST(S4dDiscretize, ZohFactorAndDerivativeAcrossTheSeriesThreshold) {
  // Slow modes (|dt A| ~ 1e-6) take the Taylor branch, faster ones the closed form; both must
  // match the long series to near machine precision, and A = 0 must be exact (f = dt).
  const double dt = 1e-3;
  for (cplx<double> a : {cplx<double>{-5e-3, 1.5e-3}, cplx<double>{-1e-2, 0.0},
                         cplx<double>{-0.2, 0.06}, cplx<double>{-0.5, 30.0}}) {
    auto [f_ref, df_ref] = zoh_f_series(dt, cx(a.re, a.im));
    LtiMode<double> md = lti_discretize(Discretization::zoh, dt, a);
    EXPECT_NEAR(md.f.re, f_ref.real(), 1e-14 * std::abs(f_ref));
    EXPECT_NEAR(md.f.im, f_ref.imag(), 1e-14 * std::abs(f_ref));
    cplx<double> g_a;
    double g_dt;
    lti_discretize_bwd(Discretization::zoh, dt, a, cplx<double>{}, cplx<double>{1.0, 0.0}, &g_a,
                       &g_dt);
    // g_a = conj(df/dA) for the loss Re(f).
    EXPECT_NEAR(g_a.re, df_ref.real(), 1e-11 * std::abs(df_ref));
    EXPECT_NEAR(g_a.im, -df_ref.imag(), 1e-11 * std::abs(df_ref));
  }
  LtiMode<double> zero = lti_discretize(Discretization::zoh, dt, cplx<double>{});
  EXPECT_EQ(zero.f.re, dt);
  EXPECT_EQ(zero.f.im, 0.0);
  EXPECT_EQ(zero.abar.re, 1.0);
}

TEST(S4dInit, MatchesPaperFormulas) {
  const int64_t H = 3, N = 5;
  const std::vector<double> normals = randn(H * N * 2, 300), unif = uniform(H, 301, 0.0, 1.0);
  for (S4dInit kind : {S4dInit::lin, S4dInit::inv, S4dInit::real}) {
    std::vector<double> a_re(H * N), a_im(H * N), b_re(H * N), b_im(H * N), c_re(H * N),
        c_im(H * N), log_dt(H);
    S4dInitParams p;
    p.kind = kind;
    p.dim = H;
    p.dstate = N;
    p.dt_min = 1e-3;
    p.dt_max = 1e-1;
    p.normals = normals.data();
    p.uniforms = unif.data();
    p.A_re = a_re.data();
    p.A_im = a_im.data();
    p.B_re = b_re.data();
    p.B_im = b_im.data();
    p.C_re = c_re.data();
    p.C_im = c_im.data();
    p.log_dt = log_dt.data();
    s4d_init<double>(p);
    const double pi = std::numbers::pi;
    for (int64_t h = 0; h < H; ++h) {
      const double dt = std::exp(log_dt[h]);
      EXPECT_GE(dt, 1e-3 * (1 - 1e-12));
      EXPECT_LE(dt, 1e-1 * (1 + 1e-12));
      EXPECT_NEAR(log_dt[h], std::log(1e-3) + unif[h] * std::log(100.0), 1e-12);
      for (int64_t n = 0; n < N; ++n) {
        const int64_t i = h * N + n;
        EXPECT_EQ(b_re[i], 1.0);
        EXPECT_EQ(b_im[i], 0.0);
        if (kind == S4dInit::real) {
          EXPECT_EQ(a_re[i], -double(n + 1));
          EXPECT_EQ(a_im[i], 0.0);
          EXPECT_EQ(c_re[i], normals[2 * i]);
          EXPECT_EQ(c_im[i], 0.0);
        } else {
          EXPECT_EQ(a_re[i], -0.5);
          const double want = kind == S4dInit::lin
                                  ? pi * n
                                  : 2.0 * N / pi * (2.0 * N / (2.0 * n + 1.0) - 1.0);
          EXPECT_NEAR(a_im[i], want, 1e-12 * (1 + std::abs(want)));
          EXPECT_NEAR(c_re[i], normals[2 * i] / std::sqrt(2.0), 1e-15);
          EXPECT_NEAR(c_im[i], normals[2 * i + 1] / std::sqrt(2.0), 1e-15);
        }
      }
    }
  }
}

}  // namespace
}  // namespace ssm::kernels::cpu
