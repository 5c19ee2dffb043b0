// Console progress: a live bar on a terminal, plain step lines everywhere else.
//
//   ConsoleOptions opt;
//   opt.total_steps = 300;  // mode auto, stderr
//   ConsoleSink console(std::move(opt));
//   console.log(120, {{"loss", 2.3141}, {"lr", 2.9e-3}, {"grad_norm", 0.81}, {"tokens_per_s", 41200}});
//
// on a terminal (stderr is a TTY), redrawn in place with '\r':
//   [##########..............]  40% 120/300 | loss 2.3141 | lr 2.9e-03 | 41.2k tok/s | ETA 18.5 s
// piped, or with `console: plain`, one line per call:
//   step 120/300 | loss 2.3141 | lr 2.9e-03 | grad-norm 0.81 | 41.2k tok/s | 12.3 s
// An evaluation (every name starts with "val_") always gets its own line:
//   eval step 200/300 | val_loss 2.2917
// Names other than loss/lr/grad_norm/tokens_per_s are shown as "name 1.234" (4 significant
// digits) in the order given; the trailing time is the wall time since the sink was made.
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

#include "framework/config/recipe.h"
#include "framework/train/metrics.h"

namespace ssm::train {

struct ConsoleOptions {
  config::ConsoleMode mode = config::ConsoleMode::automatic;  // auto: bar iff `out` is a TTY
  int64_t total_steps = 0;                                    // 0 = unknown: no percentage / ETA
  std::FILE* out = stderr;
  // Seconds on a monotonic clock; empty = std::chrono::steady_clock. Injected by tests to get
  // reproducible rates and times.
  std::function<double()> clock;
};

class ConsoleSink final : public MetricsSink {
 public:
  explicit ConsoleSink(ConsoleOptions options);
  ~ConsoleSink() override;  // ends a bar line with '\n' so the shell prompt starts clean
  ConsoleSink(const ConsoleSink&) = delete;
  ConsoleSink& operator=(const ConsoleSink&) = delete;

  void log(int64_t step, const Scalars& scalars) override;
  void flush() override;
  bool bar() const { return bar_; }  // the mode `auto` resolved to

 private:
  std::string stats_text(const Scalars& scalars, bool for_bar) const;
  void draw_bar(int64_t step, const Scalars& scalars);

  ConsoleOptions opt_;
  bool bar_ = false;
  bool bar_visible_ = false;  // a bar line is on screen, not yet ended by '\n'
  double start_ = 0;          // clock at construction
  double first_time_ = -1;    // clock and step of the first training log: the rate for the ETA
  int64_t first_step_ = 0;
  double last_draw_ = -1;     // bar redraws are throttled to 10 per second
  int64_t last_step_ = 0;
  Scalars last_scalars_;      // redrawn after an evaluation line
};

// "950", "41.2k", "3.07M": compact rates for the console.
std::string format_count(double v);
// "12.3 s", "4m 05s", "2h 03m": durations for the console.
std::string format_duration(double seconds);

}  // namespace ssm::train
