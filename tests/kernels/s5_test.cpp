// S5: the sequential reference against a std::complex recurrence, the chunked parallel scan
// against the sequential one, every gradient against central differences (one and several
// chunks), the step function against the parallel forward, and bitwise determinism across
// thread counts.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <complex>
#include <cstring>
#include <vector>

#include "kernels/cpu/s5.h"
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
  int64_t B = 2, L = 37, H = 3, N = 5, chunk = 8;
  bool conj_sym = false, length_last = false, use_h0 = true;
  Discretization disc = Discretization::zoh;
  // Weights; u (B, L, H), or stored (B, H, L) when length_last; states (B, N, 2).
  std::vector<double> l_re, l_im, log_dt, b_re, b_im, c_re, c_im, d, u, h0;

  void fill(uint32_t seed) {
    l_re = uniform(N, seed, -1.0, -0.1);
    l_im = uniform(N, seed + 1, -3.0, 3.0);
    log_dt = uniform(N, seed + 2, std::log(0.01), std::log(0.5));
    b_re = randn(N * H, seed + 3, 0.6);
    b_im = randn(N * H, seed + 4, 0.6);
    c_re = randn(H * N, seed + 5, 0.6);
    c_im = randn(H * N, seed + 6, 0.6);
    d = randn(H, seed + 7);
    u = randn(B * L * H, seed + 8);
    h0 = randn(B * N * 2, seed + 9);
  }
  int64_t at(int64_t b, int64_t t, int64_t h) const {
    return length_last ? (b * H + h) * L + t : (b * L + t) * H + h;
  }
};

struct Result {
  std::vector<double> y, hT;
  std::vector<double> du, dl_re, dl_im, dlog_dt, db_re, db_im, dc_re, dc_im, dd, dh0;
};

template <class T>
std::vector<double> dbl(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

template <class T>
struct Bound {
  std::vector<T> l_re, l_im, log_dt, b_re, b_im, c_re, c_im, d, u, h0, y, hT;
  S5Params p;
  explicit Bound(const Problem& pb)
      : l_re(cast<T>(pb.l_re)), l_im(cast<T>(pb.l_im)), log_dt(cast<T>(pb.log_dt)),
        b_re(cast<T>(pb.b_re)), b_im(cast<T>(pb.b_im)), c_re(cast<T>(pb.c_re)),
        c_im(cast<T>(pb.c_im)), d(cast<T>(pb.d)), u(cast<T>(pb.u)), h0(cast<T>(pb.h0)),
        y(pb.B * pb.L * pb.H), hT(pb.B * pb.N * 2) {
    p.batch = pb.B;
    p.seqlen = pb.L;
    p.dim = pb.H;
    p.dstate = pb.N;
    p.conj_sym = pb.conj_sym;
    p.disc = pb.disc;
    p.chunk_size = pb.chunk;
    p.w = {l_re.data(), l_im.data(), log_dt.data(), b_re.data(),
           b_im.data(), c_re.data(), c_im.data(), d.data()};
    p.u = u.data();
    p.y = y.data();
    p.u_batch_stride = p.y_batch_stride = pb.L * pb.H;
    p.u_l_stride = p.y_l_stride = pb.length_last ? 1 : pb.H;
    p.u_h_stride = p.y_h_stride = pb.length_last ? pb.L : 1;
    p.h0 = pb.use_h0 ? h0.data() : nullptr;
    p.hT = hT.data();
    p.h0_batch_stride = p.hT_batch_stride = pb.N * 2;
  }
};

enum class Fwd { parallel, sequential };

template <class T>
Result run(const Problem& pb, Fwd fwd, const std::vector<double>* R = nullptr,
           const std::vector<double>* R2 = nullptr) {
  Bound<T> bd(pb);
  if (fwd == Fwd::parallel) {
    s5_fwd<T>(bd.p);
  } else {
    s5_fwd_ref<T>(bd.p);
  }
  Result r;
  r.y = dbl(bd.y);
  r.hT = dbl(bd.hT);
  if (!R) return r;
  const int64_t NH = pb.N * pb.H;
  S5BwdParams q;
  static_cast<S5Params&>(q) = bd.p;
  std::vector<T> dy = cast<T>(*R), dhT = cast<T>(R2 ? *R2 : std::vector<double>(bd.hT.size()));
  std::vector<T> du(bd.u.size(), T(9)), dh0(bd.h0.size(), T(9)), dl_re(pb.N, T(9)),
      dl_im(pb.N, T(9)), dlog_dt(pb.N, T(9)), db_re(NH, T(9)), db_im(NH, T(9)),
      dc_re(NH, T(9)), dc_im(NH, T(9)), dd(pb.H, T(9));
  q.dy = dy.data();
  q.dy_batch_stride = q.du_batch_stride = bd.p.u_batch_stride;
  q.dy_l_stride = q.du_l_stride = bd.p.u_l_stride;
  q.dy_h_stride = q.du_h_stride = bd.p.u_h_stride;
  q.dhT = R2 ? dhT.data() : nullptr;
  q.dhT_batch_stride = q.dh0_batch_stride = pb.N * 2;
  q.du = du.data();
  q.dh0 = dh0.data();
  q.g = {dl_re.data(), dl_im.data(), dlog_dt.data(), db_re.data(),
         db_im.data(), dc_re.data(), dc_im.data(), dd.data()};
  s5_bwd<T>(q);
  r.du = dbl(du);
  r.dh0 = dbl(dh0);
  r.dl_re = dbl(dl_re);
  r.dl_im = dbl(dl_im);
  r.dlog_dt = dbl(dlog_dt);
  r.db_re = dbl(db_re);
  r.db_im = dbl(db_im);
  r.dc_re = dbl(dc_re);
  r.dc_im = dbl(dc_im);
  r.dd = dbl(dd);
  return r;
}

// The paper's equations with std::complex and explicit matrices.
Result naive(const Problem& pb) {
  const int64_t B = pb.B, L = pb.L, H = pb.H, N = pb.N;
  std::vector<cx> abar(N), bbar(N * H), C(H * N);
  for (int64_t n = 0; n < N; ++n) {
    const cx lam(pb.l_re[n], pb.l_im[n]);
    const double dt = std::exp(pb.log_dt[n]);
    cx f;
    if (pb.disc == Discretization::zoh) {
      abar[n] = std::exp(lam * dt);
      f = (abar[n] - 1.0) / lam;
    } else {
      abar[n] = (1.0 + dt * lam / 2.0) / (1.0 - dt * lam / 2.0);
      f = dt / (1.0 - dt * lam / 2.0);
    }
    for (int64_t h = 0; h < H; ++h) bbar[n * H + h] = f * cx(pb.b_re[n * H + h], pb.b_im[n * H + h]);
  }
  for (int64_t i = 0; i < H * N; ++i) C[i] = cx(pb.c_re[i], pb.c_im[i]);
  Result r;
  r.y.assign(B * L * H, 0.0);
  r.hT.assign(B * N * 2, 0.0);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<cx> x(N);
    for (int64_t n = 0; n < N; ++n) {
      if (pb.use_h0) x[n] = cx(pb.h0[(b * N + n) * 2], pb.h0[(b * N + n) * 2 + 1]);
    }
    for (int64_t t = 0; t < L; ++t) {
      for (int64_t n = 0; n < N; ++n) {
        cx bu = 0.0;
        for (int64_t h = 0; h < H; ++h) bu += bbar[n * H + h] * pb.u[pb.at(b, t, h)];
        x[n] = abar[n] * x[n] + bu;
      }
      for (int64_t h = 0; h < H; ++h) {
        cx cxv = 0.0;
        for (int64_t n = 0; n < N; ++n) cxv += C[h * N + n] * x[n];
        r.y[pb.at(b, t, h)] = (pb.conj_sym ? 2.0 : 1.0) * cxv.real() + pb.d[h] * pb.u[pb.at(b, t, h)];
      }
    }
    for (int64_t n = 0; n < N; ++n) {
      r.hT[(b * N + n) * 2] = x[n].real();
      r.hT[(b * N + n) * 2 + 1] = x[n].imag();
    }
  }
  return r;
}

class S5Modes : public testing::TestWithParam<std::tuple<Discretization, bool>> {
 protected:
  Problem make(uint32_t seed) const {
    Problem pb;
    pb.disc = std::get<0>(GetParam());
    pb.conj_sym = std::get<1>(GetParam());
    pb.length_last = seed % 2 == 1;
    pb.fill(seed);
    return pb;
  }
};

TEST_P(S5Modes, SequentialMatchesNaive) {
  for (bool use_h0 : {false, true}) {
    Problem pb = make(400 + use_h0);
    pb.use_h0 = use_h0;
    Result ref = naive(pb), got = run<double>(pb, Fwd::sequential);
    EXPECT_LT(max_rel(got.y, ref.y), 1e-12);
    EXPECT_LT(max_rel(got.hT, ref.hT), 1e-12);
  }
}

TEST_P(S5Modes, ParallelScanMatchesSequential) {
  for (int64_t L : {1, 7, 100, 257}) {
    for (int64_t chunk : {int64_t(1), int64_t(4), kS5DefaultChunk, int64_t(1000)}) {
      Problem pb = make(410 + uint32_t(L));
      pb.L = L;
      pb.chunk = chunk;
      pb.fill(410 + uint32_t(L));
      SCOPED_TRACE(testing::Message() << "L=" << L << " chunk=" << chunk);
      Result seq = run<double>(pb, Fwd::sequential), par = run<double>(pb, Fwd::parallel);
      EXPECT_LT(max_rel(par.y, seq.y), 1e-12);
      EXPECT_LT(max_rel(par.hT, seq.hT), 1e-12);
    }
  }
}

TEST_P(S5Modes, GradientsMatchFiniteDifferences) {
  // chunk 8 over L = 37: five chunks, the last one short; chunk 64: a single chunk.
  for (int64_t chunk : {int64_t(8), kS5DefaultChunk}) {
    Problem pb = make(420 + uint32_t(chunk));
    pb.chunk = chunk;
    SCOPED_TRACE(testing::Message() << "chunk=" << chunk);
    Result fwd = run<double>(pb, Fwd::parallel);
    const std::vector<double> R = randn(fwd.y.size(), 421), R2 = randn(fwd.hT.size(), 422);
    Result an = run<double>(pb, Fwd::parallel, &R, &R2);
    auto loss = [&] {
      Result o = run<double>(pb, Fwd::sequential);
      return dot(o.y, R) + dot(o.hT, R2);
    };
    EXPECT_LT(grad_err(an.du, fd_grad(pb.u, loss)), 1e-6) << "du";
    EXPECT_LT(grad_err(an.dh0, fd_grad(pb.h0, loss)), 1e-6) << "dh0";
    EXPECT_LT(grad_err(an.dl_re, fd_grad(pb.l_re, loss)), 1e-6) << "dLambda_re";
    EXPECT_LT(grad_err(an.dl_im, fd_grad(pb.l_im, loss)), 1e-6) << "dLambda_im";
    EXPECT_LT(grad_err(an.dlog_dt, fd_grad(pb.log_dt, loss)), 1e-6) << "dlog_dt";
    EXPECT_LT(grad_err(an.db_re, fd_grad(pb.b_re, loss)), 1e-6) << "dB_re";
    EXPECT_LT(grad_err(an.db_im, fd_grad(pb.b_im, loss)), 1e-6) << "dB_im";
    EXPECT_LT(grad_err(an.dc_re, fd_grad(pb.c_re, loss)), 1e-6) << "dC_re";
    EXPECT_LT(grad_err(an.dc_im, fd_grad(pb.c_im, loss)), 1e-6) << "dC_im";
    EXPECT_LT(grad_err(an.dd, fd_grad(pb.d, loss)), 1e-6) << "dD";
  }
}

TEST_P(S5Modes, StepMatchesParallelForward) {
  Problem pb = make(430);
  pb.L = 70;
  pb.length_last = false;
  pb.fill(430);
  Result par = run<double>(pb, Fwd::parallel);
  const int64_t B = pb.B, H = pb.H, N = pb.N, L = pb.L;
  Bound<double> bd(pb);
  std::vector<double> state = pb.h0, ut(B * H), yt(B * H);
  S5StepParams s;
  s.batch = B;
  s.dim = H;
  s.dstate = N;
  s.conj_sym = pb.conj_sym;
  s.disc = pb.disc;
  s.w = bd.p.w;
  s.u = ut.data();
  s.u_batch_stride = H;
  s.u_h_stride = 1;
  s.y = yt.data();
  s.y_batch_stride = H;
  s.y_h_stride = 1;
  s.state = state.data();
  s.state_batch_stride = N * 2;
  std::vector<double> ys(B * L * H);
  for (int64_t t = 0; t < L; ++t) {
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t h = 0; h < H; ++h) ut[b * H + h] = pb.u[pb.at(b, t, h)];
    }
    s5_step<double>(s);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t h = 0; h < H; ++h) ys[pb.at(b, t, h)] = yt[b * H + h];
    }
  }
  EXPECT_LT(max_rel(ys, par.y), 1e-12);
  EXPECT_LT(max_rel(state, par.hT), 1e-12);
}

INSTANTIATE_TEST_SUITE_P(
    Disc, S5Modes,
    testing::Combine(testing::Values(Discretization::zoh, Discretization::bilinear),
                     testing::Bool()),
    [](const auto& info) {
      return std::string(std::get<0>(info.param) == Discretization::zoh ? "Zoh" : "Bilinear") +
             (std::get<1>(info.param) ? "ConjSym" : "Plain");
    });

TEST(S5, EmptySequencePassesTheStateThrough) {
  Problem pb;
  pb.L = 0;
  pb.fill(450);
  const std::vector<double> R2 = randn(pb.B * pb.N * 2, 451), none;
  Result r = run<double>(pb, Fwd::parallel, &none, &R2);
  EXPECT_EQ(r.hT, pb.h0);
  EXPECT_EQ(r.dh0, R2);
  for (const auto* g : {&r.dl_re, &r.dl_im, &r.dlog_dt, &r.db_re, &r.db_im, &r.dc_re, &r.dc_im,
                        &r.dd}) {
    for (double v : *g) EXPECT_EQ(v, 0.0);
  }
}

TEST(S5, FloatIsThreadCountInvariantAndCloseToDouble) {
  Problem pb;
  pb.B = 3;
  pb.L = 257;
  pb.H = 8;
  pb.N = 16;
  pb.chunk = 16;  // 17 chunks x 3 sequences = 51 tasks over 16 gradient slots
  pb.fill(440);
  const std::vector<double> R = randn(pb.B * pb.L * pb.H, 441), R2 = randn(pb.B * pb.N * 2, 442);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  Result one = run<float>(pb, Fwd::parallel, &R, &R2);
  omp_set_num_threads(2);
  Result two = run<float>(pb, Fwd::parallel, &R, &R2);
  omp_set_num_threads(saved);
  for (auto [x, y] : {std::pair{&one.y, &two.y}, {&one.hT, &two.hT}, {&one.du, &two.du},
                      {&one.dh0, &two.dh0}, {&one.dl_re, &two.dl_re}, {&one.dl_im, &two.dl_im},
                      {&one.dlog_dt, &two.dlog_dt}, {&one.db_re, &two.db_re},
                      {&one.db_im, &two.db_im}, {&one.dc_re, &two.dc_re},
                      {&one.dc_im, &two.dc_im}, {&one.dd, &two.dd}}) {
    ASSERT_EQ(x->size(), y->size());
    EXPECT_EQ(0, std::memcmp(x->data(), y->data(), x->size() * sizeof(double)));
  }
  Result ref = run<double>(pb, Fwd::sequential, &R, &R2);
  EXPECT_LT(max_rel(one.y, ref.y), 1e-5);
  EXPECT_LT(max_rel(one.du, ref.du), 1e-5);
  EXPECT_LT(max_rel(one.dc_re, ref.dc_re), 1e-5);
  EXPECT_LT(max_rel(one.db_re, ref.db_re), 1e-5);
  EXPECT_LT(max_rel(one.dl_re, ref.dl_re), 1e-4);  // sums of L terms that partly cancel
}

}  // namespace
}  // namespace ssm::kernels::cpu
