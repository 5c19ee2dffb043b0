#include "framework/nn/s4.h"

#include <cmath>

#include "framework/ops/ops.h"

namespace ssm::nn {
namespace {

// log dt ~ U(log dt_min, log dt_max)
Tensor log_dt_init(Init& init, int64_t n, double dt_min, double dt_max) {
  return init.uniform({n}, std::log(dt_min), std::log(dt_max));
}

// GELU, then a gated linear unit: (W y + b) split in halves a, g -> a * sigmoid(g).
Tensor gelu_glu(const Linear& out, const Tensor& y, int64_t d) {
  Tensor h = out.forward(gelu(y));  // (..., 2D)
  return mul(narrow(h, -1, 0, d), sigmoid(narrow(h, -1, d, d)));
}

Tensor glu_init(Init& init, int64_t d) { return default_linear_init(init, 2 * d, d); }

}  // namespace

// ---- S4D ------------------------------------------------------------------------------------

S4dMixer::S4dMixer(const config::ModelConfig& cfg, Init& init) : tp_(init.tp()) {
  SSM_CHECK(cfg.d_model % tp_.size == 0, "s4d: d_model {} is not divisible by tensor parallel size {}", cfg.d_model,
            tp_.size);
  complex_ = cfg.s4d_init != config::S4dInit::real;
  disc_ = cfg.discretization == config::Discretization::zoh ? S4Discretization::zoh : S4Discretization::bilinear;
  const int64_t H = cfg.d_model;
  // A complex mode stands for a conjugate pair: d_state real dimensions = d_state/2 modes.
  const int64_t N = complex_ ? std::max<int64_t>(1, cfg.d_state / 2) : cfg.d_state;
  d_model_ = H;
  local_ = H / tp_.size;
  modes_ = N;
  // Tensor parallel: the H independent channels are split across ranks (every per-channel
  // parameter on dim 0); the GLU output projection is row-parallel over them.
  const Partition ch{0, {}};
  log_dt_ = &add_param("log_dt", log_dt_init(init, H, cfg.dt_min, cfg.dt_max), init, ch, false);
  std::vector<double> are(static_cast<size_t>(H * N)), aim(static_cast<size_t>(H * N));
  for (int64_t h = 0; h < H; ++h)
    for (int64_t n = 0; n < N; ++n) {
      size_t i = size_t(h * N + n);
      switch (cfg.s4d_init) {
        case config::S4dInit::lin:  // A = -1/2 + i pi n
          are[i] = -0.5;
          aim[i] = M_PI * double(n);
          break;
        case config::S4dInit::inv:  // A = -1/2 + i N/pi (N/(2n+1) - 1)
          are[i] = -0.5;
          aim[i] = double(N) / M_PI * (double(N) / double(2 * n + 1) - 1.0);
          break;
        case config::S4dInit::real:  // A = -(n+1)
          are[i] = -double(n + 1);
          aim[i] = 0.0;
          break;
      }
    }
  std::vector<double> log_are(are.size());
  for (size_t i = 0; i < are.size(); ++i) log_are[i] = std::log(-are[i]);
  log_A_re_ = &add_param("log_A_real", init.from_values(log_are, {H, N}), init, ch, false);
  if (complex_) A_im_ = &add_param("A_imag", init.from_values(aim, {H, N}), init, ch, false);
  B_re_ = &add_param("B_re", init.constant({H, N}, 1.0), init, ch, false);
  if (complex_) B_im_ = &add_param("B_im", init.constant({H, N}, 0.0), init, ch, false);
  double c_std = complex_ ? std::sqrt(0.5) : 1.0;
  C_re_ = &add_param("C_re", init.normal({H, N}, c_std), init, ch);
  if (complex_) C_im_ = &add_param("C_im", init.normal({H, N}, c_std), init, ch);
  D_ = &add_param("D", init.normal({H}, 1.0), init, ch, false);
  out_ = &add_module("out", std::make_unique<Linear>(init, glu_init(init, H), init.constant({2 * H}, 0.0),
                                                     TpSplit::row));
}

// This rank's channels of a replicated (..., H) activation. The copy makes the backward
// sum the ranks' (disjoint) contributions to the gradient of x.
Tensor S4dMixer::local_channels(const Tensor& x) const {
  if (tp_.size == 1) return x;
  return narrow(tp_copy(x, tp_), -1, tp_.rank * local_, local_);
}

S4dWeights S4dMixer::weights(const Tensor& like) const {
  S4dWeights w;
  w.log_dt = compute_view(*log_dt_, like);
  w.A_re = neg(exp(compute_view(*log_A_re_, like)));
  w.B_re = compute_view(*B_re_, like);
  w.C_re = compute_view(*C_re_, like);
  if (complex_) {
    w.A_im = compute_view(*A_im_, like);
    w.B_im = compute_view(*B_im_, like);
    w.C_im = compute_view(*C_im_, like);
  }
  w.D = compute_view(*D_, like);
  w.complex = complex_;
  w.disc = disc_;
  return w;
}

Tensor S4dMixer::forward(const Tensor& x, MixerContext& ctx) {
  LayerState* st = ctx.state;
  Tensor h0_re = st && st->ssm.defined() ? st->ssm : Tensor();
  Tensor h0_im = st && st->ssm_im.defined() ? st->ssm_im : Tensor();
  S4Result r = s4d(transpose(local_channels(x), 1, 2), weights(x), h0_re, h0_im, ctx.want_state);  // (B, H, L)
  if (ctx.want_state && st) {
    st->ssm = r.final_state_re;
    st->ssm_im = r.final_state_im;
  }
  return gelu_glu(*out_, transpose(r.y, 1, 2), d_model_);
}

Tensor S4dMixer::step(const Tensor& x, LayerState& st) {
  NoGradGuard ng;
  int64_t B = x.shape()[0];
  if (!st.ssm.defined()) {
    st.ssm = Tensor::zeros({B, local_, modes_}, x.dtype(), x.device());
    st.ssm_im = Tensor::zeros({B, local_, modes_}, x.dtype(), x.device());
  }
  Tensor y = s4d_step(st.ssm, st.ssm_im, contiguous(local_channels(x)), weights(x));
  return gelu_glu(*out_, y, d_model_);
}

// ---- S5 -------------------------------------------------------------------------------------

S5Mixer::S5Mixer(const config::ModelConfig& cfg, Init& init) : tp_(init.tp()) {
  const int64_t H = cfg.d_model, P = cfg.d_state;
  SSM_CHECK(P % tp_.size == 0, "s5: d_state {} is not divisible by tensor parallel size {}", P, tp_.size);
  d_model_ = H;
  states_ = P / tp_.size;
  // Tensor parallel: the P diagonal states are split across ranks (Lambda, dt and B-tilde
  // rows, C-tilde columns); each rank's readout is a partial sum over its states, reduced
  // across ranks, and D u is added once after the reduction.
  const Partition st{0, {}}, cols{1, {}};
  // Lambda = -1/2 + i pi n: the S4D-Lin approximation of the HiPPO-N eigenvalues S5 uses.
  std::vector<double> im(static_cast<size_t>(P));
  for (int64_t n = 0; n < P; ++n) im[size_t(n)] = M_PI * double(n);
  log_lambda_re_ = &add_param("log_Lambda_re", init.constant({P}, std::log(0.5)), init, st, false);
  lambda_im_ = &add_param("Lambda_im", init.from_values(im, {P}), init, st, false);
  log_dt_ = &add_param("log_dt", log_dt_init(init, P, cfg.dt_min, cfg.dt_max), init, st, false);
  double b_std = 1.0 / std::sqrt(2.0 * double(H)), c_std = 1.0 / std::sqrt(2.0 * double(P));
  B_re_ = &add_param("B_re", init.normal({P, H}, b_std), init, st);
  B_im_ = &add_param("B_im", init.normal({P, H}, b_std), init, st);
  C_re_ = &add_param("C_re", init.normal({H, P}, c_std), init, cols);
  C_im_ = &add_param("C_im", init.normal({H, P}, c_std), init, cols);
  D_ = &add_param("D", init.normal({H}, 1.0), init, {}, false);
  out_ = &add_module("out", std::make_unique<Linear>(init, glu_init(init, H), init.constant({2 * H}, 0.0)));
}

S5Weights S5Mixer::weights(const Tensor& like) const {
  S5Weights w;
  w.lambda_re = neg(exp(compute_view(*log_lambda_re_, like)));
  w.lambda_im = compute_view(*lambda_im_, like);
  w.log_dt = compute_view(*log_dt_, like);
  w.B_re = compute_view(*B_re_, like);
  w.B_im = compute_view(*B_im_, like);
  w.C_re = compute_view(*C_re_, like);
  w.C_im = compute_view(*C_im_, like);
  w.D = compute_view(*D_, like);
  w.conj_sym = true;
  return w;
}

Tensor S5Mixer::forward(const Tensor& x, MixerContext& ctx) {
  LayerState* st = ctx.state;
  Tensor h0_re = st && st->ssm.defined() ? st->ssm : Tensor();
  Tensor h0_im = st && st->ssm_im.defined() ? st->ssm_im : Tensor();
  Tensor y;
  if (tp_.size == 1) {
    S4Result r = s5(x, weights(x), h0_re, h0_im, ctx.want_state);  // (B, L, H)
    y = r.y;
    if (ctx.want_state && st) {
      st->ssm = r.final_state_re;
      st->ssm_im = r.final_state_im;
    }
  } else {
    S5Weights w = weights(x);
    w.D = Tensor();  // added once, after the reduction
    S4Result r = s5(tp_copy(x, tp_), w, h0_re, h0_im, ctx.want_state);
    y = add(tp_reduce(r.y, tp_), mul(x, compute_view(*D_, x)));
    if (ctx.want_state && st) {
      st->ssm = r.final_state_re;
      st->ssm_im = r.final_state_im;
    }
  }
  return gelu_glu(*out_, y, d_model_);
}

Tensor S5Mixer::step(const Tensor& x, LayerState& st) {
  NoGradGuard ng;
  int64_t B = x.shape()[0];
  if (!st.ssm.defined()) {
    st.ssm = Tensor::zeros({B, states_}, x.dtype(), x.device());
    st.ssm_im = Tensor::zeros({B, states_}, x.dtype(), x.device());
  }
  Tensor y;
  if (tp_.size == 1) {
    y = s5_step(st.ssm, st.ssm_im, x, weights(x));
  } else {
    S5Weights w = weights(x);
    w.D = Tensor();
    y = add(tp_reduce(s5_step(st.ssm, st.ssm_im, x, w), tp_), mul(x, compute_view(*D_, x)));
  }
  return gelu_glu(*out_, y, d_model_);
}

}  // namespace ssm::nn
