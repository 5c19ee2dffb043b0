// Loading a recipe: tree (inherit + overrides) -> schema (keys, types, ranges) -> typed Recipe
// -> cross-field checks, each reported at the key that a user would edit to fix it.
#include "framework/config/recipe.h"

#include <fmt/format.h>

#include <filesystem>
#include <initializer_list>

#include "framework/core/error.h"

namespace ssm::config {

int64_t TrainConfig::total_steps() const {
  if (steps > 0) return steps;
  const int64_t per_step = int64_t{batch_size} * seq_len;
  return per_step > 0 ? (tokens + per_step - 1) / per_step : 0;
}

namespace {

// Where to report a rule that involves `keys`: the first of them written explicitly (in a file
// or an override), else the section of the first key, else the top of the recipe.
class Locator {
 public:
  explicit Locator(const Schema::Parsed& p) : p_(p) {}

  Loc at(std::initializer_list<std::string_view> keys) const {
    for (std::string_view k : keys)
      if (auto it = p_.key_locs.find(std::string(k)); it != p_.key_locs.end()) return it->second;
    for (std::string_view k : keys) {
      std::string section(k.substr(0, k.find('.')));
      if (auto it = p_.section_locs.find(section); it != p_.section_locs.end()) return it->second;
    }
    return p_.root;
  }
  bool explicit_key(std::string_view k) const { return p_.key_locs.count(std::string(k)) > 0; }

 private:
  const Schema::Parsed& p_;
};

void check_model(const ModelConfig& m, const ParallelConfig& par, const Locator& at) {
  if (m.dt_min > m.dt_max)
    fail_at(at.at({"model.dt_min", "model.dt_max"}),
            fmt::format("model.dt_min ({}) must be <= model.dt_max ({})", m.dt_min, m.dt_max));
  if (m.dt_limit[0] > m.dt_limit[1])
    fail_at(at.at({"model.dt_limit"}), fmt::format("model.dt_limit: lower bound {} is above upper bound {}",
                                                   m.dt_limit[0], m.dt_limit[1]));
  if (m.a_init_range[0] > m.a_init_range[1])
    fail_at(at.at({"model.a_init_range"}),
            fmt::format("model.a_init_range: lower bound {} is above upper bound {}", m.a_init_range[0],
                        m.a_init_range[1]));
  const int tp = par.tp;
  switch (m.family) {
    case ModelFamily::mamba2: {
      const int e = m.d_inner();
      if (e % m.headdim != 0)
        fail_at(at.at({"model.headdim", "model.expand", "model.d_model"}),
                fmt::format("mamba2: d_model * expand = {} must be divisible by headdim = {}", e, m.headdim));
      const int heads = e / m.headdim;
      if (heads % m.n_groups != 0)
        fail_at(at.at({"model.n_groups", "model.headdim", "model.d_model"}),
                fmt::format(
                    "mamba2: the {} heads (d_model * expand / headdim) must be divisible by n_groups = {}",
                    heads, m.n_groups));
      if (heads % tp != 0 || m.n_groups % tp != 0)
        fail_at(at.at({"parallel.tp"}),
                fmt::format("parallel.tp = {} must divide both the mamba2 heads ({}) and n_groups ({}): "
                            "each rank owns whole heads and whole groups",
                            tp, heads, m.n_groups));
      break;
    }
    case ModelFamily::jamba:
      if (m.d_model % m.n_heads != 0)
        fail_at(at.at({"model.n_heads", "model.d_model"}),
                fmt::format("jamba: d_model = {} must be divisible by n_heads = {}", m.d_model, m.n_heads));
      if (m.n_heads % m.resolved_kv_heads() != 0)
        fail_at(at.at({"model.n_kv_heads", "model.n_heads"}),
                fmt::format("jamba: n_heads = {} must be divisible by n_kv_heads = {}", m.n_heads,
                            m.resolved_kv_heads()));
      if (m.attn_layer_offset >= m.attn_layer_period)
        fail_at(at.at({"model.attn_layer_offset", "model.attn_layer_period"}),
                fmt::format("jamba: attn_layer_offset = {} must be < attn_layer_period = {}",
                            m.attn_layer_offset, m.attn_layer_period));
      if (m.expert_layer_offset >= m.expert_layer_period)
        fail_at(at.at({"model.expert_layer_offset", "model.expert_layer_period"}),
                fmt::format("jamba: expert_layer_offset = {} must be < expert_layer_period = {}",
                            m.expert_layer_offset, m.expert_layer_period));
      if (m.num_experts_per_tok > m.num_experts)
        fail_at(at.at({"model.num_experts_per_tok", "model.num_experts"}),
                fmt::format("jamba: num_experts_per_tok = {} exceeds num_experts = {}", m.num_experts_per_tok,
                            m.num_experts));
      if (m.n_heads % tp != 0 || m.d_inner() % tp != 0)
        fail_at(at.at({"parallel.tp"}),
                fmt::format("parallel.tp = {} must divide n_heads ({}) and d_model * expand ({})", tp,
                            m.n_heads, m.d_inner()));
      break;
    case ModelFamily::mamba:
      if (m.d_inner() % tp != 0)
        fail_at(at.at({"parallel.tp"}),
                fmt::format("parallel.tp = {} must divide d_model * expand = {}", tp, m.d_inner()));
      break;
    case ModelFamily::s4d:
    case ModelFamily::s5:
      break;
  }
}

void check_recipe(const Recipe& r, const Locator& at) {
  check_model(r.model, r.parallel, at);

  if (r.data.kind == DataKind::tokens && r.data.path.empty())
    fail_at(at.at({"data.path", "data.kind"}),
            "missing required key 'path' in section 'data' (required when kind is 'tokens')");

  const TrainConfig& t = r.train;
  if (t.steps > 0 && t.tokens > 0)
    fail_at(at.at({"train.tokens", "train.steps"}),
            "train.steps and train.tokens are both set; set one of them (the other to 0)");
  if (t.steps == 0 && t.tokens == 0)
    fail_at(at.at({"train.steps", "train.tokens"}),
            "missing required key 'steps' in section 'train' (or set 'tokens')");
  if (t.steps > 0 && r.optim.warmup_steps > t.steps)
    fail_at(at.at({"optim.warmup_steps"}),
            fmt::format("optim.warmup_steps = {} exceeds train.steps = {}", r.optim.warmup_steps, t.steps));
  const int dp = r.parallel.dp;
  if (t.micro_batch_size > 0 && t.batch_size % (int64_t{t.micro_batch_size} * std::max(dp, 1)) != 0)
    fail_at(at.at({"train.micro_batch_size", "train.batch_size", "parallel.dp"}),
            dp > 0 ? fmt::format("train.batch_size = {} must be divisible by micro_batch_size * dp = {} * {}",
                                 t.batch_size, t.micro_batch_size, dp)
                   : fmt::format("train.batch_size = {} must be divisible by micro_batch_size = {}",
                                 t.batch_size, t.micro_batch_size));
  if (t.micro_batch_size == 0 && dp > 0 && t.batch_size % dp != 0)
    fail_at(at.at({"train.batch_size", "parallel.dp"}),
            fmt::format("train.batch_size = {} must be divisible by parallel.dp = {}", t.batch_size, dp));

  if (r.optim.min_lr > r.optim.lr)
    fail_at(at.at({"optim.min_lr", "optim.lr"}),
            fmt::format("optim.min_lr = {} exceeds optim.lr = {}", r.optim.min_lr, r.optim.lr));
}

Recipe finish(Node tree, const std::string& file, const std::vector<std::string>& overrides) {
  for (const std::string& o : overrides) apply_override(tree, o);
  const Schema& schema = recipe_schema();
  Schema::Parsed parsed = schema.parse(tree, /*partial=*/false);
  ValueMap values = parsed.values;
  if (!values.count("name")) values["name"] = std::filesystem::path(file).stem().string();
  schema.fill_defaults(values);
  Recipe r = from_values(values);
  check_recipe(r, Locator(parsed));
  return r;
}

}  // namespace

Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  return finish(load_tree(path), path, overrides);
}

Recipe parse_recipe(const std::string& yaml, const std::string& file,
                    const std::vector<std::string>& overrides) {
  return finish(resolve_inherit(parse_tree(yaml, file), file), file, overrides);
}

void check_recipe_fragment(const std::string& path) {
  recipe_schema().parse(load_tree(path), /*partial=*/true);
}

std::string resolved_yaml(const Recipe& r, bool docs) { return recipe_schema().to_yaml(to_values(r), docs); }

std::vector<std::string> diff(const Recipe& a, const Recipe& b) {
  ValueMap va = to_values(a), vb = to_values(b);
  std::vector<std::string> out;
  for (const FieldSpec& f : recipe_schema().fields())
    if (va.at(f.dotted()) != vb.at(f.dotted())) out.push_back(f.dotted());
  return out;
}

ParallelLayout resolve_layout(const Recipe& r, int world_size) {
  ParallelLayout l;
  l.tp = r.parallel.tp;
  SSM_CHECK(world_size >= 1 && world_size % l.tp == 0, "parallel.tp = {} does not divide the world size {}",
            l.tp, world_size);
  l.dp = r.parallel.dp > 0 ? r.parallel.dp : world_size / l.tp;
  SSM_CHECK(l.dp * l.tp == world_size, "parallel.dp * parallel.tp = {} * {} = {}, but {} ranks were launched",
            l.dp, l.tp, l.dp * l.tp, world_size);
  const int batch = r.train.batch_size;
  SSM_CHECK(batch % l.dp == 0, "train.batch_size = {} is not divisible by dp = {}", batch, l.dp);
  l.micro_batch_size = r.train.micro_batch_size > 0 ? r.train.micro_batch_size : batch / l.dp;
  SSM_CHECK(batch % (l.micro_batch_size * l.dp) == 0,
            "train.batch_size = {} is not divisible by micro_batch_size * dp = {} * {}", batch,
            l.micro_batch_size, l.dp);
  l.grad_accum = batch / (l.micro_batch_size * l.dp);
  return l;
}

}  // namespace ssm::config
