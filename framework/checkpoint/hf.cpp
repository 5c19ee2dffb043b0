// The Hugging Face layout table (hf_layout) and config.json <-> ModelConfig. The file
// operations built on them (export, import, init_from) are in hf_io.cpp.
#include "framework/checkpoint/hf.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "framework/ops/ops.h"

namespace ssm::checkpoint {

using config::ModelConfig;
using config::ModelFamily;

HfTokenIds hf_default_token_ids(ModelFamily f) {
  switch (f) {
    case ModelFamily::mamba2: return {1, 0, 2};
    case ModelFamily::jamba: return {0, 1, 2};
    default: return {0, 0, 0};
  }
}

namespace {

// Builds the tensor table; every logical tensor is registered with its full shape.
class LayoutBuilder {
 public:
  explicit LayoutBuilder(HfLayout& l) : l_(l) {}
  // HF tensor == one logical tensor.
  void same(const std::string& hf, const std::string& ours, const Dims& shape) { concat(hf, {{ours, shape}}); }
  // HF tensor == logical tensors stacked along dim 0.
  void concat(const std::string& hf, const std::vector<std::pair<std::string, Dims>>& parts) {
    HfTensor t{hf, parts.at(0).second, {}};
    t.shape[0] = 0;
    for (const auto& [name, shape] : parts) {
      t.shape[0] += shape[0];
      t.pieces.push_back({name, -1, shape});
      l_.logical[name] = shape;
    }
    l_.tensors.push_back(std::move(t));
  }
  // HF tensor == logical[index] of a logical tensor of shape `full` (one expert).
  void slice(const std::string& hf, const std::string& ours, int64_t index, const Dims& full) {
    Dims piece = full;
    piece.erase(0);
    l_.tensors.push_back({hf, piece, {{ours, index, piece}}});
    l_.logical[ours] = full;
  }

 private:
  HfLayout& l_;
};

// Mamba-1 mixer (also Jamba's Mamba layers, with the dt/B/C norms). `hf` and `ours` end in '.'.
void mamba_mixer(LayoutBuilder& b, const std::string& hf, const std::string& ours, const ModelConfig& m,
                 bool bcdt_norm) {
  const int64_t D = m.d_model, E = m.d_inner(), N = m.d_state, R = m.resolved_dt_rank(), K = m.d_conv;
  b.concat(hf + "in_proj.weight", {{ours + "in_proj.weight.x", {E, D}}, {ours + "in_proj.weight.z", {E, D}}});
  if (m.proj_bias) b.concat(hf + "in_proj.bias", {{ours + "in_proj.bias.x", {E}}, {ours + "in_proj.bias.z", {E}}});
  b.same(hf + "conv1d.weight", ours + "conv1d.weight", {E, 1, K});
  if (m.conv_bias) b.same(hf + "conv1d.bias", ours + "conv1d.bias", {E});
  b.same(hf + "x_proj.weight", ours + "x_proj.weight", {R + 2 * N, E});
  b.same(hf + "dt_proj.weight", ours + "dt_proj.weight", {E, R});
  b.same(hf + "dt_proj.bias", ours + "dt_proj.bias", {E});
  b.same(hf + "A_log", ours + "A_log", {E, N});
  b.same(hf + "D", ours + "D", {E});
  b.same(hf + "out_proj.weight", ours + "out_proj.weight", {D, E});
  if (m.proj_bias) b.same(hf + "out_proj.bias", ours + "out_proj.bias", {D});
  if (bcdt_norm) {
    b.same(hf + "dt_layernorm.weight", ours + "dt_layernorm.weight", {R});
    b.same(hf + "b_layernorm.weight", ours + "b_layernorm.weight", {N});
    b.same(hf + "c_layernorm.weight", ours + "c_layernorm.weight", {N});
  }
}

void mamba2_mixer(LayoutBuilder& b, const std::string& hf, const std::string& ours, const ModelConfig& m) {
  const int64_t D = m.d_model, E = m.d_inner(), N = m.d_state, G = m.n_groups, H = m.ssd_heads(), K = m.d_conv;
  auto segs = [&](const std::string& p, std::vector<std::pair<std::string, int64_t>> rows, std::vector<int64_t> rest) {
    std::vector<std::pair<std::string, Dims>> parts;
    for (const auto& [seg, n] : rows) {
      Dims s{n};
      for (int64_t r : rest) s.push_back(r);
      parts.push_back({ours + p + "." + seg, s});
    }
    b.concat(hf + p, parts);
  };
  const std::vector<std::pair<std::string, int64_t>> in_rows = {{"z", E}, {"x", E}, {"B", G * N}, {"C", G * N}, {"dt", H}};
  const std::vector<std::pair<std::string, int64_t>> conv_rows = {{"x", E}, {"B", G * N}, {"C", G * N}};
  segs("in_proj.weight", in_rows, {D});
  if (m.proj_bias) segs("in_proj.bias", in_rows, {});
  segs("conv1d.weight", conv_rows, {1, K});
  if (m.conv_bias) segs("conv1d.bias", conv_rows, {});
  b.same(hf + "dt_bias", ours + "dt_bias", {H});
  b.same(hf + "A_log", ours + "A_log", {H});
  b.same(hf + "D", ours + "D", {H});
  b.same(hf + "norm.weight", ours + "norm.weight", {E});
  b.same(hf + "out_proj.weight", ours + "out_proj.weight", {D, E});
  if (m.proj_bias) b.same(hf + "out_proj.bias", ours + "out_proj.bias", {D});
}

void refuse_unsupported(const ModelConfig& m) {
  const std::string fam(config::to_string(m.family));
  SSM_CHECK(m.family != ModelFamily::s4d && m.family != ModelFamily::s5,
            "export --format hf: {} models have no Hugging Face transformers counterpart; use --format safetensors "
            "for a name-for-name dump of the weights",
            fam);
  SSM_CHECK(m.family == ModelFamily::jamba || m.d_intermediate == 0,
            "export --format hf: this {} model has an MLP after each mixer (model.d_intermediate = {}), which the "
            "transformers {} model does not have; use --format safetensors",
            fam, m.d_intermediate, fam == "mamba" ? "MambaForCausalLM" : "Mamba2ForCausalLM");
  if (m.family == ModelFamily::jamba) {
    SSM_CHECK(m.bcdt_norm,
              "export --format hf: JambaForCausalLM always applies RMSNorm to dt/B/C, this model has "
              "model.bcdt_norm = false; use --format safetensors");
    SSM_CHECK(m.num_experts > 1,
              "export --format hf: with num_experts = 1 JambaForCausalLM builds plain MLPs without a router; this "
              "model has a router on its MoE layers; use --format safetensors");
  }
}

}  // namespace

HfLayout hf_layout(const ModelConfig& m) { return hf_layout(m, hf_default_token_ids(m.family)); }

HfLayout hf_layout(const ModelConfig& m, const HfTokenIds& ids) {
  refuse_unsupported(m);
  SSM_CHECK(m.vocab_size > 0, "export --format hf: the model's vocab_size is not set");
  HfLayout l;
  LayoutBuilder b(l);
  const int64_t V = m.vocab_size, D = m.d_model, F = m.resolved_intermediate_size(), X = m.num_experts;
  const bool jamba = m.family == ModelFamily::jamba;
  const std::string base = jamba ? "model." : "backbone.";
  b.same(base + (jamba ? "embed_tokens.weight" : "embeddings.weight"), "embedding.weight", {V, D});
  std::vector<nn::LayerPlan> plan = nn::layer_plan(m);
  for (size_t i = 0; i < plan.size(); ++i) {
    const std::string hf = base + "layers." + std::to_string(i) + ".", ours = "layers." + std::to_string(i) + ".";
    if (!jamba) {
      b.same(hf + "norm.weight", ours + "norm.weight", {D});
      if (m.family == ModelFamily::mamba)
        mamba_mixer(b, hf + "mixer.", ours + "mixer.", m, false);
      else
        mamba2_mixer(b, hf + "mixer.", ours + "mixer.", m);
      continue;
    }
    b.same(hf + "input_layernorm.weight", ours + "norm.weight", {D});
    if (plan[i].mixer == nn::LayerKind::attention) {
      const int64_t hd = D / m.n_heads, q = m.n_heads * hd, kv = m.resolved_kv_heads() * hd;
      b.same(hf + "self_attn.q_proj.weight", ours + "mixer.q_proj.weight", {q, D});
      b.same(hf + "self_attn.k_proj.weight", ours + "mixer.k_proj.weight", {kv, D});
      b.same(hf + "self_attn.v_proj.weight", ours + "mixer.v_proj.weight", {kv, D});
      b.same(hf + "self_attn.o_proj.weight", ours + "mixer.o_proj.weight", {D, q});
    } else {
      mamba_mixer(b, hf + "mamba.", ours + "mixer.", m, true);
    }
    b.same(hf + "pre_ff_layernorm.weight", ours + "ffn_norm.weight", {D});
    const std::string ff = hf + "feed_forward.", ffn = ours + "ffn.";
    if (plan[i].ffn == nn::LayerPlan::Ffn::moe) {
      b.same(ff + "router.weight", ffn + "router.weight", {X, D});
      for (int64_t e = 0; e < X; ++e) {
        const std::string ex = ff + "experts." + std::to_string(e) + ".";
        b.slice(ex + "gate_proj.weight", ffn + "experts.gate_proj", e, {X, F, D});
        b.slice(ex + "up_proj.weight", ffn + "experts.up_proj", e, {X, F, D});
        b.slice(ex + "down_proj.weight", ffn + "experts.down_proj", e, {X, D, F});
      }
    } else {
      b.same(ff + "gate_proj.weight", ffn + "gate_proj.weight", {F, D});
      b.same(ff + "up_proj.weight", ffn + "up_proj.weight", {F, D});
      b.same(ff + "down_proj.weight", ffn + "down_proj.weight", {D, F});
    }
  }
  b.same(base + (jamba ? "final_layernorm.weight" : "norm_f.weight"), "norm_f.weight", {D});
  if (!m.tie_embeddings) b.same("lm_head.weight", "lm_head.weight", {V, D});

  // config.json. Every field transformers reads is written, defaults included, so the file
  // means the same under any transformers version (their defaults have changed over time).
  nlohmann::ordered_json& c = l.config;
  switch (m.family) {
    case ModelFamily::mamba:
      l.architecture = "MambaForCausalLM";
      c = {{"architectures", nlohmann::ordered_json::array({l.architecture})},
           {"model_type", "mamba"},
           {"vocab_size", V},
           {"hidden_size", D},
           {"state_size", m.d_state},
           {"num_hidden_layers", m.n_layers},
           {"expand", m.expand},
           {"intermediate_size", m.d_inner()},
           {"conv_kernel", m.d_conv},
           {"time_step_rank", m.resolved_dt_rank()},
           {"use_bias", m.proj_bias},
           {"use_conv_bias", m.conv_bias},
           {"hidden_act", "silu"},
           {"layer_norm_epsilon", m.norm_eps},
           {"residual_in_fp32", m.residual_in_fp32},
           {"time_step_scale", 1.0},
           {"time_step_min", m.dt_min},
           {"time_step_max", m.dt_max},
           {"time_step_floor", m.dt_init_floor},
           {"time_step_init_scheme", "random"},
           {"rescale_prenorm_residual", false},  // see below
           {"initializer_range", m.initializer_range},
           {"use_mambapy", false}};
      break;
    case ModelFamily::mamba2: {
      l.architecture = "Mamba2ForCausalLM";
      c = {{"architectures", nlohmann::ordered_json::array({l.architecture})},
           {"model_type", "mamba2"},
           {"vocab_size", V},
           {"hidden_size", D},
           {"state_size", m.d_state},
           {"num_hidden_layers", m.n_layers},
           {"expand", m.expand},
           {"num_heads", m.ssd_heads()},
           {"head_dim", m.headdim},
           {"n_groups", m.n_groups},
           {"conv_kernel", m.d_conv},
           {"chunk_size", m.chunk_size},
           {"use_bias", m.proj_bias},
           {"use_conv_bias", m.conv_bias},
           {"hidden_act", "silu"},
           {"rms_norm", true},
           {"layer_norm_epsilon", m.norm_eps},
           {"residual_in_fp32", m.residual_in_fp32},
           {"time_step_rank", m.resolved_dt_rank()},
           {"time_step_min", m.dt_min},
           {"time_step_max", m.dt_max},
           {"time_step_floor", m.dt_init_floor},
           {"rescale_prenorm_residual", false},  // see below
           {"initializer_range", m.initializer_range}};
      // (0, inf) is transformers' default: omitted, since inf has no JSON spelling (Python
      // writes `Infinity`, which strict parsers reject). An infinite upper bound with a
      // non-zero lower bound is written as FLT_MAX, which clamps nothing in fp32.
      if (m.dt_limit[0] != 0.0 || std::isfinite(m.dt_limit[1])) {
        double hi = std::isfinite(m.dt_limit[1]) ? m.dt_limit[1] : double(std::numeric_limits<float>::max());
        c["time_step_limit"] = {m.dt_limit[0], hi};
      }
      break;
    }
    case ModelFamily::jamba:
      l.architecture = "JambaForCausalLM";
      c = {{"architectures", nlohmann::ordered_json::array({l.architecture})},
           {"model_type", "jamba"},
           {"vocab_size", V},
           {"hidden_size", D},
           {"intermediate_size", F},
           {"num_hidden_layers", m.n_layers},
           {"num_attention_heads", m.n_heads},
           {"num_key_value_heads", m.resolved_kv_heads()},
           {"hidden_act", "silu"},
           {"rms_norm_eps", m.norm_eps},
           {"initializer_range", m.initializer_range},
           {"attn_layer_period", m.attn_layer_period},
           {"attn_layer_offset", m.attn_layer_offset},
           {"expert_layer_period", m.expert_layer_period},
           {"expert_layer_offset", m.expert_layer_offset},
           {"num_experts", X},
           {"num_experts_per_tok", m.num_experts_per_tok},
           {"router_aux_loss_coef", m.router_aux_loss_coef},
           {"output_router_logits", false},
           {"mamba_d_state", m.d_state},
           {"mamba_d_conv", m.d_conv},
           {"mamba_expand", m.expand},
           {"mamba_dt_rank", m.resolved_dt_rank()},
           {"mamba_conv_bias", m.conv_bias},
           {"mamba_proj_bias", m.proj_bias},
           // transformers v4 raises at the first forward without CUDA mamba kernels when this is
           // true; v5 ignores it and picks the implementation itself.
           {"use_mamba_kernels", false},
           {"use_mambapy", false},
           {"max_position_embeddings", 262144},  // no positional encoding: informative only
           {"attention_dropout", 0.0}};
      break;
    default: SSM_FAIL("unreachable");
  }
  // rescale_prenorm_residual is an init-time flag, but transformers' _init_weights divides
  // out_proj by sqrt(num_hidden_layers) again after from_pretrained has loaded the weights:
  // it must be false in an exported config (mamba and mamba2).
  c["tie_word_embeddings"] = m.tie_embeddings;
  c["pad_token_id"] = ids.pad;
  c["bos_token_id"] = ids.bos;
  c["eos_token_id"] = ids.eos;
  c["use_cache"] = true;
  return l;
}

// ---- config.json -> ModelConfig ------------------------------------------------------------

namespace {

// A float as Python writes it: a number, or (transformers v5) {"__float__": "Infinity"}.
std::optional<double> json_float(const nlohmann::json& v) {
  if (v.is_number()) return v.get<double>();
  if (v.is_object() && v.size() == 1 && v.contains("__float__") && v["__float__"].is_string()) {
    const std::string s = v["__float__"].get<std::string>();
    if (s == "Infinity" || s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-Infinity" || s == "-inf") return -std::numeric_limits<double>::infinity();
    if (s == "NaN" || s == "nan") return std::numeric_limits<double>::quiet_NaN();
  }
  return std::nullopt;
}

// Python's json module writes the bare tokens Infinity, -Infinity and NaN (transformers v4
// does for Mamba-2's default time_step_limit); JSON has no such values. Outside of strings
// they become transformers v5's {"__float__": "..."} spelling, which json_float reads.
std::string python_json_to_strict(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char ch = text[i];
    if (in_string) {
      out += ch;
      if (ch == '\\' && i + 1 < text.size()) out += text[++i];
      else if (ch == '"') in_string = false;
      continue;
    }
    if (ch == '"') in_string = true;
    bool replaced = false;
    for (const char* tok : {"-Infinity", "Infinity", "NaN"}) {
      size_t n = std::strlen(tok);
      if (text.compare(i, n, tok) == 0) {
        out += std::string("{\"__float__\": \"") + tok + "\"}";
        i += n - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += ch;
  }
  return out;
}

class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& j, std::string where) : j_(j), where_(std::move(where)) {}
  bool has(const std::string& k) const { return j_.contains(k) && !j_.at(k).is_null(); }
  int64_t integer(const std::string& k, std::optional<int64_t> def = {}) const {
    if (!has(k)) return required(k, def);
    const auto& v = j_.at(k);
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) return int64_t(v.get<double>());
    SSM_FAIL("{}: '{}' must be an integer, got {}", where_, k, v.dump());
  }
  double number(const std::string& k, std::optional<double> def = {}) const {
    if (!has(k)) return required(k, def);
    std::optional<double> v = json_float(j_.at(k));
    SSM_CHECK(v.has_value(), "{}: '{}' must be a number, got {}", where_, k, j_.at(k).dump());
    return *v;
  }
  bool boolean(const std::string& k, std::optional<bool> def = {}) const {
    if (!has(k)) return required(k, def);
    const auto& v = j_.at(k);
    SSM_CHECK(v.is_boolean(), "{}: '{}' must be true or false, got {}", where_, k, v.dump());
    return v.get<bool>();
  }
  std::string string(const std::string& k, std::optional<std::string> def = {}) const {
    if (!has(k)) return required(k, def);
    const auto& v = j_.at(k);
    SSM_CHECK(v.is_string(), "{}: '{}' must be a string, got {}", where_, k, v.dump());
    return v.get<std::string>();
  }
  // An int field that may be "auto": returns 0 for auto.
  int64_t auto_int(const std::string& k) const {
    if (!has(k) || (j_.at(k).is_string() && j_.at(k).get<std::string>() == "auto")) return 0;
    return integer(k);
  }
  const std::string& where() const { return where_; }

 private:
  template <class T>
  T required(const std::string& k, const std::optional<T>& def) const {
    SSM_CHECK(def.has_value(), "{}: missing required key '{}'", where_, k);
    return *def;
  }
  const nlohmann::json& j_;
  std::string where_;
};

int to_int(int64_t v, const ConfigReader& r, const char* key) {
  SSM_CHECK(v >= 0 && v <= std::numeric_limits<int>::max(), "{}: '{}' = {} is out of range", r.where(), key, v);
  return int(v);
}

}  // namespace

config::ModelConfig model_config_from_hf(const nlohmann::json& j, const std::string& where, const ModelConfig& base) {
  SSM_CHECK(j.is_object(), "{}: expected a JSON object", where);
  ConfigReader r(j, where);
  const std::string type = r.string("model_type");
  ModelConfig m = base;
  m.init_from.clear();
  if (type == "mamba") {
    m.family = ModelFamily::mamba;
  } else if (type == "mamba2") {
    m.family = ModelFamily::mamba2;
  } else if (type == "jamba") {
    m.family = ModelFamily::jamba;
  } else {
    SSM_FAIL("{}: model_type '{}' is not supported (ssm imports mamba, mamba2 and jamba)", where, type);
  }
  SSM_CHECK(r.string("hidden_act", "silu") == "silu", "{}: hidden_act '{}' is not supported (only silu)", where,
            r.string("hidden_act"));
  m.vocab_size = to_int(r.integer("vocab_size"), r, "vocab_size");
  m.d_model = to_int(r.integer("hidden_size"), r, "hidden_size");
  m.n_layers = to_int(r.integer("num_hidden_layers"), r, "num_hidden_layers");
  m.initializer_range = r.number("initializer_range", base.initializer_range);
  // "auto" fields keep base's spelling when it resolves to the same value.
  auto set_dt_rank = [&](int64_t v) {
    int resolved = v ? to_int(v, r, "time_step_rank") : (m.d_model + 15) / 16;
    m.dt_rank = base.dt_rank == 0 && (m.d_model + 15) / 16 == resolved ? 0 : resolved;
  };
  if (m.family == ModelFamily::jamba) {
    m.d_state = to_int(r.integer("mamba_d_state", 16), r, "mamba_d_state");
    m.d_conv = to_int(r.integer("mamba_d_conv", 4), r, "mamba_d_conv");
    m.expand = to_int(r.integer("mamba_expand", 2), r, "mamba_expand");
    set_dt_rank(r.auto_int("mamba_dt_rank"));
    m.conv_bias = r.boolean("mamba_conv_bias", true);
    m.proj_bias = r.boolean("mamba_proj_bias", false);
    m.norm_eps = r.number("rms_norm_eps", 1e-6);
    m.tie_embeddings = r.boolean("tie_word_embeddings", false);
    m.n_heads = to_int(r.integer("num_attention_heads"), r, "num_attention_heads");
    int kv = to_int(r.integer("num_key_value_heads", m.n_heads), r, "num_key_value_heads");
    m.n_kv_heads = base.n_kv_heads == 0 && kv == m.n_heads ? 0 : kv;
    int f = to_int(r.integer("intermediate_size"), r, "intermediate_size");
    m.intermediate_size = base.intermediate_size == 0 && f == 4 * m.d_model ? 0 : f;
    m.attn_layer_period = to_int(r.integer("attn_layer_period", 8), r, "attn_layer_period");
    m.attn_layer_offset = to_int(r.integer("attn_layer_offset", 4), r, "attn_layer_offset");
    m.expert_layer_period = to_int(r.integer("expert_layer_period", 2), r, "expert_layer_period");
    m.expert_layer_offset = to_int(r.integer("expert_layer_offset", 1), r, "expert_layer_offset");
    m.num_experts = to_int(r.integer(r.has("num_experts") ? "num_experts" : "num_local_experts", 16), r, "num_experts");
    m.num_experts_per_tok = to_int(r.integer("num_experts_per_tok", 2), r, "num_experts_per_tok");
    m.router_aux_loss_coef = r.number("router_aux_loss_coef", 1e-3);
    m.bcdt_norm = true;
    SSM_CHECK(m.num_experts > 1, "{}: num_experts = 1 (plain MLPs on every layer) is not supported", where);
    SSM_CHECK(m.n_heads > 0 && m.d_model % m.n_heads == 0, "{}: hidden_size {} is not divisible by num_attention_heads {}",
              where, m.d_model, m.n_heads);
    SSM_CHECK(!r.has("head_dim") || r.integer("head_dim") == m.d_model / m.n_heads,
              "{}: head_dim {} differs from hidden_size / num_attention_heads = {} (not supported)", where,
              r.integer("head_dim"), m.d_model / m.n_heads);
    SSM_CHECK(!r.has("sliding_window"), "{}: sliding-window attention (sliding_window = {}) is not supported", where,
              j.at("sliding_window").dump());
  } else {
    m.d_state = to_int(r.integer("state_size"), r, "state_size");
    m.d_conv = to_int(r.integer("conv_kernel", 4), r, "conv_kernel");
    m.expand = to_int(r.integer("expand", 2), r, "expand");
    m.proj_bias = r.boolean("use_bias", false);
    m.conv_bias = r.boolean("use_conv_bias", true);
    m.norm_eps = r.number("layer_norm_epsilon", 1e-5);
    m.residual_in_fp32 = r.boolean("residual_in_fp32", true);
    m.dt_min = r.number("time_step_min", base.dt_min);
    m.dt_max = r.number("time_step_max", base.dt_max);
    m.dt_init_floor = r.number("time_step_floor", base.dt_init_floor);
    m.d_intermediate = 0;
    if (r.has("intermediate_size"))
      SSM_CHECK(r.integer("intermediate_size") == int64_t(m.expand) * m.d_model,
                "{}: intermediate_size {} is not expand * hidden_size = {}", where, r.integer("intermediate_size"),
                int64_t(m.expand) * m.d_model);
    if (m.family == ModelFamily::mamba) {
      m.tie_embeddings = r.boolean("tie_word_embeddings", true);
      set_dt_rank(r.auto_int("time_step_rank"));
    } else {
      m.tie_embeddings = r.boolean("tie_word_embeddings", false);
      m.headdim = to_int(r.integer("head_dim"), r, "head_dim");
      m.n_groups = to_int(r.integer("n_groups", 8), r, "n_groups");
      m.chunk_size = to_int(r.integer("chunk_size", 256), r, "chunk_size");
      const int64_t heads = r.integer("num_heads");
      SSM_CHECK(heads * m.headdim == int64_t(m.d_inner()), "{}: num_heads * head_dim = {} * {} must equal expand * "
                "hidden_size = {}", where, heads, m.headdim, m.d_inner());
      SSM_CHECK(m.n_groups > 0 && heads % m.n_groups == 0, "{}: num_heads {} is not divisible by n_groups {}", where,
                heads, m.n_groups);
      SSM_CHECK(r.boolean("rms_norm", true), "{}: rms_norm = false is not supported (ssm always applies the gated "
                "RMSNorm)", where);
      if (r.has("time_step_limit")) {
        const auto& v = j.at("time_step_limit");
        std::optional<double> lo, hi;
        if (v.is_array() && v.size() == 2) {
          lo = json_float(v[0]);
          hi = json_float(v[1]);
        }
        SSM_CHECK(lo && hi, "{}: time_step_limit must be two numbers, got {}", where, v.dump());
        m.dt_limit = {*lo, *hi};
      } else {
        m.dt_limit = {0.0, std::numeric_limits<double>::infinity()};
      }
    }
  }
  return m;
}

HfTokenIds token_ids_from_hf(const nlohmann::json& j, ModelFamily f) {
  HfTokenIds ids = hf_default_token_ids(f);
  auto get = [&](const char* k, int64_t& out) {
    if (!j.contains(k) || j.at(k).is_null()) return;
    const auto& v = j.at(k);
    if (v.is_number_integer()) out = v.get<int64_t>();
    else if (v.is_array() && !v.empty() && v[0].is_number_integer()) out = v[0].get<int64_t>();  // eos lists
  };
  get("pad_token_id", ids.pad);
  get("bos_token_id", ids.bos);
  get("eos_token_id", ids.eos);
  return ids;
}

nlohmann::json read_hf_config(const std::string& hf_dir) {
  const std::string path = hf_dir + "/config.json";
  std::ifstream f(path);
  SSM_CHECK(f.good(), "{}: no config.json (is this a Hugging Face model directory?)", hf_dir);
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return nlohmann::json::parse(python_json_to_strict(ss.str()));
  } catch (const nlohmann::json::exception& e) {
    SSM_FAIL("{}: not valid JSON ({})", path, e.what());
  }
}

// ---- tensors -------------------------------------------------------------------------------

std::vector<NamedTensor> to_hf_tensors(const HfLayout& layout, const LogicalSource& get, DType dtype) {
  NoGradGuard ng;
  std::map<std::string, Tensor> cache;  // experts are read once, sliced X times
  auto logical = [&](const std::string& name) -> const Tensor& {
    auto it = cache.find(name);
    if (it != cache.end()) return it->second;
    Tensor t = get(name);
    const Dims& want = layout.logical.at(name);
    SSM_CHECK(t.shape() == want, "export: tensor '{}' has shape {}, the {} layout expects {}", name,
              t.shape().str(), layout.architecture, want.str());
    return cache.emplace(name, t).first->second;
  };
  std::vector<NamedTensor> out;
  for (const HfTensor& h : layout.tensors) {
    std::vector<Tensor> parts;
    for (const HfPiece& p : h.pieces) {
      const Tensor& t = logical(p.logical);
      parts.push_back(p.index >= 0 ? t.select(0, p.index) : t);
    }
    Tensor t = parts.size() == 1 ? parts[0] : concat(parts, 0);
    out.push_back({h.name, contiguous(t.dtype() == dtype ? t : to(t, dtype))});
  }
  return out;
}

std::map<std::string, Tensor> from_hf_tensors(const HfLayout& layout, const SafetensorsDir& src) {
  NoGradGuard ng;
  const std::string& dir = src.dir();
  std::vector<std::string> missing, unexpected, wrong;
  std::map<std::string, bool> known;
  for (const HfTensor& h : layout.tensors) {
    known[h.name] = true;
    if (!src.has(h.name)) {
      missing.push_back(h.name);
      continue;
    }
    const SafetensorsEntry& e = src.entry(h.name);
    if (e.shape != h.shape)
      wrong.push_back(fmt::format("{} is {} in the file, config.json implies {}", h.name, e.shape.str(), h.shape.str()));
    else if (!dtype_is_float(e.dtype))
      wrong.push_back(fmt::format("{} has dtype {}, expected a floating-point type", h.name, e.dtype_name));
  }
  const bool tied = layout.config.value("tie_word_embeddings", false);
  for (const std::string& n : src.names())
    if (!known.count(n) && !(tied && n == "lm_head.weight")) unexpected.push_back(n);  // tied copies are ignored
  if (!missing.empty() || !unexpected.empty() || !wrong.empty()) {
    auto list = [](const std::vector<std::string>& v) {
      std::string s;
      for (size_t i = 0; i < v.size() && i < 8; ++i) s += (i ? ", " : "") + v[i];
      if (v.size() > 8) s += fmt::format(", ... ({} more)", v.size() - 8);
      return s;
    };
    std::string msg;
    if (!missing.empty()) msg += fmt::format("; {} missing tensor(s): {}", missing.size(), list(missing));
    if (!unexpected.empty()) msg += fmt::format("; {} unexpected tensor(s): {}", unexpected.size(), list(unexpected));
    if (!wrong.empty()) msg += fmt::format("; mismatch: {}", list(wrong));
    SSM_FAIL("{}: the weights do not match config.json ({}){}", dir, layout.architecture, msg);
  }
  std::map<std::string, Tensor> out;
  for (const auto& [name, shape] : layout.logical) out[name] = Tensor::zeros(shape, DType::f32);
  for (const HfTensor& h : layout.tensors) {
    Tensor t = src.read(h.name);
    if (t.dtype() != DType::f32) t = to(t, DType::f32);
    int64_t row = 0;
    for (const HfPiece& p : h.pieces) {
      Tensor dst = p.index >= 0 ? out.at(p.logical).select(0, p.index) : out.at(p.logical);
      copy_(dst, t.narrow(0, row, p.shape[0]));
      row += p.shape[0];
    }
  }
  return out;
}

}  // namespace ssm::checkpoint
