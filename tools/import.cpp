// ssm import HF_DIR --out RUN_DIR [--recipe RECIPE.yaml] [key.path=value ...]
#include <cstdio>
#include <filesystem>

#include "framework/checkpoint/hf.h"
#include "framework/config/recipe.h"
#include "tools/commands.h"

namespace ssm::tools {

namespace {

// What an import without --recipe trains on next: a placeholder synthetic task, so that the
// stored recipe is complete; pass --recipe (or edit RUN_DIR/recipe.yaml before resuming) to
// fine-tune on real data. The model section is replaced by HF_DIR/config.json's.
constexpr const char* kDefaultRecipe = R"(model:
  family: mamba
  d_model: 1
  n_layers: 1
data:
  kind: synthetic
  task: induction
train:
  steps: 100
)";

}  // namespace

void register_import(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "import", "Turn a Hugging Face model directory (Mamba, Mamba-2, Jamba) into a step-0 ssm checkpoint");
  auto hf_dir = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto recipe = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  cmd->add_option("hf_dir", *hf_dir, "Directory with config.json and model.safetensors (or shards + index)")
      ->required();
  cmd->add_option("--out", *out, "New run directory: gets checkpoints/step_00000000 and recipe.yaml")->required();
  cmd->add_option("--recipe", *recipe,
                  "Recipe whose data/train/optim/... sections the run uses (its model section is replaced)");
  cmd->add_option("overrides", *overrides, "Overrides of that recipe as key.path=value");
  cmd->callback([=] {
    const std::string name = std::filesystem::path(*out).filename().string();
    config::Recipe base = recipe->empty() ? config::parse_recipe(kDefaultRecipe, name + ".yaml", *overrides)
                                          : config::load_recipe(*recipe, *overrides);
    checkpoint::ImportResult r = checkpoint::import_hf(*hf_dir, *out, base);
    std::fprintf(stderr,
                 "imported %s (%s, %lld tensors) -> %s\n"
                 "continue with: ssm resume %s train.steps=N   (recipe: %s/recipe.yaml)\n",
                 hf_dir->c_str(), std::string(config::to_string(r.recipe.model.family)).c_str(),
                 static_cast<long long>(r.num_tensors), r.checkpoint_dir.c_str(), out->c_str(), out->c_str());
  });
}

}  // namespace ssm::tools
