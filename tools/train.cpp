// ssm train RECIPE.yaml [key.path=value ...]
#include <cstdio>

#include "framework/config/recipe.h"
#include "framework/dist/grid.h"
#include "framework/train/trainer.h"
#include "tools/commands.h"

namespace ssm::tools {

void register_train(CLI::App& app, const std::shared_ptr<dist::Communicator>& world) {
  auto* cmd = app.add_subcommand("train", "Train a model from a YAML recipe");
  auto recipe = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  auto quiet = std::make_shared<bool>(false);
  auto resume = std::make_shared<std::string>();
  cmd->add_option("recipe", *recipe, "Recipe file (YAML)")->required();
  cmd->add_option("overrides", *overrides, "Overrides as key.path=value (e.g. train.steps=100 optim.lr=1e-3)");
  cmd->add_flag("--quiet", *quiet, "Do not print the resolved recipe at start");
  cmd->add_option("--resume", *resume, "Resume from 'latest' (this run's newest checkpoint) or a checkpoint path")
      ->expected(0, 1)
      ->default_str("latest");
  cmd->callback([=] {
    config::Recipe r = config::load_recipe(*recipe, *overrides);
    const bool main_rank = world->rank() == 0;  // only rank 0 prints
    if (!*quiet && main_rank) std::fprintf(stderr, "# resolved recipe\n%s\n", config::resolved_yaml(r).c_str());
    train::Trainer trainer(r, {*resume}, world);
    train::TrainSummary s = trainer.run();
    if (!main_rank) return;
    if (world->size() > 1) std::fprintf(stderr, "layout: %s\n", trainer.grid().describe().c_str());
    std::fprintf(stderr, "done: %lld steps, loss %.4f -> %.4f", static_cast<long long>(s.steps), s.first_loss,
                 s.last_loss);
    if (s.first_val && s.last_val) std::fprintf(stderr, ", val_loss %.4f -> %.4f", *s.first_val, *s.last_val);
    if (s.last_accuracy) std::fprintf(stderr, ", val_accuracy %.3f", *s.last_accuracy);
    std::fprintf(stderr, ", %.0f tokens/s\nrun directory: %s\n", s.tokens_per_s, s.run_dir.c_str());
  });

  auto* res = app.add_subcommand("resume", "Continue a run from its newest checkpoint (RUN_DIR/checkpoints/latest)");
  auto run_dir = std::make_shared<std::string>();
  auto res_overrides = std::make_shared<std::vector<std::string>>();
  res->add_option("run_dir", *run_dir, "Run directory")->required();
  res->add_option("overrides", *res_overrides, "Allowed overrides (e.g. train.steps=2000)");
  res->callback([=] {
    config::Recipe r = config::load_recipe(*run_dir + "/recipe.yaml", *res_overrides);
    train::Trainer trainer(r, {"latest"}, world);
    train::TrainSummary s = trainer.run();
    if (world->rank() != 0) return;
    std::fprintf(stderr, "done: %lld more steps, loss %.4f\nrun directory: %s\n", static_cast<long long>(s.steps),
                 s.last_loss, s.run_dir.c_str());
  });
}

}  // namespace ssm::tools
