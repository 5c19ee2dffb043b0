#include "framework/ops/s4.h"

#include "framework/autograd/tape.h"
#include "framework/ops/dispatch.h"
#include "framework/ops/view.h"
#include "kernels/common/s4d_params.h"
#include "kernels/common/s5_params.h"
#include "kernels/cpu/s4d.h"
#include "kernels/cpu/s5.h"

namespace ssm {
namespace {

using ops_detail::check_shape;
using ops_detail::contiguous_raw;

void check_defined(const char* op, const char* what, const Tensor& t) {
  SSM_CHECK(t.defined(), "{}: {} must be defined", op, what);
}

// The kernels keep complex states as (..., N, 2) with (re, im) adjacent; the API carries them
// as two real tensors of shape `shape` (..., N). An undefined half is zero.
Tensor pack_state(const Tensor& re, const Tensor& im, const Dims& shape, DType dt, Device dev) {
  Dims packed_shape = shape;
  packed_shape.push_back(2);
  Tensor packed = Tensor::zeros(packed_shape, dt, dev);
  const int last = packed_shape.size() - 1;
  if (re.defined()) copy_(packed.select(last, 0), re.detach());
  if (im.defined()) copy_(packed.select(last, 1), im.detach());
  return packed;
}

struct StatePair {
  Tensor re, im;  // (..., N) contiguous
};
StatePair unpack_state(const Tensor& packed) {
  const int last = packed.dim() - 1;
  NoGradGuard raw;
  return {contiguous(packed.select(last, 0)), contiguous(packed.select(last, 1))};
}

kernels::Discretization to_kernel(S4Discretization d) {
  return d == S4Discretization::zoh ? kernels::Discretization::zoh : kernels::Discretization::bilinear;
}

// The step ops update state in place and cannot be part of a graph.
void check_inference_only(const char* op, const std::vector<Tensor>& ts) {
  SSM_CHECK(!autograd::needs_grad(ts), "{}: inputs require grad; the step is inference-only, call it under NoGradGuard",
            op);
}

// ---- S4D argument checks, shared by s4d and s4d_step ----------------------------------------

// The weights as the kernel reads them: contiguous, imaginary planes dropped in the real mode.
struct S4dPrepared {
  int64_t H = 0, N = 0;
  Tensor log_dt, A_re, A_im, B_re, B_im, C_re, C_im, D;  // contiguous
  kernels::S4dWeights kw() const {
    kernels::S4dWeights k;
    k.log_dt = log_dt.raw_data();
    k.A_re = A_re.raw_data();
    k.B_re = B_re.raw_data();
    k.C_re = C_re.raw_data();
    if (A_im.defined()) k.A_im = A_im.raw_data();
    if (B_im.defined()) k.B_im = B_im.raw_data();
    if (C_im.defined()) k.C_im = C_im.raw_data();
    if (D.defined()) k.D = D.raw_data();
    return k;
  }
};

// u is (B, H, L) for s4d and (B, H) for s4d_step; H is u's dim 1 either way.
S4dWeights s4d_check(const char* op, const Tensor& u, const S4dWeights& w) {
  check_defined(op, "log_dt", w.log_dt);
  check_defined(op, "A_re", w.A_re);
  check_defined(op, "B_re", w.B_re);
  check_defined(op, "C_re", w.C_re);
  SSM_CHECK(w.A_re.dim() == 2, "{}: A_re {} must be (H, N)", op, w.A_re.describe());
  const int64_t H = u.shape()[1], N = w.A_re.shape()[1];
  S4dWeights v = w;
  if (!w.complex) v.A_im = v.B_im = v.C_im = Tensor();  // S4D-Real: not read
  check_shape(op, "log_dt", v.log_dt, Dims{H}, u, "u", "(H)");
  const std::pair<const char*, const Tensor*> planes[] = {{"A_re", &v.A_re}, {"A_im", &v.A_im}, {"B_re", &v.B_re},
                                                          {"B_im", &v.B_im}, {"C_re", &v.C_re}, {"C_im", &v.C_im}};
  for (const auto& [name, t] : planes) {
    if (w.complex) check_defined(op, fmt::format("{} (complex S4D)", name).c_str(), *t);
    if (t->defined()) check_shape(op, name, *t, Dims{H, N}, u, "u", "(H, N)");
  }
  if (v.D.defined()) check_shape(op, "D", v.D, Dims{H}, u, "u", "(H)");
  ops_detail::check_float(op, u);
  ops_detail::check_same_dtype(op, {&u, &v.log_dt, &v.A_re, &v.A_im, &v.B_re, &v.B_im, &v.C_re, &v.C_im, &v.D});
  ops_detail::check_same_device(op, {&u, &v.log_dt, &v.A_re, &v.A_im, &v.B_re, &v.B_im, &v.C_re, &v.C_im, &v.D});
  return v;
}

S4dPrepared s4d_prepare(const S4dWeights& v, int64_t H) {
  S4dPrepared s;
  s.H = H;
  s.N = v.A_re.shape()[1];
  s.log_dt = contiguous_raw(v.log_dt);
  s.A_re = contiguous_raw(v.A_re);
  s.A_im = contiguous_raw(v.A_im);
  s.B_re = contiguous_raw(v.B_re);
  s.B_im = contiguous_raw(v.B_im);
  s.C_re = contiguous_raw(v.C_re);
  s.C_im = contiguous_raw(v.C_im);
  s.D = contiguous_raw(v.D);
  return s;
}

}  // namespace

// ---- s4d ------------------------------------------------------------------------------------

S4Result s4d(const Tensor& u, const S4dWeights& w_in, const Tensor& h0_re, const Tensor& h0_im,
             bool return_final_state) {
  const char* op = "s4d";
  SSM_CHECK(u.defined() && u.dim() == 3, "{}: u {} must be (B, H, L)", op, u.defined() ? u.describe() : "undefined");
  const S4dWeights w = s4d_check(op, u, w_in);
  const int64_t B = u.shape()[0], H = u.shape()[1], L = u.shape()[2], N = w.A_re.shape()[1];
  for (const auto& [name, t] : {std::pair{"h0_re", &h0_re}, std::pair{"h0_im", &h0_im}}) {
    if (!t->defined()) continue;
    check_shape(op, name, *t, Dims{B, H, N}, u, "u", "(B, H, N)");
    ops_detail::check_same_dtype(op, {&u, t});
    ops_detail::check_same_device(op, {&u, t});
  }
  if (!u.device().is_cpu()) ops_detail::no_cuda_kernel(op, u);

  const S4dPrepared s = s4d_prepare(w, H);
  const DType dt = u.dtype();
  const Device dev = u.device();
  const Dims state_shape{B, H, N};
  const Tensor h0 = h0_re.defined() || h0_im.defined() ? pack_state(h0_re, h0_im, state_shape, dt, dev) : Tensor();
  S4Result out;
  out.y = Tensor::empty(Dims{B, H, L}, dt, dev);
  Tensor hT;
  if (return_final_state) hT = Tensor::empty(Dims{B, H, N, 2}, dt, dev);

  kernels::S4dParams p;
  p.batch = B;
  p.dim = H;
  p.seqlen = L;
  p.dstate = N;
  p.is_real = !w.complex;
  p.disc = to_kernel(w.disc);
  p.w = s.kw();
  p.u = u.raw_data();
  p.u_batch_stride = u.stride(0);
  p.u_h_stride = u.stride(1);
  p.u_l_stride = u.stride(2);
  p.y = out.y.raw_data();
  p.y_batch_stride = H * L;
  p.y_h_stride = L;
  p.y_l_stride = 1;
  if (h0.defined()) {
    p.h0 = h0.raw_data();
    p.h0_batch_stride = H * N * 2;
    p.h0_h_stride = N * 2;
  }
  if (hT.defined()) {
    p.hT = hT.raw_data();
    p.hT_batch_stride = H * N * 2;
    p.hT_h_stride = N * 2;
  }
  ops_detail::dispatch_float(op, dt, [&]<class T>() { kernels::cpu::s4d_fwd<T>(p); });
  if (hT.defined()) {
    StatePair fs = unpack_state(hT);
    out.final_state_re = fs.re;
    out.final_state_im = fs.im;
  }

  if (autograd::needs_grad({&u, &w.log_dt, &w.A_re, &w.A_im, &w.B_re, &w.B_im, &w.C_re, &w.C_im, &w.D, &h0_re,
                            &h0_im})) {
    // Everything p points to stays alive in the captures: u (detached), the prepared weights
    // and the packed h0. The backward recomputes the states from them.
    kernels::S4dParams fp = p;
    fp.y = nullptr;
    fp.hT = nullptr;
    const Tensor us = u.detach();
    autograd::record(
        op, {&u, &w.log_dt, &w.A_re, &w.A_im, &w.B_re, &w.B_im, &w.C_re, &w.C_im, &w.D, &h0_re, &h0_im},
        {&out.y, &out.final_state_re, &out.final_state_im},
        [op, fp, us, s, h0, state_shape](autograd::BackwardCtx& g) {
          const int64_t B = fp.batch, H = fp.dim, L = fp.seqlen, N = fp.dstate;
          const DType dt = us.dtype();
          const Device dev = us.device();
          kernels::S4dBwdParams b;
          static_cast<kernels::S4dParams&>(b) = fp;
          const Tensor& dy = g.grad_out(0);
          b.dy = dy.raw_data();
          b.dy_batch_stride = dy.stride(0);
          b.dy_h_stride = dy.stride(1);
          b.dy_l_stride = dy.stride(2);
          const Tensor& dfr = g.grad_out(1);
          const Tensor& dfi = g.grad_out(2);
          Tensor dhT;
          if (dfr.defined() || dfi.defined()) {
            dhT = pack_state(dfr, dfi, state_shape, dt, dev);
            b.dhT = dhT.raw_data();
            b.dhT_batch_stride = H * N * 2;
            b.dhT_h_stride = N * 2;
          }
          Tensor du, dh0;
          if (g.needs(0)) {
            du = Tensor::empty(Dims{B, H, L}, dt, dev);
            b.du = du.raw_data();
            b.du_batch_stride = H * L;
            b.du_h_stride = L;
            b.du_l_stride = 1;
          }
          // Weight gradients, in the order of the recorded inputs 1..8.
          Tensor dw[8];
          void** slots[8] = {&b.g.dlog_dt, &b.g.dA_re, &b.g.dA_im, &b.g.dB_re,
                             &b.g.dB_im,   &b.g.dC_re, &b.g.dC_im, &b.g.dD};
          for (int i = 0; i < 8; ++i) {
            if (!g.needs(i + 1)) continue;
            const bool per_channel = i == 0 || i == 7;  // log_dt, D
            dw[i] = Tensor::empty(per_channel ? Dims{H} : Dims{H, N}, dt, dev);
            *slots[i] = dw[i].raw_data();
          }
          if (g.needs(9) || g.needs(10)) {
            dh0 = Tensor::empty(Dims{B, H, N, 2}, dt, dev);
            b.dh0 = dh0.raw_data();
            b.dh0_batch_stride = H * N * 2;
            b.dh0_h_stride = N * 2;
          }
          ops_detail::dispatch_float(op, dt, [&]<class T>() { kernels::cpu::s4d_bwd<T>(b); });
          g.set(0, du);
          for (int i = 0; i < 8; ++i) g.set(i + 1, dw[i]);
          if (dh0.defined()) {
            StatePair d = unpack_state(dh0);
            g.set(9, d.re);
            g.set(10, d.im);
          }
        });
  }
  return out;
}

// ---- s4d_step -------------------------------------------------------------------------------

Tensor s4d_step(const Tensor& state_re, const Tensor& state_im, const Tensor& u, const S4dWeights& w_in) {
  const char* op = "s4d_step";
  SSM_CHECK(u.defined() && u.dim() == 2, "{}: u {} must be (B, H)", op, u.defined() ? u.describe() : "undefined");
  const S4dWeights w = s4d_check(op, u, w_in);
  const int64_t B = u.shape()[0], H = u.shape()[1], N = w.A_re.shape()[1];
  check_defined(op, "state_re", state_re);
  // S4D-Real states stay real (abar, bbar real): the imaginary half may be left out.
  if (w.complex) check_defined(op, "state_im (complex S4D)", state_im);
  for (const auto& [name, t] : {std::pair{"state_re", &state_re}, std::pair{"state_im", &state_im}}) {
    if (!t->defined()) continue;
    check_shape(op, name, *t, Dims{B, H, N}, u, "u", "(B, H, N)");
    ops_detail::check_same_dtype(op, {&u, t});
    ops_detail::check_same_device(op, {&u, t});
  }
  check_inference_only(op, {state_re, state_im, u, w.log_dt, w.A_re, w.A_im, w.B_re, w.B_im, w.C_re, w.C_im, w.D});
  if (!u.device().is_cpu()) ops_detail::no_cuda_kernel(op, u);

  const S4dPrepared s = s4d_prepare(w, H);
  const DType dt = u.dtype();
  const Tensor state = pack_state(state_re, state_im, Dims{B, H, N}, dt, u.device());
  Tensor y = Tensor::empty(Dims{B, H}, dt, u.device());
  kernels::S4dStepParams p;
  p.batch = B;
  p.dim = H;
  p.dstate = N;
  p.is_real = !w.complex;
  p.disc = to_kernel(w.disc);
  p.w = s.kw();
  p.u = u.raw_data();
  p.u_batch_stride = u.stride(0);
  p.u_h_stride = u.stride(1);
  p.y = y.raw_data();
  p.y_batch_stride = H;
  p.y_h_stride = 1;
  p.state = state.raw_data();
  p.state_batch_stride = H * N * 2;
  p.state_h_stride = N * 2;
  ops_detail::dispatch_float(op, dt, [&]<class T>() { kernels::cpu::s4d_step<T>(p); });
  copy_(state_re, state.select(3, 0));
  if (state_im.defined()) copy_(state_im, state.select(3, 1));
  return y;
}

// ---- S5 -------------------------------------------------------------------------------------

namespace {

struct S5Prepared {
  Tensor lambda_re, lambda_im, log_dt, B_re, B_im, C_re, C_im, D;  // contiguous
  kernels::S5Weights kw() const {
    kernels::S5Weights k;
    k.Lambda_re = lambda_re.raw_data();
    k.Lambda_im = lambda_im.raw_data();
    k.log_dt = log_dt.raw_data();
    k.B_re = B_re.raw_data();
    k.B_im = B_im.raw_data();
    k.C_re = C_re.raw_data();
    k.C_im = C_im.raw_data();
    if (D.defined()) k.D = D.raw_data();
    return k;
  }
};

// H is u's last dim: u is (B, L, H) for s5 and (B, H) for s5_step.
S5Prepared s5_prepare(const char* op, const Tensor& u, const S5Weights& w) {
  check_defined(op, "lambda_re", w.lambda_re);
  SSM_CHECK(w.lambda_re.dim() == 1, "{}: lambda_re {} must be (P)", op, w.lambda_re.describe());
  const int64_t H = u.shape()[u.dim() - 1], P = w.lambda_re.shape()[0];
  const std::pair<const char*, const Tensor*> per_state[] = {{"lambda_im", &w.lambda_im}, {"log_dt", &w.log_dt}};
  for (const auto& [name, t] : per_state) {
    check_defined(op, name, *t);
    check_shape(op, name, *t, Dims{P}, w.lambda_re, "lambda_re", "(P)");
  }
  for (const auto& [name, t] : {std::pair{"B_re", &w.B_re}, std::pair{"B_im", &w.B_im}}) {
    check_defined(op, name, *t);
    SSM_CHECK(t->shape() == (Dims{P, H}), "{}: {} {} must be (P, H) = {} for lambda_re {} and u {}", op, name,
              t->describe(), Dims{P, H}.str(), w.lambda_re.describe(), u.describe());
  }
  for (const auto& [name, t] : {std::pair{"C_re", &w.C_re}, std::pair{"C_im", &w.C_im}}) {
    check_defined(op, name, *t);
    SSM_CHECK(t->shape() == (Dims{H, P}), "{}: {} {} must be (H, P) = {} for lambda_re {} and u {}", op, name,
              t->describe(), Dims{H, P}.str(), w.lambda_re.describe(), u.describe());
  }
  if (w.D.defined()) check_shape(op, "D", w.D, Dims{H}, u, "u", "(H)");
  ops_detail::check_float(op, u);
  ops_detail::check_same_dtype(op, {&u, &w.lambda_re, &w.lambda_im, &w.log_dt, &w.B_re, &w.B_im, &w.C_re, &w.C_im,
                                    &w.D});
  ops_detail::check_same_device(op, {&u, &w.lambda_re, &w.lambda_im, &w.log_dt, &w.B_re, &w.B_im, &w.C_re,
                                     &w.C_im, &w.D});
  S5Prepared s;
  s.lambda_re = contiguous_raw(w.lambda_re);
  s.lambda_im = contiguous_raw(w.lambda_im);
  s.log_dt = contiguous_raw(w.log_dt);
  s.B_re = contiguous_raw(w.B_re);
  s.B_im = contiguous_raw(w.B_im);
  s.C_re = contiguous_raw(w.C_re);
  s.C_im = contiguous_raw(w.C_im);
  s.D = contiguous_raw(w.D);
  return s;
}

}  // namespace

// ---- s5 -------------------------------------------------------------------------------------

S4Result s5(const Tensor& u, const S5Weights& w, const Tensor& h0_re, const Tensor& h0_im,
            bool return_final_state) {
  const char* op = "s5";
  SSM_CHECK(u.defined() && u.dim() == 3, "{}: u {} must be (B, L, H)", op, u.defined() ? u.describe() : "undefined");
  const S5Prepared s = s5_prepare(op, u, w);
  const int64_t B = u.shape()[0], L = u.shape()[1], H = u.shape()[2], P = w.lambda_re.shape()[0];
  for (const auto& [name, t] : {std::pair{"h0_re", &h0_re}, std::pair{"h0_im", &h0_im}}) {
    if (!t->defined()) continue;
    check_shape(op, name, *t, Dims{B, P}, u, "u", "(B, P)");
    ops_detail::check_same_dtype(op, {&u, t});
    ops_detail::check_same_device(op, {&u, t});
  }
  if (!u.device().is_cpu()) ops_detail::no_cuda_kernel(op, u);

  const DType dt = u.dtype();
  const Device dev = u.device();
  const Dims state_shape{B, P};
  const Tensor h0 = h0_re.defined() || h0_im.defined() ? pack_state(h0_re, h0_im, state_shape, dt, dev) : Tensor();
  S4Result out;
  out.y = Tensor::empty(Dims{B, L, H}, dt, dev);
  Tensor hT;
  if (return_final_state) hT = Tensor::empty(Dims{B, P, 2}, dt, dev);

  kernels::S5Params p;
  p.batch = B;
  p.seqlen = L;
  p.dim = H;
  p.dstate = P;
  p.conj_sym = w.conj_sym;
  p.disc = to_kernel(w.disc);
  p.w = s.kw();
  p.u = u.raw_data();
  p.u_batch_stride = u.stride(0);
  p.u_l_stride = u.stride(1);
  p.u_h_stride = u.stride(2);
  p.y = out.y.raw_data();
  p.y_batch_stride = L * H;
  p.y_l_stride = H;
  p.y_h_stride = 1;
  if (h0.defined()) {
    p.h0 = h0.raw_data();
    p.h0_batch_stride = P * 2;
  }
  if (hT.defined()) {
    p.hT = hT.raw_data();
    p.hT_batch_stride = P * 2;
  }
  ops_detail::dispatch_float(op, dt, [&]<class T>() { kernels::cpu::s5_fwd<T>(p); });
  if (hT.defined()) {
    StatePair fs = unpack_state(hT);
    out.final_state_re = fs.re;
    out.final_state_im = fs.im;
  }

  if (autograd::needs_grad({&u, &w.lambda_re, &w.lambda_im, &w.log_dt, &w.B_re, &w.B_im, &w.C_re, &w.C_im, &w.D,
                            &h0_re, &h0_im})) {
    kernels::S5Params fp = p;
    fp.y = nullptr;
    fp.hT = nullptr;
    const Tensor us = u.detach();
    autograd::record(
        op, {&u, &w.lambda_re, &w.lambda_im, &w.log_dt, &w.B_re, &w.B_im, &w.C_re, &w.C_im, &w.D, &h0_re, &h0_im},
        {&out.y, &out.final_state_re, &out.final_state_im},
        [op, fp, us, s, h0, state_shape](autograd::BackwardCtx& g) {
          const int64_t B = fp.batch, L = fp.seqlen, H = fp.dim, P = fp.dstate;
          const DType dt = us.dtype();
          const Device dev = us.device();
          kernels::S5BwdParams b;
          static_cast<kernels::S5Params&>(b) = fp;
          const Tensor& dy = g.grad_out(0);
          b.dy = dy.raw_data();
          b.dy_batch_stride = dy.stride(0);
          b.dy_l_stride = dy.stride(1);
          b.dy_h_stride = dy.stride(2);
          const Tensor& dfr = g.grad_out(1);
          const Tensor& dfi = g.grad_out(2);
          Tensor dhT;
          if (dfr.defined() || dfi.defined()) {
            dhT = pack_state(dfr, dfi, state_shape, dt, dev);
            b.dhT = dhT.raw_data();
            b.dhT_batch_stride = P * 2;
          }
          Tensor du, dh0;
          if (g.needs(0)) {
            du = Tensor::empty(Dims{B, L, H}, dt, dev);
            b.du = du.raw_data();
            b.du_batch_stride = L * H;
            b.du_l_stride = H;
            b.du_h_stride = 1;
          }
          // Weight gradients, in the order of the recorded inputs 1..8.
          const Dims shapes[8] = {Dims{P}, Dims{P}, Dims{P}, Dims{P, H}, Dims{P, H}, Dims{H, P}, Dims{H, P}, Dims{H}};
          void** slots[8] = {&b.g.dLambda_re, &b.g.dLambda_im, &b.g.dlog_dt, &b.g.dB_re,
                             &b.g.dB_im,      &b.g.dC_re,      &b.g.dC_im,   &b.g.dD};
          Tensor dw[8];
          for (int i = 0; i < 8; ++i) {
            if (!g.needs(i + 1)) continue;
            dw[i] = Tensor::empty(shapes[i], dt, dev);
            *slots[i] = dw[i].raw_data();
          }
          if (g.needs(9) || g.needs(10)) {
            dh0 = Tensor::empty(Dims{B, P, 2}, dt, dev);
            b.dh0 = dh0.raw_data();
            b.dh0_batch_stride = P * 2;
          }
          ops_detail::dispatch_float(op, dt, [&]<class T>() { kernels::cpu::s5_bwd<T>(b); });
          g.set(0, du);
          for (int i = 0; i < 8; ++i) g.set(i + 1, dw[i]);
          if (dh0.defined()) {
            StatePair d = unpack_state(dh0);
            g.set(9, d.re);
            g.set(10, d.im);
          }
        });
  }
  return out;
}

// ---- s5_step --------------------------------------------------------------------------------

Tensor s5_step(const Tensor& state_re, const Tensor& state_im, const Tensor& u, const S5Weights& w) {
  const char* op = "s5_step";
  SSM_CHECK(u.defined() && u.dim() == 2, "{}: u {} must be (B, H)", op, u.defined() ? u.describe() : "undefined");
  const S5Prepared s = s5_prepare(op, u, w);
  const int64_t B = u.shape()[0], H = u.shape()[1], P = w.lambda_re.shape()[0];
  for (const auto& [name, t] : {std::pair{"state_re", &state_re}, std::pair{"state_im", &state_im}}) {
    check_defined(op, name, *t);
    check_shape(op, name, *t, Dims{B, P}, u, "u", "(B, P)");
    ops_detail::check_same_dtype(op, {&u, t});
    ops_detail::check_same_device(op, {&u, t});
  }
  check_inference_only(op, {state_re, state_im, u, w.lambda_re, w.lambda_im, w.log_dt, w.B_re, w.B_im, w.C_re,
                            w.C_im, w.D});
  if (!u.device().is_cpu()) ops_detail::no_cuda_kernel(op, u);

  const DType dt = u.dtype();
  const Tensor state = pack_state(state_re, state_im, Dims{B, P}, dt, u.device());
  Tensor y = Tensor::empty(Dims{B, H}, dt, u.device());
  kernels::S5StepParams p;
  p.batch = B;
  p.dim = H;
  p.dstate = P;
  p.conj_sym = w.conj_sym;
  p.disc = to_kernel(w.disc);
  p.w = s.kw();
  p.u = u.raw_data();
  p.u_batch_stride = u.stride(0);
  p.u_h_stride = u.stride(1);
  p.y = y.raw_data();
  p.y_batch_stride = H;
  p.y_h_stride = 1;
  p.state = state.raw_data();
  p.state_batch_stride = P * 2;
  ops_detail::dispatch_float(op, dt, [&]<class T>() { kernels::cpu::s5_step<T>(p); });
  copy_(state_re, state.select(2, 0));
  copy_(state_im, state.select(2, 1));
  return y;
}

}  // namespace ssm
