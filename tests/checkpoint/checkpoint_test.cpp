// Checkpoints: format round trip, exact resume, crash safety (SIGKILL during writes),
// corruption and disk-full detection, pruning.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "data/corpus.h"
#include "framework/checkpoint/checkpoint.h"
#include "framework/checkpoint/train_state.h"
#include "framework/config/recipe.h"
#include "framework/ops/ops.h"
#include "framework/train/trainer.h"
#include "tests/support/run_util.h"

namespace ssm {
namespace {

namespace fs = std::filesystem;

std::string tiny_recipe(const std::string& run_dir, const std::string& extra = "") {
  return R"(name: ckpt-test
model:
  family: mamba2
  d_model: 16
  n_layers: 2
  headdim: 8
  d_state: 8
  chunk_size: 16
data:
  kind: synthetic
  task: induction
  synthetic_vocab: 16
train:
  steps: 8
  batch_size: 4
  micro_batch_size: 2
  seq_len: 32
  eval_every: 0
  log_every: 1
  threads: 1
optim:
  lr: 3.0e-3
  schedule: constant
checkpoint:
  every: 2
  keep_last: 0
  async: true
logging:
  run_dir: )" + run_dir + R"(
  console: plain
  tensorboard: false
)" + extra;
}

std::vector<double> losses(const std::string& metrics) {
  std::vector<double> out;
  for (const std::string& line : test::read_lines(metrics)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j["loss"].get<double>());
  }
  return out;
}

std::vector<std::vector<double>> weights(nn::Module& m) {
  std::vector<std::vector<double>> w;
  for (nn::Parameter* p : m.parameters()) w.push_back(p->value.to_vector());
  return w;
}

TEST(Checkpoint, RoundTripIsBitExactAndReshardsSlices) {
  test::TempDir dir("ckpt-rt");
  config::Recipe r = config::parse_recipe(tiny_recipe(dir / "run"), dir / "r.yaml");
  train::Trainer t(r);
  t.run();
  checkpoint::LoadedCheckpoint c = checkpoint::open_checkpoint(dir / "run");
  EXPECT_EQ(c.step(), 8);
  // Packed projections are stored as logical segments.
  EXPECT_NE(c.find("model/layers.0.mixer.in_proj.weight.z"), nullptr);
  EXPECT_NE(c.find("model/layers.0.mixer.in_proj.weight.dt"), nullptr);
  EXPECT_NE(c.find("model/layers.0.mixer.conv1d.weight.B"), nullptr);
  EXPECT_NE(c.find("optim/exp_avg_sq/embedding.weight"), nullptr);
  nn::Init init(99);
  config::ModelConfig mc = t.model().config();
  nn::LanguageModel fresh(mc, init);
  checkpoint::load_training_state(c, fresh, nullptr, {});
  EXPECT_EQ(weights(fresh), weights(t.model()));
  // A slice across two segments' pieces is assembled exactly.
  Tensor full = c.read_full("model/embedding.weight");
  Tensor part = c.read("model/embedding.weight", {3, 2}, {5, 7});
  NoGradGuard ng;
  EXPECT_EQ(part.to_vector(), contiguous(full.narrow(0, 3, 5).narrow(1, 2, 7)).to_vector());
}

TEST(Checkpoint, ResumeContinuesTheExactTrajectory) {
  test::TempDir dir("ckpt-resume");
  // Uninterrupted: 8 steps.
  config::Recipe ra = config::parse_recipe(tiny_recipe(dir / "a"), dir / "a.yaml");
  train::Trainer a(ra);
  a.run();
  // Interrupted: 4 steps, then a new process-like Trainer resumes to 8 (train.steps may change).
  config::Recipe rb = config::parse_recipe(tiny_recipe(dir / "b"), dir / "b.yaml", {"train.steps=4"});
  {
    train::Trainer b1(rb);
    b1.run();
  }
  config::Recipe rb2 = config::parse_recipe(tiny_recipe(dir / "b"), dir / "b.yaml");
  train::Trainer b2(rb2, {"latest"});
  EXPECT_EQ(b2.step(), 4);
  b2.run();
  std::vector<double> la = losses(dir / "a/metrics.jsonl"), lb = losses(dir / "b/metrics.jsonl");
  ASSERT_EQ(la.size(), 8u);
  ASSERT_EQ(lb.size(), 8u);
  EXPECT_EQ(la, lb);  // bit-identical
  EXPECT_EQ(weights(a.model()), weights(b2.model()));
}

// Truncated BPTT (train.state: carry): the carried SSM/conv states are part of the checkpoint,
// so a resumed run continues the same streams with the same states.
TEST(Checkpoint, CarryModeResumeIsExact) {
  test::TempDir dir("ckpt-carry");
  std::string text;
  for (int d = 0; d < 60; ++d)
    text += "document " + std::to_string(d) + " says the quick brown fox jumps over the lazy dog " +
            std::to_string(d * 7) + " times.\n\n";
  test::write_file(dir / "text/a.txt", text);
  data::CorpusOptions co;
  co.inputs = {dir / "text"};
  co.out_dir = dir / "data";
  data::prepare_corpus(co);
  std::string extra = "";
  auto make = [&](const std::string& run, std::vector<std::string> ov) {
    std::string y = tiny_recipe(run);
    y.replace(y.find("data:\n  kind: synthetic\n  task: induction\n  synthetic_vocab: 16\n"),
              std::string("data:\n  kind: synthetic\n  task: induction\n  synthetic_vocab: 16\n").size(),
              "data:\n  kind: tokens\n  path: " + (dir / "data") + "\n");
    ov.push_back("train.state=carry");
    return config::parse_recipe(y, run + ".yaml", ov);
  };
  train::Trainer a(make(dir / "a", {}));
  a.run();
  { train::Trainer b1(make(dir / "b", {"train.steps=4"})); b1.run(); }
  train::Trainer b2(make(dir / "b", {}), {"latest"});
  b2.run();
  std::vector<double> la = losses(dir / "a/metrics.jsonl"), lb = losses(dir / "b/metrics.jsonl");
  ASSERT_EQ(la.size(), 8u);
  EXPECT_EQ(la, lb);
  EXPECT_EQ(weights(a.model()), weights(b2.model()));
}

TEST(Checkpoint, ResumeRefusesAChangedModel) {
  test::TempDir dir("ckpt-refuse");
  config::Recipe r = config::parse_recipe(tiny_recipe(dir / "run"), dir / "r.yaml", {"train.steps=2"});
  train::Trainer(r).run();
  config::Recipe changed = config::parse_recipe(tiny_recipe(dir / "run"), dir / "r.yaml", {"model.d_state=16"});
  try {
    train::Trainer t(changed, {"latest"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.d_state"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, CorruptionIsDetectedWithFileAndDataset) {
  test::TempDir dir("ckpt-corrupt");
  checkpoint::CheckpointWriter w(dir / "ckpts", 0, false);
  checkpoint::Snapshot s;
  s.step = 5;
  std::vector<double> v(64, 1234.5678);
  Tensor t = Tensor::from_vector(v, {8, 8}, DType::f32);
  s.items.push_back({"model/w", t, t.shape(), Dims{0, 0}});
  w.save(s);
  std::string step = dir / "ckpts/step_00000005";
  ASSERT_NO_THROW(checkpoint::open_checkpoint(dir / "ckpts"));
  std::string file = step + "/rank_00000.h5";
  std::string bytes = test::read_file(file);
  float marker = 1234.5678f;
  size_t at = bytes.find(std::string(reinterpret_cast<const char*>(&marker), 4));
  ASSERT_NE(at, std::string::npos);
  bytes[at + 17] ^= 0x10;  // one bit flip inside the dataset's data
  test::write_file(file, bytes);
  try {
    checkpoint::open_checkpoint(dir / "ckpts");
    FAIL() << "corruption not detected";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("rank_00000.h5"), std::string::npos) << m;
    EXPECT_NE(m.find("model/w"), std::string::npos) << m;
    EXPECT_NE(m.find("checksum"), std::string::npos) << m;
  }
  test::write_file(file, bytes.substr(0, bytes.size() / 2));  // truncated
  try {
    checkpoint::open_checkpoint(dir / "ckpts");
    FAIL() << "truncation not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank_00000.h5"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, KeepLastPrunesOnlyAfterCommit) {
  test::TempDir dir("ckpt-prune");
  checkpoint::CheckpointWriter w(dir / "c", 2, true);
  for (int step : {1, 2, 3, 4}) {
    checkpoint::Snapshot s;
    s.step = step;
    Tensor t = Tensor::from_vector({double(step)}, {1});
    s.items.push_back({"model/x", t, t.shape(), Dims{0}});
    w.save(s);
  }
  w.wait();
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir / "c")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"latest", "step_00000003", "step_00000004"}));
  EXPECT_EQ(checkpoint::open_checkpoint(dir / "c").read_full("model/x").item(), 4.0);
}

// Disk full while writing: the write fails with a clear error, the previous checkpoint stays
// loadable and `latest` still names it. RLIMIT_FSIZE makes writes past a size fail (EFBIG) in a
// child process, like a full disk.
TEST(Checkpoint, DiskFullLeavesThePreviousCheckpointIntact) {
  test::TempDir dir("ckpt-full");
  {
    checkpoint::CheckpointWriter w(dir / "c", 0, false);
    checkpoint::Snapshot s;
    s.step = 1;
    Tensor t = Tensor::from_vector({1, 2, 3}, {3});
    s.items.push_back({"model/x", t, t.shape(), Dims{0}});
    w.save(s);
  }
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{64 * 1024, 64 * 1024};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    std::string msg = "no error";
    try {
      checkpoint::CheckpointWriter w(dir / "c", 0, false);
      checkpoint::Snapshot s;
      s.step = 2;
      Tensor big = Tensor::zeros({256 * 1024}, DType::f32);  // 1 MB > the limit
      s.items.push_back({"model/x", big, big.shape(), Dims{0}});
      w.save(s);
    } catch (const std::exception& e) {
      msg = e.what();
    }
    ssize_t n = ::write(fds[1], msg.data(), msg.size());
    (void)n;
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string msg;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) msg.append(buf, size_t(n));
  ::close(fds[0]);
  test::wait_process(pid);
  EXPECT_NE(msg, "no error");
  EXPECT_NE(msg.find("step_00000002"), std::string::npos) << msg;
  EXPECT_NE(msg.find("is intact"), std::string::npos) << msg;
  checkpoint::LoadedCheckpoint c = checkpoint::open_checkpoint(dir / "c");
  EXPECT_EQ(c.step(), 1);
  EXPECT_EQ(c.read_full("model/x").to_vector(), (std::vector<double>{1, 2, 3}));
  for (const auto& e : fs::directory_iterator(dir / "c"))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << "leftover " << e.path();
}

#ifdef SSM_BIN
// SIGKILL at random moments while checkpoints are written every step (asynchronously): after
// every kill, `latest` must load and verify, and the run must resume from it.
TEST(Checkpoint, SigkillDuringWritesAlwaysLeavesALoadableLatest) {
  test::TempDir dir("ckpt-kill");
  test::write_file(dir / "r.yaml", tiny_recipe(dir / "run", ""));
  std::mt19937 rng(12345);
  int verified = 0;
  for (int i = 0; i < 24; ++i) {
    std::vector<std::string> argv = {SSM_BIN, "train", dir / "r.yaml", "--quiet", "train.steps=100000",
                                     "checkpoint.every=1", "checkpoint.keep_last=3", "optim.schedule=constant"};
    bool have = fs::exists(dir / "run/checkpoints/latest");
    if (have) argv.push_back("--resume=latest");
    int pid = test::spawn_process(argv, dir.path(), dir / "log.txt");
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + int(rng() % 500)));
    ::kill(pid, SIGKILL);
    EXPECT_EQ(test::wait_process(pid), -SIGKILL) << test::read_file(dir / "log.txt");
    if (!fs::exists(dir / "run/checkpoints/latest")) continue;
    EXPECT_NO_THROW({
      checkpoint::LoadedCheckpoint c = checkpoint::open_checkpoint(dir / "run", /*verify=*/true);
      EXPECT_GE(c.step(), 1);
    }) << "iteration " << i;
    ++verified;
  }
  EXPECT_GE(verified, 20);
}

// SIGTERM: the run checkpoints the step it is at and exits 0; `ssm resume` continues, and the
// losses equal an uninterrupted run's, step for step.
TEST(Checkpoint, SigtermCheckpointsAndResumeMatchesUninterrupted) {
  test::TempDir dir("ckpt-term");
  std::string extra = "";
  test::write_file(dir / "a.yaml", tiny_recipe(dir / "a", extra));
  test::write_file(dir / "b.yaml", tiny_recipe(dir / "b", extra));
  std::vector<std::string> common = {"--quiet", "train.steps=400", "optim.schedule=cosine", "optim.warmup_steps=10",
                                     "checkpoint.every=0"};
  std::vector<std::string> a = {SSM_BIN, "train", dir / "a.yaml"};
  a.insert(a.end(), common.begin(), common.end());
  test::RunResult ra = test::run_process(a, dir.path());
  ASSERT_EQ(ra.exit_code, 0) << ra.output;
  std::vector<std::string> b = {SSM_BIN, "train", dir / "b.yaml"};
  b.insert(b.end(), common.begin(), common.end());
  int pid = test::spawn_process(b, dir.path(), dir / "b.log");
  // Wait until training is under way, then ask it to stop.
  for (int i = 0; i < 600 && losses(dir / "b/metrics.jsonl").size() < 20; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(pid, SIGTERM);
  int code = test::wait_process(pid);
  std::string log = test::read_file(dir / "b.log");
  ASSERT_EQ(code, 0) << log;
  EXPECT_NE(log.find("stop requested"), std::string::npos) << log;
  size_t stopped = losses(dir / "b/metrics.jsonl").size();
  EXPECT_LT(stopped, 400u) << "the run finished before the signal arrived";
  test::RunResult rr = test::run_process({SSM_BIN, "resume", dir / "b"}, dir.path());
  ASSERT_EQ(rr.exit_code, 0) << rr.output;
  EXPECT_EQ(losses(dir / "a/metrics.jsonl"), losses(dir / "b/metrics.jsonl"));
}

// A second signal exits at once (code 130) without corrupting the last committed checkpoint.
TEST(Checkpoint, SecondSignalExitsAtOnce) {
  test::TempDir dir("ckpt-2sig");
  test::write_file(dir / "r.yaml", tiny_recipe(dir / "run"));
  int pid = test::spawn_process({SSM_BIN, "train", dir / "r.yaml", "--quiet", "train.steps=100000",
                                 "checkpoint.every=5", "checkpoint.async=true"},
                                dir.path(), dir / "log.txt");
  for (int i = 0; i < 600 && !fs::exists(dir / "run/checkpoints/latest"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(pid, SIGTERM);
  ::kill(pid, SIGTERM);
  int code = test::wait_process(pid);
  std::string log = test::read_file(dir / "log.txt");
  EXPECT_TRUE(code == 130 || code == 0) << code << "\n" << log;
  EXPECT_NO_THROW(checkpoint::open_checkpoint(dir / "run", true)) << log;
}
#endif

}  // namespace
}  // namespace ssm
