// Hugging Face interop: our checkpoints <-> safetensors + config.json that transformers'
// MambaForCausalLM, Mamba2ForCausalLM and JambaForCausalLM load.
//
//   LoadedCheckpoint c = open_checkpoint("runs/m2");                  // any dp/tp layout
//   export_checkpoint(c, "out/hf", {});                               // config.json + model.safetensors
//   //   python: AutoModelForCausalLM.from_pretrained("out/hf")
//   ImportResult r = import_hf("out/hf", "runs/ft", recipe);          // runs/ft/checkpoints/step_00000000
//   load_hf("out/hf", model);                                         // recipe `model.init_from: out/hf`
//
// Everything goes through one table, hf_layout(config): for every HF tensor, its name, shape
// and the logical tensors of our checkpoints (train_state.h names, without "model/") whose rows
// it concatenates:
//   mamba   backbone.layers.{i}.mixer.in_proj.weight [2E, D] = [in_proj.weight.x | .z]
//   mamba2  backbone.layers.{i}.mixer.in_proj.weight [2E+2GN+H, D] = [.z | .x | .B | .C | .dt]
//           backbone.layers.{i}.mixer.conv1d.weight [E+2GN, 1, K] = [conv1d.weight.x | .B | .C]
//   jamba   model.layers.{i}.feed_forward.experts.{e}.gate_proj.weight [F, D]
//             = layers.{i}.ffn.experts.gate_proj[e]  (our experts are one [X, F, D] tensor)
// Export concatenates, import slices, so export -> import is bit-exact in fp32.
//
// Config traps handled (anchors.md §3): use_bias, tie_word_embeddings and pad/bos/eos ids are
// always written; Mamba-2's time_step_limit is omitted at its default (0, inf) and never
// written as the non-standard `Infinity`; Jamba's experts are written per expert, which both
// transformers v4 and v5 load. Families or options that transformers cannot represent (S4D,
// S5, a Mamba/Mamba-2 MLP, Jamba without the dt/B/C norms) are refused with the reason;
// `--format safetensors` (export_checkpoint with format "safetensors") dumps any model
// under our own names instead.
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "framework/checkpoint/checkpoint.h"
#include "framework/checkpoint/safetensors.h"
#include "framework/config/recipe.h"
#include "framework/nn/lm.h"

namespace ssm::checkpoint {

// A block of rows of an HF tensor: a whole logical tensor, or its slice [index] along dim 0.
struct HfPiece {
  std::string logical;  // "layers.0.mixer.in_proj.weight.x"
  int64_t index = -1;   // -1: the whole logical tensor
  Dims shape;           // of the piece
};

struct HfTensor {
  std::string name;  // "backbone.layers.0.mixer.in_proj.weight"
  Dims shape;
  std::vector<HfPiece> pieces;  // concatenated along dim 0
};

// Token ids written to config.json (transformers uses them for generation and padding).
struct HfTokenIds {
  int64_t pad = 0, bos = 0, eos = 0;
};
// Each family's transformers defaults: mamba 0/0/0, mamba2 1/0/2, jamba 0/1/2.
HfTokenIds hf_default_token_ids(config::ModelFamily f);

struct HfLayout {
  std::string architecture;  // "MambaForCausalLM", ...
  nlohmann::ordered_json config;  // config.json (without dtype; see export_checkpoint)
  std::vector<HfTensor> tensors;  // in writing order
  std::map<std::string, Dims> logical;  // every logical tensor used, with its shape
};

// The layout of a model config. Throws, naming the option, when transformers has no
// equivalent model.
HfLayout hf_layout(const config::ModelConfig& m, const HfTokenIds& ids);
HfLayout hf_layout(const config::ModelConfig& m);  // the family's default token ids

// config.json -> our model config. Fields transformers does not describe (initialisation,
// training-only knobs) keep `base`'s values; "auto" fields keep base's auto spelling when it
// resolves to the same value. `where` names the file in errors.
config::ModelConfig model_config_from_hf(const nlohmann::json& config, const std::string& where,
                                         const config::ModelConfig& base = {});
// The token ids of a config.json (family defaults for absent keys).
HfTokenIds token_ids_from_hf(const nlohmann::json& config, config::ModelFamily f);
nlohmann::json read_hf_config(const std::string& hf_dir);

// Logical tensors -> HF tensors (cast to `dtype`), and back (checked: missing and unexpected
// tensors, shapes, dtypes; errors name both sides).
using LogicalSource = std::function<Tensor(const std::string& logical)>;
std::vector<NamedTensor> to_hf_tensors(const HfLayout& layout, const LogicalSource& get, DType dtype);
std::map<std::string, Tensor> from_hf_tensors(const HfLayout& layout, const SafetensorsDir& src);

// ---- the operations behind `ssm export`, `ssm import` and `model.init_from` ---------------

struct ExportOptions {
  std::string format = "hf";   // "hf" or "safetensors" (our names, any family)
  DType dtype = DType::f32;    // f32 or bf16
  uint64_t max_shard_bytes = kDefaultMaxShardBytes;
  std::optional<HfTokenIds> token_ids;  // default: hf_default_token_ids(family)
};
// Writes `out_dir`: hf: config.json + model.safetensors (or shards + index);
// safetensors: model.safetensors under our logical names + recipe.yaml. Returns the files.
std::vector<std::string> export_checkpoint(const LoadedCheckpoint& c, const std::string& out_dir,
                                           const ExportOptions& o);
// The resolved recipe stored in a checkpoint.
config::Recipe checkpoint_recipe(const LoadedCheckpoint& c);

struct ImportResult {
  std::string checkpoint_dir;  // RUN_DIR/checkpoints/step_00000000
  config::Recipe recipe;       // as stored (also RUN_DIR/recipe.yaml)
  int64_t num_tensors = 0;
};
// Reads HF_DIR, writes a step-0 native checkpoint (weights, zero AdamW moments) under
// RUN_DIR/checkpoints and the resolved recipe as RUN_DIR/recipe.yaml, ready for
// `ssm resume RUN_DIR`, `ssm train RECIPE --resume ...`, `ssm generate` and `ssm inspect`.
// `base` supplies everything but the model architecture (data, train, optim, ...); its
// logging.run_dir is replaced by `run_dir`.
ImportResult import_hf(const std::string& hf_dir, const std::string& run_dir, config::Recipe base);

// `model.init_from`: copies HF_DIR's weights into a model built from the recipe (this rank's
// shard under `tp`). The recipe's model must describe the same architecture as
// HF_DIR/config.json; otherwise the error lists every differing field with both values.
void load_hf(const std::string& hf_dir, nn::LanguageModel& model, nn::TpPlacement tp = {});

}  // namespace ssm::checkpoint
