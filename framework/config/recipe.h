// Recipes: a training run as typed C++ structs, read from a strict YAML schema.
//
//   # my_run.yaml                          // C++
//   inherit: recipes/base/lm.yaml          Recipe r = load_recipe("my_run.yaml",
//   model:                                                       {"optim.lr=1e-3"});
//     family: mamba2                       r.model.family == ModelFamily::mamba2;
//     d_model: 64                          r.model.d_state == 128;   // mamba2 default
//     n_layers: 2                          r.optim.lr == 1e-3;       // the override wins
//                                          std::string text = resolved_yaml(r);  // every field
//
// Every mistake is an ssm::Error whose message is exactly "FILE:LINE:COL: message", e.g.
//   recipes/bad.yaml:7:3: unknown key 'lrr' in section 'optim' (did you mean 'lr'?)
// and an override's errors start with "override 'train.stepz=5': ...". `recipe_schema()`
// lists every field with its type, default, range and doc.
#pragma once
#include <array>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "framework/config/schema.h"
#include "framework/core/device.h"

namespace ssm::config {

// ---- enumerations (YAML spellings in the arrays, in enumerator order) -----------------------

enum class ModelFamily { mamba, mamba2, s4d, s5, jamba };
enum class S4dInit { lin, inv, real };
enum class Discretization { zoh, bilinear };
enum class DataKind { tokens, synthetic };
enum class SyntheticTask { selective_copy, induction, mqar };
enum class StateMode { reset, carry };
enum class Recompute { none, mixer, block };
enum class Schedule { cosine, constant, linear };
enum class Precision { fp32, bf16 };
enum class ConsoleMode { automatic, bar, plain };  // YAML: auto | bar | plain

inline constexpr std::string_view kModelFamilyNames[] = {"mamba", "mamba2", "s4d", "s5", "jamba"};
inline constexpr std::string_view kS4dInitNames[] = {"lin", "inv", "real"};
inline constexpr std::string_view kDiscretizationNames[] = {"zoh", "bilinear"};
inline constexpr std::string_view kDataKindNames[] = {"tokens", "synthetic"};
inline constexpr std::string_view kSyntheticTaskNames[] = {"selective_copy", "induction", "mqar"};
inline constexpr std::string_view kStateModeNames[] = {"reset", "carry"};
inline constexpr std::string_view kRecomputeNames[] = {"none", "mixer", "block"};
inline constexpr std::string_view kScheduleNames[] = {"cosine", "constant", "linear"};
inline constexpr std::string_view kPrecisionNames[] = {"fp32", "bf16"};
inline constexpr std::string_view kConsoleModeNames[] = {"auto", "bar", "plain"};

inline std::span<const std::string_view> enum_names(ModelFamily) { return kModelFamilyNames; }
inline std::span<const std::string_view> enum_names(S4dInit) { return kS4dInitNames; }
inline std::span<const std::string_view> enum_names(Discretization) { return kDiscretizationNames; }
inline std::span<const std::string_view> enum_names(DataKind) { return kDataKindNames; }
inline std::span<const std::string_view> enum_names(SyntheticTask) { return kSyntheticTaskNames; }
inline std::span<const std::string_view> enum_names(StateMode) { return kStateModeNames; }
inline std::span<const std::string_view> enum_names(Recompute) { return kRecomputeNames; }
inline std::span<const std::string_view> enum_names(Schedule) { return kScheduleNames; }
inline std::span<const std::string_view> enum_names(Precision) { return kPrecisionNames; }
inline std::span<const std::string_view> enum_names(ConsoleMode) { return kConsoleModeNames; }

// to_string(ModelFamily::mamba2) == "mamba2"
template <class E>
requires requires(E e) { enum_names(e); }
std::string_view to_string(E e) { return enum_names(e)[static_cast<size_t>(e)]; }

// ---- sections (defaults here are the schema's defaults; docs in recipe_schema.cpp) ----------

struct ModelConfig {
  ModelFamily family = ModelFamily::mamba;  // required
  int vocab_size = 0;                       // V; 0 = from the data / tokenizer
  int d_model = 0;                          // D; required
  int n_layers = 0;                         // required
  int d_state = 16;                         // N; default 128 for mamba2
  int d_conv = 4;                           // K, 1..8
  int expand = 2;                           // E = expand * D
  int dt_rank = 0;                          // 0 = auto = ceil(D / 16)
  int headdim = 64;                         // P (mamba2)
  int n_groups = 1;                         // G (mamba2)
  int chunk_size = 256;                     // C (mamba2 SSD)
  double dt_min = 1e-3, dt_max = 0.1, dt_init_floor = 1e-4;
  std::array<double, 2> dt_limit = {0.0, std::numeric_limits<double>::infinity()};  // mamba2 clamp
  std::array<double, 2> a_init_range = {1.0, 16.0};
  bool conv_bias = true;
  bool proj_bias = false;
  double norm_eps = 1e-5;
  bool residual_in_fp32 = true;
  bool tie_embeddings = true;
  int d_intermediate = 0;  // 0 = no MLP after each mixer
  double initializer_range = 0.02;
  bool rescale_prenorm_residual = true;
  S4dInit s4d_init = S4dInit::lin;
  Discretization discretization = Discretization::zoh;
  // jamba
  int n_heads = 8;
  int n_kv_heads = 0;         // 0 = auto = n_heads
  int intermediate_size = 0;  // F; 0 = auto = 4 * D
  int attn_layer_period = 8, attn_layer_offset = 4;
  int expert_layer_period = 2, expert_layer_offset = 1;
  int num_experts = 16;
  int num_experts_per_tok = 2;
  double router_aux_loss_coef = 1e-3;
  double router_z_loss_coef = 0.0;
  bool bcdt_norm = true;
  std::string init_from;  // "" = none; else a Hugging Face directory to import weights from

  int d_inner() const { return expand * d_model; }  // E
  int resolved_dt_rank() const { return dt_rank ? dt_rank : (d_model + 15) / 16; }
  int ssd_heads() const { return headdim ? d_inner() / headdim : 0; }  // H (mamba2)
  int resolved_kv_heads() const { return n_kv_heads ? n_kv_heads : n_heads; }
  int resolved_intermediate_size() const { return intermediate_size ? intermediate_size : 4 * d_model; }
  bool operator==(const ModelConfig&) const = default;
};

struct DataConfig {
  DataKind kind = DataKind::tokens;
  std::string path;  // token dataset directory; required when kind is tokens
  SyntheticTask task = SyntheticTask::selective_copy;
  int synthetic_vocab = 16;
  int num_tokens_to_copy = 16;
  int num_pairs = 8;
  int num_queries = 4;
  bool operator==(const DataConfig&) const = default;
};

struct TrainConfig {
  int64_t steps = 0;         // optimizer steps; exactly one of steps / tokens is > 0
  int64_t tokens = 0;        // train until this many tokens were seen
  int batch_size = 8;        // global sequences per optimizer step
  int micro_batch_size = 0;  // per rank and forward pass; 0 = batch_size / dp
  int seq_len = 256;
  int64_t seed = 1234;
  int eval_every = 100;  // 0 = never
  int eval_batches = 8;
  int log_every = 10;
  StateMode state = StateMode::reset;
  Recompute recompute = Recompute::none;
  bool cuda_graphs = false;
  int threads = 0;  // 0 = all cores

  // steps, or tokens / (batch_size * seq_len) rounded up.
  int64_t total_steps() const;
  bool operator==(const TrainConfig&) const = default;
};

struct OptimConfig {
  double lr = 3e-4;
  double min_lr = 0.0;
  Schedule schedule = Schedule::cosine;
  int64_t warmup_steps = 0;
  double beta1 = 0.9, beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double clip_grad_norm = 1.0;  // 0 = off
  bool operator==(const OptimConfig&) const = default;
};

struct ParallelConfig {
  int dp = 0;  // 0 = world size / tp
  int tp = 1;
  int zero = 0;  // 1 = ZeRO-1 optimizer-state sharding
  double bucket_mb = 25.0;
  bool operator==(const ParallelConfig&) const = default;
};

struct CheckpointConfig {
  int64_t every = 0;  // steps; 0 = off
  int keep_last = 3;  // 0 = keep all
  bool async = true;
  std::string dir;  // "" = <logging.run_dir>/checkpoints
  bool operator==(const CheckpointConfig&) const = default;
};

struct LoggingConfig {
  std::string run_dir;  // default "runs/<name>"
  ConsoleMode console = ConsoleMode::automatic;
  bool tensorboard = true;
  bool jsonl = true;
  bool operator==(const LoggingConfig&) const = default;
};

struct KernelsConfig {
  bool deterministic = false;
  bool operator==(const KernelsConfig&) const = default;
};

struct Recipe {
  std::string name;  // default: the recipe file's stem
  Precision precision = Precision::fp32;
  Device device = Device::cpu();
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  OptimConfig optim;
  ParallelConfig parallel;
  CheckpointConfig checkpoint;
  LoggingConfig logging;
  KernelsConfig kernels;

  std::string checkpoint_dir() const {
    return checkpoint.dir.empty() ? logging.run_dir + "/checkpoints" : checkpoint.dir;
  }
  bool operator==(const Recipe&) const = default;
};

// ---- loading --------------------------------------------------------------------------------

// Reads `path` (following `inherit:`), applies `overrides` ("key.path=value", in order),
// validates every key, type, range and cross-field rule, and fills defaults.
Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});

// The same from YAML text; `file` names it in errors, gives the default name (its stem) and
// anchors a relative `inherit:`.
Recipe parse_recipe(const std::string& yaml, const std::string& file,
                    const std::vector<std::string>& overrides = {});

// Validates a partial recipe (a base meant only to be inherited): unknown keys, types, ranges
// and choices are checked, required keys and cross-field rules are not.
void check_recipe_fragment(const std::string& path);

// The fully resolved recipe (every field, defaults filled) as YAML that parses back to an
// equal Recipe. With `docs`, each line carries its field's doc as a comment.
std::string resolved_yaml(const Recipe& r, bool docs = false);

// Dotted names of the fields that differ ("model.d_state", "train.steps"), in schema order.
std::vector<std::string> diff(const Recipe& a, const Recipe& b);

// The schema behind all of the above (for `ssm inspect` / help listings).
const Schema& recipe_schema();
// A recipe as schema values keyed by dotted name, and back (`values` must hold every field).
ValueMap to_values(const Recipe& r);
Recipe from_values(const ValueMap& values);

// Resolves dp and the per-rank micro batch for a world of `world_size` ranks.
struct ParallelLayout {
  int dp = 1, tp = 1;
  int micro_batch_size = 0;  // sequences per rank per forward pass
  int grad_accum = 1;        // micro batches per optimizer step
};
ParallelLayout resolve_layout(const Recipe& r, int world_size);

}  // namespace ssm::config
