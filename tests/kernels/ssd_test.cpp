// Mamba-2 SSD CPU kernels: chunked and sequential forward against an independent naive loop
// and against each other, every gradient against central finite differences (float64), packed
// documents against separate runs, step mode against the parallel forward, strided views,
// float32 accuracy, and bitwise determinism across thread counts.
#include "kernels/cpu/ssd.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <array>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>

#include "tests/kernels/fd_util.h"

namespace {

using namespace ssm::kernels;
using ssm::test::cast;
using ssm::test::dot;
using ssm::test::fd_grad;
using ssm::test::max_rel_err;
using ssm::test::relayout;
using ssm::test::set_contiguous;
using ssm::test::to_double;
using ssm::test::uniform;

struct Config {
  int64_t B = 1, L = 7, H = 2, P = 2, G = 1, N = 3, chunk = 4;
  bool D = false, D_hdim = false, z = false, bias = false, softplus = false, clamp = false;
  bool h0 = false, hT = false, seq = false;
  std::string name() const {
    return "B" + std::to_string(B) + " L" + std::to_string(L) + " H" + std::to_string(H) + " P" +
           std::to_string(P) + " G" + std::to_string(G) + " N" + std::to_string(N) + " chunk" +
           std::to_string(chunk) + (D ? (D_hdim ? " D(H,P)" : " D") : "") + (z ? " z" : "") +
           (bias ? " bias" : "") + (softplus ? " softplus" : "") + (clamp ? " clamp" : "") +
           (h0 ? " h0" : "") + (hT ? " hT" : "") + (seq ? " seq_idx" : "");
  }
  int64_t n_chunks() const { return (L + chunk - 1) / chunk; }
};

// Inputs in float64, contiguous.
struct Problem {
  Config c;
  std::vector<double> x, z;       // (B, L, H, P)
  std::vector<double> dt;         // (B, L, H)
  std::vector<double> A, bias;    // (H)
  std::vector<double> Bm, Cm;     // (B, L, G, N)
  std::vector<double> D;          // (H) or (H, P)
  std::vector<double> h0;         // (B, H, P, N)
  std::vector<int32_t> seq;       // (B, L)
  double dt_min = 0.0, dt_max = INFINITY;
};

Problem make_problem(const Config& c, unsigned seed) {
  std::mt19937 rng(seed);
  Problem p;
  p.c = c;
  const int64_t blhp = c.B * c.L * c.H * c.P, blgn = c.B * c.L * c.G * c.N;
  p.x = uniform(rng, blhp, -1, 1);
  // Without softplus dt (+ bias) must stay positive, as the model guarantees.
  p.dt = c.softplus ? uniform(rng, c.B * c.L * c.H, -2.5, 0.5) : uniform(rng, c.B * c.L * c.H, 0.05, 0.6);
  p.A = uniform(rng, c.H, -1.5, -0.1);
  p.Bm = uniform(rng, blgn, -1, 1);
  p.Cm = uniform(rng, blgn, -1, 1);
  if (c.D) p.D = uniform(rng, c.D_hdim ? c.H * c.P : c.H, -1, 1);
  if (c.z) p.z = uniform(rng, blhp, -2, 2);
  if (c.bias) p.bias = c.softplus ? uniform(rng, c.H, -0.5, 0.5) : uniform(rng, c.H, 0.0, 0.3);
  if (c.h0) p.h0 = uniform(rng, c.B * c.H * c.P * c.N, -1, 1);
  if (c.clamp) p.dt_min = 0.15, p.dt_max = 0.7;  // clamps a fair share of dt on both sides
  if (c.seq) {
    p.seq.resize(c.B * c.L);
    for (int64_t b = 0; b < c.B; ++b) {
      int32_t id = 3;
      for (int64_t t = 0; t < c.L; ++t) {
        if (t > 0 && rng() % 5 == 0) id += 1 + int32_t(rng() % 3);
        p.seq[b * c.L + t] = id;
      }
    }
  }
  return p;
}

// The plain recurrence, written independently of the kernels, in precision T.
template <class T>
struct Naive {
  std::vector<T> out, hT, states;  // (B, L, H, P), (B, H, P, N), (B, n_chunks, H, P, N)
};
template <class T>
Naive<T> naive_fwd(const Problem& Pr) {
  const Config& c = Pr.c;
  const int64_t H = c.H, P = c.P, N = c.N, G = c.G, L = c.L, nc = c.n_chunks();
  Naive<T> r;
  r.out.assign(c.B * L * H * P, T(0));
  r.hT.assign(c.B * H * P * N, T(0));
  r.states.assign(c.B * nc * H * P * N, T(0));
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / (H / G);
      std::vector<T> s(P * N, T(0));
      if (c.h0)
        for (int64_t k = 0; k < P * N; ++k) s[k] = T(Pr.h0[(b * H + h) * P * N + k]);
      for (int64_t t = 0; t < L; ++t) {
        if (t % c.chunk == 0)
          std::copy(s.begin(), s.end(), r.states.begin() + ((b * nc + t / c.chunk) * H + h) * P * N);
        if (c.seq && t > 0 && Pr.seq[b * L + t] != Pr.seq[b * L + t - 1]) std::fill(s.begin(), s.end(), T(0));
        T dt = T(Pr.dt[(b * L + t) * H + h]) + (c.bias ? T(Pr.bias[h]) : T(0));
        if (c.softplus) dt = dt > T(20) ? dt : std::log1p(std::exp(dt));
        dt = std::min(std::max(dt, T(Pr.dt_min)), T(Pr.dt_max));
        const T a = std::exp(std::min(dt * T(Pr.A[h]), T(0)));
        for (int64_t p = 0; p < P; ++p) {
          const int64_t xi = ((b * L + t) * H + h) * P + p;
          const T x = T(Pr.x[xi]);
          T y = 0;
          for (int64_t n = 0; n < N; ++n) {
            const int64_t bi = ((b * L + t) * G + g) * N + n;
            s[p * N + n] = a * s[p * N + n] + dt * x * T(Pr.Bm[bi]);
            y += s[p * N + n] * T(Pr.Cm[bi]);
          }
          if (c.D) y += T(Pr.D[c.D_hdim ? h * P + p : h]) * x;
          if (c.z) y *= T(Pr.z[xi]) / (T(1) + std::exp(-T(Pr.z[xi])));
          r.out[xi] = y;
        }
      }
      std::copy(s.begin(), s.end(), r.hT.begin() + (b * H + h) * P * N);
    }
  return r;
}

// The kernels on contiguous buffers of element type T.
template <class T>
struct Kernel {
  using Acc = scan_acc_t<T>;
  const Problem& Pr;
  std::vector<T> x, z, dt, A, bias, Bm, Cm, D, h0;
  std::vector<T> out, hT;
  std::vector<Acc> states;
  std::vector<T> dout, dhT, dx, dz, ddt, dA, dbias, dBm, dCm, dD, dh0;

  explicit Kernel(const Problem& p)
      : Pr(p), x(cast<T>(p.x)), z(cast<T>(p.z)), dt(cast<T>(p.dt)), A(cast<T>(p.A)), bias(cast<T>(p.bias)),
        Bm(cast<T>(p.Bm)), Cm(cast<T>(p.Cm)), D(cast<T>(p.D)), h0(cast<T>(p.h0)) {}

  SsdParams params() {
    const Config& c = Pr.c;
    SsdParams p;
    p.batch = c.B, p.seqlen = c.L, p.nheads = c.H, p.headdim = c.P, p.n_groups = c.G, p.dstate = c.N;
    p.chunk_size = c.chunk;
    p.dt_softplus = c.softplus;
    p.dt_min = Pr.dt_min, p.dt_max = Pr.dt_max;
    p.D_has_hdim = c.D_hdim;
    out.assign(c.B * c.L * c.H * c.P, T(0));
    hT.assign(c.B * c.H * c.P * c.N, T(0));
    states.assign(c.B * c.n_chunks() * c.H * c.P * c.N, Acc(0));
    p.x = x.data();    set_contiguous(p.x_stride, {c.B, c.L, c.H, c.P});
    p.dt = dt.data();  set_contiguous(p.dt_stride, {c.B, c.L, c.H});
    p.A = A.data();    p.A_stride = 1;
    p.Bm = Bm.data();  set_contiguous(p.Bm_stride, {c.B, c.L, c.G, c.N});
    p.Cm = Cm.data();  set_contiguous(p.Cm_stride, {c.B, c.L, c.G, c.N});
    p.D = c.D ? D.data() : nullptr;
    p.D_stride[0] = c.D_hdim ? c.P : 1, p.D_stride[1] = c.D_hdim ? 1 : 0;
    p.z = c.z ? z.data() : nullptr;                 set_contiguous(p.z_stride, {c.B, c.L, c.H, c.P});
    p.dt_bias = c.bias ? bias.data() : nullptr;     p.dt_bias_stride = 1;
    p.h0 = c.h0 ? h0.data() : nullptr;              set_contiguous(p.h0_stride, {c.B, c.H, c.P, c.N});
    p.seq_idx = c.seq ? Pr.seq.data() : nullptr;    set_contiguous(p.seq_idx_stride, {c.B, c.L});
    p.out = out.data();                             set_contiguous(p.out_stride, {c.B, c.L, c.H, c.P});
    p.hT = c.hT ? hT.data() : nullptr;              set_contiguous(p.hT_stride, {c.B, c.H, c.P, c.N});
    p.chunk_states = states.data();
    return p;
  }
  void fwd(bool sequential = false) {
    if (sequential) cpu::ssd_fwd_sequential<T>(params());
    else cpu::ssd_fwd<T>(params());
  }

  // Chunked forward (for chunk_states) then backward with upstream dout and dhT.
  void fwd_bwd(const std::vector<double>& dout_in, const std::vector<double>* dhT_in) {
    const Config& c = Pr.c;
    SsdBwdParams g;
    static_cast<SsdParams&>(g) = params();
    cpu::ssd_fwd<T>(g);
    const int64_t blhp = c.B * c.L * c.H * c.P, blgn = c.B * c.L * c.G * c.N;
    dout = cast<T>(dout_in);
    g.dout = dout.data();   set_contiguous(g.dout_stride, {c.B, c.L, c.H, c.P});
    if (dhT_in) {
      dhT = cast<T>(*dhT_in);
      g.dhT = dhT.data();   set_contiguous(g.dhT_stride, {c.B, c.H, c.P, c.N});
    }
    dx.assign(blhp, T(-99)), dz.assign(blhp, T(-99)), ddt.assign(c.B * c.L * c.H, T(-99));
    dA.assign(c.H, T(-99)), dbias.assign(c.H, T(-99)), dD.assign(D.size(), T(-99));
    dBm.assign(blgn, T(-99)), dCm.assign(blgn, T(-99)), dh0.assign(c.B * c.H * c.P * c.N, T(-99));
    g.dx = dx.data();     set_contiguous(g.dx_stride, {c.B, c.L, c.H, c.P});
    g.ddt = ddt.data();   set_contiguous(g.ddt_stride, {c.B, c.L, c.H});
    g.dA = dA.data();     g.dA_stride = 1;
    g.dBm = dBm.data();   set_contiguous(g.dBm_stride, {c.B, c.L, c.G, c.N});
    g.dCm = dCm.data();   set_contiguous(g.dCm_stride, {c.B, c.L, c.G, c.N});
    g.dh0 = dh0.data();   set_contiguous(g.dh0_stride, {c.B, c.H, c.P, c.N});
    g.dD = c.D ? dD.data() : nullptr;
    g.dD_stride[0] = g.D_stride[0], g.dD_stride[1] = g.D_stride[1];
    g.dz = c.z ? dz.data() : nullptr;               set_contiguous(g.dz_stride, {c.B, c.L, c.H, c.P});
    g.ddt_bias = c.bias ? dbias.data() : nullptr;   g.ddt_bias_stride = 1;
    cpu::ssd_bwd<T>(g);
  }
};

void expect_close(const char* what, const std::vector<double>& got, const std::vector<double>& want,
                  double tol) {
  EXPECT_LE(max_rel_err(got, want), tol) << what;
}

std::vector<Config> forward_configs() {
  std::vector<Config> cs;
  for (int64_t L : {1, 7, 33, 100})
    for (int64_t G : {1, 2})
      for (int opt = 0; opt < 4; ++opt) {
        Config c;
        c.B = 2, c.L = L, c.H = G == 1 ? 3 : 6, c.P = 3, c.G = G, c.N = 4;
        c.chunk = std::array<int64_t, 4>{64, 8, 13, 4}[opt];
        c.D = c.z = opt == 1 || opt == 3;
        c.D_hdim = opt == 3;
        c.bias = c.softplus = c.h0 = c.hT = opt >= 2;
        c.clamp = c.seq = opt == 3;
        cs.push_back(c);
      }
  return cs;
}

TEST(SsdFwd, ChunkedAndSequentialMatchNaiveLoop) {
  unsigned seed = 1;
  for (const Config& c : forward_configs()) {
    SCOPED_TRACE(c.name());
    const Problem P = make_problem(c, seed++);
    const Naive<double> ref = naive_fwd<double>(P);
    for (bool sequential : {false, true}) {
      SCOPED_TRACE(sequential ? "sequential" : "chunked");
      Kernel<double> k(P);
      k.fwd(sequential);
      expect_close("out", k.out, ref.out, 1e-12);
      expect_close("chunk_states", k.states, ref.states, 1e-12);
      if (c.hT) expect_close("hT", k.hT, ref.hT, 1e-12);
    }
  }
}

// The chunked (duality) form equals the recurrence for any chunk size, partial last chunk
// and document boundaries included.
TEST(SsdFwd, ChunkedEqualsSequentialForEveryChunkSize) {
  for (int64_t chunk : {1, 3, 8, 16, 64, 128}) {
    Config c{2, 100, 4, 5, 2, 6, chunk, true, false, true, true, true, false, true, true, true};
    SCOPED_TRACE(c.name());
    const Problem P = make_problem(c, 11);
    Kernel<double> chunked(P), seq(P);
    chunked.fwd(false);
    seq.fwd(true);
    expect_close("out", chunked.out, seq.out, 1e-10);
    expect_close("hT", chunked.hT, seq.hT, 1e-10);
    expect_close("chunk_states", chunked.states, seq.states, 1e-10);
  }
}

// Regression: with a negative dt_min and no softplus, dt can be negative; the chunked form
// must clamp each step's decay exponent like the recurrence does, not the segment sum.
TEST(SsdFwd, ChunkedEqualsSequentialWithNegativeDt) {
  Config c{1, 40, 2, 3, 1, 4, 8, false, false, false, false, false, true, false, false, false};
  SCOPED_TRACE(c.name());
  Problem P = make_problem(c, 23);
  std::mt19937 rng(5);
  P.dt = uniform(rng, c.B * c.L * c.H, -0.5, 1.0);
  P.dt_min = -1.0;
  Kernel<double> chunked(P), seq(P);
  chunked.fwd(false);
  seq.fwd(true);
  expect_close("out", chunked.out, seq.out, 1e-12);
}

// Every gradient against central differences of sum(out * R) + sum(hT * R2) in float64.
TEST(SsdBwd, MatchesFiniteDifferences) {
  std::vector<Config> cases(4);
  //          B  L   H  P  G  N  C  D     Dhdim  z     bias  sp    clamp h0    hT    seq
  cases[0] = {2, 21, 10, 3, 2, 4, 8, true, false, true, true, true, true, true, true, true};  // 2 head blocks
  cases[1] = {1, 7, 2, 2, 1, 3, 4, false, false, false, false, false, false, false, false, false};
  cases[2] = {2, 1, 3, 2, 1, 2, 64, true, true, true, false, false, false, true, true, false};
  cases[3] = {1, 20, 4, 2, 4, 3, 5, true, true, false, true, false, true, true, true, true};  // G = H
  unsigned seed = 100;
  for (const Config& c : cases) {
    SCOPED_TRACE(c.name());
    Problem P = make_problem(c, seed++);
    if (c.clamp && !c.softplus) P.dt_min = 0.2, P.dt_max = 0.5;
    std::mt19937 rng(seed++);
    const std::vector<double> R = uniform(rng, c.B * c.L * c.H * c.P, -1, 1);
    const std::vector<double> R2 = uniform(rng, c.B * c.H * c.P * c.N, -1, 1);
    auto loss = [&] {
      const Naive<double> r = naive_fwd<double>(P);
      return dot(r.out, R) + (c.hT ? dot(r.hT, R2) : 0.0);
    };
    Kernel<double> k(P);
    k.fwd_bwd(R, c.hT ? &R2 : nullptr);
    const double tol = 1e-6;
    expect_close("dx", k.dx, fd_grad(P.x, loss), tol);
    expect_close("ddt", k.ddt, fd_grad(P.dt, loss), tol);
    expect_close("dA", k.dA, fd_grad(P.A, loss), tol);
    expect_close("dBm", k.dBm, fd_grad(P.Bm, loss), tol);
    expect_close("dCm", k.dCm, fd_grad(P.Cm, loss), tol);
    if (c.D) expect_close("dD", k.dD, fd_grad(P.D, loss), tol);
    if (c.z) expect_close("dz", k.dz, fd_grad(P.z, loss), tol);
    if (c.bias) expect_close("ddt_bias", k.dbias, fd_grad(P.bias, loss), tol);
    if (c.h0) expect_close("dh0", k.dh0, fd_grad(P.h0, loss), tol);
  }
}

// Steps [t0, t1) of a (B = 1, L, ...) tensor: a contiguous slab since time is the outer axis.
std::vector<double> slice_t(const std::vector<double>& v, int64_t L, int64_t t0, int64_t t1) {
  const int64_t per_step = int64_t(v.size()) / L;
  return std::vector<double>(v.begin() + t0 * per_step, v.begin() + t1 * per_step);
}
Problem slice_problem(const Problem& P, int64_t t0, int64_t t1) {
  Problem s = P;
  s.c.L = t1 - t0;
  s.c.seq = false;
  s.seq.clear();
  s.x = slice_t(P.x, P.c.L, t0, t1), s.dt = slice_t(P.dt, P.c.L, t0, t1);
  s.Bm = slice_t(P.Bm, P.c.L, t0, t1), s.Cm = slice_t(P.Cm, P.c.L, t0, t1);
  if (P.c.z) s.z = slice_t(P.z, P.c.L, t0, t1);
  if (t0 > 0) s.c.h0 = false, s.h0.clear();  // h0 only feeds the first document
  return s;
}
std::vector<double> add(std::vector<double> a, const std::vector<double>& b) {
  for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
  return a;
}

// One row holding two documents equals running each document alone, values and gradients.
TEST(SsdPacked, EqualsSeparateDocuments) {
  for (int64_t split : {13, 16}) {  // inside a chunk, and exactly on a chunk boundary
    Config c{1, 33, 6, 3, 2, 4, 8, true, false, true, true, true, true, true, true, true};
    SCOPED_TRACE("split " + std::to_string(split));
    Problem P = make_problem(c, 7);
    for (int64_t t = 0; t < c.L; ++t) P.seq[t] = t < split ? 4 : 9;
    std::mt19937 rng(8);
    const std::vector<double> R = uniform(rng, c.L * c.H * c.P, -1, 1);
    const std::vector<double> R2 = uniform(rng, c.H * c.P * c.N, -1, 1);
    Kernel<double> packed(P);
    packed.fwd_bwd(R, &R2);

    const Problem P1 = slice_problem(P, 0, split), P2 = slice_problem(P, split, c.L);
    Kernel<double> k1(P1), k2(P2);
    k1.fwd_bwd(slice_t(R, c.L, 0, split), nullptr);  // dhT flows only into the last document
    k2.fwd_bwd(slice_t(R, c.L, split, c.L), &R2);
    using Vec = std::vector<double>;
    const std::vector<std::tuple<const char*, Vec*, Vec*, Vec*>> per_step = {
        {"out", &packed.out, &k1.out, &k2.out},     {"dx", &packed.dx, &k1.dx, &k2.dx},
        {"ddt", &packed.ddt, &k1.ddt, &k2.ddt},     {"dz", &packed.dz, &k1.dz, &k2.dz},
        {"dBm", &packed.dBm, &k1.dBm, &k2.dBm},     {"dCm", &packed.dCm, &k1.dCm, &k2.dCm}};
    for (const auto& [name, whole, a, b] : per_step) {
      expect_close(name, slice_t(*whole, c.L, 0, split), *a, 1e-12);
      expect_close(name, slice_t(*whole, c.L, split, c.L), *b, 1e-12);
    }
    expect_close("hT", packed.hT, k2.hT, 1e-12);
    expect_close("dh0", packed.dh0, k1.dh0, 1e-12);
    expect_close("dA", packed.dA, add(k1.dA, k2.dA), 1e-12);
    expect_close("dD", packed.dD, add(k1.dD, k2.dD), 1e-12);
    expect_close("ddt_bias", packed.dbias, add(k1.dbias, k2.dbias), 1e-12);
  }
}

// Calling the step kernel token by token reproduces the chunked forward and its final state.
template <class T>
void check_step(double tol) {
  Config c{2, 70, 4, 3, 2, 5, 16, true, true, true, true, true, true, true, true, false};
  const Problem P = make_problem(c, 21);
  Kernel<T> k(P);
  k.fwd();
  std::vector<T> state = k.h0, out(c.B * c.L * c.H * c.P);
  for (int64_t t = 0; t < c.L; ++t) {
    SsdStepParams s;
    s.batch = c.B, s.nheads = c.H, s.headdim = c.P, s.n_groups = c.G, s.dstate = c.N;
    s.dt_softplus = c.softplus, s.dt_min = P.dt_min, s.dt_max = P.dt_max, s.D_has_hdim = c.D_hdim;
    s.state = state.data();  set_contiguous(s.state_stride, {c.B, c.H, c.P, c.N});
    // Step t of the (B, L, ...) inputs is a strided (B, ...) view.
    const int64_t bhp[3] = {c.L * c.H * c.P, c.P, 1}, bgn[3] = {c.L * c.G * c.N, c.N, 1};
    const int64_t bh[2] = {c.L * c.H, 1};
    s.x = k.x.data() + t * c.H * c.P;     std::copy_n(bhp, 3, s.x_stride);
    s.z = k.z.data() + t * c.H * c.P;     std::copy_n(bhp, 3, s.z_stride);
    s.out = out.data() + t * c.H * c.P;   std::copy_n(bhp, 3, s.out_stride);
    s.dt = k.dt.data() + t * c.H;         std::copy_n(bh, 2, s.dt_stride);
    s.Bm = k.Bm.data() + t * c.G * c.N;   std::copy_n(bgn, 3, s.Bm_stride);
    s.Cm = k.Cm.data() + t * c.G * c.N;   std::copy_n(bgn, 3, s.Cm_stride);
    s.A = k.A.data(), s.A_stride = 1;
    s.D = k.D.data(), s.D_stride[0] = c.P, s.D_stride[1] = 1;
    s.dt_bias = k.bias.data(), s.dt_bias_stride = 1;
    cpu::ssd_step<T>(s);
  }
  expect_close("out", to_double(out), to_double(k.out), tol);
  expect_close("state", to_double(state), to_double(k.hT), tol);
}
TEST(SsdStep, ReproducesParallelForward) {
  check_step<double>(1e-12);
  check_step<float>(2e-6);
}

// Inputs and outputs as permuted views: (B, L, H, P) tensors stored (B, H, P, L), Bm/Cm
// stored (B, G, N, L), dt stored (B, H, L). Same numbers as the contiguous run.
TEST(SsdStrided, PermutedViewsMatchContiguous) {
  Config c{2, 19, 4, 3, 2, 3, 8, true, false, true, true, true, false, true, true, true};
  const Problem P = make_problem(c, 31);
  std::mt19937 rng(32);
  const std::vector<double> R = uniform(rng, c.B * c.L * c.H * c.P, -1, 1);
  const std::vector<double> R2 = uniform(rng, c.B * c.H * c.P * c.N, -1, 1);
  Kernel<double> ref(P);
  ref.fwd_bwd(R, &R2);

  const int64_t xs[4] = {c.H * c.P * c.L, 1, c.P * c.L, c.L};  // (B, L, H, P) stored (B, H, P, L)
  const int64_t bs[4] = {c.G * c.N * c.L, 1, c.N * c.L, c.L};  // (B, L, G, N) stored (B, G, N, L)
  const int64_t ds[3] = {c.H * c.L, 1, c.L};                   // (B, L, H) stored (B, H, L)
  auto perm_x = [&](const std::vector<double>& v) {
    return relayout(v, {c.B, c.L, c.H, c.P}, {xs[0], xs[1], xs[2], xs[3]});
  };
  auto perm_b = [&](const std::vector<double>& v) {
    return relayout(v, {c.B, c.L, c.G, c.N}, {bs[0], bs[1], bs[2], bs[3]});
  };
  auto perm_d = [&](const std::vector<double>& v) {
    return relayout(v, {c.B, c.L, c.H}, {ds[0], ds[1], ds[2]});
  };
  std::vector<double> x = perm_x(P.x), z = perm_x(P.z), dout = perm_x(R), dt = perm_d(P.dt);
  std::vector<double> Bm = perm_b(P.Bm), Cm = perm_b(P.Cm);
  std::vector<double> out(x.size()), dx(x.size()), dz(x.size()), ddt(dt.size());
  std::vector<double> dBm(Bm.size()), dCm(Cm.size());
  Kernel<double> k(P);
  SsdBwdParams g;
  static_cast<SsdParams&>(g) = k.params();
  g.x = x.data(), g.z = z.data(), g.out = out.data(), g.dt = dt.data(), g.Bm = Bm.data(), g.Cm = Cm.data();
  for (int64_t* s : {g.x_stride, g.z_stride, g.out_stride, g.dout_stride, g.dx_stride, g.dz_stride})
    std::copy_n(xs, 4, s);
  for (int64_t* s : {g.Bm_stride, g.Cm_stride, g.dBm_stride, g.dCm_stride}) std::copy_n(bs, 4, s);
  for (int64_t* s : {g.dt_stride, g.ddt_stride}) std::copy_n(ds, 3, s);
  cpu::ssd_fwd<double>(g);
  g.dout = dout.data(), g.dhT = R2.data();
  set_contiguous(g.dhT_stride, {c.B, c.H, c.P, c.N});
  g.dx = dx.data(), g.dz = dz.data(), g.ddt = ddt.data(), g.dBm = dBm.data(), g.dCm = dCm.data();
  cpu::ssd_bwd<double>(g);
  expect_close("out", out, perm_x(ref.out), 1e-13);
  expect_close("dx", dx, perm_x(ref.dx), 1e-13);
  expect_close("dz", dz, perm_x(ref.dz), 1e-13);
  expect_close("ddt", ddt, perm_d(ref.ddt), 1e-13);
  expect_close("dBm", dBm, perm_b(ref.dBm), 1e-13);
  expect_close("dCm", dCm, perm_b(ref.dCm), 1e-13);
}

// float32: forward no worse than a naive float loop (vs float64); gradients within ~1e-5.
TEST(SsdFloat, AccuracyAgainstFloat64) {
  Config c{2, 150, 6, 8, 2, 8, 32, true, false, true, true, true, true, true, true, true};
  const Problem P = make_problem(c, 41);
  std::mt19937 rng(42);
  const std::vector<double> R = uniform(rng, c.B * c.L * c.H * c.P, -1, 1);
  const std::vector<double> R2 = uniform(rng, c.B * c.H * c.P * c.N, -1, 1);
  const Naive<double> ref = naive_fwd<double>(P);
  const Naive<float> naive32 = naive_fwd<float>(P);
  Kernel<float> k32(P);
  k32.fwd_bwd(R, &R2);
  // The chunked form adds in another order than the recurrence; allow the naive error twice.
  EXPECT_LE(max_rel_err(to_double(k32.out), ref.out),
            2 * max_rel_err(to_double(naive32.out), ref.out) + 1e-7);
  EXPECT_LE(max_rel_err(to_double(k32.hT), ref.hT), 2 * max_rel_err(to_double(naive32.hT), ref.hT) + 1e-7);
  Kernel<double> k64(P);
  k64.fwd_bwd(R, &R2);
  const std::vector<std::tuple<const char*, std::vector<float>*, std::vector<double>*>> grads = {
      {"dx", &k32.dx, &k64.dx},    {"ddt", &k32.ddt, &k64.ddt}, {"dA", &k32.dA, &k64.dA},
      {"dBm", &k32.dBm, &k64.dBm}, {"dCm", &k32.dCm, &k64.dCm}, {"dD", &k32.dD, &k64.dD},
      {"dz", &k32.dz, &k64.dz},    {"ddt_bias", &k32.dbias, &k64.dbias}, {"dh0", &k32.dh0, &k64.dh0}};
  for (const auto& [name, a, b] : grads) expect_close(name, to_double(*a), *b, 1e-5);
}

// Same float results, bit for bit, with 1, 2 and 3 OpenMP threads.
TEST(SsdDeterminism, BitwiseAcrossThreadCounts) {
  Config c{2, 150, 10, 4, 2, 6, 32, true, true, true, true, true, true, true, true, true};
  const Problem P = make_problem(c, 51);
  std::mt19937 rng(52);
  const std::vector<double> R = uniform(rng, c.B * c.L * c.H * c.P, -1, 1);
  const std::vector<double> R2 = uniform(rng, c.B * c.H * c.P * c.N, -1, 1);
  const int saved_threads = omp_get_max_threads();
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    auto k = std::make_unique<Kernel<float>>(P);
    k->fwd_bwd(R, &R2);
    return k;
  };
  auto k1 = run(1);
  for (int threads : {2, 3}) {
    auto kn = run(threads);
    SCOPED_TRACE("threads " + std::to_string(threads));
    auto same = [](const auto& a, const auto& b) {
      return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])) == 0;
    };
    EXPECT_TRUE(same(k1->out, kn->out));
    EXPECT_TRUE(same(k1->hT, kn->hT));
    EXPECT_TRUE(same(k1->states, kn->states));
    using Vec = std::vector<float>;
    const std::vector<std::pair<Vec*, Vec*>> grads = {
        {&k1->dx, &kn->dx},   {&k1->ddt, &kn->ddt}, {&k1->dA, &kn->dA},       {&k1->dBm, &kn->dBm},
        {&k1->dCm, &kn->dCm}, {&k1->dD, &kn->dD},   {&k1->dz, &kn->dz},       {&k1->dbias, &kn->dbias},
        {&k1->dh0, &kn->dh0}};
    for (const auto& [a, b] : grads) EXPECT_TRUE(same(*a, *b));
  }
  omp_set_num_threads(saved_threads);
}

// L = 0: the state passes through unchanged, and so does its gradient.
TEST(SsdEmpty, StateAndGradientPassThrough) {
  Config c{2, 0, 4, 3, 2, 5, 8, true, false, true, true, true, false, true, true, false};
  const Problem P = make_problem(c, 71);
  std::mt19937 rng(72);
  const std::vector<double> R2 = uniform(rng, c.B * c.H * c.P * c.N, -1, 1);
  Kernel<double> k(P);
  k.fwd_bwd({}, &R2);
  EXPECT_EQ(k.hT, P.h0);
  EXPECT_EQ(k.dh0, R2);
  EXPECT_EQ(k.dA, std::vector<double>(c.H, 0.0));
  EXPECT_EQ(k.dD, std::vector<double>(c.H, 0.0));
}

TEST(SsdParams, RejectsInvalidSizes) {
  Config c{1, 5, 6, 2, 4, 3, 4};  // G = 4 does not divide H = 6
  const Problem P = make_problem(c, 61);
  Kernel<double> k(P);
  EXPECT_THROW(k.fwd(), std::invalid_argument);
  EXPECT_THROW(k.fwd(true), std::invalid_argument);
  SsdBwdParams g;
  static_cast<SsdParams&>(g) = k.params();
  g.n_groups = 1;
  EXPECT_THROW(cpu::ssd_bwd<double>(g), std::invalid_argument);  // no dout
}

}  // namespace
