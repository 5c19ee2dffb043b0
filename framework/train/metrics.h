// Metrics sinks: where the trainer's scalars go (console, metrics.jsonl, TensorBoard).
//
//   auto sinks = make_run_sinks(recipe.logging, /*total_steps=*/300, /*resumed_at=*/std::nullopt);
//   sinks->log(120, {{"loss", 2.3141}, {"lr", 2.9e-3}, {"grad_norm", 0.81},
//                    {"tokens_per_s", 41200.0}});
//   sinks->log(200, {{"val_loss", 2.2917}});   // evaluation: its own console line
//   sinks->flush();
//
// writes  RUN_DIR/metrics.jsonl         {"step":120,"time":1732500000.25,"loss":2.3141,...}
//         RUN_DIR/tensorboard/events.out.tfevents.<unix time>.<hostname>
// and prints (plain console)
//         step 120/300 | loss 2.3141 | lr 2.9e-03 | grad-norm 0.81 | 41.2k tok/s | 12.3 s
//
// Scalar names are free-form; the names below are the ones the console formats specially
// and `ssm plot` draws by default. A log call whose every name starts with "val_" is an
// evaluation. Only rank 0 should own sinks.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ssm::config {
struct LoggingConfig;
}

namespace ssm::train {

using Scalars = std::vector<std::pair<std::string, double>>;

// Well-known scalar names.
inline constexpr std::string_view kLoss = "loss";
inline constexpr std::string_view kLr = "lr";
inline constexpr std::string_view kGradNorm = "grad_norm";
inline constexpr std::string_view kTokensPerSec = "tokens_per_s";
inline constexpr std::string_view kValLoss = "val_loss";
inline constexpr std::string_view kEvalPrefix = "val_";

// Where make_run_sinks puts its files, relative to the run directory.
inline constexpr std::string_view kMetricsFileName = "metrics.jsonl";
inline constexpr std::string_view kTensorBoardDirName = "tensorboard";

// True when every name in `scalars` starts with "val_" (and there is at least one).
bool is_eval_log(const Scalars& scalars);

class MetricsSink {
 public:
  virtual ~MetricsSink() = default;
  // Records `scalars` at optimizer step `step`. Names must be unique within one call.
  virtual void log(int64_t step, const Scalars& scalars) = 0;
  // Pushes buffered output to the OS (sinks already flush every log call; this is for
  // callers that write elsewhere, e.g. a console line before a checkpoint message).
  virtual void flush() = 0;
};

// One JSON object per line: {"step": s, "time": unix_seconds, "<name>": value, ...} in the
// order given. Opens in append mode, so a resumed run continues the same file (readers
// keep the last value logged for a step, see plot.h). Every line is flushed as it is
// written: a crash loses nothing that was logged. Non-finite values are written as null
// (JSON has no NaN); "step" and "time" are reserved names.
class JsonlSink final : public MetricsSink {
 public:
  explicit JsonlSink(const std::string& path);  // creates missing parent directories
  ~JsonlSink() override;
  JsonlSink(const JsonlSink&) = delete;
  JsonlSink& operator=(const JsonlSink&) = delete;

  void log(int64_t step, const Scalars& scalars) override;
  void flush() override;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// Fans each call out to every sink, in the order they were added.
class MultiSink final : public MetricsSink {
 public:
  MultiSink() = default;
  void add(std::unique_ptr<MetricsSink> sink);
  size_t size() const { return sinks_.size(); }

  void log(int64_t step, const Scalars& scalars) override;
  void flush() override;

 private:
  std::vector<std::unique_ptr<MetricsSink>> sinks_;
};

// The sinks a training run asks for in its recipe: console (always, mode logging.console),
// JSONL at RUN_DIR/metrics.jsonl when logging.jsonl, TensorBoard under RUN_DIR/tensorboard
// when logging.tensorboard. `resumed_at` is the checkpoint step a resumed run continues from:
// TensorBoard is then told to drop what an earlier attempt logged after it.
std::unique_ptr<MultiSink> make_run_sinks(const config::LoggingConfig& logging, int64_t total_steps,
                                          std::optional<int64_t> resumed_at);

// Seconds since the Unix epoch, with sub-second resolution.
double unix_time_now();

}  // namespace ssm::train
