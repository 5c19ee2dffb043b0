#include "framework/nn/mamba2.h"

#include <cmath>

#include "framework/nn/mamba.h"
#include "framework/ops/ops.h"

namespace ssm::nn {

Mamba2Mixer::Mamba2Mixer(const config::ModelConfig& cfg, Init& init) {
  const int tp = init.tp().size;
  const int64_t D = cfg.d_model, E = cfg.d_inner(), P = cfg.headdim, G = cfg.n_groups, N = cfg.d_state,
                K = cfg.d_conv;
  SSM_CHECK(P > 0 && E % P == 0, "mamba2: d_inner {} is not divisible by headdim {}", E, P);
  const int64_t H = E / P;
  SSM_CHECK(H % G == 0, "mamba2: {} heads are not divisible by n_groups {}", H, G);
  SSM_CHECK(H % tp == 0 && G % tp == 0,
            "mamba2: heads ({}) and n_groups ({}) must both be divisible by tensor parallel size {}", H, G, tp);
  d_inner_ = E / tp;
  heads_ = H / tp;
  headdim_ = P;
  groups_ = G / tp;
  d_state_ = N;
  d_conv_ = K;
  chunk_ = cfg.chunk_size;
  dt_min_ = cfg.dt_limit[0];
  dt_max_ = cfg.dt_limit[1];
  norm_eps_ = cfg.norm_eps;

  std::vector<Segment> in_segs = {{"z", E}, {"x", E}, {"B", G * N}, {"C", G * N}, {"dt", H}};
  int64_t in_rows = 2 * E + 2 * G * N + H;
  in_proj_ = &add_module("in_proj", std::make_unique<Linear>(init, default_linear_init(init, in_rows, D),
                                                             cfg.proj_bias ? init.constant({in_rows}, 0.0) : Tensor(),
                                                             TpSplit::column, in_segs));
  const int64_t C = E + 2 * G * N;
  std::vector<Segment> conv_segs = {{"x", E}, {"B", G * N}, {"C", G * N}};
  double conv_bound = 1.0 / std::sqrt(double(K));
  conv_w_ = &add_param("conv1d.weight", init.uniform({C, 1, K}, -conv_bound, conv_bound), init, {0, conv_segs});
  if (cfg.conv_bias)
    conv_b_ = &add_param("conv1d.bias", init.uniform({C}, -conv_bound, conv_bound), init, {0, conv_segs}, false);
  dt_bias_ = &add_param("dt_bias", dt_bias_init(init, H, cfg.dt_min, cfg.dt_max, cfg.dt_init_floor), init, {0, {}},
                        false);
  Tensor a = init.uniform({H}, cfg.a_init_range[0], cfg.a_init_range[1]);
  {
    NoGradGuard ng;
    a = log(a);
  }
  A_log_ = &add_param("A_log", a, init, {0, {}}, false);
  D_ = &add_param("D", init.constant({H}, 1.0), init, {0, {}}, false);
  norm_w_ = &add_param("norm.weight", init.constant({E}, 1.0), init, {0, {}}, false);
  Tensor out_w = default_linear_init(init, D, E);
  if (cfg.rescale_prenorm_residual) {
    NoGradGuard ng;
    out_w = mul(out_w, 1.0 / std::sqrt(double(cfg.n_layers)));
  }
  out_proj_ = &add_module("out_proj", std::make_unique<Linear>(init, out_w,
                                                               cfg.proj_bias ? init.constant({D}, 0.0) : Tensor(),
                                                               TpSplit::row));
}

Tensor Mamba2Mixer::forward(const Tensor& x, MixerContext& ctx) {
  const int64_t E = d_inner_, H = heads_, P = headdim_, G = groups_, N = d_state_, K = d_conv_;
  const int64_t B = x.shape()[0], L = x.shape()[1], C = E + 2 * G * N;
  Tensor zxbcdt = in_proj_->forward(x);          // (B, L, 2E + 2GN + H)
  Tensor z = narrow(zxbcdt, -1, 0, E);           // (B, L, E)
  Tensor xbc = narrow(zxbcdt, -1, E, C);         // (B, L, C)
  Tensor dt = narrow(zxbcdt, -1, E + C, H);      // (B, L, H)
  LayerState* st = ctx.state;
  Conv1dArgs ca;
  ca.bias = conv_b_ ? compute_view(*conv_b_, x) : Tensor();
  ca.silu = true;
  ca.seq_idx = ctx.seq_idx;
  if (st && st->conv.defined()) ca.initial_state = st->conv;
  ca.return_final_state = ctx.want_state;
  ConvResult conv = causal_conv1d(transpose(xbc, 1, 2), reshape(compute_view(*conv_w_, x), {C, K}), ca);
  Tensor xbc_c = transpose(conv.y, 1, 2);        // (B, L, C) view
  Tensor xs = reshape(narrow(xbc_c, -1, 0, E), {B, L, H, P});
  Tensor Bm = reshape(narrow(xbc_c, -1, E, G * N), {B, L, G, N});
  Tensor Cm = reshape(narrow(xbc_c, -1, E + G * N, G * N), {B, L, G, N});
  SsdArgs sa;
  sa.D = compute_view(*D_, x);
  sa.dt_bias = compute_view(*dt_bias_, x);
  sa.dt_softplus = true;
  sa.dt_min = dt_min_;
  sa.dt_max = dt_max_;
  sa.seq_idx = ctx.seq_idx;
  sa.chunk_size = chunk_;
  if (st && st->ssm.defined()) sa.h0 = st->ssm;
  sa.return_final_state = ctx.want_state;
  Tensor A = neg(exp(A_log_->value));
  ScanResult scan = ssd_scan(xs, dt, A, Bm, Cm, sa);
  if (ctx.want_state && st) {
    st->conv = conv.final_state;
    st->ssm = scan.final_state;
  }
  Tensor y = reshape(scan.y, {B, L, E});
  y = rms_norm_gated(y, z, compute_view(*norm_w_, x), norm_eps_, E / G);
  return out_proj_->forward(y);
}

Tensor Mamba2Mixer::step(const Tensor& x, LayerState& st) {
  NoGradGuard ng;
  const int64_t E = d_inner_, H = heads_, P = headdim_, G = groups_, N = d_state_, K = d_conv_;
  const int64_t B = x.shape()[0], C = E + 2 * G * N;
  Tensor zxbcdt = in_proj_->forward(x);  // (B, 2E + 2GN + H)
  Tensor z = contiguous(narrow(zxbcdt, -1, 0, E));
  Tensor xbc = contiguous(narrow(zxbcdt, -1, E, C));
  Tensor dt = contiguous(narrow(zxbcdt, -1, E + C, H));
  Tensor xc = conv_step(st, xbc, reshape(compute_view(*conv_w_, x), {C, K}),
                        conv_b_ ? compute_view(*conv_b_, x) : Tensor(), true);  // (B, C)
  Tensor xs = reshape(narrow(xc, -1, 0, E), {B, H, P});
  Tensor Bm = reshape(narrow(xc, -1, E, G * N), {B, G, N});
  Tensor Cm = reshape(narrow(xc, -1, E + G * N, G * N), {B, G, N});
  if (!st.ssm.defined()) st.ssm = Tensor::zeros({B, H, P, N}, x.dtype(), x.device());
  SsdArgs sa;
  sa.D = compute_view(*D_, x);
  sa.dt_bias = compute_view(*dt_bias_, x);
  sa.dt_softplus = true;
  sa.dt_min = dt_min_;
  sa.dt_max = dt_max_;
  Tensor A = neg(exp(A_log_->value));
  Tensor y = reshape(ssd_step(st.ssm, xs, dt, A, Bm, Cm, sa), {B, E});
  y = rms_norm_gated(y, z, compute_view(*norm_w_, x), norm_eps_, E / G);
  return out_proj_->forward(y);
}

}  // namespace ssm::nn
