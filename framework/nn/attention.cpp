#include "framework/nn/attention.h"

#include "framework/ops/ops.h"

namespace ssm::nn {
namespace {

// Appends (B, Ln, Hkv, P) keys/values, growing the cache geometrically when full.
void cache_append(LayerState& st, const Tensor& k, const Tensor& v) {
  int64_t B = k.shape()[0], Ln = k.shape()[1], H = k.shape()[2], P = k.shape()[3];
  if (!st.kv) st.kv = std::make_shared<KvCache>(KvCache::make(B, std::max<int64_t>(64, Ln), H, P, k.dtype(), k.device()));
  KvCache& c = *st.kv;
  if (c.length + Ln > c.capacity()) {
    KvCache bigger = KvCache::make(B, std::max(2 * c.capacity(), c.length + Ln), H, P, k.dtype(), k.device());
    if (c.length > 0) {
      copy_(bigger.k.narrow(1, 0, c.length), c.k.narrow(1, 0, c.length));
      copy_(bigger.v.narrow(1, 0, c.length), c.v.narrow(1, 0, c.length));
    }
    bigger.length = c.length;
    c = bigger;
  }
  c.append(k, v);
}

}  // namespace

AttentionMixer::AttentionMixer(const config::ModelConfig& cfg, Init& init) : tp_(init.tp()) {
  const int tp = init.tp().size;
  const int64_t D = cfg.d_model, nh = cfg.n_heads, nkv = cfg.resolved_kv_heads();
  SSM_CHECK(D % nh == 0, "attention: d_model {} is not divisible by n_heads {}", D, nh);
  SSM_CHECK(nh % nkv == 0, "attention: n_heads {} is not divisible by n_kv_heads {}", nh, nkv);
  SSM_CHECK(nh % tp == 0 && nkv % tp == 0,
            "attention: n_heads {} and n_kv_heads {} must be divisible by tensor parallel size {}", nh, nkv, tp);
  const int64_t hd = D / nh;
  heads_ = nh / tp;
  kv_heads_ = nkv / tp;
  head_dim_ = hd;
  double std = cfg.initializer_range;
  q_proj_ = &add_module("q_proj", std::make_unique<Linear>(init, init.normal({nh * hd, D}, std), Tensor(), TpSplit::column));
  k_proj_ = &add_module("k_proj", std::make_unique<Linear>(init, init.normal({nkv * hd, D}, std), Tensor(), TpSplit::column));
  v_proj_ = &add_module("v_proj", std::make_unique<Linear>(init, init.normal({nkv * hd, D}, std), Tensor(), TpSplit::column));
  o_proj_ = &add_module("o_proj", std::make_unique<Linear>(init, init.normal({D, nh * hd}, std), Tensor(), TpSplit::row));
}

Tensor AttentionMixer::forward(const Tensor& x, MixerContext& ctx) {
  const int64_t B = x.shape()[0], L = x.shape()[1];
  const Tensor xc = tp_copy(x, tp_);  // one all-reduce in backward for q, k and v together
  Tensor q = reshape(q_proj_->forward_local(xc), {B, L, heads_, head_dim_});
  Tensor k = reshape(k_proj_->forward_local(xc), {B, L, kv_heads_, head_dim_});
  Tensor v = reshape(v_proj_->forward_local(xc), {B, L, kv_heads_, head_dim_});
  AttentionOptions o;
  o.seq_idx_q = ctx.seq_idx;
  o.seq_idx_k = ctx.seq_idx;
  Tensor y = attention(q, k, v, o);
  if (ctx.want_state && ctx.state) {
    NoGradGuard ng;
    cache_append(*ctx.state, k.detach(), v.detach());
  }
  return o_proj_->forward(reshape(y, {B, L, heads_ * head_dim_}));
}

Tensor AttentionMixer::step(const Tensor& x, LayerState& st) {
  NoGradGuard ng;
  const int64_t B = x.shape()[0];
  Tensor q = reshape(q_proj_->forward(x), {B, 1, heads_, head_dim_});
  Tensor k = reshape(k_proj_->forward(x), {B, 1, kv_heads_, head_dim_});
  Tensor v = reshape(v_proj_->forward(x), {B, 1, kv_heads_, head_dim_});
  cache_append(st, k, v);
  Tensor y = st.kv->attend(q);  // (B, 1, Hq, P)
  return o_proj_->forward(reshape(y, {B, heads_ * head_dim_}));
}

}  // namespace ssm::nn
