// Loss curves as a PNG, from a run's metrics.jsonl, with no plotting library.
//
//   render_loss_plot("runs/quickstart/metrics.jsonl", "runs/quickstart/loss.png");
//   // 800x500: "loss" (blue) and, when present, "val_loss" (orange) against step, with a
//   // grid, tick labels, a legend (in the emptiest corner) and a title; axes fitted to the data.
//   plot_run("runs/quickstart", "", {});   // what `ssm plot RUN_DIR` does
//
// Reading metrics.jsonl: each line is one JSON object with an integer "step". Lines that do
// not parse (a run killed mid-write) and null values (NaN/inf) are skipped. A line whose step
// is lower than the line before it starts a resumed attempt: every point at or after that
// step is dropped, as the interrupted attempt's tail is stale. The same name logged twice at
// one step keeps the later value.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "framework/train/png.h"

namespace ssm::train {

struct MetricSeries {
  std::string name;
  std::vector<int64_t> steps;  // ascending
  std::vector<double> values;  // finite, one per step
};

// One series per name in `names` (in that order; empty when the file never logs it).
std::vector<MetricSeries> read_metric_series(const std::string& jsonl_path, const std::vector<std::string>& names);

struct PlotOptions {
  std::vector<std::string> metrics = {"loss", "val_loss"};
  std::string title = "loss";
  int width = 800;
  int height = 500;
};

// Where the data went, so a caller (a test) can find a point's pixel.
struct PlotFrame {
  int left = 0, top = 0, right = 0, bottom = 0;  // plot area in pixels, inclusive
  double x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;  // the data range the area spans
  int legend_left = 0, legend_top = 0, legend_right = 0, legend_bottom = 0;  // covers the curves
  int px(double step) const;
  int py(double value) const;
};

// Colour of the i-th series (blue, orange, green, red, purple, brown, then repeats).
Rgb series_color(size_t i);

// Draws the non-empty series of `series`; at least one must be non-empty.
RgbImage render_plot(const std::vector<MetricSeries>& series, const PlotOptions& options,
                     PlotFrame* frame = nullptr);

// Reads `jsonl_path`, draws options.metrics and writes `png_path`. Throws ssm::Error when the
// file is missing or holds none of the requested metrics.
void render_loss_plot(const std::string& jsonl_path, const std::string& png_path, const PlotOptions& options = {});

// `ssm plot RUN_DIR [--out FILE] [--metrics a,b]`: checks that the run directory and its
// metrics.jsonl exist (one-line ssm::Error otherwise), plots `metrics` (empty = loss,
// val_loss) titled with the run's directory name, and returns the PNG path (empty `out` =
// RUN_DIR/loss.png).
std::string plot_run(const std::string& run_dir, const std::string& out, const std::vector<std::string>& metrics);

}  // namespace ssm::train
