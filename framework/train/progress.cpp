#include "framework/train/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "framework/core/error.h"

namespace ssm::train {

namespace {

constexpr double kRedrawInterval = 0.1;  // seconds between bar redraws
constexpr int kDefaultColumns = 80;
constexpr int kMaxBarCells = 30;
constexpr int kMinBarCells = 10;

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool stream_is_terminal(std::FILE* f) {
  if (!isatty(fileno(f))) return false;
  const char* term = std::getenv("TERM");
  return !(term && std::strcmp(term, "dumb") == 0);
}

int terminal_columns(std::FILE* f) {
  winsize ws{};
  if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  if (const char* c = std::getenv("COLUMNS")) {
    const int n = std::atoi(c);
    if (n > 0) return n;
  }
  return kDefaultColumns;
}

std::string step_text(int64_t step, int64_t total) {
  return total > 0 ? fmt::format("{}/{}", step, total) : fmt::format("{}", step);
}

}  // namespace

std::string format_count(double v) {
  if (!std::isfinite(v)) return fmt::format("{}", v);
  const double a = std::fabs(v);
  if (a < 1e3) return fmt::format("{:.0f}", v);
  if (a < 1e6) return fmt::format("{:.1f}k", v / 1e3);
  if (a < 1e9) return fmt::format("{:.2f}M", v / 1e6);
  return fmt::format("{:.2f}G", v / 1e9);
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--";
  if (seconds < 60) return fmt::format("{:.1f} s", seconds);
  const auto s = static_cast<int64_t>(seconds);
  if (s < 3600) return fmt::format("{}m {:02}s", s / 60, s % 60);
  return fmt::format("{}h {:02}m", s / 3600, (s % 3600) / 60);
}

ConsoleSink::ConsoleSink(ConsoleOptions options) : opt_(std::move(options)) {
  SSM_CHECK(opt_.out != nullptr, "console sink: no output stream");
  if (!opt_.clock) opt_.clock = steady_seconds;
  switch (opt_.mode) {
    case config::ConsoleMode::bar: bar_ = true; break;
    case config::ConsoleMode::plain: bar_ = false; break;
    case config::ConsoleMode::automatic: bar_ = stream_is_terminal(opt_.out); break;
  }
  start_ = opt_.clock();
}

ConsoleSink::~ConsoleSink() {
  if (bar_visible_) std::fputc('\n', opt_.out);
  std::fflush(opt_.out);
}

// "loss 2.3141 | lr 2.9e-03 | grad-norm 0.81 | other 1.5 | 41.2k tok/s". The bar keeps only
// loss, lr and throughput so that it fits on one terminal line.
std::string ConsoleSink::stats_text(const Scalars& scalars, bool for_bar) const {
  std::string loss, lr, grad_norm, rate, extra;
  for (const auto& [name, v] : scalars) {
    if (name == kLoss) {
      loss = fmt::format(" | loss {:.4f}", v);
    } else if (name == kLr) {
      lr = fmt::format(" | lr {:.1e}", v);
    } else if (name == kGradNorm) {
      grad_norm = fmt::format(" | grad-norm {:.2f}", v);
    } else if (name == kTokensPerSec) {
      rate = fmt::format(" | {} tok/s", format_count(v));
    } else if (name.starts_with(kEvalPrefix)) {
      extra += fmt::format(" | {} {:.4f}", name, v);  // losses and perplexities: fixed 4 decimals
    } else {
      extra += fmt::format(" | {} {:.4g}", name, v);
    }
  }
  if (for_bar) return loss + lr + rate;
  return loss + lr + grad_norm + extra + rate;
}

void ConsoleSink::log(int64_t step, const Scalars& scalars) {
  const double now = opt_.clock();
  if (is_eval_log(scalars)) {
    const std::string line =
        fmt::format("eval step {}{}", step_text(step, opt_.total_steps), stats_text(scalars, false));
    if (bar_visible_) std::fputs("\r\033[K", opt_.out);  // the eval line takes the bar's place
    std::fputs(line.c_str(), opt_.out);
    std::fputc('\n', opt_.out);
    bar_visible_ = false;
    if (bar_ && !last_scalars_.empty()) draw_bar(last_step_, last_scalars_);
    std::fflush(opt_.out);
    return;
  }

  if (first_time_ < 0) {
    first_time_ = now;
    first_step_ = step;
  }
  last_step_ = step;
  last_scalars_ = scalars;
  if (bar_) {
    const bool last = opt_.total_steps > 0 && step >= opt_.total_steps;
    if (last_draw_ < 0 || now - last_draw_ >= kRedrawInterval || last) {
      last_draw_ = now;
      draw_bar(step, scalars);
    }
    return;
  }
  const std::string line = fmt::format("step {}{} | {}\n", step_text(step, opt_.total_steps),
                                       stats_text(scalars, false), format_duration(now - start_));
  std::fputs(line.c_str(), opt_.out);
  std::fflush(opt_.out);
}

void ConsoleSink::draw_bar(int64_t step, const Scalars& scalars) {
  const double now = opt_.clock();
  const int64_t total = opt_.total_steps;
  std::string tail = fmt::format(" {}{}", step_text(step, total), stats_text(scalars, true));
  if (total > 0 && step < total) {
    double eta = -1;
    if (step > first_step_) eta = (now - first_time_) / static_cast<double>(step - first_step_) * (total - step);
    tail += fmt::format(" | ETA {}", format_duration(eta));
  } else {
    tail += fmt::format(" | {}", format_duration(now - start_));
  }

  const int columns = terminal_columns(opt_.out);
  std::string line;
  if (total > 0) {
    const double frac = std::clamp(static_cast<double>(step) / static_cast<double>(total), 0.0, 1.0);
    const std::string pct = fmt::format(" {:3.0f}%", std::floor(frac * 100.0));
    const int room = columns - 1 - static_cast<int>(pct.size() + tail.size()) - 2;
    const int cells = std::clamp(room, kMinBarCells, kMaxBarCells);
    const int filled = static_cast<int>(frac * cells);
    line = fmt::format("[{}{}]{}{}", std::string(filled, '#'), std::string(cells - filled, '.'), pct, tail);
  } else {
    line = fmt::format("step{}", tail);
  }
  // The last column stays empty: writing into it makes some terminals wrap, and a wrapped
  // line can no longer be redrawn with '\r'.
  if (static_cast<int>(line.size()) > columns - 1) line.resize(std::max(columns - 1, 0));
  std::fputc('\r', opt_.out);
  std::fputs(line.c_str(), opt_.out);
  std::fputs("\033[K", opt_.out);
  std::fflush(opt_.out);
  bar_visible_ = true;
}

void ConsoleSink::flush() { std::fflush(opt_.out); }

}  // namespace ssm::train
