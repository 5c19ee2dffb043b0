#include "framework/train/metrics.h"

#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "framework/config/recipe.h"
#include "framework/core/error.h"
#include "framework/train/progress.h"
#include "framework/train/tensorboard.h"

namespace ssm::train {

double unix_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool is_eval_log(const Scalars& scalars) {
  if (scalars.empty()) return false;
  for (const auto& [name, value] : scalars)
    if (!name.starts_with(kEvalPrefix)) return false;
  return true;
}

// ---- JsonlSink ---------------------------------------------------------------------------------

JsonlSink::JsonlSink(const std::string& path) : path_(path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    SSM_CHECK(!ec, "metrics: cannot create directory '{}': {}", parent.string(), ec.message());
  }
  file_ = std::fopen(path.c_str(), "a");
  SSM_CHECK(file_ != nullptr, "metrics: cannot open '{}' for appending: {}", path, std::strerror(errno));
}

JsonlSink::~JsonlSink() {
  if (file_) std::fclose(file_);
}

void JsonlSink::log(int64_t step, const Scalars& scalars) {
  // ordered_json keeps the caller's order: step, time, then the scalars as logged.
  nlohmann::ordered_json row;
  row["step"] = step;
  row["time"] = unix_time_now();
  for (const auto& [name, value] : scalars) {
    SSM_CHECK(name != "step" && name != "time", "metrics: '{}' is a reserved name in {}", name, path_);
    SSM_CHECK(!row.contains(name), "metrics: scalar '{}' logged twice at step {}", name, step);
    if (std::isfinite(value))
      row[name] = value;
    else
      row[name] = nullptr;
  }
  const std::string line = row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  SSM_CHECK(std::fwrite(line.data(), 1, line.size(), file_) == line.size(), "metrics: write to '{}' failed: {}",
            path_, std::strerror(errno));
  flush();
}

void JsonlSink::flush() {
  SSM_CHECK(std::fflush(file_) == 0, "metrics: flush of '{}' failed: {}", path_, std::strerror(errno));
}

// ---- MultiSink ---------------------------------------------------------------------------------

void MultiSink::add(std::unique_ptr<MetricsSink> sink) {
  SSM_CHECK(sink != nullptr, "metrics: MultiSink::add got a null sink");
  sinks_.push_back(std::move(sink));
}

void MultiSink::log(int64_t step, const Scalars& scalars) {
  for (auto& s : sinks_) s->log(step, scalars);
}

void MultiSink::flush() {
  for (auto& s : sinks_) s->flush();
}

// ---- the sinks of a run ------------------------------------------------------------------------

std::unique_ptr<MultiSink> make_run_sinks(const config::LoggingConfig& logging, int64_t total_steps,
                                          std::optional<int64_t> resumed_at) {
  auto sinks = std::make_unique<MultiSink>();
  ConsoleOptions console;
  console.mode = logging.console;
  console.total_steps = total_steps;
  sinks->add(std::make_unique<ConsoleSink>(std::move(console)));
  const std::filesystem::path run_dir(logging.run_dir);
  if (logging.jsonl) sinks->add(std::make_unique<JsonlSink>((run_dir / kMetricsFileName).string()));
  if (logging.tensorboard)
    sinks->add(std::make_unique<TensorBoardSink>((run_dir / kTensorBoardDirName).string(), resumed_at));
  return sinks;
}

}  // namespace ssm::train
