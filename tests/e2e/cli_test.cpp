// The `ssm` command line end to end: prepare a corpus, train, inspect, generate, and the
// error behaviour users see (one line, non-zero exit).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/support/run_util.h"

namespace ssm {
namespace {

namespace fs = std::filesystem;
using test::run_process;

std::string corpus_text() {
  // A small but real English text: repeated sentences with variation, blank-line documents.
  const char* sentences[] = {"The quick brown fox jumps over the lazy dog.", "A state space model reads one token at a time.",
                             "Training a small model on a laptop is a fine way to learn.",
                             "Every document ends with an end of sequence token.", "She sells sea shells by the sea shore."};
  std::string s;
  for (int d = 0; d < 300; ++d) {
    for (int k = 0; k < 3; ++k) s += std::string(sentences[(d + k * 2) % 5]) + " ";
    s += "\n\n";
  }
  return s;
}

std::string lm_recipe(const std::string& data, const std::string& run) {
  return "name: e2e\nmodel:\n  family: mamba2\n  d_model: 32\n  n_layers: 2\n  headdim: 16\n  d_state: 16\n"
         "  chunk_size: 32\ndata:\n  kind: tokens\n  path: " + data + "\ntrain:\n  steps: 60\n  batch_size: 8\n"
         "  seq_len: 64\n  eval_every: 30\n  eval_batches: 2\n  log_every: 5\n  threads: 2\noptim:\n  lr: 5.0e-3\n"
         "  warmup_steps: 5\ncheckpoint:\n  every: 30\nlogging:\n  run_dir: " + run + "\n  console: plain\n";
}

TEST(Cli, HelpForEveryVerb) {
  for (std::string verb : {"train", "resume", "generate", "data", "plot", "inspect", "bench"}) {
    test::RunResult r = run_process({SSM_BIN, verb, "--help"}, ".");
    EXPECT_EQ(r.exit_code, 0) << verb << ": " << r.output;
    EXPECT_NE(r.output.find("Usage"), std::string::npos) << r.output;
  }
  test::RunResult v = run_process({SSM_BIN, "--version"}, ".");
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.output.find("ssm 0.1.0"), std::string::npos);
  EXPECT_NE(run_process({SSM_BIN, "frobnicate"}, ".").exit_code, 0);
}

TEST(Cli, PrepareTrainInspectGenerate) {
  test::TempDir dir("e2e");
  test::write_file(dir / "text/corpus.txt", corpus_text());
  test::RunResult p = run_process({SSM_BIN, "data", "prepare", dir / "text", "--out", dir / "data"}, dir.path());
  ASSERT_EQ(p.exit_code, 0) << p.output;
  test::RunResult di = run_process({SSM_BIN, "data", "inspect", dir / "data/train_00000.bin"}, dir.path());
  ASSERT_EQ(di.exit_code, 0) << di.output;

  test::write_file(dir / "r.yaml", lm_recipe(dir / "data", dir / "run"));
  test::RunResult t = run_process({SSM_BIN, "train", dir / "r.yaml"}, dir.path());
  ASSERT_EQ(t.exit_code, 0) << t.output;
  EXPECT_NE(t.output.find("# resolved recipe"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir / "run/recipe.yaml"));
  // metrics.jsonl: training loss falls and validation loss falls.
  std::vector<double> loss, val;
  for (const std::string& line : test::read_lines(dir / "run/metrics.jsonl")) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) loss.push_back(j["loss"]);
    if (j.contains("val_loss")) val.push_back(j["val_loss"]);
  }
  ASSERT_EQ(loss.size(), 12u);
  ASSERT_GE(val.size(), 2u);
  EXPECT_LT(loss.back(), loss.front() - 1.0) << "training loss did not fall";
  EXPECT_LT(val.back(), val.front() - 1.0) << "validation loss did not fall";

  test::RunResult in = run_process({SSM_BIN, "inspect", dir / "run"}, dir.path());
  ASSERT_EQ(in.exit_code, 0) << in.output;
  EXPECT_NE(in.output.find("step        60"), std::string::npos) << in.output;
  EXPECT_NE(in.output.find("model/layers.1.mixer.in_proj.weight.dt"), std::string::npos) << in.output;

  test::RunResult g = run_process(
      {SSM_BIN, "generate", dir / "run", "--prompt", "The quick", "--max-tokens", "40", "--seed", "3"}, dir.path());
  ASSERT_EQ(g.exit_code, 0) << g.output;
  EXPECT_EQ(g.output.rfind("The quick", 0), 0u) << g.output;
  EXPECT_GT(g.output.size(), 30u);
}

TEST(Cli, BadInputGivesOneLineErrorsAndNonZeroExit) {
  test::TempDir dir("e2e-bad");
  test::write_file(dir / "bad.yaml", "model:\n  family: mamba2\n  d_modle: 3\n");
  test::RunResult r = run_process({SSM_BIN, "train", dir / "bad.yaml"}, dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("bad.yaml:3:3: unknown key 'd_modle'"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;

  test::RunResult m = run_process({SSM_BIN, "train", dir / "missing.yaml"}, dir.path());
  EXPECT_EQ(m.exit_code, 1);
  EXPECT_NE(m.output.find("missing.yaml"), std::string::npos) << m.output;

  test::RunResult c = run_process({SSM_BIN, "generate", dir / "nothing", "--prompt", "x"}, dir.path());
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_NE(c.output.find("nothing"), std::string::npos) << c.output;

  test::write_file(dir / "shard.bin", "not a shard at all");
  test::RunResult s = run_process({SSM_BIN, "data", "inspect", dir / "shard.bin"}, dir.path());
  EXPECT_EQ(s.exit_code, 1);
  EXPECT_NE(s.output.find("shard.bin"), std::string::npos) << s.output;
}

}  // namespace
}  // namespace ssm
