// selective_scan (Mamba-1) and ssd_scan (Mamba-2) ops and their steps: forward and final
// state against naive sequential recurrences written out here (every optional on and off,
// G in {1, 2}, packed documents), float32 against the float64 reference, float64 gradchecks of
// every input (strided views, views of one fused projection as the models pass them, several
// chunk lengths, h0 and the final state as an output), the steps reproducing the parallel
// forward over 70 tokens, determinism across thread counts and error messages.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>

#include "framework/ops/ops.h"
#include "tests/support/gradcheck.h"

namespace ssm {
namespace {

using test::gradcheck;
using test::rand_f64;
using V = std::vector<Tensor>;

double softplus_ref(double v) { return std::log1p(std::exp(v)); }
double silu_ref(double v) { return v / (1.0 + std::exp(-v)); }

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

std::vector<double> values(const Tensor& t) { return t.defined() ? t.to_vector() : std::vector<double>(); }

void expect_close(const std::vector<double>& a, const std::vector<double>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], tol * std::max(1.0, std::abs(b[i]))) << "at " << i;
}

// y and the final state in one output, so that gradients arriving at both are checked.
Tensor both(const ScanResult& r) { return concat({flatten(r.y), flatten(r.final_state)}, 0); }

void expect_error(const std::function<void()>& f, std::initializer_list<const char*> parts) {
  try {
    f();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    for (const char* p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

struct Naive {
  std::vector<double> y, fin;
};

using Fn = std::function<Tensor(const V&)>;

// f's output and the gradients of every defined input, computed in `dt` for a random seed
// gradient of the output.
V value_and_grads(const Fn& f, V in, DType dt) {
  for (Tensor& t : in)
    if (t.defined()) t = to(t.detach(), dt).set_requires_grad(true);
  Tensor out = f(in);
  Rng rng(7);
  backward(out, to(randn(out.shape(), rng, DType::f64), dt));
  V res{out.detach()};
  for (const Tensor& t : in)
    if (t.defined()) res.push_back(t.grad());
  return res;
}

// float32 forward and gradients against the float64 op (itself checked against the naive loop
// and finite differences). Gradients summed over batch and time (A, D, biases) carry longer
// float32 sums than the outputs.
void expect_float32_close(const Fn& f, const V& in) {
  V a = value_and_grads(f, in, DType::f64), b = value_and_grads(f, in, DType::f32);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "output " << i);
    EXPECT_EQ(b[i].dtype(), DType::f32);
    expect_close(b[i].to_vector(), a[i].to_vector(), i == 0 ? 1e-5 : 1e-4);
  }
}

// Forward and every gradient bitwise equal on 1 and 2 threads.
void expect_thread_count_invariant(const Fn& f, const V& in) {
  const int prev = omp_get_max_threads();
  omp_set_num_threads(1);
  V a = value_and_grads(f, in, DType::f32);
  omp_set_num_threads(2);
  V b = value_and_grads(f, in, DType::f32);
  omp_set_num_threads(prev);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(std::memcmp(a[i].raw_data(), b[i].raw_data(), a[i].nbytes()), 0) << "output " << i;
}

// ============================== Mamba-1: selective_scan ======================================

// The recurrence of selective_scan_ref, one (b, e) at a time. v = {u, delta, A, Bm, Cm} in their
// logical shapes (any strides): u, delta, z (B, E, L); A (E, N); Bm, Cm (B, G, N, L).
Naive naive_selective_scan(const V& v, const SelectiveScanArgs& a) {
  const int64_t B = v[0].shape()[0], E = v[0].shape()[1], L = v[0].shape()[2], N = v[2].shape()[1];
  const int64_t G = v[3].shape()[1];
  std::vector<double> uv = values(v[0]), dv = values(v[1]), av = values(v[2]), bv = values(v[3]), cv = values(v[4]);
  std::vector<double> Dv = values(a.D), zv = values(a.z), biasv = values(a.delta_bias), h0v = values(a.h0);
  std::vector<double> sv = values(a.seq_idx);
  Naive r;
  r.y.resize(size_t(B * E * L));
  r.fin.resize(size_t(B * E * N));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t e = 0; e < E; ++e) {
      const int64_t g = e / (E / G);
      std::vector<double> h(size_t(N), 0.0);
      if (!h0v.empty())
        for (int64_t n = 0; n < N; ++n) h[size_t(n)] = h0v[size_t((b * E + e) * N + n)];
      for (int64_t t = 0; t < L; ++t) {
        if (!sv.empty() && t > 0 && sv[size_t(b * L + t)] != sv[size_t(b * L + t - 1)])
          std::fill(h.begin(), h.end(), 0.0);
        const size_t i = size_t((b * E + e) * L + t);
        double dt = dv[i] + (biasv.empty() ? 0.0 : biasv[size_t(e)]);
        if (a.delta_softplus) dt = softplus_ref(dt);
        double y = 0;
        for (int64_t n = 0; n < N; ++n) {
          const size_t bc = size_t(((b * G + g) * N + n) * L + t);
          h[size_t(n)] = std::exp(dt * av[size_t(e * N + n)]) * h[size_t(n)] + dt * bv[bc] * uv[i];
          y += h[size_t(n)] * cv[bc];
        }
        if (!Dv.empty()) y += Dv[size_t(e)] * uv[i];
        if (!zv.empty()) y *= silu_ref(zv[i]);
        r.y[i] = y;
      }
      for (int64_t n = 0; n < N; ++n) r.fin[size_t((b * E + e) * N + n)] = h[size_t(n)];
    }
  return r;
}

struct ScanCase {
  int64_t B = 2, E = 4, L = 9, N = 3, G = 1;
  bool softplus = true, D = false, z = false, bias = false, h0 = false, seq = false, final = false;
  std::string name() const {
    return "B" + std::to_string(B) + " E" + std::to_string(E) + " L" + std::to_string(L) + " N" + std::to_string(N) +
           " G" + std::to_string(G) + (softplus ? " softplus" : "") + (D ? " D" : "") + (z ? " z" : "") +
           (bias ? " bias" : "") + (h0 ? " h0" : "") + (seq ? " seq_idx" : "") + (final ? " final" : "");
  }
};

// Inputs stored as a model holds them: u, delta, z (B, L, E); Bm, Cm (B, L, G, N); A (N, E);
// D, delta_bias (E); h0 (B, E, N). Unused optionals are undefined. dt stays positive without
// softplus (a negative dt A would hit the exponent clamp, which the naive loop does not model).
V scan_inputs(const ScanCase& c, uint64_t seed, bool grad = true) {
  const int64_t B = c.B, E = c.E, L = c.L, N = c.N, G = c.G;
  auto r = [&](const Dims& s, uint64_t k, double lo, double hi) { return rand_f64(s, seed * 16 + k, lo, hi, grad); };
  return {r({B, L, E}, 0, -1, 1),
          c.softplus ? r({B, L, E}, 1, -1, 1) : r({B, L, E}, 1, 0.1, 0.8),
          r({N, E}, 2, -1.5, -0.2),
          r({B, L, G, N}, 3, -1, 1),
          r({B, L, G, N}, 4, -1, 1),
          c.D ? r({E}, 5, -1, 1) : Tensor(),
          c.z ? r({B, L, E}, 6, -2, 2) : Tensor(),
          c.bias ? (c.softplus ? r({E}, 7, -0.5, 0.5) : r({E}, 7, 0.0, 0.2)) : Tensor(),
          c.h0 ? r({B, E, N}, 8, -1, 1) : Tensor()};
}

SelectiveScanArgs scan_args(const ScanCase& c, const V& in) {
  SelectiveScanArgs a;
  a.delta_softplus = c.softplus;
  if (c.D) a.D = in[5];
  if (c.z) a.z = transpose(in[6], 1, 2);
  if (c.bias) a.delta_bias = in[7];
  if (c.h0) a.h0 = in[8];
  if (c.seq) a.seq_idx = make_seq_idx(c.B, c.L, uint32_t(c.L * 7 + c.B));
  a.return_final_state = c.final;
  return a;
}

// u, delta, A, Bm, Cm as strided views of the stored inputs, in the op's shapes.
V scan_views(const V& in) {
  return {transpose(in[0], 1, 2), transpose(in[1], 1, 2), transpose(in[2], 0, 1), permute(in[3], {0, 2, 3, 1}),
          permute(in[4], {0, 2, 3, 1})};
}

ScanResult run_scan(const ScanCase& c, const V& in) {
  V v = scan_views(in);
  return selective_scan(v[0], v[1], v[2], v[3], v[4], scan_args(c, in));
}

TEST(SelectiveScanOp, ForwardMatchesNaiveLoop) {
  NoGradGuard ng;
  for (int bits = 0; bits < 128; ++bits) {
    ScanCase c;
    c.G = (bits & 1) ? 2 : 1;
    c.softplus = bits & 2, c.D = bits & 4, c.z = bits & 8, c.bias = bits & 16, c.h0 = bits & 32, c.seq = bits & 64;
    c.final = true;
    c.L = 13;
    SCOPED_TRACE(c.name());
    V in = scan_inputs(c, uint64_t(bits), false);
    ScanResult r = run_scan(c, in);
    ASSERT_EQ(r.y.shape(), (Dims{c.B, c.E, c.L}));
    ASSERT_EQ(r.final_state.shape(), (Dims{c.B, c.E, c.N}));
    Naive ref = naive_selective_scan(scan_views(in), scan_args(c, in));
    expect_close(r.y.to_vector(), ref.y, 1e-12);
    expect_close(r.final_state.to_vector(), ref.fin, 1e-12);
  }
  // Without return_final_state nothing is allocated for it.
  ScanCase c;
  EXPECT_FALSE(run_scan(c, scan_inputs(c, 1, false)).final_state.defined());
}

TEST(SelectiveScanOp, Float32MatchesFloat64) {
  ScanCase c;  // several saved chunks of 64 steps
  c.B = 2, c.E = 6, c.L = 150, c.N = 5, c.G = 2;
  c.D = c.z = c.bias = c.h0 = c.final = true;
  expect_float32_close([c](const V& in) { return both(run_scan(c, in)); }, scan_inputs(c, 3, false));
}

TEST(SelectiveScanOp, GradcheckEveryInput) {
  std::vector<ScanCase> cases;
  for (int64_t G : {1, 2}) {
    ScanCase all;
    all.G = G, all.D = all.z = all.bias = all.h0 = all.final = true;
    cases.push_back(all);
    all.softplus = false;
    cases.push_back(all);
  }
  cases.push_back(ScanCase{});  // no optional at all, y only
  ScanCase packed;
  packed.G = 2, packed.D = packed.z = packed.bias = packed.h0 = packed.seq = packed.final = true;
  packed.L = 13;
  cases.push_back(packed);
  // Three saved chunks of 64 steps, the last one partial.
  ScanCase chunks;
  chunks.B = 1, chunks.E = 2, chunks.N = 2, chunks.L = 150;
  chunks.D = chunks.z = chunks.bias = chunks.h0 = chunks.seq = chunks.final = true;
  cases.push_back(chunks);
  for (size_t k = 0; k < cases.size(); ++k) {
    const ScanCase& c = cases[k];
    SCOPED_TRACE(c.name());
    EXPECT_TRUE(gradcheck(
        [c](const V& in) {
          ScanResult r = run_scan(c, in);
          return c.final ? both(r) : r.y;
        },
        scan_inputs(c, 20 + k)));
  }
  // Only the final state reaches the loss: y gets a zero gradient.
  ScanCase c;
  c.D = c.z = c.bias = c.h0 = c.final = true;
  EXPECT_TRUE(gradcheck([c](const V& in) { return run_scan(c, in).final_state; }, scan_inputs(c, 30)));
}

// The views mamba.cpp passes: u and z halves of one (B, L, 2E) in_proj output, Bm and Cm
// narrowed out of the (B, L, R + 2N) x_proj output, transposed and unsqueezed to (B, 1, N, L).
TEST(SelectiveScanOp, GradcheckViewsOfFusedProjections) {
  const int64_t B = 2, E = 3, L = 8, N = 4, R = 2;
  auto f = [](const V& in) {
    Tensor xz = in[0], x_dbl = in[1];
    SelectiveScanArgs a;
    a.z = transpose(narrow(xz, -1, E, E), 1, 2);
    a.D = in[3];
    a.delta_bias = in[4];
    a.h0 = in[5];
    a.return_final_state = true;
    Tensor delta = transpose(narrow(x_dbl, -1, 0, E), 1, 2);
    Tensor Bm = unsqueeze(transpose(narrow(x_dbl, -1, E + R, N), 1, 2), 1);
    Tensor Cm = unsqueeze(transpose(narrow(x_dbl, -1, E + R + N, N), 1, 2), 1);
    EXPECT_FALSE(Bm.is_contiguous());
    return both(selective_scan(transpose(narrow(xz, -1, 0, E), 1, 2), delta, in[2], Bm, Cm, a));
  };
  EXPECT_TRUE(gradcheck(f, {rand_f64({B, L, 2 * E}, 40), rand_f64({B, L, E + R + 2 * N}, 41),
                            rand_f64({E, N}, 42, -1.5, -0.2), rand_f64({E}, 43), rand_f64({E}, 44),
                            rand_f64({B, E, N}, 45)}));
}

// An empty sequence: y is empty, the final state is h0 and its gradient passes straight back.
TEST(SelectiveScanOp, EmptySequencePassesStateThrough) {
  ScanCase c;
  c.L = 0, c.h0 = c.final = true;
  V in = scan_inputs(c, 50);
  ScanResult r = run_scan(c, in);
  EXPECT_EQ(r.y.shape(), (Dims{c.B, c.E, 0}));
  expect_close(r.final_state.to_vector(), in[8].to_vector(), 0);
  EXPECT_TRUE(gradcheck([c](const V& x) { return run_scan(c, x).final_state; }, in));
}

TEST(SelectiveScanOp, StepReproducesParallelForward) {
  NoGradGuard ng;
  ScanCase c;
  c.B = 2, c.E = 6, c.N = 4, c.G = 2, c.L = 70;
  c.D = c.z = c.bias = c.h0 = c.final = true;
  for (DType dt : {DType::f64, DType::f32}) {
    SCOPED_TRACE(dtype_name(dt));
    V in = scan_inputs(c, 60, false);
    for (Tensor& t : in) t = to(t, dt);
    ScanResult r = run_scan(c, in);
    SelectiveScanArgs a = scan_args(c, in);
    Tensor state = clone(a.h0);
    a.h0 = Tensor();
    a.return_final_state = false;
    Tensor zs = a.z;
    V v = scan_views(in), ys;
    for (int64_t t = 0; t < c.L; ++t) {
      a.z = zs.select(2, t);
      Tensor yt = selective_scan_step(state, v[0].select(2, t), v[1].select(2, t), v[2], v[3].select(3, t),
                                      v[4].select(3, t), a);
      ASSERT_EQ(yt.shape(), (Dims{c.B, c.E}));
      ys.push_back(unsqueeze(yt, 2));
    }
    // Same arithmetic in the same order as the parallel forward.
    const double tol = dt == DType::f64 ? 1e-13 : 1e-5;
    expect_close(concat(ys, 2).to_vector(), r.y.to_vector(), tol);
    expect_close(state.to_vector(), r.final_state.to_vector(), tol);
  }
}

TEST(SelectiveScanOp, DeterministicAcrossThreadCounts) {
  ScanCase c;  // large enough for the kernels to go parallel
  c.B = 2, c.E = 64, c.L = 150, c.N = 16, c.G = 2;
  c.D = c.z = c.bias = c.h0 = c.seq = c.final = true;
  expect_thread_count_invariant([c](const V& in) { return both(run_scan(c, in)); }, scan_inputs(c, 70, false));
}

TEST(SelectiveScanOp, ErrorsNameTheTensors) {
  const char* op = "selective_scan";
  Tensor u = Tensor::zeros({2, 4, 7}), A = Tensor::zeros({4, 3}), Bm = Tensor::zeros({2, 2, 3, 7});
  // Runs the scan with args changed by `set` (designated initializers would warn).
  auto scan = [&](auto set) {
    SelectiveScanArgs a;
    set(a);
    selective_scan(u, u, A, Bm, Bm, a);
  };
  expect_error([&] { selective_scan(Tensor::zeros({4, 7}), u, A, Bm, Bm); }, {op, "u f32[4, 7] cpu", "(B, E, L)"});
  expect_error([&] { selective_scan(u, Tensor::zeros({2, 4, 6}), A, Bm, Bm); },
               {op, "delta f32[2, 4, 6] cpu", "u f32[2, 4, 7] cpu", "[2, 4, 7]"});
  expect_error([&] { selective_scan(u, u, Tensor::zeros({5, 3}), Bm, Bm); }, {op, "A f32[5, 3] cpu", "E = 4"});
  expect_error([&] { selective_scan(u, u, Tensor::zeros({4}), Bm, Bm); }, {op, "A f32[4] cpu", "(E, N)"});
  Tensor u64 = Tensor::zeros({2, 64, 64}), A64 = Tensor::zeros({64, 16});
  expect_error([&] { selective_scan(u64, u64, A64, Tensor::zeros({2, 3, 16, 64}), Tensor::zeros({2, 3, 16, 64})); },
               {"selective_scan: Bm f32[2, 3, 16, 64] cpu: G=3 does not divide E=64"});
  expect_error([&] { selective_scan(u, u, A, Tensor::zeros({2, 2, 4, 7}), Bm); },
               {op, "Bm f32[2, 2, 4, 7] cpu", "(B, G, N, L) = [2, 2, 3, 7]"});
  expect_error([&] { selective_scan(u, u, A, Bm, Tensor::zeros({2, 1, 3, 7})); }, {op, "Cm f32[2, 1, 3, 7] cpu"});
  expect_error([&] { scan([](auto& a) { a.D = Tensor::zeros({3}); }); }, {op, "D f32[3] cpu", "(E)"});
  expect_error([&] { scan([](auto& a) { a.delta_bias = Tensor::zeros({4, 1}); }); }, {op, "delta_bias f32[4, 1] cpu"});
  expect_error([&] { scan([](auto& a) { a.z = Tensor::zeros({2, 7, 4}); }); }, {op, "z f32[2, 7, 4] cpu", "(B, E, L)"});
  expect_error([&] { scan([](auto& a) { a.h0 = Tensor::zeros({2, 4, 4}); }); },
               {op, "h0 f32[2, 4, 4] cpu", "[2, 4, 3]"});
  expect_error([&] { scan([](auto& a) { a.seq_idx = Tensor::zeros({2, 7}); }); }, {op, "seq_idx", "i32"});
  expect_error([&] { scan([](auto& a) { a.seq_idx = Tensor::zeros({2, 6}, DType::i32); }); },
               {op, "seq_idx i32[2, 6] cpu", "(B, L)"});
  expect_error([&] { selective_scan(u, u, Tensor::zeros({4, 3}, DType::f64), Bm, Bm); }, {op, "dtype"});
  expect_error([&] { scan([](auto& a) { a.D = Tensor::zeros({4}, DType::f64); }); }, {op, "dtype", "f64[4]"});
  expect_error([&] { selective_scan(u, u, A, Bm, Tensor()); }, {op, "Cm must be defined"});

  const char* step = "selective_scan_step";
  Tensor st = Tensor::zeros({2, 4, 3}), ut = Tensor::zeros({2, 4}), Bt = Tensor::zeros({2, 2, 3});
  expect_error([&] { selective_scan_step(Tensor::zeros({2, 4, 5}), ut, ut, A, Bt, Bt); },
               {step, "state f32[2, 4, 5] cpu", "(B, E, N) = [2, 4, 3]"});
  expect_error([&] { selective_scan_step(st, Tensor::zeros({2, 4, 1}), ut, A, Bt, Bt); }, {step, "(B, E)"});
  expect_error([&] { selective_scan_step(st, ut, ut, A, Tensor::zeros({2, 3, 3}), Bt); }, {step, "G=3"});
  SelectiveScanArgs h0_set;
  h0_set.h0 = st;
  expect_error([&] { selective_scan_step(st, ut, ut, A, Bt, Bt, h0_set); }, {step, "h0"});
  expect_error([&] { selective_scan_step(Tensor::zeros({1, 4, 3}).expand({2, 4, 3}), ut, ut, A, Bt, Bt); },
               {step, "broadcast"});
  Tensor Ag = Tensor::zeros({4, 3}).set_requires_grad(true);
  expect_error([&] { selective_scan_step(st, ut, ut, Ag, Bt, Bt); }, {step, "NoGradGuard"});
  NoGradGuard ng;
  EXPECT_NO_THROW(selective_scan_step(st, ut, ut, Ag, Bt, Bt));
}

// ================================ Mamba-2: ssd_scan ===========================================

// The Mamba-2 recurrence, one (b, h) at a time, with a P x N state. v = {x, dt, A, Bm, Cm} in
// their logical shapes: x, z (B, L, H, P); dt (B, L, H); A (H); Bm, Cm (B, L, G, N); D (H) or (H, P).
Naive naive_ssd(const V& v, const SsdArgs& a) {
  const int64_t B = v[0].shape()[0], L = v[0].shape()[1], H = v[0].shape()[2], P = v[0].shape()[3];
  const int64_t G = v[3].shape()[2], N = v[3].shape()[3];
  std::vector<double> xv = values(v[0]), dv = values(v[1]), av = values(v[2]), bv = values(v[3]), cv = values(v[4]);
  std::vector<double> Dv = values(a.D), zv = values(a.z), biasv = values(a.dt_bias), h0v = values(a.h0);
  std::vector<double> sv = values(a.seq_idx);
  const bool D_hdim = a.D.defined() && a.D.dim() == 2;
  Naive r;
  r.y.resize(size_t(B * L * H * P));
  r.fin.resize(size_t(B * H * P * N));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / (H / G);
      std::vector<double> s(size_t(P * N), 0.0);  // (P, N)
      if (!h0v.empty())
        for (int64_t k = 0; k < P * N; ++k) s[size_t(k)] = h0v[size_t((b * H + h) * P * N + k)];
      for (int64_t t = 0; t < L; ++t) {
        if (!sv.empty() && t > 0 && sv[size_t(b * L + t)] != sv[size_t(b * L + t - 1)])
          std::fill(s.begin(), s.end(), 0.0);
        double d = dv[size_t((b * L + t) * H + h)] + (biasv.empty() ? 0.0 : biasv[size_t(h)]);
        if (a.dt_softplus) d = softplus_ref(d);
        d = std::min(std::max(d, a.dt_min), a.dt_max);
        const double decay = std::exp(d * av[size_t(h)]);
        for (int64_t p = 0; p < P; ++p) {
          const size_t i = size_t(((b * L + t) * H + h) * P + p);
          double y = 0;
          for (int64_t n = 0; n < N; ++n) {
            const size_t bc = size_t(((b * L + t) * G + g) * N + n);
            double& sv_pn = s[size_t(p * N + n)];
            sv_pn = decay * sv_pn + d * xv[i] * bv[bc];
            y += sv_pn * cv[bc];
          }
          if (!Dv.empty()) y += Dv[size_t(D_hdim ? h * P + p : h)] * xv[i];
          if (!zv.empty()) y *= silu_ref(zv[i]);
          r.y[i] = y;
        }
      }
      for (int64_t k = 0; k < P * N; ++k) r.fin[size_t((b * H + h) * P * N + k)] = s[size_t(k)];
    }
  return r;
}

struct SsdCase {
  int64_t B = 2, L = 11, H = 4, P = 3, G = 1, N = 3, chunk = 4;
  int D = 0;  // 0: none, 1: (H), 2: (H, P)
  bool softplus = true, z = false, bias = false, clamp = false, h0 = false, seq = false, final = false;
  std::string name() const {
    return "B" + std::to_string(B) + " L" + std::to_string(L) + " H" + std::to_string(H) + " P" + std::to_string(P) +
           " G" + std::to_string(G) + " N" + std::to_string(N) + " chunk" + std::to_string(chunk) +
           (D == 1 ? " D(H)" : D == 2 ? " D(H,P)" : "") + (softplus ? " softplus" : "") + (z ? " z" : "") +
           (bias ? " bias" : "") + (clamp ? " clamp" : "") + (h0 ? " h0" : "") + (seq ? " seq_idx" : "") +
           (final ? " final" : "");
  }
};

// Stored layouts: x, z (B, L, H, P); dt (B, H, L); A (H); Bm, Cm (B, G, L, N); D (H) or (H, P);
// dt_bias (H); h0 (B, H, N, P). Without softplus dt is drawn from [-0.5, 1]: the negative ones
// are clamped to dt_min = 0.
V ssd_inputs(const SsdCase& c, uint64_t seed, bool grad = true) {
  const int64_t B = c.B, L = c.L, H = c.H, P = c.P, G = c.G, N = c.N;
  auto r = [&](const Dims& s, uint64_t k, double lo, double hi) { return rand_f64(s, seed * 16 + k, lo, hi, grad); };
  return {r({B, L, H, P}, 0, -1, 1),
          c.softplus ? r({B, H, L}, 1, -1, 1) : r({B, H, L}, 1, -0.5, 1),
          r({H}, 2, -1.5, -0.2),
          r({B, G, L, N}, 3, -1, 1),
          r({B, G, L, N}, 4, -1, 1),
          c.D == 2 ? r({H, P}, 5, -1, 1) : c.D == 1 ? r({H}, 5, -1, 1) : Tensor(),
          c.z ? r({B, L, H, P}, 6, -2, 2) : Tensor(),
          c.bias ? r({H}, 7, -0.5, 0.5) : Tensor(),
          c.h0 ? r({B, H, N, P}, 8, -1, 1) : Tensor()};
}

SsdArgs ssd_args(const SsdCase& c, const V& in) {
  SsdArgs a;
  a.dt_softplus = c.softplus;
  a.chunk_size = c.chunk;
  if (c.D) a.D = in[5];
  if (c.z) a.z = in[6];
  if (c.bias) a.dt_bias = in[7];
  if (c.clamp) a.dt_min = 0.5, a.dt_max = 0.9;  // softplus of [-1.5, 1.5] spans [0.2, 1.7]
  if (c.h0) a.h0 = transpose(in[8], 2, 3);
  if (c.seq) a.seq_idx = make_seq_idx(c.B, c.L, uint32_t(c.L * 5 + c.B));
  a.return_final_state = c.final;
  return a;
}

// x, dt, A, Bm, Cm as (strided) views of the stored inputs, in the op's shapes.
V ssd_views(const V& in) {
  return {in[0], transpose(in[1], 1, 2), in[2], permute(in[3], {0, 2, 1, 3}), permute(in[4], {0, 2, 1, 3})};
}

ScanResult run_ssd(const SsdCase& c, const V& in) {
  V v = ssd_views(in);
  return ssd_scan(v[0], v[1], v[2], v[3], v[4], ssd_args(c, in));
}

TEST(SsdOp, ForwardMatchesNaiveLoop) {
  NoGradGuard ng;
  for (int bits = 0; bits < 512; ++bits) {
    SsdCase c;
    c.G = (bits & 1) ? 2 : 1;
    c.D = ((bits >> 1) & 3) % 3;  // bits 1-2; the value 3 repeats "no D"
    c.softplus = bits & 8, c.z = bits & 16, c.bias = bits & 32, c.clamp = bits & 64, c.h0 = bits & 128;
    c.seq = bits & 256;
    c.chunk = (bits % 5 == 0) ? 256 : 3;
    c.final = true;
    SCOPED_TRACE(c.name());
    V in = ssd_inputs(c, uint64_t(bits), false);
    ScanResult r = run_ssd(c, in);
    ASSERT_EQ(r.y.shape(), (Dims{c.B, c.L, c.H, c.P}));
    ASSERT_EQ(r.final_state.shape(), (Dims{c.B, c.H, c.P, c.N}));
    Naive ref = naive_ssd(ssd_views(in), ssd_args(c, in));
    expect_close(r.y.to_vector(), ref.y, 1e-12);
    expect_close(r.final_state.to_vector(), ref.fin, 1e-12);
  }
}

TEST(SsdOp, Float32MatchesFloat64) {
  SsdCase c;
  c.L = 150, c.H = 4, c.P = 5, c.G = 2, c.N = 6, c.chunk = 32, c.D = 2;
  c.z = c.bias = c.h0 = c.final = true;
  expect_float32_close([c](const V& in) { return both(run_ssd(c, in)); }, ssd_inputs(c, 3, false));
}

TEST(SsdOp, GradcheckEveryInput) {
  std::vector<SsdCase> cases;
  for (int64_t G : {1, 2})
    for (int D : {1, 2}) {
      SsdCase all;
      all.G = G, all.D = D, all.z = all.bias = all.h0 = all.final = true;
      cases.push_back(all);
    }
  cases.push_back(SsdCase{});  // no optional at all, y only
  for (int64_t chunk : {1, 5, 16}) {  // one step per chunk, a partial last chunk, one chunk
    SsdCase c;
    c.chunk = chunk, c.G = 2, c.D = 1, c.z = c.bias = c.h0 = c.seq = c.final = true;
    cases.push_back(c);
  }
  SsdCase clamp;  // some dt below dt_min, some above dt_max: zero gradient there
  clamp.clamp = clamp.bias = clamp.h0 = clamp.final = true, clamp.D = 1;
  cases.push_back(clamp);
  SsdCase raw;  // dt without softplus, the negative ones clamped to 0
  raw.softplus = false, raw.G = 2, raw.D = 2, raw.z = raw.h0 = raw.final = true;
  cases.push_back(raw);
  for (size_t k = 0; k < cases.size(); ++k) {
    const SsdCase& c = cases[k];
    SCOPED_TRACE(c.name());
    EXPECT_TRUE(gradcheck(
        [c](const V& in) {
          ScanResult r = run_ssd(c, in);
          return c.final ? both(r) : r.y;
        },
        ssd_inputs(c, 20 + k)));
  }
  SsdCase c;
  c.D = 1, c.z = c.bias = c.h0 = c.final = true;
  EXPECT_TRUE(gradcheck([c](const V& in) { return run_ssd(c, in).final_state; }, ssd_inputs(c, 40)));
}

// The views mamba2.cpp passes: z, x, Bm, Cm and dt narrowed out of one (B, L, ·) projection
// and reshaped (without a copy) to (B, L, H, P) and (B, L, G, N).
TEST(SsdOp, GradcheckViewsOfFusedProjection) {
  const int64_t B = 2, L = 9, H = 4, P = 2, G = 2, N = 3, E = H * P, W = 2 * E + 2 * G * N + H;
  auto f = [](const V& in) {
    const Tensor& zxbcdt = in[0];
    SsdArgs a;
    a.z = reshape(narrow(zxbcdt, -1, 0, E), {B, L, H, P});
    a.D = in[2];
    a.dt_bias = in[3];
    a.h0 = in[4];
    a.chunk_size = 4;
    a.return_final_state = true;
    Tensor x = reshape(narrow(zxbcdt, -1, E, E), {B, L, H, P});
    Tensor Bm = reshape(narrow(zxbcdt, -1, 2 * E, G * N), {B, L, G, N});
    Tensor Cm = reshape(narrow(zxbcdt, -1, 2 * E + G * N, G * N), {B, L, G, N});
    Tensor dt = narrow(zxbcdt, -1, 2 * E + 2 * G * N, H);
    EXPECT_TRUE(x.shares_storage(zxbcdt) && Bm.shares_storage(zxbcdt) && !x.is_contiguous());
    return both(ssd_scan(x, dt, in[1], Bm, Cm, a));
  };
  EXPECT_TRUE(gradcheck(f, {rand_f64({B, L, W}, 50), rand_f64({H}, 51, -1.5, -0.2), rand_f64({H}, 52),
                            rand_f64({H}, 53), rand_f64({B, H, P, N}, 54)}));
}

TEST(SsdOp, EmptySequencePassesStateThrough) {
  SsdCase c;
  c.L = 0, c.h0 = c.final = true;
  V in = ssd_inputs(c, 60);
  ScanResult r = run_ssd(c, in);
  EXPECT_EQ(r.y.shape(), (Dims{c.B, 0, c.H, c.P}));
  expect_close(r.final_state.to_vector(), contiguous(transpose(in[8], 2, 3)).to_vector(), 0);
  EXPECT_TRUE(gradcheck([c](const V& x) { return run_ssd(c, x).final_state; }, in));
}

TEST(SsdOp, StepReproducesParallelForward) {
  NoGradGuard ng;
  SsdCase c;
  c.L = 70, c.H = 4, c.P = 3, c.G = 2, c.N = 5, c.chunk = 16, c.D = 2;
  c.z = c.bias = c.clamp = c.h0 = c.final = true;
  for (DType dt : {DType::f64, DType::f32}) {
    SCOPED_TRACE(dtype_name(dt));
    V in = ssd_inputs(c, 70, false);
    for (Tensor& t : in)
      if (t.defined()) t = to(t, dt);
    ScanResult r = run_ssd(c, in);
    SsdArgs a = ssd_args(c, in);
    // A state laid out (B, H, N, P), seen as (B, H, P, N): the step takes any strides.
    Tensor state = clone(in[8]).transpose(2, 3);
    a.h0 = Tensor();
    a.return_final_state = false;
    Tensor zs = a.z;
    V v = ssd_views(in), ys;
    for (int64_t t = 0; t < c.L; ++t) {
      a.z = zs.select(1, t);
      Tensor yt = ssd_step(state, v[0].select(1, t), v[1].select(1, t), v[2], v[3].select(1, t), v[4].select(1, t), a);
      ASSERT_EQ(yt.shape(), (Dims{c.B, c.H, c.P}));
      ys.push_back(unsqueeze(yt, 1));
    }
    const double tol = dt == DType::f64 ? 1e-13 : 1e-5;
    expect_close(concat(ys, 1).to_vector(), r.y.to_vector(), tol);
    expect_close(state.to_vector(), r.final_state.to_vector(), tol);
  }
}

TEST(SsdOp, DeterministicAcrossThreadCounts) {
  SsdCase c;
  c.B = 2, c.L = 150, c.H = 8, c.P = 16, c.G = 2, c.N = 16, c.chunk = 64, c.D = 1;
  c.z = c.bias = c.h0 = c.seq = c.final = true;
  expect_thread_count_invariant([c](const V& in) { return both(run_ssd(c, in)); }, ssd_inputs(c, 80, false));
}

TEST(SsdOp, ErrorsNameTheTensors) {
  const char* op = "ssd_scan";
  Tensor x = Tensor::zeros({2, 7, 4, 3}), dt = Tensor::zeros({2, 7, 4}), A = Tensor::zeros({4});
  Tensor Bm = Tensor::zeros({2, 7, 2, 5});
  auto scan = [&](auto set) {
    SsdArgs a;
    set(a);
    ssd_scan(x, dt, A, Bm, Bm, a);
  };
  expect_error([&] { ssd_scan(Tensor::zeros({2, 7, 12}), dt, A, Bm, Bm); },
               {op, "x f32[2, 7, 12] cpu", "(B, L, H, P)"});
  expect_error([&] { ssd_scan(x, Tensor::zeros({2, 7, 3}), A, Bm, Bm); },
               {op, "dt f32[2, 7, 3] cpu", "x f32[2, 7, 4, 3] cpu", "(B, L, H) = [2, 7, 4]"});
  expect_error([&] { ssd_scan(x, dt, Tensor::zeros({3}), Bm, Bm); }, {op, "A f32[3] cpu", "(H)"});
  expect_error([&] { ssd_scan(x, dt, A, Tensor::zeros({2, 7, 3, 5}), Tensor::zeros({2, 7, 3, 5})); },
               {"ssd_scan: Bm f32[2, 7, 3, 5] cpu: G=3 does not divide H=4"});
  expect_error([&] { ssd_scan(x, dt, A, Tensor::zeros({2, 6, 2, 5}), Bm); }, {op, "Bm f32[2, 6, 2, 5] cpu"});
  expect_error([&] { ssd_scan(x, dt, A, Bm, Tensor::zeros({2, 7, 2, 4})); }, {op, "Cm f32[2, 7, 2, 4] cpu"});
  expect_error([&] { scan([](auto& a) { a.D = Tensor::zeros({3}); }); }, {op, "D f32[3] cpu", "(H) or (H, P)"});
  expect_error([&] { scan([](auto& a) { a.D = Tensor::zeros({4, 2}); }); }, {op, "D f32[4, 2] cpu", "(H, P) = [4, 3]"});
  expect_error([&] { scan([](auto& a) { a.z = Tensor::zeros({2, 7, 12}); }); },
               {op, "z f32[2, 7, 12] cpu", "(B, L, H, P)"});
  expect_error([&] { scan([](auto& a) { a.dt_bias = Tensor::zeros({2}); }); }, {op, "dt_bias f32[2] cpu"});
  expect_error([&] { scan([](auto& a) { a.dt_min = 0.2; a.dt_max = 0.1; }); },
               {op, "dt_min 0.2 must be <= dt_max 0.1"});
  expect_error([&] { scan([](auto& a) { a.h0 = Tensor::zeros({2, 4, 5, 3}); }); },
               {op, "h0 f32[2, 4, 5, 3] cpu", "[2, 4, 3, 5]"});
  expect_error([&] { scan([](auto& a) { a.seq_idx = Tensor::zeros({7, 2}, DType::i32); }); },
               {op, "seq_idx i32[7, 2] cpu"});
  expect_error([&] { scan([](auto& a) { a.chunk_size = 0; }); }, {op, "chunk_size 0"});
  expect_error([&] { ssd_scan(x, to(dt, DType::f64), A, Bm, Bm); }, {op, "dtype"});

  const char* step = "ssd_step";
  Tensor st = Tensor::zeros({2, 4, 3, 5}), xt = Tensor::zeros({2, 4, 3}), dtt = Tensor::zeros({2, 4});
  Tensor Bt = Tensor::zeros({2, 2, 5});
  expect_error([&] { ssd_step(Tensor::zeros({2, 4, 5, 3}), xt, dtt, A, Bt, Bt); },
               {step, "state f32[2, 4, 5, 3] cpu", "(B, H, P, N) = [2, 4, 3, 5]"});
  expect_error([&] { ssd_step(st, xt, Tensor::zeros({2, 4, 1}), A, Bt, Bt); }, {step, "dt", "(B, H)"});
  SsdArgs bad_D, with_seq;
  bad_D.D = Tensor::zeros({4, 5});
  with_seq.seq_idx = Tensor::zeros({2, 1}, DType::i32);
  expect_error([&] { ssd_step(st, xt, dtt, A, Bt, Bt, bad_D); }, {step, "D f32[4, 5] cpu"});
  expect_error([&] { ssd_step(st, xt, dtt, A, Bt, Bt, with_seq); },
               {step, "seq_idx"});
  Tensor xg = Tensor::zeros({2, 4, 3}).set_requires_grad(true);
  expect_error([&] { ssd_step(st, xg, dtt, A, Bt, Bt); }, {step, "NoGradGuard"});
  NoGradGuard ng;
  EXPECT_NO_THROW(ssd_step(st, xg, dtt, A, Bt, Bt));
}

}  // namespace
}  // namespace ssm
