// Export, import and init_from on top of the layout table of hf.cpp.
#include <cmath>
#include <filesystem>
#include <variant>

#include <fmt/ranges.h>

#include "framework/checkpoint/hf.h"
#include "framework/checkpoint/train_state.h"
#include "framework/ops/ops.h"

namespace ssm::checkpoint {

namespace fs = std::filesystem;

namespace {

// Every number in config.json must be finite: nlohmann would write inf as null.
void check_finite(const nlohmann::ordered_json& j, const std::string& path) {
  if (j.is_number_float()) {
    SSM_CHECK(std::isfinite(j.get<double>()), "export: config.json would hold a non-finite number at {}", path);
  } else if (j.is_object()) {
    for (auto& [k, v] : j.items()) check_finite(v, path + "." + k);
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) check_finite(j[i], path + "[" + std::to_string(i) + "]");
  }
}

std::string value_str(const config::Value& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>)
          return x ? "true" : "false";
        else if constexpr (std::is_same_v<T, std::string>)
          return x;
        else if constexpr (std::is_same_v<T, std::vector<double>>)
          return fmt::format("[{}]", fmt::join(x, ", "));
        else
          return fmt::format("{}", x);
      },
      v);
}

constexpr const char* kModelPrefix = "model/";

}  // namespace

config::Recipe checkpoint_recipe(const LoadedCheckpoint& c) {
  SSM_CHECK(c.index.contains("recipe"), "{}: the checkpoint stores no recipe", c.path);
  config::Recipe r = config::parse_recipe(c.index.at("recipe").get<std::string>(), c.path + "/index.json");
  if (r.model.vocab_size == 0)
    if (const LogicalTensor* t = c.find("model/embedding.weight")) r.model.vocab_size = int(t->shape.at(0));
  return r;
}

std::vector<std::string> export_checkpoint(const LoadedCheckpoint& c, const std::string& out_dir,
                                           const ExportOptions& o) {
  SSM_CHECK(o.dtype == DType::f32 || o.dtype == DType::bf16, "export: --dtype must be fp32 or bf16, got {}",
            dtype_name(o.dtype));
  const config::Recipe r = checkpoint_recipe(c);
  NoGradGuard ng;
  auto cast = [&](Tensor t) { return dtype_is_float(t.dtype()) && t.dtype() != o.dtype ? to(t, o.dtype) : t; };
  if (o.format == "safetensors") {
    std::vector<NamedTensor> tensors;
    for (const LogicalTensor& t : c.tensors)
      if (t.name.rfind(kModelPrefix, 0) == 0) tensors.push_back({t.name.substr(6), cast(c.read_full(t.name))});
    std::vector<std::string> files = write_safetensors_dir(
        out_dir, tensors, o.max_shard_bytes,
        {{"format", "pt"}, {"ssm_family", std::string(config::to_string(r.model.family))}});
    write_file_atomic(out_dir + "/recipe.yaml", config::resolved_yaml(r));
    files.push_back("recipe.yaml");
    return files;
  }
  SSM_CHECK(o.format == "hf", "export: unknown format '{}' (hf or safetensors)", o.format);
  HfTokenIds ids = hf_default_token_ids(r.model.family);
  if (o.token_ids) {
    ids = *o.token_ids;
  } else if (c.index.contains("hf_token_ids")) {  // a model imported from Hugging Face keeps its ids
    const auto& j = c.index.at("hf_token_ids");
    ids = {j.at("pad").get<int64_t>(), j.at("bos").get<int64_t>(), j.at("eos").get<int64_t>()};
  }
  HfLayout layout = hf_layout(r.model, ids);
  for (const LogicalTensor& t : c.tensors)
    if (t.name.rfind(kModelPrefix, 0) == 0)
      SSM_CHECK(layout.logical.count(t.name.substr(6)), "{}: tensor '{}' has no place in the {} layout of this "
                "checkpoint's recipe", c.path, t.name, layout.architecture);
  std::vector<NamedTensor> tensors = to_hf_tensors(
      layout,
      [&](const std::string& name) {
        SSM_CHECK(c.find(kModelPrefix + name) != nullptr, "{}: the checkpoint has no tensor 'model/{}' (needed by {})",
                  c.path, name, layout.architecture);
        return c.read_full(kModelPrefix + name);
      },
      o.dtype);
  fs::create_directories(out_dir);
  std::vector<std::string> files = write_safetensors_dir(out_dir, tensors, o.max_shard_bytes);
  nlohmann::ordered_json cfg = layout.config;
  cfg["dtype"] = o.dtype == DType::bf16 ? "bfloat16" : "float32";
  check_finite(cfg, "config");
  write_file_atomic(out_dir + "/config.json", cfg.dump(2) + "\n");
  files.push_back("config.json");
  return files;
}

ImportResult import_hf(const std::string& hf_dir, const std::string& run_dir, config::Recipe base) {
  const nlohmann::json cfg = read_hf_config(hf_dir);
  config::ModelConfig m = model_config_from_hf(cfg, hf_dir + "/config.json", base.model);
  const HfTokenIds ids = token_ids_from_hf(cfg, m.family);
  const HfLayout layout = hf_layout(m, ids);
  const SafetensorsDir src(hf_dir);
  std::map<std::string, Tensor> logical = from_hf_tensors(layout, src);

  config::Recipe r = std::move(base);
  r.model = m;
  r.logging.run_dir = run_dir;
  r.checkpoint.dir.clear();
  // Through the parser, so the stored recipe passes every rule `ssm train` applies.
  r = config::parse_recipe(config::resolved_yaml(r), run_dir + "/recipe.yaml");
  const std::string ckpt_dir = r.checkpoint_dir();
  SSM_CHECK(!fs::exists(ckpt_dir) || fs::is_empty(ckpt_dir),
            "import: {} already holds checkpoints; import into a new run directory", ckpt_dir);

  Snapshot snap;
  snap.step = 0;
  snap.meta = {{"step", 0},
               {"tokens_seen", 0},
               {"optimizer_steps", 0},
               {"recipe", config::resolved_yaml(r)},
               {"layout", {{"dp", 1}, {"tp", 1}, {"zero", 0}}},
               {"data_cursor", {{"next_step", 0}, {"seed", r.train.seed}}},
               {"hf_import", {{"from", fs::absolute(hf_dir).string()}, {"architecture", layout.architecture}}},
               {"hf_token_ids", {{"pad", ids.pad}, {"bos", ids.bos}, {"eos", ids.eos}}}};
  // Zero AdamW moments: a resume starts exactly like a fresh optimizer.
  for (const auto& [name, t] : logical) {
    Tensor zeros = Tensor::zeros(t.shape(), t.dtype());
    Dims start = Dims::filled(t.dim(), 0);
    snap.items.push_back({kModelPrefix + name, t, t.shape(), start});
    snap.items.push_back({"optim/exp_avg/" + name, zeros, t.shape(), start});
    snap.items.push_back({"optim/exp_avg_sq/" + name, zeros, t.shape(), start});
  }
  fs::create_directories(run_dir);
  ImportResult res;
  res.num_tensors = int64_t(logical.size());
  {
    CheckpointWriter w(ckpt_dir, /*keep_last=*/0, /*async=*/false);
    w.save(std::move(snap));
    res.checkpoint_dir = w.last_committed();
  }
  write_file_atomic(run_dir + "/recipe.yaml", config::resolved_yaml(r));
  res.recipe = r;
  return res;
}

void load_hf(const std::string& hf_dir, nn::LanguageModel& model, nn::TpPlacement tp) {
  const std::string where = hf_dir + "/config.json";
  const nlohmann::json cfg = read_hf_config(hf_dir);
  config::ModelConfig have = model.config();
  have.init_from.clear();
  const config::ModelConfig want = model_config_from_hf(cfg, where, have);
  if (!(want == have)) {
    config::Recipe a, b;
    a.model = have;
    b.model = want;
    const config::ValueMap va = config::to_values(a), vb = config::to_values(b);
    std::string list;
    for (const std::string& k : config::diff(a, b))
      list += fmt::format("{}{} (recipe {}, config.json {})", list.empty() ? "" : ", ", k, value_str(va.at(k)),
                          value_str(vb.at(k)));
    SSM_FAIL("model.init_from: the recipe's model differs from {}: {}", where, list);
  }
  const HfLayout layout = hf_layout(have, token_ids_from_hf(cfg, have.family));
  std::map<std::string, Tensor> logical = from_hf_tensors(layout, SafetensorsDir(hf_dir));
  NoGradGuard ng;
  for (const LogicalPart& lp : logical_parts(model, tp)) {
    auto it = logical.find(lp.name);
    SSM_CHECK(it != logical.end(), "model.init_from: {} has no tensor for parameter '{}'", hf_dir, lp.name);
    SSM_CHECK(it->second.shape() == lp.global_shape, "model.init_from: '{}' is {} in {}, the model wants {}", lp.name,
              it->second.shape().str(), hf_dir, lp.global_shape.str());
    Tensor src = lp.dim < 0 ? it->second : it->second.narrow(lp.dim, lp.global_start, lp.local_size);
    Tensor dst = lp.param->value.detach();
    if (lp.dim >= 0) dst = dst.narrow(lp.dim, lp.local_start, lp.local_size);
    copy_(dst, dst.device().is_cpu() ? src : to(src, dst.device()));
  }
}

}  // namespace ssm::checkpoint
