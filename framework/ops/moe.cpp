#include "framework/ops/moe.h"

#include <cmath>
#include <limits>
#include <memory>

#include "framework/autograd/tape.h"
#include "framework/ops/dispatch.h"
#include "framework/ops/view.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/moe.h"

namespace ssm {
namespace {

// Everything the backward needs from one forward. The dispatch plan lists, for each expert,
// its (token, slot) pairs as consecutive "plan rows"; per-expert activations are stored in
// plan order so that each expert's block is a contiguous GEMM operand.
struct MoeSaved {
  int64_t T = 0, X = 0, K = 0, D = 0, F = 0;
  double aux_coef = 0.0, z_coef = 0.0;
  Tensor x, router_w, w_gate, w_up, w_down;  // contiguous inputs
  Tensor logits;                             // (T, X) router logits
  Tensor weights;                            // (T, K) routing weights
  Tensor gate_pre, up_pre;                   // (T*K, F) gate_e·x_t and up_e·x_t, plan order
  std::vector<int32_t> expert_index;         // (T, K)
  std::vector<int32_t> offsets;              // (X+1) plan rows of expert e: [offsets[e], offsets[e+1])
  std::vector<int32_t> token_index;          // (T*K) token of each plan row
  std::vector<int32_t> slot;                 // (T*K) which of its token's K choices a row is
  std::vector<int32_t> position;             // (T, K) plan row of (t, s)

  int64_t row0(int64_t e) const { return offsets[size_t(e)]; }
  int64_t rows(int64_t e) const { return offsets[size_t(e) + 1] - offsets[size_t(e)]; }
};

// Row-major C (M, N) = op(A) · op(B) + beta C, with op(A) (M, K), op(B) (K, N); a transposed
// operand is stored (K, M) / (N, K) with the given leading dimension.
template <class T>
void gemm(int64_t M, int64_t N, int64_t Kd, const T* a, int64_t lda, bool ta, const T* b, int64_t ldb, bool tb, T* c,
          int64_t ldc, double beta = 0.0) {
  kernels::GemmParams p;
  p.M = M;
  p.N = N;
  p.K = Kd;
  p.a = a;
  p.lda = lda;
  p.trans_a = ta;
  p.b = b;
  p.ldb = ldb;
  p.trans_b = tb;
  p.c = c;
  p.ldc = ldc;
  p.beta = beta;
  kernels::cpu::gemm<T>(p);
}

// dst (T*K, W) plan rows <- src rows (T, W) of each row's token.
template <class T>
void gather_rows(const MoeSaved& s, const T* src, int64_t W, T* dst) {
  const int64_t n = s.T * s.K;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    const T* in = src + int64_t(s.token_index[size_t(r)]) * W;
    std::copy(in, in + W, dst + r * W);
  }
}

// dst (T, W) <- sum over the token's slots, in slot order, of scale[t, s] * src[plan row].
// scale may be null (1). Fixed order per token: deterministic.
template <class T>
void combine_rows(const MoeSaved& s, const T* src, const T* scale, int64_t W, T* dst) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < s.T; ++t) {
    T* o = dst + t * W;
    std::fill(o, o + W, T(0));
    for (int64_t k = 0; k < s.K; ++k) {
      const T w = scale ? scale[t * s.K + k] : T(1);
      const T* in = src + int64_t(s.position[size_t(t * s.K + k)]) * W;
      for (int64_t j = 0; j < W; ++j) o[j] += w * in[j];
    }
  }
}

template <class T>
T sigmoid_scalar(T a) {
  return T(1) / (T(1) + std::exp(-a));
}

// ---- forward ---------------------------------------------------------------------------

template <class T>
void moe_forward(MoeSaved& s, MoeOutput& res) {
  const int64_t T_ = s.T, X = s.X, K = s.K, D = s.D, F = s.F, R = s.T * s.K;
  const size_t nRD = size_t(R * D), nRF = size_t(R * F);
  const T* x = s.x.data<T>();
  const T* w_gate = s.w_gate.data<T>();  // (X, F, D)
  const T* w_up = s.w_up.data<T>();      // (X, F, D)
  const T* w_down = s.w_down.data<T>();  // (X, D, F)
  T* logits = s.logits.data<T>();        // (T, X)
  gemm<T>(T_, X, D, x, D, false, s.router_w.data<T>(), D, true, logits, X);

  T balance = T(0), z = T(0);
  kernels::MoeRouteParams rp;
  rp.tokens = T_;
  rp.experts = X;
  rp.top_k = K;
  rp.logits_row_stride = X;
  rp.logits = logits;
  rp.weights = s.weights.data<T>();
  rp.expert_index = s.expert_index.data();
  rp.expert_offsets = s.offsets.data();
  rp.token_index = s.token_index.data();
  rp.slot = s.slot.data();
  rp.position = s.position.data();
  rp.aux_loss = &balance;
  rp.z_loss = &z;
  kernels::cpu::moe_route_fwd<T>(rp);

  std::vector<T> xp(nRD);  // (T*K, D) each expert's tokens, gathered
  gather_rows<T>(s, x, D, xp.data());
  T* gate_pre = s.gate_pre.data<T>();  // (T*K, F)
  T* up_pre = s.up_pre.data<T>();      // (T*K, F)
  for (int64_t e = 0; e < X; ++e) {
    const int64_t r0 = s.row0(e), n = s.rows(e);
    if (n == 0) continue;
    gemm<T>(n, F, D, xp.data() + r0 * D, D, false, w_gate + e * F * D, D, true, gate_pre + r0 * F, F);
    gemm<T>(n, F, D, xp.data() + r0 * D, D, false, w_up + e * F * D, D, true, up_pre + r0 * F, F);
  }
  std::vector<T> h(nRF);  // (T*K, F) silu(gate) ∘ up
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < R * F; ++i) h[size_t(i)] = gate_pre[i] * sigmoid_scalar(gate_pre[i]) * up_pre[i];
  std::vector<T> y(nRD);  // (T*K, D) expert outputs, unweighted
  for (int64_t e = 0; e < X; ++e) {
    const int64_t r0 = s.row0(e), n = s.rows(e);
    if (n == 0) continue;
    gemm<T>(n, D, F, h.data() + r0 * F, F, false, w_down + e * D * F, F, true, y.data() + r0 * D, D);
  }
  combine_rows<T>(s, y.data(), s.weights.data<T>(), D, res.out.data<T>());

  res.balance_loss = double(balance);
  res.z_loss = double(z);
  *res.aux_loss.data<T>() = T(s.aux_coef) * balance + T(s.z_coef) * z;
  res.counts.resize(size_t(X));
  for (int64_t e = 0; e < X; ++e) res.counts[size_t(e)] = s.rows(e);
}

// ---- backward --------------------------------------------------------------------------

struct MoeGrads {
  Tensor x, router_w, w_gate, w_up, w_down;
};

// With h = silu(a) ∘ b (a = gate·x, b = up·x), y = down·h, out_t = sum w y:
//   G     = dout_t · down_e            (F)  so that  dw = G·h  and  dh = w G
//   ddown += (dout_t)ᵀ (w h)           da = dh ∘ b ∘ silu'(a),  db = dh ∘ silu(a)
//   dgate += daᵀ x_t,  dup += dbᵀ x_t, dx_t += gateᵀ da + upᵀ db
// Then the router: dlogits from moe_route_bwd (dw, aux and z-loss), dx += dlogits·router_w,
// drouter = dlogitsᵀ x. Saving G instead of y avoids keeping the (T*K, D) expert outputs.
template <class T>
void moe_backward(const MoeSaved& s, const Tensor& dout, double d_aux_total, MoeGrads& g) {
  const int64_t T_ = s.T, X = s.X, K = s.K, D = s.D, F = s.F, R = s.T * s.K;
  const size_t nR = size_t(R), nRD = size_t(R * D), nRF = size_t(R * F), nTX = size_t(T_ * X);
  const T* x = s.x.data<T>();
  const T* w_gate = s.w_gate.data<T>();
  const T* w_up = s.w_up.data<T>();
  const T* w_down = s.w_down.data<T>();
  const T* gate_pre = s.gate_pre.data<T>();
  const T* up_pre = s.up_pre.data<T>();
  const T* weights = s.weights.data<T>();

  std::vector<T> dop(nRD);  // (T*K, D) dout of each plan row's token
  gather_rows<T>(s, dout.data<T>(), D, dop.data());
  std::vector<T> G(nRF);  // (T*K, F)
  for (int64_t e = 0; e < X; ++e) {
    const int64_t r0 = s.row0(e), n = s.rows(e);
    if (n == 0) continue;
    gemm<T>(n, F, D, dop.data() + r0 * D, D, false, w_down + e * D * F, F, false, G.data() + r0 * F, F);
  }

  std::vector<T> dweights(nR);               // (T, K)
  std::vector<T> hw(nRF), da(nRF), db(nRF);  // (T*K, F) each
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < R; ++r) {
    const int64_t tk = int64_t(s.token_index[size_t(r)]) * K + s.slot[size_t(r)];
    const T w = weights[tk];
    T dw = T(0);
    for (int64_t f = r * F; f < (r + 1) * F; ++f) {
      const T a = gate_pre[f], b = up_pre[f], sg = sigmoid_scalar(a), act = a * sg;
      const T dh = w * G[size_t(f)];
      dw += G[size_t(f)] * act * b;
      hw[size_t(f)] = w * act * b;
      da[size_t(f)] = dh * b * sg * (T(1) + a * (T(1) - sg));
      db[size_t(f)] = dh * act;
    }
    dweights[size_t(tk)] = dw;
  }

  std::vector<T> xp(nRD), dxp(nRD);  // (T*K, D) each
  gather_rows<T>(s, x, D, xp.data());
  T* dgate = g.w_gate.data<T>();  // (X, F, D), zero where an expert got no token
  T* dup = g.w_up.data<T>();
  T* ddown = g.w_down.data<T>();  // (X, D, F)
  for (int64_t e = 0; e < X; ++e) {
    const int64_t r0 = s.row0(e), n = s.rows(e);
    if (n == 0) continue;
    const T* dop_e = dop.data() + r0 * D;
    gemm<T>(D, F, n, dop_e, D, true, hw.data() + r0 * F, F, false, ddown + e * D * F, F);
    gemm<T>(F, D, n, da.data() + r0 * F, F, true, xp.data() + r0 * D, D, false, dgate + e * F * D, D);
    gemm<T>(F, D, n, db.data() + r0 * F, F, true, xp.data() + r0 * D, D, false, dup + e * F * D, D);
    T* dxp_e = dxp.data() + r0 * D;
    gemm<T>(n, D, F, da.data() + r0 * F, F, false, w_gate + e * F * D, D, false, dxp_e, D);
    gemm<T>(n, D, F, db.data() + r0 * F, F, false, w_up + e * F * D, D, false, dxp_e, D, /*beta=*/1.0);
  }
  T* dx = g.x.data<T>();  // (T, D)
  combine_rows<T>(s, dxp.data(), nullptr, D, dx);

  std::vector<T> dlogits(nTX);  // (T, X)
  const T d_aux = T(s.aux_coef * d_aux_total), d_z = T(s.z_coef * d_aux_total);
  kernels::MoeRouteBwdParams bp;
  bp.tokens = T_;
  bp.experts = X;
  bp.top_k = K;
  bp.logits_row_stride = X;
  bp.dlogits_row_stride = X;
  bp.logits = s.logits.data<T>();
  bp.expert_index = s.expert_index.data();
  bp.expert_offsets = s.offsets.data();
  bp.dweights = dweights.data();
  bp.d_aux_loss = &d_aux;
  bp.d_z_loss = &d_z;
  bp.dlogits = dlogits.data();
  kernels::cpu::moe_route_bwd<T>(bp);
  const T* router_w = s.router_w.data<T>();
  gemm<T>(T_, D, X, dlogits.data(), X, false, router_w, D, false, dx, D, /*beta=*/1.0);
  gemm<T>(X, D, T_, dlogits.data(), X, true, x, D, false, g.router_w.data<T>(), D);
}

void check_args(const Tensor& x, const Tensor& router_w, const Tensor& w_gate, const Tensor& w_up, const Tensor& w_down,
                int64_t top_k) {
  const char* name = "moe_ffn";
  ops_detail::check_same_device(name, {&x, &router_w, &w_gate, &w_up, &w_down});
  ops_detail::check_same_dtype(name, {&x, &router_w, &w_gate, &w_up, &w_down});
  ops_detail::check_float(name, x);
  SSM_CHECK(x.dim() == 2, "moe_ffn: x {} must be (T, D)", x.describe());
  const int64_t D = x.size(1);
  SSM_CHECK(router_w.dim() == 2 && router_w.size(1) == D && router_w.size(0) > 0,
            "moe_ffn: router_w {} must be (X, D) with X >= 1 and D = {} from x {}", router_w.describe(), D,
            x.describe());
  const int64_t X = router_w.size(0);
  SSM_CHECK(w_gate.dim() == 3 && w_gate.size(0) == X && w_gate.size(2) == D,
            "moe_ffn: w_gate {} must be (X, F, D) = ({}, F, {}) for router_w {}", w_gate.describe(), X, D,
            router_w.describe());
  const int64_t F = w_gate.size(1);
  SSM_CHECK(w_up.shape() == w_gate.shape(), "moe_ffn: w_up {} must have the shape of w_gate {} (X, F, D)",
            w_up.describe(), w_gate.describe());
  SSM_CHECK(w_down.dim() == 3 && w_down.size(0) == X && w_down.size(1) == D && w_down.size(2) == F,
            "moe_ffn: w_down {} must be (X, D, F) = ({}, {}, {}) for w_gate {}", w_down.describe(), X, D, F,
            w_gate.describe());
  SSM_CHECK(top_k >= 1 && top_k <= X, "moe_ffn: top_k = {} must be in [1, {}] (experts of router_w {})", top_k, X,
            router_w.describe());
  SSM_CHECK(x.size(0) * top_k <= std::numeric_limits<int32_t>::max(),
            "moe_ffn: {} tokens x top_k {} overflow the int32 dispatch plan (x {})", x.size(0), top_k, x.describe());
}

}  // namespace

MoeOutput moe_ffn(const Tensor& x, const Tensor& router_w, const Tensor& w_gate, const Tensor& w_up,
                  const Tensor& w_down, int64_t top_k, double aux_coef, double z_coef) {
  const char* name = "moe_ffn";
  check_args(x, router_w, w_gate, w_up, w_down, top_k);
  if (!x.device().is_cpu()) ops_detail::no_cuda_kernel(name, x);

  auto s = std::make_shared<MoeSaved>();
  s->T = x.size(0);
  s->D = x.size(1);
  s->X = router_w.size(0);
  s->F = w_gate.size(1);
  s->K = top_k;
  s->aux_coef = aux_coef;
  s->z_coef = z_coef;
  {
    NoGradGuard raw;
    s->x = contiguous(x);
    s->router_w = contiguous(router_w);
    s->w_gate = contiguous(w_gate);
    s->w_up = contiguous(w_up);
    s->w_down = contiguous(w_down);
  }
  const DType dt = x.dtype();
  const Device dev = x.device();
  const int64_t R = s->T * s->K;
  s->logits = Tensor::empty({s->T, s->X}, dt, dev);
  s->weights = Tensor::empty({s->T, s->K}, dt, dev);
  s->gate_pre = Tensor::empty({R, s->F}, dt, dev);
  s->up_pre = Tensor::empty({R, s->F}, dt, dev);
  s->expert_index.resize(size_t(R));
  s->offsets.resize(size_t(s->X + 1));
  s->token_index.resize(size_t(R));
  s->slot.resize(size_t(R));
  s->position.resize(size_t(R));

  MoeOutput res;
  res.out = Tensor::empty({s->T, s->D}, dt, dev);
  res.aux_loss = Tensor::empty({}, dt, dev);
  ops_detail::dispatch_float(name, dt, [&]<class T>() { moe_forward<T>(*s, res); });

  if (autograd::needs_grad({&x, &router_w, &w_gate, &w_up, &w_down})) {
    autograd::record(name, {&x, &router_w, &w_gate, &w_up, &w_down}, {&res.out, &res.aux_loss},
                     [s](autograd::BackwardCtx& g) {
                       Tensor dout;  // (T, D)
                       {
                         NoGradGuard raw;
                         dout = g.grad_out(0).defined() ? contiguous(g.grad_out(0))
                                                        : Tensor::zeros(s->x.shape(), s->x.dtype(), s->x.device());
                       }
                       const double d_aux = g.grad_out(1).defined() ? g.grad_out(1).item() : 0.0;
                       MoeGrads grads;
                       grads.x = Tensor::empty(s->x.shape(), s->x.dtype(), s->x.device());
                       grads.router_w = Tensor::empty(s->router_w.shape(), s->x.dtype(), s->x.device());
                       grads.w_gate = Tensor::zeros(s->w_gate.shape(), s->x.dtype(), s->x.device());
                       grads.w_up = Tensor::zeros(s->w_up.shape(), s->x.dtype(), s->x.device());
                       grads.w_down = Tensor::zeros(s->w_down.shape(), s->x.dtype(), s->x.device());
                       ops_detail::dispatch_float("moe_ffn_bwd", s->x.dtype(),
                                                  [&]<class T>() { moe_backward<T>(*s, dout, d_aux, grads); });
                       g.set(0, grads.x);
                       g.set(1, grads.router_w);
                       g.set(2, grads.w_gate);
                       g.set(3, grads.w_up);
                       g.set(4, grads.w_down);
                     });
  }
  return res;
}

}  // namespace ssm
