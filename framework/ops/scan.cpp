#include "framework/ops/scan.h"

#include <algorithm>
#include <array>
#include <numeric>
#include <vector>

#include "framework/autograd/tape.h"
#include "framework/ops/dispatch.h"
#include "kernels/common/selective_scan_params.h"
#include "kernels/common/ssd_params.h"
#include "kernels/cpu/selective_scan.h"
#include "kernels/cpu/ssd.h"

namespace ssm {
namespace {

// Steps between two states saved for the Mamba-1 backward. The saved states cost
// B·E·N·L/64 values, a quarter of u's size at N = 16, and the backward recomputes at most 64
// steps per (batch, channel) from each of them.
constexpr int64_t kSelectiveScanChunk = 64;

Tensor detached(const Tensor& t) { return t.defined() ? t.detach() : Tensor(); }

// Element strides of t, one per axis, into a kernel Params stride array of the same rank.
template <size_t K>
void set_strides(const Tensor& t, int64_t (&dst)[K]) {
  for (size_t i = 0; i < K; ++i) dst[i] = t.stride(int(i));
}

// The kernels keep their state (and the saved chunk states) in scan_acc_t<T>: float for
// float, double for double.
DType acc_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }

// A dense gradient buffer with t's shape whose memory order follows t's strides: the gradient
// of a transposed view of a (B, L, E) activation is itself laid out (B, L, E), so the view's
// backward hands a contiguous tensor on instead of forcing a copy further down.
Tensor empty_grad_like(const Tensor& t) {
  const int rank = t.dim();
  std::vector<int> order(static_cast<size_t>(rank));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return t.stride(a) > t.stride(b); });
  Dims shape;
  std::vector<int> inverse(static_cast<size_t>(rank));
  for (int i = 0; i < rank; ++i) {
    shape.push_back(t.shape()[order[size_t(i)]]);
    inverse[size_t(order[size_t(i)])] = i;
  }
  return Tensor::empty(shape, t.dtype(), t.device()).permute(inverse);
}

// `ref` builds the description of the tensors the expected sizes come from, only on failure.
template <class Ref>
void check_shape(const char* op, const char* name, const Tensor& t, const Dims& want, const char* axes, Ref&& ref) {
  if (t.defined() && t.shape() != want)
    SSM_FAIL("{}: {} {} does not match {} (expected {} = {})", op, name, t.describe(), ref(), axes, want.str());
}

void check_rank(const char* op, const char* name, const Tensor& t, int rank, const char* axes) {
  SSM_CHECK(t.defined(), "{}: {} must be defined", op, name);
  SSM_CHECK(t.dim() == rank, "{}: {} {} must be {}", op, name, t.describe(), axes);
}

void check_seq_idx(const char* op, const Tensor& seq, int64_t B, int64_t L, const Tensor& ref, const char* ref_name) {
  if (!seq.defined()) return;
  SSM_CHECK(seq.dtype() == DType::i32, "{}: seq_idx {} must be i32", op, seq.describe());
  check_shape(op, "seq_idx", seq, Dims{B, L}, "(B, L)",
              [&] { return fmt::format("{} {}", ref_name, ref.describe()); });
}

// A state updated in place must own each of its elements: a broadcast (stride 0) view would
// have several (b, e) rows racing on one location.
void check_writable_state(const char* op, const Tensor& state) {
  for (int d = 0; d < state.dim(); ++d)
    SSM_CHECK(state.shape()[d] <= 1 || state.stride(d) != 0,
              "{}: state {} is a broadcast view; it is updated in place and needs its own memory", op,
              state.describe());
}

}  // namespace

// ---- selective_scan (Mamba-1) -------------------------------------------------------------

namespace {

struct ScanShape {
  int64_t B, E, L, N, G;
};

ScanShape check_selective_scan(const char* op, const Tensor& u, const Tensor& delta, const Tensor& A,
                               const Tensor& Bm, const Tensor& Cm, const SelectiveScanArgs& a) {
  check_rank(op, "u", u, 3, "(B, E, L)");
  check_rank(op, "delta", delta, 3, "(B, E, L)");
  check_rank(op, "A", A, 2, "(E, N)");
  check_rank(op, "Bm", Bm, 4, "(B, G, N, L)");
  check_rank(op, "Cm", Cm, 4, "(B, G, N, L)");
  ScanShape s{u.shape()[0], u.shape()[1], u.shape()[2], A.shape()[1], Bm.shape()[1]};
  auto from_u = [&] { return fmt::format("u {}", u.describe()); };
  auto from_u_a = [&] { return fmt::format("u {} and A {}", u.describe(), A.describe()); };
  check_shape(op, "delta", delta, Dims{s.B, s.E, s.L}, "(B, E, L)", from_u);
  SSM_CHECK(A.shape()[0] == s.E, "{}: A {} does not match u {} (expected (E, N) with E = {})", op, A.describe(),
            u.describe(), s.E);
  SSM_CHECK(s.G >= 1 && s.E % s.G == 0, "{}: Bm {}: G={} does not divide E={}", op, Bm.describe(), s.G, s.E);
  check_shape(op, "Bm", Bm, Dims{s.B, s.G, s.N, s.L}, "(B, G, N, L)", from_u_a);
  check_shape(op, "Cm", Cm, Dims{s.B, s.G, s.N, s.L}, "(B, G, N, L)",
              [&] { return fmt::format("u {}, A {} and Bm {}", u.describe(), A.describe(), Bm.describe()); });
  check_shape(op, "D", a.D, Dims{s.E}, "(E)", from_u);
  check_shape(op, "delta_bias", a.delta_bias, Dims{s.E}, "(E)", from_u);
  check_shape(op, "z", a.z, Dims{s.B, s.E, s.L}, "(B, E, L)", from_u);
  check_shape(op, "h0", a.h0, Dims{s.B, s.E, s.N}, "(B, E, N)", from_u_a);
  check_seq_idx(op, a.seq_idx, s.B, s.L, u, "u");
  ops_detail::check_float(op, u);
  ops_detail::check_same_dtype(op, {&u, &delta, &A, &Bm, &Cm, &a.D, &a.z, &a.delta_bias, &a.h0});
  ops_detail::check_same_device(op, {&u, &delta, &A, &Bm, &Cm, &a.D, &a.z, &a.delta_bias, &a.h0, &a.seq_idx});
  return s;
}

}  // namespace

ScanResult selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm, const Tensor& Cm,
                          const SelectiveScanArgs& args) {
  const char* op = "selective_scan";
  const ScanShape s = check_selective_scan(op, u, delta, A, Bm, Cm, args);
  if (!u.device().is_cpu()) ops_detail::no_cuda_kernel(op, u);
  const bool grad = autograd::needs_grad({&u, &delta, &A, &Bm, &Cm, &args.D, &args.z, &args.delta_bias, &args.h0});

  kernels::SelectiveScanParams p;
  p.batch = s.B;
  p.dim = s.E;
  p.seqlen = s.L;
  p.dstate = s.N;
  p.n_groups = s.G;
  p.chunk_len = kSelectiveScanChunk;
  p.delta_softplus = args.delta_softplus;
  p.u = u.raw_data();                  set_strides(u, p.u_stride);
  p.delta = delta.raw_data();          set_strides(delta, p.delta_stride);
  p.A = A.raw_data();                  set_strides(A, p.A_stride);
  p.Bm = Bm.raw_data();                set_strides(Bm, p.Bm_stride);
  p.Cm = Cm.raw_data();                set_strides(Cm, p.Cm_stride);
  if (args.D.defined()) p.D = args.D.raw_data(), p.D_stride = args.D.stride(0);
  if (args.z.defined()) p.z = args.z.raw_data(), set_strides(args.z, p.z_stride);
  if (args.delta_bias.defined())
    p.delta_bias = args.delta_bias.raw_data(), p.delta_bias_stride = args.delta_bias.stride(0);
  if (args.h0.defined()) p.h0 = args.h0.raw_data(), set_strides(args.h0, p.h0_stride);
  if (args.seq_idx.defined()) p.seq_idx = args.seq_idx.data<int32_t>(), set_strides(args.seq_idx, p.seq_idx_stride);

  ScanResult out;
  out.y = Tensor::empty(Dims{s.B, s.E, s.L}, u.dtype(), u.device());
  p.out = out.y.raw_data();
  set_strides(out.y, p.out_stride);
  if (args.return_final_state) {
    out.final_state = Tensor::empty(Dims{s.B, s.E, s.N}, u.dtype(), u.device());
    p.hT = out.final_state.raw_data();
    set_strides(out.final_state, p.hT_stride);
  }
  // Only the chunk-boundary states are kept for the backward, which recomputes the rest.
  Tensor states;
  if (grad) {
    states = Tensor::empty(Dims{s.B, s.E, p.n_chunks(), s.N}, acc_dtype(u.dtype()), u.device());
    p.chunk_states = states.raw_data();
  }
  ops_detail::dispatch_float(op, u.dtype(), [&]<class T>() { kernels::cpu::selective_scan_fwd<T>(p); });

  if (grad) {
    // The detached inputs keep every pointer in `fp` valid until the backward ran.
    const std::array<Tensor, 10> keep = {detached(u),      detached(delta),  detached(A),
                                         detached(Bm),     detached(Cm),     detached(args.D),
                                         detached(args.z), detached(args.delta_bias), detached(args.h0),
                                         args.seq_idx};
    kernels::SelectiveScanParams fp = p;
    fp.out = nullptr;
    fp.hT = nullptr;
    autograd::record(
        op, {&u, &delta, &A, &Bm, &Cm, &args.D, &args.z, &args.delta_bias, &args.h0}, {&out.y, &out.final_state},
        [op, fp, keep, states](autograd::BackwardCtx& g) {
          kernels::SelectiveScanBwdParams b;
          static_cast<kernels::SelectiveScanParams&>(b) = fp;
          const Tensor& dy = g.grad_out(0);
          b.dout = dy.raw_data();
          set_strides(dy, b.dout_stride);
          const Tensor& dfin = g.grad_out(1);
          if (dfin.defined()) b.dhT = dfin.raw_data(), set_strides(dfin, b.dhT_stride);
          // Gradients are written by the kernel (not accumulated), into fresh buffers.
          std::array<Tensor, 9> d;
          for (int i = 0; i < 9; ++i)
            if (g.needs(i)) d[size_t(i)] = empty_grad_like(keep[size_t(i)]);
          if (d[0].defined()) b.du = d[0].raw_data(), set_strides(d[0], b.du_stride);
          if (d[1].defined()) b.ddelta = d[1].raw_data(), set_strides(d[1], b.ddelta_stride);
          if (d[2].defined()) b.dA = d[2].raw_data(), set_strides(d[2], b.dA_stride);
          if (d[3].defined()) b.dBm = d[3].raw_data(), set_strides(d[3], b.dBm_stride);
          if (d[4].defined()) b.dCm = d[4].raw_data(), set_strides(d[4], b.dCm_stride);
          if (d[5].defined()) b.dD = d[5].raw_data(), b.dD_stride = d[5].stride(0);
          if (d[6].defined()) b.dz = d[6].raw_data(), set_strides(d[6], b.dz_stride);
          if (d[7].defined()) b.ddelta_bias = d[7].raw_data(), b.ddelta_bias_stride = d[7].stride(0);
          if (d[8].defined()) b.dh0 = d[8].raw_data(), set_strides(d[8], b.dh0_stride);
          ops_detail::dispatch_float(op, keep[0].dtype(), [&]<class T>() { kernels::cpu::selective_scan_bwd<T>(b); });
          for (int i = 0; i < 9; ++i) g.set(i, d[size_t(i)]);
        });
  }
  return out;
}

// ---- selective_scan_step --------------------------------------------------------------------

Tensor selective_scan_step(const Tensor& state, const Tensor& u, const Tensor& delta, const Tensor& A,
                           const Tensor& Bm, const Tensor& Cm, const SelectiveScanArgs& args) {
  const char* op = "selective_scan_step";
  check_rank(op, "state", state, 3, "(B, E, N)");
  check_rank(op, "u", u, 2, "(B, E)");
  check_rank(op, "delta", delta, 2, "(B, E)");
  check_rank(op, "A", A, 2, "(E, N)");
  check_rank(op, "Bm", Bm, 3, "(B, G, N)");
  check_rank(op, "Cm", Cm, 3, "(B, G, N)");
  const int64_t B = u.shape()[0], E = u.shape()[1], N = A.shape()[1], G = Bm.shape()[1];
  auto from_u = [&] { return fmt::format("u {}", u.describe()); };
  auto from_u_a = [&] { return fmt::format("u {} and A {}", u.describe(), A.describe()); };
  check_shape(op, "delta", delta, Dims{B, E}, "(B, E)", from_u);
  SSM_CHECK(A.shape()[0] == E, "{}: A {} does not match u {} (expected (E, N) with E = {})", op, A.describe(),
            u.describe(), E);
  check_shape(op, "state", state, Dims{B, E, N}, "(B, E, N)", from_u_a);
  SSM_CHECK(G >= 1 && E % G == 0, "{}: Bm {}: G={} does not divide E={}", op, Bm.describe(), G, E);
  check_shape(op, "Bm", Bm, Dims{B, G, N}, "(B, G, N)", from_u_a);
  check_shape(op, "Cm", Cm, Dims{B, G, N}, "(B, G, N)", from_u_a);
  check_shape(op, "D", args.D, Dims{E}, "(E)", from_u);
  check_shape(op, "delta_bias", args.delta_bias, Dims{E}, "(E)", from_u);
  check_shape(op, "z", args.z, Dims{B, E}, "(B, E)", from_u);
  SSM_CHECK(!args.h0.defined() && !args.seq_idx.defined() && !args.return_final_state,
            "{}: h0, seq_idx and return_final_state do not apply to a step (the state argument is the initial and "
            "final state)", op);
  ops_detail::check_float(op, u);
  ops_detail::check_same_dtype(op, {&state, &u, &delta, &A, &Bm, &Cm, &args.D, &args.z, &args.delta_bias});
  ops_detail::check_same_device(op, {&state, &u, &delta, &A, &Bm, &Cm, &args.D, &args.z, &args.delta_bias});
  check_writable_state(op, state);
  // The state is updated in place, so this op cannot take part in a graph; refusing is
  // clearer than handing back a silently detached result.
  SSM_CHECK(!autograd::needs_grad({&state, &u, &delta, &A, &Bm, &Cm, &args.D, &args.z, &args.delta_bias}),
            "{}: inputs require grad; the step is inference-only, call it under NoGradGuard", op);
  if (!u.device().is_cpu()) ops_detail::no_cuda_kernel(op, u);

  Tensor y = Tensor::empty(Dims{B, E}, u.dtype(), u.device());
  kernels::SelectiveScanStepParams p;
  p.batch = B;
  p.dim = E;
  p.dstate = N;
  p.n_groups = G;
  p.delta_softplus = args.delta_softplus;
  p.state = state.raw_data();          set_strides(state, p.state_stride);
  p.u = u.raw_data();                  set_strides(u, p.u_stride);
  p.delta = delta.raw_data();          set_strides(delta, p.delta_stride);
  p.A = A.raw_data();                  set_strides(A, p.A_stride);
  p.Bm = Bm.raw_data();                set_strides(Bm, p.Bm_stride);
  p.Cm = Cm.raw_data();                set_strides(Cm, p.Cm_stride);
  if (args.D.defined()) p.D = args.D.raw_data(), p.D_stride = args.D.stride(0);
  if (args.z.defined()) p.z = args.z.raw_data(), set_strides(args.z, p.z_stride);
  if (args.delta_bias.defined())
    p.delta_bias = args.delta_bias.raw_data(), p.delta_bias_stride = args.delta_bias.stride(0);
  p.out = y.raw_data();
  set_strides(y, p.out_stride);
  ops_detail::dispatch_float(op, u.dtype(), [&]<class T>() { kernels::cpu::selective_scan_step<T>(p); });
  return y;
}

// ---- ssd_scan (Mamba-2) ---------------------------------------------------------------------

namespace {

struct SsdShape {
  int64_t B, L, H, P, G, N;
};

// The checks shared by ssd_scan and ssd_step on the per-head arguments (D, dt_bias, dt range).
void check_ssd_head_args(const char* op, const SsdArgs& a, int64_t H, int64_t P, const Tensor& x) {
  auto from_x = [&] { return fmt::format("x {}", x.describe()); };
  if (a.D.defined() && a.D.dim() == 2)
    check_shape(op, "D", a.D, Dims{H, P}, "(H, P)", from_x);
  else
    check_shape(op, "D", a.D, Dims{H}, "(H) or (H, P)", from_x);
  check_shape(op, "dt_bias", a.dt_bias, Dims{H}, "(H)", from_x);
  SSM_CHECK(a.dt_min <= a.dt_max, "{}: dt_min {} must be <= dt_max {}", op, a.dt_min, a.dt_max);
}

SsdShape check_ssd(const char* op, const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                   const Tensor& Cm, const SsdArgs& a) {
  check_rank(op, "x", x, 4, "(B, L, H, P)");
  check_rank(op, "dt", dt, 3, "(B, L, H)");
  check_rank(op, "A", A, 1, "(H)");
  check_rank(op, "Bm", Bm, 4, "(B, L, G, N)");
  check_rank(op, "Cm", Cm, 4, "(B, L, G, N)");
  SsdShape s{x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3], Bm.shape()[2], Bm.shape()[3]};
  auto from_x = [&] { return fmt::format("x {}", x.describe()); };
  auto from_x_b = [&] { return fmt::format("x {} and Bm {}", x.describe(), Bm.describe()); };
  check_shape(op, "dt", dt, Dims{s.B, s.L, s.H}, "(B, L, H)", from_x);
  check_shape(op, "A", A, Dims{s.H}, "(H)", from_x);
  SSM_CHECK(s.G >= 1 && s.H % s.G == 0, "{}: Bm {}: G={} does not divide H={}", op, Bm.describe(), s.G, s.H);
  check_shape(op, "Bm", Bm, Dims{s.B, s.L, s.G, s.N}, "(B, L, G, N)", from_x);
  check_shape(op, "Cm", Cm, Dims{s.B, s.L, s.G, s.N}, "(B, L, G, N)", from_x_b);
  check_ssd_head_args(op, a, s.H, s.P, x);
  check_shape(op, "z", a.z, Dims{s.B, s.L, s.H, s.P}, "(B, L, H, P)", from_x);
  check_shape(op, "h0", a.h0, Dims{s.B, s.H, s.P, s.N}, "(B, H, P, N)", from_x_b);
  check_seq_idx(op, a.seq_idx, s.B, s.L, x, "x");
  SSM_CHECK(a.chunk_size >= 1, "{}: chunk_size {} must be >= 1", op, a.chunk_size);
  ops_detail::check_float(op, x);
  ops_detail::check_same_dtype(op, {&x, &dt, &A, &Bm, &Cm, &a.D, &a.z, &a.dt_bias, &a.h0});
  ops_detail::check_same_device(op, {&x, &dt, &A, &Bm, &Cm, &a.D, &a.z, &a.dt_bias, &a.h0, &a.seq_idx});
  return s;
}

// D (H) or (H, P) (and its gradient) as the kernels address it: two strides, the second unused
// for (H).
void set_D_strides(const Tensor& D, int64_t (&stride)[2]) {
  stride[0] = D.stride(0);
  stride[1] = D.dim() == 2 ? D.stride(1) : 0;
}

}  // namespace

ScanResult ssd_scan(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm, const Tensor& Cm,
                    const SsdArgs& args) {
  const char* op = "ssd_scan";
  const SsdShape s = check_ssd(op, x, dt, A, Bm, Cm, args);
  if (!x.device().is_cpu()) ops_detail::no_cuda_kernel(op, x);
  const bool grad = autograd::needs_grad({&x, &dt, &A, &Bm, &Cm, &args.D, &args.z, &args.dt_bias, &args.h0});

  kernels::SsdParams p;
  p.batch = s.B;
  p.seqlen = s.L;
  p.nheads = s.H;
  p.headdim = s.P;
  p.n_groups = s.G;
  p.dstate = s.N;
  p.chunk_size = args.chunk_size;
  p.dt_softplus = args.dt_softplus;
  p.dt_min = args.dt_min;
  p.dt_max = args.dt_max;
  p.x = x.raw_data();                  set_strides(x, p.x_stride);
  p.dt = dt.raw_data();                set_strides(dt, p.dt_stride);
  p.A = A.raw_data();                  p.A_stride = A.stride(0);
  p.Bm = Bm.raw_data();                set_strides(Bm, p.Bm_stride);
  p.Cm = Cm.raw_data();                set_strides(Cm, p.Cm_stride);
  if (args.D.defined()) {
    p.D = args.D.raw_data();
    p.D_has_hdim = args.D.dim() == 2;
    set_D_strides(args.D, p.D_stride);
  }
  if (args.z.defined()) p.z = args.z.raw_data(), set_strides(args.z, p.z_stride);
  if (args.dt_bias.defined()) p.dt_bias = args.dt_bias.raw_data(), p.dt_bias_stride = args.dt_bias.stride(0);
  if (args.h0.defined()) p.h0 = args.h0.raw_data(), set_strides(args.h0, p.h0_stride);
  if (args.seq_idx.defined()) p.seq_idx = args.seq_idx.data<int32_t>(), set_strides(args.seq_idx, p.seq_idx_stride);

  ScanResult out;
  out.y = Tensor::empty(Dims{s.B, s.L, s.H, s.P}, x.dtype(), x.device());
  p.out = out.y.raw_data();
  set_strides(out.y, p.out_stride);
  if (args.return_final_state) {
    out.final_state = Tensor::empty(Dims{s.B, s.H, s.P, s.N}, x.dtype(), x.device());
    p.hT = out.final_state.raw_data();
    set_strides(out.final_state, p.hT_stride);
  }
  Tensor states;
  if (grad) {
    states = Tensor::empty(Dims{s.B, p.n_chunks(), s.H, s.P, s.N}, acc_dtype(x.dtype()), x.device());
    p.chunk_states = states.raw_data();
  }
  // On a CPU the plain recurrence is the faster forward (O(L P N) against the chunked form's
  // extra O(L C (P + N)): measured 8 ms against 105 ms for L = 1024, H = 8, P = N = 64,
  // C = 256 on one core, float) and it saves the same chunk states; the chunked ssd_fwd is the
  // algorithm of the GPU kernels, checked equal to it in the kernel tests.
  ops_detail::dispatch_float(op, x.dtype(), [&]<class T>() { kernels::cpu::ssd_fwd_sequential<T>(p); });

  if (grad) {
    const std::array<Tensor, 10> keep = {detached(x),      detached(dt),     detached(A),
                                         detached(Bm),     detached(Cm),     detached(args.D),
                                         detached(args.z), detached(args.dt_bias), detached(args.h0),
                                         args.seq_idx};
    kernels::SsdParams fp = p;
    fp.out = nullptr;
    fp.hT = nullptr;
    autograd::record(
        op, {&x, &dt, &A, &Bm, &Cm, &args.D, &args.z, &args.dt_bias, &args.h0}, {&out.y, &out.final_state},
        [op, fp, keep, states](autograd::BackwardCtx& g) {
          kernels::SsdBwdParams b;
          static_cast<kernels::SsdParams&>(b) = fp;
          const Tensor& dy = g.grad_out(0);
          b.dout = dy.raw_data();
          set_strides(dy, b.dout_stride);
          const Tensor& dfin = g.grad_out(1);
          if (dfin.defined()) b.dhT = dfin.raw_data(), set_strides(dfin, b.dhT_stride);
          std::array<Tensor, 9> d;
          for (int i = 0; i < 9; ++i)
            if (g.needs(i)) d[size_t(i)] = empty_grad_like(keep[size_t(i)]);
          if (d[0].defined()) b.dx = d[0].raw_data(), set_strides(d[0], b.dx_stride);
          if (d[1].defined()) b.ddt = d[1].raw_data(), set_strides(d[1], b.ddt_stride);
          if (d[2].defined()) b.dA = d[2].raw_data(), b.dA_stride = d[2].stride(0);
          if (d[3].defined()) b.dBm = d[3].raw_data(), set_strides(d[3], b.dBm_stride);
          if (d[4].defined()) b.dCm = d[4].raw_data(), set_strides(d[4], b.dCm_stride);
          if (d[5].defined()) b.dD = d[5].raw_data(), set_D_strides(d[5], b.dD_stride);
          if (d[6].defined()) b.dz = d[6].raw_data(), set_strides(d[6], b.dz_stride);
          if (d[7].defined()) b.ddt_bias = d[7].raw_data(), b.ddt_bias_stride = d[7].stride(0);
          if (d[8].defined()) b.dh0 = d[8].raw_data(), set_strides(d[8], b.dh0_stride);
          ops_detail::dispatch_float(op, keep[0].dtype(), [&]<class T>() { kernels::cpu::ssd_bwd<T>(b); });
          for (int i = 0; i < 9; ++i) g.set(i, d[size_t(i)]);
        });
  }
  return out;
}

// ---- ssd_step -------------------------------------------------------------------------------

Tensor ssd_step(const Tensor& state, const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                const Tensor& Cm, const SsdArgs& args) {
  const char* op = "ssd_step";
  check_rank(op, "state", state, 4, "(B, H, P, N)");
  check_rank(op, "x", x, 3, "(B, H, P)");
  check_rank(op, "dt", dt, 2, "(B, H)");
  check_rank(op, "A", A, 1, "(H)");
  check_rank(op, "Bm", Bm, 3, "(B, G, N)");
  check_rank(op, "Cm", Cm, 3, "(B, G, N)");
  const int64_t B = x.shape()[0], H = x.shape()[1], P = x.shape()[2], G = Bm.shape()[1], N = Bm.shape()[2];
  auto from_x = [&] { return fmt::format("x {}", x.describe()); };
  auto from_x_b = [&] { return fmt::format("x {} and Bm {}", x.describe(), Bm.describe()); };
  check_shape(op, "dt", dt, Dims{B, H}, "(B, H)", from_x);
  check_shape(op, "A", A, Dims{H}, "(H)", from_x);
  SSM_CHECK(G >= 1 && H % G == 0, "{}: Bm {}: G={} does not divide H={}", op, Bm.describe(), G, H);
  check_shape(op, "Bm", Bm, Dims{B, G, N}, "(B, G, N)", from_x);
  check_shape(op, "Cm", Cm, Dims{B, G, N}, "(B, G, N)", from_x_b);
  check_shape(op, "state", state, Dims{B, H, P, N}, "(B, H, P, N)", from_x_b);
  check_ssd_head_args(op, args, H, P, x);
  check_shape(op, "z", args.z, Dims{B, H, P}, "(B, H, P)", from_x);
  SSM_CHECK(!args.h0.defined() && !args.seq_idx.defined() && !args.return_final_state,
            "{}: h0, seq_idx and return_final_state do not apply to a step (the state argument is the initial and "
            "final state)", op);
  ops_detail::check_float(op, x);
  ops_detail::check_same_dtype(op, {&state, &x, &dt, &A, &Bm, &Cm, &args.D, &args.z, &args.dt_bias});
  ops_detail::check_same_device(op, {&state, &x, &dt, &A, &Bm, &Cm, &args.D, &args.z, &args.dt_bias});
  check_writable_state(op, state);
  SSM_CHECK(!autograd::needs_grad({&state, &x, &dt, &A, &Bm, &Cm, &args.D, &args.z, &args.dt_bias}),
            "{}: inputs require grad; the step is inference-only, call it under NoGradGuard", op);
  if (!x.device().is_cpu()) ops_detail::no_cuda_kernel(op, x);

  Tensor y = Tensor::empty(Dims{B, H, P}, x.dtype(), x.device());
  kernels::SsdStepParams p;
  p.batch = B;
  p.nheads = H;
  p.headdim = P;
  p.n_groups = G;
  p.dstate = N;
  p.dt_softplus = args.dt_softplus;
  p.dt_min = args.dt_min;
  p.dt_max = args.dt_max;
  p.state = state.raw_data();          set_strides(state, p.state_stride);
  p.x = x.raw_data();                  set_strides(x, p.x_stride);
  p.dt = dt.raw_data();                set_strides(dt, p.dt_stride);
  p.A = A.raw_data();                  p.A_stride = A.stride(0);
  p.Bm = Bm.raw_data();                set_strides(Bm, p.Bm_stride);
  p.Cm = Cm.raw_data();                set_strides(Cm, p.Cm_stride);
  if (args.D.defined()) {
    p.D = args.D.raw_data();
    p.D_has_hdim = args.D.dim() == 2;
    set_D_strides(args.D, p.D_stride);
  }
  if (args.z.defined()) p.z = args.z.raw_data(), set_strides(args.z, p.z_stride);
  if (args.dt_bias.defined()) p.dt_bias = args.dt_bias.raw_data(), p.dt_bias_stride = args.dt_bias.stride(0);
  p.out = y.raw_data();
  set_strides(y, p.out_stride);
  ops_detail::dispatch_float(op, x.dtype(), [&]<class T>() { kernels::cpu::ssd_step<T>(p); });
  return y;
}

}  // namespace ssm
