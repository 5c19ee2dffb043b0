// ssm inspect CHECKPOINT_OR_RUN_DIR   |   ssm inspect --recipe RECIPE.yaml
#include <cstdio>

#include "framework/checkpoint/checkpoint.h"
#include "framework/config/recipe.h"
#include "tools/commands.h"

namespace ssm::tools {

void register_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "Describe a checkpoint (verifying checksums) or a resolved recipe");
  auto where = std::make_shared<std::string>();
  auto recipe = std::make_shared<std::string>();
  auto no_verify = std::make_shared<bool>(false);
  cmd->add_option("checkpoint", *where, "Checkpoint directory, checkpoints directory or run directory");
  cmd->add_option("--recipe", *recipe, "Print this recipe fully resolved (every field, with docs) instead");
  cmd->add_flag("--no-verify", *no_verify, "Skip recomputing the checksums");
  cmd->callback([=] {
    if (!recipe->empty()) {
      std::printf("%s", config::resolved_yaml(config::load_recipe(*recipe), /*docs=*/true).c_str());
      return;
    }
    SSM_CHECK(!where->empty(), "inspect: give a checkpoint/run directory or --recipe FILE");
    checkpoint::LoadedCheckpoint c = checkpoint::open_checkpoint(*where, !*no_verify);
    const auto& ix = c.index;
    std::printf("checkpoint  %s\n", c.path.c_str());
    std::printf("step        %lld\n", static_cast<long long>(c.step()));
    std::printf("tokens seen %lld\n", static_cast<long long>(ix.value("tokens_seen", int64_t(0))));
    std::printf("format      %s v%d\n", ix.value("format", "?").c_str(), ix.value("version", 0));
    if (ix.contains("layout")) std::printf("layout      %s\n", ix.at("layout").dump().c_str());
    std::printf("checksums   %s\n", *no_verify ? "not verified" : "all verified");
    int64_t total = 0;
    std::printf("\n%-64s %-6s %-22s %12s\n", "tensor", "dtype", "shape", "bytes");
    for (const checkpoint::LogicalTensor& t : c.tensors) {
      int64_t n = Dims(t.shape).numel() * dtype_size(t.dtype);
      total += n;
      std::printf("%-64s %-6s %-22s %12lld\n", t.name.c_str(), dtype_name(t.dtype), Dims(t.shape).str().c_str(),
                  static_cast<long long>(n));
    }
    std::printf("%zu tensors, %.2f MB\n", c.tensors.size(), double(total) / 1e6);
    if (ix.contains("recipe")) std::printf("\n# recipe\n%s", ix.at("recipe").get<std::string>().c_str());
  });
}

}  // namespace ssm::tools
