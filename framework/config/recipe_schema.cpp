// The recipe schema: one line per field binding a YAML key to its Recipe member, with the
// field's doc and range. Defaults come from the member initialisers in recipe.h, so they are
// written once.
#include <algorithm>
#include <climits>
#include <cmath>
#include <type_traits>

#include "framework/config/recipe.h"
#include "framework/core/error.h"

namespace ssm::config {

namespace {

struct Binding {
  std::function<Value(const Recipe&)> get;
  std::function<void(Recipe&, const Value&)> set;
};

template <class M>
Value to_value(const M& m) {
  if constexpr (std::is_same_v<M, bool>)
    return m;
  else if constexpr (std::is_enum_v<M>)
    return std::string(to_string(m));
  else if constexpr (std::is_integral_v<M>)
    return static_cast<int64_t>(m);
  else if constexpr (std::is_same_v<M, double>)
    return m;
  else if constexpr (std::is_same_v<M, std::string>)
    return m;
  else if constexpr (std::is_same_v<M, Device>)
    return m.str();
  else
    return std::vector<double>(m.begin(), m.end());  // std::array<double, N>
}

template <class M>
void from_value(const Value& v, M& m) {
  if constexpr (std::is_same_v<M, bool>) {
    m = std::get<bool>(v);
  } else if constexpr (std::is_enum_v<M>) {
    auto names = enum_names(M{});
    auto it = std::find(names.begin(), names.end(), std::get<std::string>(v));
    SSM_CHECK(it != names.end(), "recipe: '{}' is not a valid choice", std::get<std::string>(v));
    m = static_cast<M>(it - names.begin());
  } else if constexpr (std::is_integral_v<M>) {
    m = static_cast<M>(std::get<int64_t>(v));
  } else if constexpr (std::is_same_v<M, double>) {
    m = std::get<double>(v);
  } else if constexpr (std::is_same_v<M, std::string>) {
    m = std::get<std::string>(v);
  } else if constexpr (std::is_same_v<M, Device>) {
    m = Device::parse(std::get<std::string>(v));
  } else {
    const auto& list = std::get<std::vector<double>>(v);
    SSM_CHECK(list.size() == m.size(), "recipe: expected {} numbers, got {}", m.size(), list.size());
    std::copy(list.begin(), list.end(), m.begin());
  }
}

template <class M>
FieldKind kind_for() {
  if constexpr (std::is_same_v<M, bool>)
    return FieldKind::boolean;
  else if constexpr (std::is_enum_v<M>)
    return FieldKind::choice;
  else if constexpr (std::is_integral_v<M>)
    return FieldKind::integer;
  else if constexpr (std::is_same_v<M, double>)
    return FieldKind::number;
  else if constexpr (std::is_same_v<M, std::string> || std::is_same_v<M, Device>)
    return FieldKind::string;
  else
    return FieldKind::number_list;
}

struct Table {
  Schema schema{{"", "model", "data", "train", "optim", "parallel", "checkpoint", "logging", "kernels"}};
  std::vector<Binding> bindings;  // parallel to schema.fields()

  // Binds `spec` to the member reached by `access`; fills kind, default, list size, choices
  // and the range of int members (a value must fit the member's type).
  template <class M, class Access>
  void bind(std::string section, FieldSpec spec, Access access) {
    spec.section = std::move(section);
    if (spec.kind != FieldKind::auto_int) spec.kind = kind_for<M>();
    Recipe defaults;
    spec.default_value = to_value<M>(access(defaults));
    if constexpr (std::is_enum_v<M>)
      for (std::string_view n : enum_names(M{})) spec.choices.emplace_back(n);
    if constexpr (std::is_same_v<M, std::array<double, 2>>) spec.list_size = 2;
    if constexpr (std::is_same_v<M, int>)
      if (!spec.range.hi) spec.range.hi = static_cast<double>(INT_MAX);
    schema.add(std::move(spec));
    bindings.push_back({[access](const Recipe& r) { return to_value<M>(access(const_cast<Recipe&>(r))); },
                        [access](Recipe& r, const Value& v) { from_value<M>(v, access(r)); }});
  }
  template <class S, class M>
  void add(const char* section, S Recipe::*sec, M S::*mem, FieldSpec spec) {
    bind<M>(section, std::move(spec), [sec, mem](Recipe& r) -> M& { return r.*sec.*mem; });
  }
  template <class M>
  void top(M Recipe::*mem, FieldSpec spec) {
    bind<M>("", std::move(spec), [mem](Recipe& r) -> M& { return r.*mem; });
  }
};

const Range kPositive = Range::at_least(1);  // integers >= 1
const Range kNonNeg = Range::at_least(0);
const Range kAbove0 = Range::above(0);
const Range kBeta = Range::half_open(0, 1);

FieldSpec auto_int(FieldSpec f) {
  f.kind = FieldKind::auto_int;
  f.range = kPositive;
  return f;
}

std::string check_device(const Value& v) {
  try {
    Device::parse(std::get<std::string>(v));
    return "";
  } catch (const Error&) {
    return "invalid device '" + std::get<std::string>(v) + "': expected cpu, cuda or cuda:N";
  }
}

Table build_table() {
  Table t;
  t.schema.reserve("inherit");
  using M = ModelConfig;
  using D = DataConfig;
  using T = TrainConfig;
  using O = OptimConfig;
  auto model = [&t](auto mem, FieldSpec f) { t.add("model", &Recipe::model, mem, std::move(f)); };
  auto data = [&t](auto mem, FieldSpec f) { t.add("data", &Recipe::data, mem, std::move(f)); };
  auto train = [&t](auto mem, FieldSpec f) { t.add("train", &Recipe::train, mem, std::move(f)); };
  auto optim = [&t](auto mem, FieldSpec f) { t.add("optim", &Recipe::optim, mem, std::move(f)); };
  auto parallel = [&t](auto mem, FieldSpec f) { t.add("parallel", &Recipe::parallel, mem, std::move(f)); };
  auto checkpoint = [&t](auto mem, FieldSpec f) {
    t.add("checkpoint", &Recipe::checkpoint, mem, std::move(f));
  };
  auto logging = [&t](auto mem, FieldSpec f) { t.add("logging", &Recipe::logging, mem, std::move(f)); };

  // Top level.
  t.top(&Recipe::name,
        {.key = "name", .doc = "run name; default: the recipe file's stem", .check = [](const Value& v) {
           return std::get<std::string>(v).empty() ? std::string("must not be empty") : "";
         }});
  t.top(&Recipe::precision,
        {.key = "precision", .doc = "fp32, or bf16 weights/activations with fp32 master weights"});
  t.top(&Recipe::device, {.key = "device", .doc = "cpu | cuda | cuda:N", .check = check_device});

  // model
  model(&M::family, {.key = "family", .doc = "mixer family", .required = true});
  model(&M::vocab_size, {.key = "vocab_size", .doc = "V; 0 = from the data / tokenizer", .range = kNonNeg});
  model(&M::d_model, {.key = "d_model", .doc = "model width D", .required = true, .range = kPositive});
  model(&M::n_layers, {.key = "n_layers", .doc = "number of blocks", .required = true, .range = kPositive});
  model(&M::d_state, {.key = "d_state",
                      .doc = "state size N (default 16; mamba2 128)",
                      .range = kPositive,
                      .default_fn = [](const ValueMap& v) -> Value {
                        return int64_t{std::get<std::string>(v.at("model.family")) == "mamba2" ? 128 : 16};
                      }});
  model(&M::d_conv, {.key = "d_conv", .doc = "causal conv width K", .range = Range::closed(1, 8)});
  model(&M::expand, {.key = "expand", .doc = "d_inner E = expand * d_model", .range = kPositive});
  model(&M::dt_rank,
        auto_int({.key = "dt_rank", .doc = "rank of the dt projection; auto = ceil(d_model / 16)"}));
  model(&M::headdim, {.key = "headdim", .doc = "mamba2 head dim P", .range = kPositive});
  model(&M::n_groups, {.key = "n_groups", .doc = "mamba2 B/C groups G", .range = kPositive});
  model(&M::chunk_size, {.key = "chunk_size", .doc = "mamba2 SSD chunk length C", .range = kPositive});
  model(&M::dt_min, {.key = "dt_min", .doc = "smallest initial dt", .range = kAbove0});
  model(&M::dt_max, {.key = "dt_max", .doc = "largest initial dt", .range = kAbove0});
  model(&M::dt_init_floor,
        {.key = "dt_init_floor", .doc = "lower clamp of the initial dt", .range = kNonNeg});
  model(&M::dt_limit,
        {.key = "dt_limit", .doc = "[lo, hi] clamp of dt in the mamba2 forward", .range = kNonNeg});
  model(&M::a_init_range,
        {.key = "a_init_range", .doc = "[lo, hi] of the initial -A (mamba2)", .range = kAbove0});
  model(&M::conv_bias, {.key = "conv_bias", .doc = "bias in the causal conv"});
  model(&M::proj_bias, {.key = "proj_bias", .doc = "bias in in_proj / out_proj"});
  model(&M::norm_eps, {.key = "norm_eps", .doc = "RMSNorm epsilon", .range = kAbove0});
  model(&M::residual_in_fp32, {.key = "residual_in_fp32", .doc = "keep the residual stream in fp32"});
  model(&M::tie_embeddings, {.key = "tie_embeddings", .doc = "lm_head shares the embedding matrix"});
  model(
      &M::d_intermediate,
      {.key = "d_intermediate", .doc = "width of a gated MLP after each mixer; 0 = none", .range = kNonNeg});
  model(&M::initializer_range,
        {.key = "initializer_range", .doc = "std of normal weight init", .range = kAbove0});
  model(&M::rescale_prenorm_residual,
        {.key = "rescale_prenorm_residual", .doc = "scale out_proj init by 1/sqrt(n_layers)"});
  model(&M::s4d_init, {.key = "s4d_init", .doc = "S4D/S5 initialisation of A"});
  model(&M::discretization, {.key = "discretization", .doc = "S4D/S5 discretisation rule"});
  model(&M::n_heads, {.key = "n_heads", .doc = "jamba attention heads", .range = kPositive});
  model(&M::n_kv_heads, auto_int({.key = "n_kv_heads", .doc = "jamba key/value heads; auto = n_heads"}));
  model(&M::intermediate_size,
        auto_int({.key = "intermediate_size", .doc = "jamba FFN / expert width F; auto = 4 * d_model"}));
  model(&M::attn_layer_period,
        {.key = "attn_layer_period", .doc = "jamba: attention every this many layers", .range = kPositive});
  model(&M::attn_layer_offset, {.key = "attn_layer_offset",
                                .doc = "jamba: layer i is attention iff i % period == offset",
                                .range = kNonNeg});
  model(&M::expert_layer_period,
        {.key = "expert_layer_period", .doc = "jamba: MoE FFN every this many layers", .range = kPositive});
  model(&M::expert_layer_offset, {.key = "expert_layer_offset",
                                  .doc = "jamba: layer i is MoE iff i % period == offset",
                                  .range = kNonNeg});
  model(&M::num_experts, {.key = "num_experts", .doc = "jamba experts per MoE layer", .range = kPositive});
  model(&M::num_experts_per_tok,
        {.key = "num_experts_per_tok", .doc = "jamba router top-k", .range = Range::closed(1, 2)});
  model(&M::router_aux_loss_coef,
        {.key = "router_aux_loss_coef", .doc = "weight of the load-balancing loss", .range = kNonNeg});
  model(&M::router_z_loss_coef,
        {.key = "router_z_loss_coef", .doc = "weight of the router z-loss", .range = kNonNeg});
  model(&M::bcdt_norm, {.key = "bcdt_norm", .doc = "jamba: RMSNorm on the mamba dt/B/C activations"});
  model(&M::init_from,
        {.key = "init_from", .doc = "Hugging Face directory to import weights from; \"\" = none"});

  // data
  data(&D::kind, {.key = "kind", .doc = "token shards or an on-the-fly synthetic task"});
  data(&D::path, {.key = "path", .doc = "token dataset directory (kind: tokens)"});
  data(&D::task, {.key = "task", .doc = "synthetic task (kind: synthetic)"});
  data(&D::synthetic_vocab,
       {.key = "synthetic_vocab", .doc = "vocabulary of the synthetic task", .range = Range::at_least(2)});
  data(&D::num_tokens_to_copy,
       {.key = "num_tokens_to_copy", .doc = "selective_copy: tokens to copy", .range = kPositive});
  data(&D::num_pairs, {.key = "num_pairs", .doc = "mqar: key-value pairs", .range = kPositive});
  data(&D::num_queries, {.key = "num_queries", .doc = "mqar: queries", .range = kPositive});

  // train
  train(&T::steps, {.key = "steps", .doc = "optimizer steps (set steps or tokens)", .range = kNonNeg});
  train(&T::tokens,
        {.key = "tokens", .doc = "train for this many tokens instead of steps", .range = kNonNeg});
  train(&T::batch_size,
        {.key = "batch_size", .doc = "global sequences per optimizer step", .range = kPositive});
  train(&T::micro_batch_size, {.key = "micro_batch_size",
                               .doc = "sequences per rank per forward; 0 = batch_size / dp",
                               .range = kNonNeg});
  train(&T::seq_len, {.key = "seq_len", .doc = "tokens per sequence L", .range = kPositive});
  train(&T::seed, {.key = "seed", .doc = "seed of init, data order and dropout", .range = kNonNeg});
  train(&T::eval_every,
        {.key = "eval_every", .doc = "steps between evaluations; 0 = never", .range = kNonNeg});
  train(&T::eval_batches,
        {.key = "eval_batches", .doc = "validation batches per evaluation", .range = kPositive});
  train(&T::log_every, {.key = "log_every", .doc = "steps between metric lines", .range = kPositive});
  train(&T::state, {.key = "state", .doc = "reset the SSM state per sequence, or carry it (TBPTT)"});
  train(&T::recompute, {.key = "recompute", .doc = "activation recomputation in backward"});
  train(&T::cuda_graphs, {.key = "cuda_graphs", .doc = "capture the step in a CUDA graph"});
  train(&T::threads, {.key = "threads", .doc = "CPU threads; 0 = all cores", .range = kNonNeg});

  // optim
  optim(&O::lr, {.key = "lr", .doc = "peak learning rate", .range = kAbove0});
  optim(&O::min_lr, {.key = "min_lr", .doc = "final learning rate of the decay (<= lr)", .range = kNonNeg});
  optim(&O::schedule, {.key = "schedule", .doc = "decay after warmup"});
  optim(&O::warmup_steps, {.key = "warmup_steps", .doc = "linear warmup steps", .range = kNonNeg});
  optim(&O::beta1, {.key = "beta1", .doc = "AdamW first-moment decay", .range = kBeta});
  optim(&O::beta2, {.key = "beta2", .doc = "AdamW second-moment decay", .range = kBeta});
  optim(&O::eps, {.key = "eps", .doc = "AdamW epsilon", .range = kAbove0});
  optim(&O::weight_decay, {.key = "weight_decay", .doc = "decoupled weight decay", .range = kNonNeg});
  optim(&O::clip_grad_norm,
        {.key = "clip_grad_norm", .doc = "global gradient-norm clip; 0 = off", .range = kNonNeg});

  // parallel
  parallel(&ParallelConfig::dp,
           {.key = "dp", .doc = "data-parallel ranks; 0 = world size / tp", .range = kNonNeg});
  parallel(&ParallelConfig::tp, {.key = "tp", .doc = "tensor-parallel ranks", .range = kPositive});
  parallel(
      &ParallelConfig::zero,
      {.key = "zero", .doc = "1 = shard optimizer state over dp (ZeRO-1)", .range = Range::closed(0, 1)});
  parallel(&ParallelConfig::bucket_mb,
           {.key = "bucket_mb", .doc = "gradient all-reduce bucket size in MiB", .range = kAbove0});

  // checkpoint
  checkpoint(&CheckpointConfig::every,
             {.key = "every", .doc = "steps between checkpoints; 0 = off", .range = kNonNeg});
  checkpoint(&CheckpointConfig::keep_last,
             {.key = "keep_last", .doc = "checkpoints kept; 0 = all", .range = kNonNeg});
  checkpoint(&CheckpointConfig::async, {.key = "async", .doc = "write checkpoints on a background thread"});
  checkpoint(&CheckpointConfig::dir, {.key = "dir", .doc = "\"\" = <logging.run_dir>/checkpoints"});

  // logging
  logging(&LoggingConfig::run_dir, {.key = "run_dir",
                                    .doc = "output directory; default runs/<name>",
                                    .default_fn = [](const ValueMap& v) -> Value {
                                      return "runs/" + std::get<std::string>(v.at("name"));
                                    }});
  logging(&LoggingConfig::console,
          {.key = "console", .doc = "progress bar on a terminal (auto), bar, or plain lines"});
  logging(&LoggingConfig::tensorboard, {.key = "tensorboard", .doc = "write TensorBoard event files"});
  logging(&LoggingConfig::jsonl, {.key = "jsonl", .doc = "write metrics.jsonl"});

  t.add("kernels", &Recipe::kernels, &KernelsConfig::deterministic,
        {.key = "deterministic", .doc = "bitwise-reproducible kernels (no atomics)"});
  return t;
}

const Table& table() {
  static const Table t = build_table();
  return t;
}

}  // namespace

const Schema& recipe_schema() { return table().schema; }

ValueMap to_values(const Recipe& r) {
  const Table& t = table();
  ValueMap out;
  for (size_t i = 0; i < t.bindings.size(); ++i) out[t.schema.fields()[i].dotted()] = t.bindings[i].get(r);
  return out;
}

Recipe from_values(const ValueMap& values) {
  const Table& t = table();
  Recipe r;
  for (size_t i = 0; i < t.bindings.size(); ++i) {
    const std::string key = t.schema.fields()[i].dotted();
    auto it = values.find(key);
    SSM_CHECK(it != values.end(), "recipe: no value for '{}'", key);
    t.bindings[i].set(r, it->second);
  }
  return r;
}

}  // namespace ssm::config
