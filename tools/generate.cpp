// ssm generate RUN_OR_CHECKPOINT --prompt TEXT
#include <cstdio>

#include "data/tokenizer.h"
#include "framework/checkpoint/train_state.h"
#include "framework/config/recipe.h"
#include "framework/train/generate.h"
#include "tools/commands.h"

namespace ssm::tools {

namespace {

// The tokenizer a run was trained with: its dataset's tokenizer.json, else byte level.
data::Tokenizer run_tokenizer(const config::Recipe& r) {
  if (r.data.kind == config::DataKind::tokens && !r.data.path.empty()) {
    std::string f = r.data.path + "/tokenizer.json";
    if (FILE* fp = std::fopen(f.c_str(), "r")) {
      std::fclose(fp);
      return data::Tokenizer::load(f);
    }
  }
  return data::Tokenizer::byte_level();
}

}  // namespace

void register_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Sample text from a trained model (recurrent mode, streamed)");
  auto where = std::make_shared<std::string>();
  auto prompt = std::make_shared<std::string>();
  auto opts = std::make_shared<train::SampleOptions>();
  cmd->add_option("checkpoint", *where, "Run directory (uses checkpoints/latest) or checkpoint directory")->required();
  cmd->add_option("--prompt", *prompt, "Prompt text")->required();
  cmd->add_option("--max-tokens", opts->max_tokens, "Tokens to generate")->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", opts->temperature, "Sampling temperature (0 = greedy)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", opts->top_k, "Sample among the k most likely tokens (0 = all)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", opts->seed, "Sampling seed");
  cmd->callback([=] {
    checkpoint::LoadedCheckpoint c = checkpoint::open_checkpoint(*where);
    config::Recipe r = config::parse_recipe(c.index.at("recipe").get<std::string>(), c.path + "/index.json");
    nn::Init init(uint64_t(r.train.seed));
    nn::LanguageModel model(r.model, init);
    checkpoint::load_training_state(c, model, nullptr, nn::TpPlacement{});
    data::Tokenizer tok = run_tokenizer(r);
    std::vector<int32_t> ids = tok.encode(*prompt);
    SSM_CHECK(!ids.empty(), "generate: the prompt encodes to no tokens");
    opts->stop_token = -1;
    std::fputs(prompt->c_str(), stdout);
    std::fflush(stdout);
    train::sample(model, ids, *opts, [&](int32_t id) {
      std::string piece = tok.decode(std::vector<int32_t>{id});
      std::fputs(piece.c_str(), stdout);
      std::fflush(stdout);  // stream tokens as they are produced
    });
    std::fputc('\n', stdout);
  });
}

}  // namespace ssm::tools
