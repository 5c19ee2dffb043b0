#include "framework/nn/mamba.h"

#include <cmath>

#include "framework/ops/ops.h"

namespace ssm::nn {

Tensor dt_bias_init(Init& init, int64_t n, double dt_min, double dt_max, double floor) {
  Tensor u = init.uniform({n}, 0.0, 1.0);
  std::vector<double> v = u.to_vector();
  for (double& x : v) {
    double dt = std::exp(x * (std::log(dt_max) - std::log(dt_min)) + std::log(dt_min));
    dt = std::max(dt, floor);
    x = dt + std::log(-std::expm1(-dt));  // inverse of softplus
  }
  return init.from_values(v, {n});
}

MambaMixer::MambaMixer(const config::ModelConfig& cfg, Init& init, bool bcdt_norm) : tp_(init.tp()) {
  const int tp = init.tp().size;
  const int64_t D = cfg.d_model, E = cfg.d_inner(), N = cfg.d_state, R = cfg.resolved_dt_rank(), K = cfg.d_conv;
  SSM_CHECK(E % tp == 0, "mamba: d_inner {} is not divisible by tensor parallel size {}", E, tp);
  d_model_ = D;
  d_inner_ = E / tp;
  d_state_ = N;
  dt_rank_ = R;
  d_conv_ = K;
  norm_eps_ = cfg.norm_eps;

  in_proj_ = &add_module("in_proj", std::make_unique<Linear>(init, default_linear_init(init, 2 * E, D),
                                                             cfg.proj_bias ? init.constant({2 * E}, 0.0) : Tensor(),
                                                             TpSplit::column,
                                                             std::vector<Segment>{{"x", E}, {"z", E}}));
  double conv_bound = 1.0 / std::sqrt(double(K));
  conv_w_ = &add_param("conv1d.weight", init.uniform({E, 1, K}, -conv_bound, conv_bound), init, {0, {}});
  if (cfg.conv_bias)
    conv_b_ = &add_param("conv1d.bias", init.uniform({E}, -conv_bound, conv_bound), init, {0, {}}, false);
  x_proj_ = &add_module("x_proj",
                        std::make_unique<Linear>(init, default_linear_init(init, R + 2 * N, E), Tensor(), TpSplit::row));
  // dt_proj: weight U(±R^-0.5), bias = softplus⁻¹(dt) (mamba_ssm's dt_init="random").
  double dt_std = std::pow(double(R), -0.5);
  Tensor dt_w = init.uniform({E, R}, -dt_std, dt_std);
  Tensor dt_b = dt_bias_init(init, E, cfg.dt_min, cfg.dt_max, cfg.dt_init_floor);
  dt_proj_ = &add_module("dt_proj", std::make_unique<Linear>(init, dt_w, dt_b, TpSplit::column));
  std::vector<double> a(static_cast<size_t>(E * N));
  for (int64_t e = 0; e < E; ++e)
    for (int64_t n = 0; n < N; ++n) a[size_t(e * N + n)] = std::log(double(n + 1));
  A_log_ = &add_param("A_log", init.from_values(a, {E, N}), init, {0, {}}, false);
  D_ = &add_param("D", init.constant({E}, 1.0), init, {0, {}}, false);
  Tensor out_w = default_linear_init(init, D, E);
  if (cfg.rescale_prenorm_residual) {
    NoGradGuard ng;
    out_w = mul(out_w, 1.0 / std::sqrt(double(cfg.n_layers)));
  }
  out_proj_ = &add_module("out_proj", std::make_unique<Linear>(init, out_w, cfg.proj_bias ? init.constant({D}, 0.0) : Tensor(), TpSplit::row));
  if (bcdt_norm) {
    dt_norm_ = &add_module("dt_layernorm", std::make_unique<RmsNorm>(init, R, cfg.norm_eps));
    b_norm_ = &add_module("b_layernorm", std::make_unique<RmsNorm>(init, N, cfg.norm_eps));
    c_norm_ = &add_module("c_layernorm", std::make_unique<RmsNorm>(init, N, cfg.norm_eps));
  }
}

Tensor MambaMixer::forward(const Tensor& x, MixerContext& ctx) {
  const int64_t E = d_inner_, N = d_state_, R = dt_rank_, K = d_conv_;
  Tensor xz = in_proj_->forward(x);                        // (B, L, 2E)
  Tensor xs = transpose(narrow(xz, -1, 0, E), 1, 2);       // (B, E, L) view
  Tensor z = transpose(narrow(xz, -1, E, E), 1, 2);        // (B, E, L) view
  LayerState* st = ctx.state;
  Conv1dArgs ca;
  ca.bias = conv_b_ ? compute_view(*conv_b_, x) : Tensor();
  ca.silu = true;
  ca.seq_idx = ctx.seq_idx;
  if (st && st->conv.defined()) ca.initial_state = st->conv;
  ca.return_final_state = ctx.want_state;
  ConvResult conv = causal_conv1d(xs, reshape(compute_view(*conv_w_, x), {E, K}), ca);
  Tensor xc = conv.y;                                      // (B, E, L)
  Tensor x_dbl = x_proj_->forward(transpose(xc, 1, 2));    // (B, L, R + 2N)
  Tensor dt = narrow(x_dbl, -1, 0, R);
  Tensor Bm = narrow(x_dbl, -1, R, N);
  Tensor Cm = narrow(x_dbl, -1, R + N, N);
  if (dt_norm_) {
    dt = dt_norm_->forward(dt);
    Bm = b_norm_->forward(Bm);
    Cm = c_norm_->forward(Cm);
  }
  // Replicated from here on, feeding this rank's channels only.
  dt = tp_copy(dt, tp_);
  Bm = tp_copy(Bm, tp_);
  Cm = tp_copy(Cm, tp_);
  Tensor delta = matmul(dt, compute_view(dt_proj_->weight(), x), false, true);  // (B, L, E), bias in the scan
  SelectiveScanArgs sa;
  sa.delta_bias = compute_view(*dt_proj_->bias(), x);
  sa.delta_softplus = true;
  sa.D = compute_view(*D_, x);
  sa.z = z;
  sa.seq_idx = ctx.seq_idx;
  if (st && st->ssm.defined()) sa.h0 = st->ssm;
  sa.return_final_state = ctx.want_state;
  Tensor A = neg(exp(A_log_->value));
  ScanResult scan = selective_scan(xc, transpose(delta, 1, 2), A, unsqueeze(transpose(Bm, 1, 2), 1),
                                   unsqueeze(transpose(Cm, 1, 2), 1), sa);
  if (ctx.want_state && st) {
    st->conv = conv.final_state;
    st->ssm = scan.final_state;
  }
  return out_proj_->forward(transpose(scan.y, 1, 2));     // (B, L, D)
}

Tensor MambaMixer::step(const Tensor& x, LayerState& st) {
  NoGradGuard ng;
  const int64_t E = d_inner_, N = d_state_, R = dt_rank_, K = d_conv_;
  int64_t B = x.shape()[0];
  Tensor xz = in_proj_->forward(x);  // (B, 2E)
  Tensor xs = contiguous(narrow(xz, -1, 0, E));
  Tensor z = contiguous(narrow(xz, -1, E, E));
  Tensor xc = conv_step(st, xs, reshape(compute_view(*conv_w_, x), {E, K}),
                        conv_b_ ? compute_view(*conv_b_, x) : Tensor(), true);  // (B, E)
  Tensor x_dbl = x_proj_->forward(xc);  // (B, R + 2N)
  Tensor dt = narrow(x_dbl, -1, 0, R), Bm = narrow(x_dbl, -1, R, N), Cm = narrow(x_dbl, -1, R + N, N);
  if (dt_norm_) {
    dt = dt_norm_->forward(dt);
    Bm = b_norm_->forward(Bm);
    Cm = c_norm_->forward(Cm);
  }
  Tensor delta = matmul(dt, compute_view(dt_proj_->weight(), x), false, true);  // (B, E)
  if (!st.ssm.defined()) st.ssm = Tensor::zeros({B, E, N}, x.dtype(), x.device());
  SelectiveScanArgs sa;
  sa.delta_bias = compute_view(*dt_proj_->bias(), x);
  sa.delta_softplus = true;
  sa.D = compute_view(*D_, x);
  sa.z = z;
  Tensor A = neg(exp(A_log_->value));
  Tensor y = selective_scan_step(st.ssm, xc, delta, A, contiguous(unsqueeze(Bm, 1)), contiguous(unsqueeze(Cm, 1)), sa);
  return out_proj_->forward(y);
}

}  // namespace ssm::nn
