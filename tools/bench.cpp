// ssm bench checkpoint: what an asynchronous save costs the training loop, against a
// synchronous save of the same state, and the write throughput.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "framework/checkpoint/train_state.h"
#include "framework/config/recipe.h"
#include "framework/nn/lm.h"
#include "framework/optim/adamw.h"
#include "tools/commands.h"

namespace ssm::tools {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void bench_checkpoint(const std::string& recipe_path, const std::vector<std::string>& overrides,
                      const std::string& dir, int repeats) {
  config::Recipe r = config::load_recipe(recipe_path, overrides);
  if (r.model.vocab_size == 0) r.model.vocab_size = 50280;  // GPT-NeoX vocabulary, as the 130M Mamba models
  nn::Init init(uint64_t(r.train.seed));
  nn::LanguageModel model(r.model, init);
  optim::NamedParams params;
  for (auto& [n, p] : model.named_parameters()) params.emplace_back(n, p->value);
  optim::AdamW opt(params, {});
  nlohmann::json meta;
  meta["recipe"] = config::resolved_yaml(r);
  int64_t bytes = 0;
  {
    checkpoint::Snapshot s = checkpoint::snapshot_training_state(model, &opt, {}, true, meta, 0, 1);
    for (const auto& it : s.items) bytes += int64_t(it.data.nbytes());
  }
  std::printf("model %s: %.1fM parameters, checkpoint %.2f GB (weights + AdamW moments, fp32)\n",
              std::string(config::to_string(r.model.family)).c_str(), double(model.num_parameters()) / 1e6,
              double(bytes) / 1e9);
  std::filesystem::remove_all(dir);
  double sync_best = 1e30, stall_best = 1e30, async_total_best = 1e30;
  int64_t step = 0;
  for (int i = 0; i < repeats; ++i) {
    {
      checkpoint::CheckpointWriter w(dir, 1, /*async=*/false);
      meta["step"] = ++step;
      auto t0 = std::chrono::steady_clock::now();
      w.save(checkpoint::snapshot_training_state(model, &opt, {}, true, meta, 0, 1));
      sync_best = std::min(sync_best, seconds_since(t0));
    }
    {
      checkpoint::CheckpointWriter w(dir, 1, /*async=*/true);
      meta["step"] = ++step;
      auto t0 = std::chrono::steady_clock::now();
      // The training loop's cost: snapshot (copy to host buffers) + handing it to the writer.
      w.save(checkpoint::snapshot_training_state(model, &opt, {}, true, meta, 0, 1));
      stall_best = std::min(stall_best, seconds_since(t0));
      w.wait();
      async_total_best = std::min(async_total_best, seconds_since(t0));
    }
  }
  std::filesystem::remove_all(dir);
  std::printf("%-34s %10s\n", "measure (best of repeats)", "value");
  std::printf("%-34s %9.3f s\n", "synchronous save", sync_best);
  std::printf("%-34s %9.3f s\n", "async save: training stall", stall_best);
  std::printf("%-34s %9.3f s\n", "async save: until committed", async_total_best);
  std::printf("%-34s %9.1f %%  (target < 10 %%)\n", "stall / synchronous save", 100.0 * stall_best / sync_best);
  std::printf("%-34s %9.2f GB/s\n", "write throughput (sync, fsynced)", double(bytes) / 1e9 / sync_best);
}

}  // namespace

void register_bench(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks (results belong in bench/RESULTS.md)");
  bench->require_subcommand(1);
  auto* ck = bench->add_subcommand("checkpoint", "Training stall of an async save vs a synchronous save");
  auto recipe = std::make_shared<std::string>("recipes/mamba2/130m.yaml");
  auto overrides = std::make_shared<std::vector<std::string>>();
  auto dir = std::make_shared<std::string>("runs/bench-checkpoint");
  auto repeats = std::make_shared<int>(3);
  ck->add_option("--recipe", *recipe, "Model recipe (default: the ~130M Mamba-2)");
  ck->add_option("overrides", *overrides, "Recipe overrides key.path=value");
  ck->add_option("--dir", *dir, "Scratch directory for the checkpoints (removed afterwards)");
  ck->add_option("--repeats", *repeats, "Repetitions (best is reported)")->check(CLI::PositiveNumber);
  ck->callback([=] { bench_checkpoint(*recipe, *overrides, *dir, *repeats); });
}

}  // namespace ssm::tools
