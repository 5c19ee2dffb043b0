// Mamba-1 selective scan CPU kernels: forward against an independent naive loop, every
// gradient against central finite differences (float64), packed documents against separate
// runs, step mode against the parallel forward, strided views, float32 accuracy, and bitwise
// determinism across thread counts.
#include "kernels/cpu/selective_scan.h"

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
using ssm::test::set_contiguous;
using ssm::test::to_double;
using ssm::test::uniform;

struct Config {
  int64_t B = 1, E = 4, N = 3, G = 1, L = 7, chunk = 4;
  bool D = false, z = false, bias = false, softplus = false, h0 = false, hT = false, seq = false;
  std::string name() const {
    return "B" + std::to_string(B) + " E" + std::to_string(E) + " N" + std::to_string(N) + " G" +
           std::to_string(G) + " L" + std::to_string(L) + " chunk" + std::to_string(chunk) +
           (D ? " D" : "") + (z ? " z" : "") + (bias ? " bias" : "") + (softplus ? " softplus" : "") +
           (h0 ? " h0" : "") + (hT ? " hT" : "") + (seq ? " seq_idx" : "");
  }
};

// Inputs in float64, contiguous.
struct Problem {
  Config c;
  std::vector<double> u, delta;  // (B, E, L)
  std::vector<double> A;         // (E, N)
  std::vector<double> Bm, Cm;    // (B, G, N, L)
  std::vector<double> D, bias;   // (E)
  std::vector<double> z;         // (B, E, L)
  std::vector<double> h0;        // (B, E, N)
  std::vector<int32_t> seq;      // (B, L)
};

Problem make_problem(const Config& c, unsigned seed) {
  std::mt19937 rng(seed);
  Problem p;
  p.c = c;
  const int64_t bel = c.B * c.E * c.L, bgnl = c.B * c.G * c.N * c.L;
  p.u = uniform(rng, bel, -1, 1);
  // Without softplus dt = delta (+ bias) must stay positive, as the model guarantees.
  p.delta = c.softplus ? uniform(rng, bel, -2.5, 0.5) : uniform(rng, bel, 0.05, 0.6);
  p.A = uniform(rng, c.E * c.N, -1.5, -0.1);
  p.Bm = uniform(rng, bgnl, -1, 1);
  p.Cm = uniform(rng, bgnl, -1, 1);
  if (c.D) p.D = uniform(rng, c.E, -1, 1);
  if (c.z) p.z = uniform(rng, bel, -2, 2);
  if (c.bias) p.bias = c.softplus ? uniform(rng, c.E, -0.5, 0.5) : uniform(rng, c.E, 0.0, 0.3);
  if (c.h0) p.h0 = uniform(rng, c.B * c.E * c.N, -1, 1);
  if (c.seq) {
    p.seq.resize(c.B * c.L);
    for (int64_t b = 0; b < c.B; ++b) {
      int32_t id = 7;
      for (int64_t t = 0; t < c.L; ++t) {
        if (t > 0 && rng() % 5 == 0) id += 1 + int32_t(rng() % 3);
        p.seq[b * c.L + t] = id;
      }
    }
  }
  return p;
}

// The plain recurrence, written independently of the kernel, in precision T.
template <class T>
struct Naive {
  std::vector<T> out, hT, states;  // (B, E, L), (B, E, N), (B, E, n_chunks, N)
};
template <class T>
Naive<T> naive_fwd(const Problem& P) {
  const Config& c = P.c;
  const int64_t nc = (c.L + c.chunk - 1) / c.chunk;
  Naive<T> r;
  r.out.assign(c.B * c.E * c.L, T(0));
  r.hT.assign(c.B * c.E * c.N, T(0));
  r.states.assign(c.B * c.E * nc * c.N, T(0));
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t e = 0; e < c.E; ++e) {
      const int64_t g = e / (c.E / c.G);
      std::vector<T> h(c.N, T(0));
      if (c.h0)
        for (int64_t n = 0; n < c.N; ++n) h[n] = T(P.h0[(b * c.E + e) * c.N + n]);
      for (int64_t t = 0; t < c.L; ++t) {
        if (t % c.chunk == 0)
          for (int64_t n = 0; n < c.N; ++n) r.states[((b * c.E + e) * nc + t / c.chunk) * c.N + n] = h[n];
        if (c.seq && t > 0 && P.seq[b * c.L + t] != P.seq[b * c.L + t - 1])
          std::fill(h.begin(), h.end(), T(0));
        const int64_t i = (b * c.E + e) * c.L + t;
        T dt = T(P.delta[i]) + (c.bias ? T(P.bias[e]) : T(0));
        if (c.softplus) dt = dt > T(20) ? dt : std::log1p(std::exp(dt));
        const T u = T(P.u[i]);
        T y = 0;
        for (int64_t n = 0; n < c.N; ++n) {
          const int64_t j = ((b * c.G + g) * c.N + n) * c.L + t;
          h[n] = std::exp(std::min(dt * T(P.A[e * c.N + n]), T(0))) * h[n] + dt * T(P.Bm[j]) * u;
          y += h[n] * T(P.Cm[j]);
        }
        if (c.D) y += T(P.D[e]) * u;
        if (c.z) y *= T(P.z[i]) / (T(1) + std::exp(-T(P.z[i])));
        r.out[i] = y;
      }
      for (int64_t n = 0; n < c.N; ++n) r.hT[(b * c.E + e) * c.N + n] = h[n];
    }
  return r;
}

// The kernel on contiguous buffers of element type T.
template <class T>
struct Kernel {
  using Acc = scan_acc_t<T>;
  const Problem& P;
  std::vector<T> u, delta, A, Bm, Cm, D, z, bias, h0;
  std::vector<T> out, hT;
  std::vector<Acc> states;
  std::vector<T> dout, dhT, du, ddelta, dA, dBm, dCm, dD, dz, dbias, dh0;

  explicit Kernel(const Problem& pr)
      : P(pr), u(cast<T>(pr.u)), delta(cast<T>(pr.delta)), A(cast<T>(pr.A)), Bm(cast<T>(pr.Bm)),
        Cm(cast<T>(pr.Cm)), D(cast<T>(pr.D)), z(cast<T>(pr.z)), bias(cast<T>(pr.bias)), h0(cast<T>(pr.h0)) {}

  SelectiveScanParams params() {
    const Config& c = P.c;
    SelectiveScanParams p;
    p.batch = c.B, p.dim = c.E, p.seqlen = c.L, p.dstate = c.N, p.n_groups = c.G;
    p.chunk_len = c.chunk;
    p.delta_softplus = c.softplus;
    out.assign(c.B * c.E * c.L, T(0));
    hT.assign(c.B * c.E * c.N, T(0));
    states.assign(c.B * c.E * p.n_chunks() * c.N, Acc(0));
    p.u = u.data();          set_contiguous(p.u_stride, {c.B, c.E, c.L});
    p.delta = delta.data();  set_contiguous(p.delta_stride, {c.B, c.E, c.L});
    p.A = A.data();          set_contiguous(p.A_stride, {c.E, c.N});
    p.Bm = Bm.data();        set_contiguous(p.Bm_stride, {c.B, c.G, c.N, c.L});
    p.Cm = Cm.data();        set_contiguous(p.Cm_stride, {c.B, c.G, c.N, c.L});
    p.D = c.D ? D.data() : nullptr;              p.D_stride = 1;
    p.z = c.z ? z.data() : nullptr;              set_contiguous(p.z_stride, {c.B, c.E, c.L});
    p.delta_bias = c.bias ? bias.data() : nullptr; p.delta_bias_stride = 1;
    p.h0 = c.h0 ? h0.data() : nullptr;           set_contiguous(p.h0_stride, {c.B, c.E, c.N});
    p.seq_idx = c.seq ? P.seq.data() : nullptr;  set_contiguous(p.seq_idx_stride, {c.B, c.L});
    p.out = out.data();                          set_contiguous(p.out_stride, {c.B, c.E, c.L});
    p.hT = c.hT ? hT.data() : nullptr;           set_contiguous(p.hT_stride, {c.B, c.E, c.N});
    p.chunk_states = states.data();
    return p;
  }
  void fwd() { cpu::selective_scan_fwd<T>(params()); }

  // Forward (for chunk_states) then backward with upstream dout (B, E, L) and dhT (B, E, N).
  void fwd_bwd(const std::vector<double>& dout_in, const std::vector<double>* dhT_in) {
    const Config& c = P.c;
    SelectiveScanBwdParams g;
    static_cast<SelectiveScanParams&>(g) = params();
    cpu::selective_scan_fwd<T>(g);
    const int64_t bel = c.B * c.E * c.L, bgnl = c.B * c.G * c.N * c.L;
    dout = cast<T>(dout_in);
    g.dout = dout.data();       set_contiguous(g.dout_stride, {c.B, c.E, c.L});
    if (dhT_in) {
      dhT = cast<T>(*dhT_in);
      g.dhT = dhT.data();       set_contiguous(g.dhT_stride, {c.B, c.E, c.N});
    }
    du.assign(bel, T(-99)), ddelta.assign(bel, T(-99)), dz.assign(bel, T(-99));
    dA.assign(c.E * c.N, T(-99)), dD.assign(c.E, T(-99)), dbias.assign(c.E, T(-99));
    dBm.assign(bgnl, T(-99)), dCm.assign(bgnl, T(-99)), dh0.assign(c.B * c.E * c.N, T(-99));
    g.du = du.data();           set_contiguous(g.du_stride, {c.B, c.E, c.L});
    g.ddelta = ddelta.data();   set_contiguous(g.ddelta_stride, {c.B, c.E, c.L});
    g.dA = dA.data();           set_contiguous(g.dA_stride, {c.E, c.N});
    g.dBm = dBm.data();         set_contiguous(g.dBm_stride, {c.B, c.G, c.N, c.L});
    g.dCm = dCm.data();         set_contiguous(g.dCm_stride, {c.B, c.G, c.N, c.L});
    g.dh0 = dh0.data();         set_contiguous(g.dh0_stride, {c.B, c.E, c.N});
    g.dD = c.D ? dD.data() : nullptr;                g.dD_stride = 1;
    g.dz = c.z ? dz.data() : nullptr;                set_contiguous(g.dz_stride, {c.B, c.E, c.L});
    g.ddelta_bias = c.bias ? dbias.data() : nullptr; g.ddelta_bias_stride = 1;
    cpu::selective_scan_bwd<T>(g);
  }
};

void expect_close(const char* what, const std::vector<double>& got, const std::vector<double>& want,
                  double tol) {
  EXPECT_LE(max_rel_err(got, want), tol) << what;
}

TEST(SelectiveScanFwd, MatchesNaiveLoop) {
  unsigned seed = 1;
  for (int64_t L : {1, 7, 33, 100})
    for (int64_t G : {1, 2})
      for (int opt = 0; opt < 4; ++opt) {
        Config c;
        c.B = 2, c.E = G == 1 ? 5 : 36, c.N = 4, c.G = G, c.L = L;
        c.chunk = std::array<int64_t, 4>{64, 8, 13, 4}[opt];
        c.D = c.z = opt == 1 || opt == 3;
        c.bias = c.softplus = c.h0 = c.hT = opt >= 2;
        c.seq = opt == 3;
        SCOPED_TRACE(c.name());
        const Problem P = make_problem(c, seed++);
        const Naive<double> ref = naive_fwd<double>(P);
        Kernel<double> k(P);
        k.fwd();
        expect_close("out", k.out, ref.out, 1e-12);
        expect_close("chunk_states", k.states, ref.states, 1e-12);
        if (c.hT) expect_close("hT", k.hT, ref.hT, 1e-12);
      }
}

// Every gradient against central differences of sum(out * R) + sum(hT * R2) in float64.
TEST(SelectiveScanBwd, MatchesFiniteDifferences) {
  std::vector<Config> cases(5);
  cases[0] = {2, 4, 3, 2, 33, 8, true, true, true, true, true, true, true};
  cases[1] = {1, 3, 2, 1, 7, 4, false, false, false, false, false, false, false};
  cases[2] = {1, 34, 2, 1, 9, 4, true, true, true, true, false, false, true};  // 3 channel blocks
  cases[3] = {2, 2, 3, 1, 1, 64, true, true, true, true, true, true, false};
  cases[4] = {1, 2, 3, 2, 20, 5, false, false, true, false, true, true, true};  // G = E
  unsigned seed = 100;
  for (const Config& c : cases) {
    SCOPED_TRACE(c.name());
    Problem P = make_problem(c, seed++);
    std::mt19937 rng(seed++);
    const std::vector<double> R = uniform(rng, c.B * c.E * c.L, -1, 1);
    const std::vector<double> R2 = uniform(rng, c.B * c.E * c.N, -1, 1);
    auto loss = [&] {
      const Naive<double> r = naive_fwd<double>(P);
      return dot(r.out, R) + (c.hT ? dot(r.hT, R2) : 0.0);
    };
    Kernel<double> k(P);
    k.fwd_bwd(R, c.hT ? &R2 : nullptr);
    const double tol = 1e-6;
    expect_close("du", k.du, fd_grad(P.u, loss), tol);
    expect_close("ddelta", k.ddelta, fd_grad(P.delta, loss), tol);
    expect_close("dA", k.dA, fd_grad(P.A, loss), tol);
    expect_close("dBm", k.dBm, fd_grad(P.Bm, loss), tol);
    expect_close("dCm", k.dCm, fd_grad(P.Cm, loss), tol);
    if (c.D) expect_close("dD", k.dD, fd_grad(P.D, loss), tol);
    if (c.z) expect_close("dz", k.dz, fd_grad(P.z, loss), tol);
    if (c.bias) expect_close("ddelta_bias", k.dbias, fd_grad(P.bias, loss), tol);
    if (c.h0) expect_close("dh0", k.dh0, fd_grad(P.h0, loss), tol);
  }
}

// Time slice [t0, t1) of a (rows..., L) tensor whose last axis is time.
std::vector<double> slice_t(const std::vector<double>& v, int64_t L, int64_t t0, int64_t t1) {
  std::vector<double> r;
  for (size_t row = 0; row < v.size() / L; ++row)
    for (int64_t t = t0; t < t1; ++t) r.push_back(v[row * L + t]);
  return r;
}
Problem slice_problem(const Problem& P, int64_t t0, int64_t t1) {
  Problem s = P;
  s.c.L = t1 - t0;
  s.c.seq = false;
  s.seq.clear();
  s.u = slice_t(P.u, P.c.L, t0, t1), s.delta = slice_t(P.delta, P.c.L, t0, t1);
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
TEST(SelectiveScanPacked, EqualsSeparateDocuments) {
  for (int64_t split : {13, 16}) {  // inside a chunk, and exactly on a chunk boundary
    Config c{1, 6, 3, 2, 33, 8, true, true, true, true, true, true, true};
    SCOPED_TRACE("split " + std::to_string(split));
    Problem P = make_problem(c, 7);
    for (int64_t t = 0; t < c.L; ++t) P.seq[t] = t < split ? 4 : 9;
    std::mt19937 rng(8);
    const std::vector<double> R = uniform(rng, c.E * c.L, -1, 1), R2 = uniform(rng, c.E * c.N, -1, 1);
    Kernel<double> packed(P);
    packed.fwd_bwd(R, &R2);

    const Problem P1 = slice_problem(P, 0, split), P2 = slice_problem(P, split, c.L);
    Kernel<double> k1(P1), k2(P2);
    k1.fwd_bwd(slice_t(R, c.L, 0, split), nullptr);  // dhT flows only into the last document
    k2.fwd_bwd(slice_t(R, c.L, split, c.L), &R2);
    using Vec = std::vector<double>;
    const std::vector<std::tuple<const char*, Vec*, Vec*, Vec*>> per_step = {
        {"out", &packed.out, &k1.out, &k2.out},           {"du", &packed.du, &k1.du, &k2.du},
        {"ddelta", &packed.ddelta, &k1.ddelta, &k2.ddelta}, {"dz", &packed.dz, &k1.dz, &k2.dz},
        {"dBm", &packed.dBm, &k1.dBm, &k2.dBm},           {"dCm", &packed.dCm, &k1.dCm, &k2.dCm}};
    for (const auto& [name, whole, a, b] : per_step) {
      expect_close(name, slice_t(*whole, c.L, 0, split), *a, 1e-12);
      expect_close(name, slice_t(*whole, c.L, split, c.L), *b, 1e-12);
    }
    expect_close("hT", packed.hT, k2.hT, 1e-12);
    expect_close("dh0", packed.dh0, k1.dh0, 1e-12);
    expect_close("dA", packed.dA, add(to_double(k1.dA), k2.dA), 1e-12);
    expect_close("dD", packed.dD, add(to_double(k1.dD), k2.dD), 1e-12);
    expect_close("ddelta_bias", packed.dbias, add(to_double(k1.dbias), k2.dbias), 1e-12);
  }
}

// Calling the step kernel token by token reproduces the parallel forward and its final state.
template <class T>
void check_step(double tol) {
  Config c{2, 6, 4, 2, 70, 16, true, true, true, true, true, true, false};
  const Problem P = make_problem(c, 21);
  Kernel<T> k(P);
  k.fwd();
  std::vector<T> state = k.h0, out(c.B * c.E * c.L);
  for (int64_t t = 0; t < c.L; ++t) {
    SelectiveScanStepParams s;
    s.batch = c.B, s.dim = c.E, s.dstate = c.N, s.n_groups = c.G, s.delta_softplus = c.softplus;
    s.state = state.data();  set_contiguous(s.state_stride, {c.B, c.E, c.N});
    // Column t of the (B, E, L) / (B, G, N, L) inputs is a strided (B, E) / (B, G, N) view.
    const int64_t be[2] = {c.E * c.L, c.L}, bgn[3] = {c.G * c.N * c.L, c.N * c.L, c.L};
    s.u = k.u.data() + t;          std::copy_n(be, 2, s.u_stride);
    s.delta = k.delta.data() + t;  std::copy_n(be, 2, s.delta_stride);
    s.z = k.z.data() + t;          std::copy_n(be, 2, s.z_stride);
    s.out = out.data() + t;        std::copy_n(be, 2, s.out_stride);
    s.Bm = k.Bm.data() + t;        std::copy_n(bgn, 3, s.Bm_stride);
    s.Cm = k.Cm.data() + t;        std::copy_n(bgn, 3, s.Cm_stride);
    s.A = k.A.data();              set_contiguous(s.A_stride, {c.E, c.N});
    s.D = k.D.data(), s.D_stride = 1;
    s.delta_bias = k.bias.data(), s.delta_bias_stride = 1;
    cpu::selective_scan_step<T>(s);
  }
  expect_close("out", to_double(out), to_double(k.out), tol);
  expect_close("state", to_double(state), to_double(k.hT), tol);
}
TEST(SelectiveScanStep, ReproducesParallelForward) {
  check_step<double>(1e-12);
  check_step<float>(1e-6);
}

// Inputs and outputs as transposed views: (B, E, L) tensors stored (B, L, E), Bm/Cm stored
// (B, L, G, N). Same numbers as the contiguous run.
TEST(SelectiveScanStrided, TransposedViewsMatchContiguous) {
  Config c{2, 6, 3, 2, 19, 8, true, true, true, true, true, true, true};
  const Problem P = make_problem(c, 31);
  std::mt19937 rng(32);
  const std::vector<double> R = uniform(rng, c.B * c.E * c.L, -1, 1);
  const std::vector<double> R2 = uniform(rng, c.B * c.E * c.N, -1, 1);
  Kernel<double> ref(P);
  ref.fwd_bwd(R, &R2);

  Kernel<double> k(P);
  const int64_t bel_t[3] = {c.L * c.E, 1, c.E};                   // (B, E, L) stored (B, L, E)
  const int64_t bgnl_t[4] = {c.L * c.G * c.N, c.N, 1, c.G * c.N};  // (B, G, N, L) stored (B, L, G, N)
  auto to_ble = [&](const std::vector<double>& v) {
    return ssm::test::relayout(v, {c.B, c.E, c.L}, {bel_t[0], bel_t[1], bel_t[2]});
  };
  auto to_blgn = [&](const std::vector<double>& v) {
    return ssm::test::relayout(v, {c.B, c.G, c.N, c.L}, {bgnl_t[0], bgnl_t[1], bgnl_t[2], bgnl_t[3]});
  };
  std::vector<double> u = to_ble(P.u), delta = to_ble(P.delta), z = to_ble(P.z), dout = to_ble(R);
  std::vector<double> Bm = to_blgn(P.Bm), Cm = to_blgn(P.Cm);
  std::vector<double> out(u.size()), du(u.size()), ddelta(u.size()), dz(u.size());
  std::vector<double> dBm(Bm.size()), dCm(Cm.size());
  SelectiveScanBwdParams g;
  static_cast<SelectiveScanParams&>(g) = k.params();
  g.u = u.data(), g.delta = delta.data(), g.z = z.data(), g.out = out.data();
  g.Bm = Bm.data(), g.Cm = Cm.data();
  for (int64_t* s : {g.u_stride, g.delta_stride, g.z_stride, g.out_stride, g.dout_stride, g.du_stride,
                     g.ddelta_stride, g.dz_stride})
    std::copy_n(bel_t, 3, s);
  for (int64_t* s : {g.Bm_stride, g.Cm_stride, g.dBm_stride, g.dCm_stride}) std::copy_n(bgnl_t, 4, s);
  cpu::selective_scan_fwd<double>(g);
  g.dout = dout.data(), g.dhT = R2.data();
  set_contiguous(g.dhT_stride, {c.B, c.E, c.N});
  g.du = du.data(), g.ddelta = ddelta.data(), g.dz = dz.data(), g.dBm = dBm.data(), g.dCm = dCm.data();
  cpu::selective_scan_bwd<double>(g);
  expect_close("out", out, to_ble(ref.out), 1e-13);
  expect_close("du", du, to_ble(ref.du), 1e-13);
  expect_close("ddelta", ddelta, to_ble(ref.ddelta), 1e-13);
  expect_close("dz", dz, to_ble(ref.dz), 1e-13);
  expect_close("dBm", dBm, to_blgn(ref.dBm), 1e-13);
  expect_close("dCm", dCm, to_blgn(ref.dCm), 1e-13);
}

// float32: forward no worse than a naive float loop (vs float64); gradients within ~1e-5.
TEST(SelectiveScanFloat, AccuracyAgainstFloat64) {
  Config c{2, 20, 8, 2, 150, 32, true, true, true, true, true, true, true};
  const Problem P = make_problem(c, 41);
  std::mt19937 rng(42);
  const std::vector<double> R = uniform(rng, c.B * c.E * c.L, -1, 1);
  const std::vector<double> R2 = uniform(rng, c.B * c.E * c.N, -1, 1);
  const Naive<double> ref = naive_fwd<double>(P);
  const Naive<float> naive32 = naive_fwd<float>(P);
  Kernel<float> k32(P);
  k32.fwd_bwd(R, &R2);
  const double naive_err = max_rel_err(to_double(naive32.out), ref.out);
  EXPECT_LE(max_rel_err(to_double(k32.out), ref.out), 2 * naive_err + 1e-7);
  EXPECT_LE(max_rel_err(to_double(k32.hT), ref.hT), 2 * max_rel_err(to_double(naive32.hT), ref.hT) + 1e-7);
  Kernel<double> k64(P);
  k64.fwd_bwd(R, &R2);
  const std::vector<std::tuple<const char*, std::vector<float>*, std::vector<double>*>> grads = {
      {"du", &k32.du, &k64.du},   {"ddelta", &k32.ddelta, &k64.ddelta}, {"dA", &k32.dA, &k64.dA},
      {"dBm", &k32.dBm, &k64.dBm}, {"dCm", &k32.dCm, &k64.dCm},         {"dD", &k32.dD, &k64.dD},
      {"dz", &k32.dz, &k64.dz},   {"ddelta_bias", &k32.dbias, &k64.dbias}, {"dh0", &k32.dh0, &k64.dh0}};
  for (const auto& [name, a, b] : grads) expect_close(name, to_double(*a), *b, 1e-5);
}

// Same float results, bit for bit, with 1, 2 and 3 OpenMP threads.
TEST(SelectiveScanDeterminism, BitwiseAcrossThreadCounts) {
  Config c{2, 40, 5, 2, 150, 32, true, true, true, true, true, true, true};
  const Problem P = make_problem(c, 51);
  std::mt19937 rng(52);
  const std::vector<double> R = uniform(rng, c.B * c.E * c.L, -1, 1);
  const std::vector<double> R2 = uniform(rng, c.B * c.E * c.N, -1, 1);
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
        {&k1->du, &kn->du},   {&k1->ddelta, &kn->ddelta}, {&k1->dA, &kn->dA},
        {&k1->dBm, &kn->dBm}, {&k1->dCm, &kn->dCm},       {&k1->dD, &kn->dD},
        {&k1->dz, &kn->dz},   {&k1->dbias, &kn->dbias},   {&k1->dh0, &kn->dh0}};
    for (const auto& [a, b] : grads) EXPECT_TRUE(same(*a, *b));
  }
  omp_set_num_threads(saved_threads);
}

// L = 0: the state passes through unchanged, and so does its gradient.
TEST(SelectiveScanEmpty, StateAndGradientPassThrough) {
  Config c{2, 6, 3, 2, 0, 8, true, true, true, true, true, true, false};
  const Problem P = make_problem(c, 71);
  std::mt19937 rng(72);
  const std::vector<double> R2 = uniform(rng, c.B * c.E * c.N, -1, 1);
  Kernel<double> k(P);
  k.fwd_bwd({}, &R2);
  EXPECT_EQ(k.hT, P.h0);
  EXPECT_EQ(k.dh0, R2);
  EXPECT_EQ(k.dA, std::vector<double>(c.E * c.N, 0.0));
  EXPECT_EQ(k.dD, std::vector<double>(c.E, 0.0));
}

TEST(SelectiveScanParams, RejectsInvalidSizes) {
  Config c{1, 6, 3, 4, 5, 4};  // G = 4 does not divide E = 6
  const Problem P = make_problem(c, 61);
  Kernel<double> k(P);
  EXPECT_THROW(k.fwd(), std::invalid_argument);
  SelectiveScanBwdParams g;
  static_cast<SelectiveScanParams&>(g) = k.params();
  g.n_groups = 1;
  EXPECT_THROW(cpu::selective_scan_bwd<double>(g), std::invalid_argument);  // no dout
}

}  // namespace
