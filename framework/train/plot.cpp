#include "framework/train/plot.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <fmt/ranges.h>

#include <nlohmann/json.hpp>
#include <utility>

#include "framework/core/error.h"
#include "framework/train/metrics.h"

namespace ssm::train {

namespace {

// ---- a 5x7 bitmap font -------------------------------------------------------------------------
// One byte per row, top to bottom; bit 4 is the leftmost column. Rows 0-6 stand on the
// baseline (lower case letters use rows 2-6), row 7 holds the descenders of g j p q y and ','.
// Upper case is drawn as lower case; anything else as '?'.
struct Glyph {
  char c;
  uint8_t rows[8];
};
constexpr Glyph kFont[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, 0x00}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F, 0x00}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E, 0x00}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02, 0x00}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E, 0x00}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E, 0x00}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E, 0x00}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C, 0x00}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x00}}, {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00}},
    {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, 0x00}}, {'_', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F, 0x00}},
    {'/', {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00}}, {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00, 0x00}},
    {',', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}}, {'=', {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00}}, {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00}},
    {' ', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}}, {'?', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00}},
    {'a', {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0x00}}, {'b', {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E, 0x00}},
    {'c', {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0x00}}, {'d', {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F, 0x00}},
    {'e', {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0x00}}, {'f', {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08, 0x00}},
    {'g', {0x00, 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E}}, {'h', {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00}},
    {'i', {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0x00}}, {'j', {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'k', {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00}}, {'l', {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00}},
    {'m', {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11, 0x00}}, {'n', {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00}},
    {'o', {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0x00}}, {'p', {0x00, 0x00, 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10}},
    {'q', {0x00, 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x01}}, {'r', {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00}},
    {'s', {0x00, 0x00, 0x0F, 0x10, 0x0E, 0x01, 0x1E, 0x00}}, {'t', {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0x00}},
    {'u', {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x00}}, {'v', {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00}},
    {'w', {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A, 0x00}}, {'x', {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00}},
    {'y', {0x00, 0x00, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E}}, {'z', {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F, 0x00}},
};
constexpr int kGlyphW = 5, kGlyphH = 8, kAdvance = 6;  // one blank column between glyphs

const Glyph& glyph(char c) {
  if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  for (const Glyph& g : kFont)
    if (g.c == c) return g;
  return glyph('?');
}

int text_width(const std::string& s, int scale) {
  return s.empty() ? 0 : (static_cast<int>(s.size()) * kAdvance - 1) * scale;
}

void draw_text(RgbImage& img, int x, int y, const std::string& s, int scale, Rgb color) {
  for (char c : s) {
    const Glyph& g = glyph(c);
    for (int row = 0; row < kGlyphH; ++row)
      for (int col = 0; col < kGlyphW; ++col)
        if (g.rows[row] & (0x10 >> col))
          for (int dy = 0; dy < scale; ++dy)
            for (int dx = 0; dx < scale; ++dx) img.set(x + col * scale + dx, y + row * scale + dy, color);
    x += kAdvance * scale;
  }
}

// ---- raster primitives -------------------------------------------------------------------------

void fill_rect(RgbImage& img, int x0, int y0, int x1, int y1, Rgb c) {  // inclusive corners
  for (int y = y0; y <= y1; ++y)
    for (int x = x0; x <= x1; ++x) img.set(x, y, c);
}

// A line `width` pixels thick, clipped to the inclusive rectangle `clip`.
void draw_line(RgbImage& img, double xa, double ya, double xb, double yb, int width, Rgb c, const PlotFrame& clip) {
  const int n = std::max(1, static_cast<int>(std::ceil(std::max(std::fabs(xb - xa), std::fabs(yb - ya)))));
  const int lo = -(width - 1) / 2, hi = width / 2;
  for (int i = 0; i <= n; ++i) {
    const double t = static_cast<double>(i) / n;
    const int x = static_cast<int>(std::lround(xa + t * (xb - xa)));
    const int y = static_cast<int>(std::lround(ya + t * (yb - ya)));
    for (int dy = lo; dy <= hi; ++dy)
      for (int dx = lo; dx <= hi; ++dx) {
        const int px = x + dx, py = y + dy;
        if (px >= clip.left && px <= clip.right && py >= clip.top && py <= clip.bottom) img.set(px, py, c);
      }
  }
}

// ---- axes --------------------------------------------------------------------------------------

struct Ticks {
  double lo = 0, hi = 1, step = 1;
  std::vector<double> at;
};

// Round numbers (1, 2 or 5 times a power of ten) about (hi - lo) / target apart, inside
// [lo, hi] widened by `margin` of its width on each side, so that no point lies on the frame.
Ticks nice_ticks(double lo, double hi, int target, double margin) {
  if (!(hi > lo)) {  // one value: a unit-wide (or 10%-wide) window around it
    const double pad = lo == 0 ? 1.0 : 0.05 * std::fabs(lo);
    lo -= pad;
    hi += pad;
  }
  const double width = hi - lo;
  lo -= margin * width;
  hi += margin * width;
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1.0 : norm < 3.5 ? 2.0 : norm < 7.5 ? 5.0 : 10.0) * mag;
  Ticks t{lo, hi, step, {}};
  // Tick k is at k * step: no accumulated rounding, and an exact 0.
  for (double k = std::ceil(lo / step - 1e-9); k <= std::floor(hi / step + 1e-9); ++k)
    t.at.push_back(k == 0 ? 0.0 : k * step);
  return t;
}

// One format for a whole axis: enough decimals to tell ticks apart, scientific notation when
// the largest tick is outside [1e-3, 1e6), and "20k" for step axes in whole thousands.
std::vector<std::string> tick_labels(const Ticks& t, bool thousands) {
  const double mag = std::max(std::fabs(t.lo), std::fabs(t.hi));
  const int step_exp = static_cast<int>(std::floor(std::log10(t.step) + 1e-9));
  std::vector<std::string> out;
  for (double v : t.at) {
    if (thousands && t.step >= 1000 && std::fmod(t.step, 1000.0) == 0 && mag >= 1e4) {
      out.push_back(v == 0 ? "0" : fmt::format("{:.0f}k", v / 1000));
    } else if (mag >= 1e6 || mag < 1e-3) {
      const int mag_exp = static_cast<int>(std::floor(std::log10(mag) + 1e-9));
      out.push_back(fmt::format("{:.{}e}", v, std::max(1, mag_exp - step_exp)));
    } else {
      out.push_back(fmt::format("{:.{}f}", v, std::max(0, -step_exp)));
    }
  }
  return out;
}

constexpr Rgb kGrid{228, 228, 228};
constexpr Rgb kText{40, 40, 40};
constexpr int kTextScale = 2;

}  // namespace

int PlotFrame::px(double step) const {
  return left + static_cast<int>(std::lround((step - x_lo) / (x_hi - x_lo) * (right - left)));
}
int PlotFrame::py(double value) const {
  return bottom - static_cast<int>(std::lround((value - y_lo) / (y_hi - y_lo) * (bottom - top)));
}

Rgb series_color(size_t i) {
  static constexpr Rgb kPalette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},
                                     {214, 39, 40},  {148, 103, 189}, {140, 86, 75}};
  return kPalette[i % std::size(kPalette)];
}

// ---- reading metrics.jsonl ---------------------------------------------------------------------

std::vector<MetricSeries> read_metric_series(const std::string& jsonl_path, const std::vector<std::string>& names) {
  std::ifstream in(jsonl_path);
  SSM_CHECK(in.good(), "plot: cannot read metrics file '{}'", jsonl_path);
  std::vector<MetricSeries> series;
  for (const std::string& n : names) series.push_back({n, {}, {}});

  std::string line;
  int64_t prev_step = INT64_MIN;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!row.is_object() || !row.contains("step") || !row["step"].is_number_integer()) continue;
    const int64_t step = row["step"].get<int64_t>();
    if (step < prev_step) {  // a resumed attempt: forget the interrupted one's tail
      for (MetricSeries& s : series) {
        const auto keep = std::lower_bound(s.steps.begin(), s.steps.end(), step) - s.steps.begin();
        s.steps.resize(keep);
        s.values.resize(keep);
      }
    }
    prev_step = step;
    for (MetricSeries& s : series) {
      const auto it = row.find(s.name);
      if (it == row.end() || !it->is_number()) continue;  // absent, or null for NaN/inf
      const double v = it->get<double>();
      if (!s.steps.empty() && s.steps.back() == step) {
        s.values.back() = v;
      } else {
        s.steps.push_back(step);
        s.values.push_back(v);
      }
    }
  }
  SSM_CHECK(!in.bad(), "plot: error reading '{}'", jsonl_path);
  return series;
}

// ---- drawing -----------------------------------------------------------------------------------

RgbImage render_plot(const std::vector<MetricSeries>& series, const PlotOptions& options, PlotFrame* frame_out) {
  SSM_CHECK(options.width >= 200 && options.height >= 150, "plot: image size {}x{} is too small (min 200x150)",
            options.width, options.height);
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const MetricSeries& s : series)
    for (size_t i = 0; i < s.steps.size(); ++i) {
      x_lo = std::min(x_lo, static_cast<double>(s.steps[i]));
      x_hi = std::max(x_hi, static_cast<double>(s.steps[i]));
      y_lo = std::min(y_lo, s.values[i]);
      y_hi = std::max(y_hi, s.values[i]);
    }
  SSM_CHECK(std::isfinite(x_lo) && std::isfinite(y_lo), "plot: nothing to draw (all series are empty)");

  const int char_h = kGlyphH * kTextScale;
  const Ticks yt = nice_ticks(y_lo, y_hi, 6, /*margin=*/0.04);
  const std::vector<std::string> y_labels = tick_labels(yt, false);
  int y_label_w = 0;
  for (const std::string& l : y_labels) y_label_w = std::max(y_label_w, text_width(l, kTextScale));

  PlotFrame f;
  f.left = 16 + y_label_w + 8;
  f.right = options.width - 24;
  f.top = 16 + 3 * char_h;
  f.bottom = options.height - (14 + 2 * char_h + 16);
  // As many x ticks as leave a gap between their labels.
  Ticks xt;
  std::vector<std::string> x_labels;
  for (int target = 8;; --target) {
    xt = nice_ticks(x_lo, x_hi, target, /*margin=*/0.02);
    x_labels = tick_labels(xt, true);
    int widest = 0;
    for (const std::string& l : x_labels) widest = std::max(widest, text_width(l, kTextScale));
    const double spacing = static_cast<double>(f.right - f.left) / std::max<size_t>(xt.at.size() - 1, 1);
    if (target == 2 || widest + 3 * kAdvance * kTextScale <= spacing) break;
  }
  f.x_lo = xt.lo;
  f.x_hi = xt.hi;
  f.y_lo = yt.lo;
  f.y_hi = yt.hi;

  RgbImage img(options.width, options.height, kWhite);
  // Grid and tick labels.
  for (size_t i = 0; i < xt.at.size(); ++i) {
    const int x = f.px(xt.at[i]);
    fill_rect(img, x, f.top, x, f.bottom, kGrid);
    fill_rect(img, x, f.bottom + 1, x, f.bottom + 5, kBlack);
    draw_text(img, x - text_width(x_labels[i], kTextScale) / 2, f.bottom + 10, x_labels[i], kTextScale, kText);
  }
  for (size_t i = 0; i < yt.at.size(); ++i) {
    const int y = f.py(yt.at[i]);
    fill_rect(img, f.left, y, f.right, y, kGrid);
    fill_rect(img, f.left - 5, y, f.left - 1, y, kBlack);
    draw_text(img, f.left - 8 - text_width(y_labels[i], kTextScale), y - char_h / 2 + kTextScale, y_labels[i],
              kTextScale, kText);
  }
  // Frame.
  fill_rect(img, f.left, f.top, f.right, f.top, kBlack);
  fill_rect(img, f.left, f.bottom, f.right, f.bottom, kBlack);
  fill_rect(img, f.left, f.top, f.left, f.bottom, kBlack);
  fill_rect(img, f.right, f.top, f.right, f.bottom, kBlack);
  // Axis title and plot title.
  const std::string x_title = "step";
  draw_text(img, (f.left + f.right - text_width(x_title, kTextScale)) / 2, options.height - 10 - char_h, x_title,
            kTextScale, kText);
  const int title_scale = kTextScale + 1;
  draw_text(img, (f.left + f.right - text_width(options.title, title_scale)) / 2, 12, options.title, title_scale,
            kBlack);

  // Curves, inside the frame (one pixel in from its border).
  const PlotFrame inner{f.left + 1, f.top + 1, f.right - 1, f.bottom - 1, f.x_lo, f.x_hi, f.y_lo, f.y_hi};
  std::vector<std::pair<std::string, Rgb>> legend;
  for (size_t k = 0; k < series.size(); ++k) {
    const MetricSeries& s = series[k];
    if (s.steps.empty()) continue;
    const Rgb c = series_color(k);
    legend.emplace_back(s.name, c);
    if (s.steps.size() == 1) {
      const int x = f.px(static_cast<double>(s.steps[0])), y = f.py(s.values[0]);
      draw_line(img, x, y, x, y, 5, c, inner);
      continue;
    }
    for (size_t i = 1; i < s.steps.size(); ++i)
      draw_line(img, f.px(static_cast<double>(s.steps[i - 1])), f.py(s.values[i - 1]),
                f.px(static_cast<double>(s.steps[i])), f.py(s.values[i]), 2, c, inner);
  }

  // Legend on a white box, in the corner that hides the fewest curve pixels (loss curves fall,
  // so usually the top right).
  int legend_w = 0;
  for (const auto& [name, c] : legend) legend_w = std::max(legend_w, text_width(name, kTextScale));
  const int swatch = 24, pad = 8, row_h = char_h + 6, margin = 10;
  const int box_w = pad + swatch + 8 + legend_w + pad;
  const int box_h = 2 * pad + static_cast<int>(legend.size()) * row_h - 6;
  auto curve_pixels = [&](int l, int t) {
    int n = 0;
    for (int y = t; y < t + box_h; ++y)
      for (int x = l; x < l + box_w; ++x) {
        const Rgb c = img.contains(x, y) ? img.get(x, y) : kWhite;
        n += !(c == kWhite || c == kGrid || c == kBlack);
      }
    return n;
  };
  const std::pair<int, int> corners[] = {{f.right - margin - box_w, f.top + margin},
                                         {f.right - margin - box_w, f.bottom - margin - box_h},
                                         {f.left + margin, f.top + margin},
                                         {f.left + margin, f.bottom - margin - box_h}};
  auto [box_l, box_t] = corners[0];
  int best = curve_pixels(box_l, box_t);
  for (const auto& [l, t] : corners) {
    const int n = curve_pixels(l, t);
    if (n < best) best = n, box_l = l, box_t = t;
  }
  const int box_r = box_l + box_w - 1, box_b = box_t + box_h - 1;
  fill_rect(img, box_l, box_t, box_r, box_b, kWhite);
  fill_rect(img, box_l, box_t, box_r, box_t, kGrid);
  fill_rect(img, box_l, box_b, box_r, box_b, kGrid);
  fill_rect(img, box_l, box_t, box_l, box_b, kGrid);
  fill_rect(img, box_r, box_t, box_r, box_b, kGrid);
  for (size_t i = 0; i < legend.size(); ++i) {
    const int y = box_t + pad + static_cast<int>(i) * row_h;
    fill_rect(img, box_l + pad, y + char_h / 2 - 2, box_l + pad + swatch, y + char_h / 2 - 1, legend[i].second);
    draw_text(img, box_l + pad + swatch + 8, y, legend[i].first, kTextScale, kText);
  }
  f.legend_left = box_l;
  f.legend_top = box_t;
  f.legend_right = box_r;
  f.legend_bottom = box_b;

  if (frame_out) *frame_out = f;
  return img;
}

void render_loss_plot(const std::string& jsonl_path, const std::string& png_path, const PlotOptions& options) {
  const std::vector<MetricSeries> series = read_metric_series(jsonl_path, options.metrics);
  const bool any = std::any_of(series.begin(), series.end(), [](const MetricSeries& s) { return !s.steps.empty(); });
  SSM_CHECK(any, "plot: '{}' has no values for {}", jsonl_path, fmt::join(options.metrics, ", "));
  write_png(png_path, render_plot(series, options));
}

std::string plot_run(const std::string& run_dir, const std::string& out, const std::vector<std::string>& metrics) {
  namespace fs = std::filesystem;
  SSM_CHECK(fs::is_directory(run_dir), "plot: run directory '{}' does not exist", run_dir);
  const fs::path jsonl = fs::path(run_dir) / kMetricsFileName;
  SSM_CHECK(fs::is_regular_file(jsonl), "plot: no metrics file '{}' (was the run trained with logging.jsonl: true?)",
            jsonl.string());
  PlotOptions options;
  if (!metrics.empty()) options.metrics = metrics;
  const std::string name = fs::weakly_canonical(fs::path(run_dir)).filename().string();
  if (!name.empty()) options.title = name;
  const std::string png = out.empty() ? (fs::path(run_dir) / "loss.png").string() : out;
  render_loss_plot(jsonl.string(), png, options);
  return png;
}

}  // namespace ssm::train
