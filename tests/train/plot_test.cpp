// PNG encoder and loss plots: files are decoded by a reader written here (chunk CRCs, zlib
// header, stored deflate blocks, Adler-32, all with bit-at-a-time definitions), and the plot's
// curves are found at the pixels their data points map to.
//
// PythonArtifacts.Write also leaves a TensorBoard directory, a metrics.jsonl, a loss.png and
// an expected.json for tests/python/check_{tensorboard,png}.py, in $SSM_TEST_ARTIFACT_DIR
// (tests/python/tests.cmake sets it) or in a scratch directory.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "framework/core/error.h"
#include "framework/train/metrics.h"
#include "framework/train/plot.h"
#include "framework/train/png.h"
#include "framework/train/tensorboard.h"

namespace ssm::train {
namespace {

namespace fs = std::filesystem;

class ScratchDir {
 public:
  ScratchDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("ssm_plot_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// ---- an independent PNG reader (stored deflate blocks only) --------------------------------------

uint32_t crc32_bitwise(const std::string& s) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char b : s) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}
uint32_t adler32_naive(const std::string& s) {
  uint64_t a = 1, b = 0;
  for (unsigned char c : s) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  return static_cast<uint32_t>((b << 16) | a);
}
uint32_t be32(const std::string& s, size_t pos) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(s.at(pos + i));
  return v;
}

struct Decoded {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
  size_t stored_blocks = 0;
  Rgb at(int x, int y) const {
    const size_t i = (static_cast<size_t>(y) * width + x) * 3;
    return {rgb[i], rgb[i + 1], rgb[i + 2]};
  }
};

Decoded decode_png(const std::string& png) {
  Decoded d;
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  size_t pos = 8;
  std::string idat;
  std::vector<std::string> types;
  while (pos + 12 <= png.size()) {
    const uint32_t len = be32(png, pos);
    const std::string type = png.substr(pos + 4, 4);
    const std::string data = png.substr(pos + 8, len);
    EXPECT_EQ(be32(png, pos + 8 + len), crc32_bitwise(type + data)) << "CRC of chunk " << type;
    types.push_back(type);
    if (type == "IHDR") {
      EXPECT_EQ(len, 13u);
      d.width = static_cast<int>(be32(data, 0));
      d.height = static_cast<int>(be32(data, 4));
      EXPECT_EQ(data.substr(8), std::string("\x08\x02\x00\x00\x00", 5));  // 8-bit RGB
    } else if (type == "IDAT") {
      idat += data;
    }
    pos += 12 + len;
  }
  EXPECT_EQ(pos, png.size());
  EXPECT_GE(types.size(), 3u);
  EXPECT_EQ(types.front(), "IHDR");
  EXPECT_EQ(types.back(), "IEND");

  // zlib header, then stored blocks until BFINAL, then the Adler-32 of the inflated bytes.
  EXPECT_GE(idat.size(), 6u);
  const auto cmf = static_cast<unsigned char>(idat[0]), flg = static_cast<unsigned char>(idat[1]);
  EXPECT_EQ(cmf & 0x0F, 8);                  // deflate
  EXPECT_EQ((cmf * 256 + flg) % 31, 0);      // header check
  EXPECT_EQ(flg & 0x20, 0);                  // no preset dictionary
  std::string raw;
  size_t p = 2;
  for (bool final = false; !final;) {
    const auto hdr = static_cast<unsigned char>(idat.at(p));
    final = hdr & 1;
    EXPECT_EQ((hdr >> 1) & 3, 0) << "only stored blocks expected";
    const uint32_t len = static_cast<unsigned char>(idat.at(p + 1)) | static_cast<unsigned char>(idat.at(p + 2)) << 8;
    const uint32_t nlen = static_cast<unsigned char>(idat.at(p + 3)) | static_cast<unsigned char>(idat.at(p + 4)) << 8;
    EXPECT_EQ(len ^ 0xFFFFu, nlen);
    raw += idat.substr(p + 5, len);
    p += 5 + len;
    ++d.stored_blocks;
  }
  EXPECT_EQ(be32(idat, p), adler32_naive(raw));
  EXPECT_EQ(p + 4, idat.size());

  const size_t row = static_cast<size_t>(d.width) * 3;
  EXPECT_EQ(raw.size(), (row + 1) * d.height);
  if (raw.size() != (row + 1) * d.height) return d;
  for (int y = 0; y < d.height; ++y) {
    EXPECT_EQ(raw[y * (row + 1)], '\0') << "filter type of row " << y;
    d.rgb.insert(d.rgb.end(), raw.begin() + y * (row + 1) + 1, raw.begin() + (y + 1) * (row + 1));
  }
  return d;
}

TEST(Png, ChecksumsMatchKnownVectors) {
  EXPECT_EQ(crc32("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(adler32("Wikipedia", 9), 0x11E60398u);
  std::mt19937 rng(5);
  std::string s(200003, '\0');  // longer than adler32's 5552-byte run
  for (char& c : s) c = static_cast<char>(rng());
  EXPECT_EQ(crc32(s.data(), s.size()), crc32_bitwise(s));
  EXPECT_EQ(adler32(s.data(), s.size()), adler32_naive(s));
}

TEST(Png, RoundTripsThroughAnIndependentDecoder) {
  std::mt19937 rng(17);
  for (auto [w, h] : {std::pair{7, 5}, std::pair{1, 1}, std::pair{301, 223}}) {  // 301x223: 4 stored blocks
    RgbImage img(w, h, kWhite);
    for (auto& v : img.pixels) v = static_cast<uint8_t>(rng());
    const Decoded d = decode_png(encode_png(img));
    EXPECT_EQ(d.width, w);
    EXPECT_EQ(d.height, h);
    EXPECT_EQ(d.rgb, img.pixels);
    EXPECT_EQ(d.stored_blocks, (static_cast<size_t>(w * 3 + 1) * h + 65534) / 65535);
  }
  RgbImage img(3, 2, kBlack);
  img.set(2, 1, {1, 2, 3});
  img.set(3, 1, {9, 9, 9});  // outside: ignored
  img.set(-1, 0, {9, 9, 9});
  EXPECT_EQ(img.get(2, 1), (Rgb{1, 2, 3}));
  EXPECT_EQ(img.get(0, 0), kBlack);
  EXPECT_THROW(RgbImage(0, 5, kWhite), ssm::Error);
}

// ---- metrics.jsonl reading -----------------------------------------------------------------------

TEST(ReadMetricSeries, DropsTheInterruptedAttemptsTailAndBadLines) {
  ScratchDir dir;
  const std::string path = dir.file("metrics.jsonl");
  write_text(path,
             "{\"step\":10,\"time\":1,\"loss\":5.0,\"lr\":0.1}\n"
             "{\"step\":20,\"time\":2,\"loss\":4.0}\n"
             "\n"
             "{\"step\":20,\"time\":2,\"val_loss\":4.5}\n"
             "{\"step\":30,\"time\":3,\"loss\":null}\n"
             "{\"step\":40,\"time\":4,\"loss\":3.0}\n"
             "{\"step\":40,\"time\":4,\"val_loss\":3.5}\n"
             "{\"step\":50,\"time\":5,\"lo\n"  // killed mid-write
             "{\"step\":30,\"time\":9,\"loss\":3.7}\n"  // resumed from step 20's checkpoint
             "{\"step\":30,\"time\":9,\"loss\":3.6}\n"  // same step again: the later value wins
             "{\"step\":\"x\",\"loss\":1}\n"
             "[1,2]\n"
             "{\"step\":40,\"time\":10,\"loss\":3.1}\n");
  const auto series = read_metric_series(path, {"loss", "val_loss", "absent"});
  ASSERT_EQ(series.size(), 3u);
  EXPECT_EQ(series[0].name, "loss");
  EXPECT_EQ(series[0].steps, (std::vector<int64_t>{10, 20, 30, 40}));
  EXPECT_EQ(series[0].values, (std::vector<double>{5.0, 4.0, 3.6, 3.1}));
  EXPECT_EQ(series[1].steps, (std::vector<int64_t>{20}));  // val at 40 was the interrupted attempt's
  EXPECT_EQ(series[1].values, (std::vector<double>{4.5}));
  EXPECT_TRUE(series[2].steps.empty());
  EXPECT_THROW(read_metric_series(dir.file("nope.jsonl"), {"loss"}), ssm::Error);
}

// ---- plots -------------------------------------------------------------------------------------

// A decaying loss with noise, logged every step, and a validation loss every 50 steps.
void write_run(const std::string& jsonl, int steps, bool with_val) {
  JsonlSink sink(jsonl);
  std::mt19937 rng(23);
  std::normal_distribution<double> noise(0.0, 0.03);
  for (int s = 1; s <= steps; ++s) {
    sink.log(s, {{"loss", 2.0 + 3.0 * std::exp(-s / 60.0) + noise(rng)}, {"lr", 3e-3}});
    if (with_val && s % 50 == 0) sink.log(s, {{"val_loss", 2.1 + 3.0 * std::exp(-s / 60.0)}});
  }
}

bool near_color(const Decoded& d, int x, int y, Rgb c, int radius) {
  for (int dy = -radius; dy <= radius; ++dy)
    for (int dx = -radius; dx <= radius; ++dx) {
      const int px = x + dx, py = y + dy;
      if (px >= 0 && py >= 0 && px < d.width && py < d.height && d.at(px, py) == c) return true;
    }
  return false;
}

bool under_legend(const PlotFrame& f, int x, int y) {
  return x >= f.legend_left - 2 && x <= f.legend_right + 2 && y >= f.legend_top - 2 && y <= f.legend_bottom + 2;
}

size_t count_color(const Decoded& d, Rgb c) {
  size_t n = 0;
  for (int y = 0; y < d.height; ++y)
    for (int x = 0; x < d.width; ++x) n += d.at(x, y) == c;
  return n;
}

TEST(LossPlot, CurvesAxesAndLegendAreWhereTheDataSays) {
  ScratchDir dir;
  write_run(dir.file("metrics.jsonl"), 301, true);
  render_loss_plot(dir.file("metrics.jsonl"), dir.file("loss.png"));
  const Decoded d = decode_png(read_bytes(dir.file("loss.png")));
  ASSERT_EQ(d.width, 800);
  ASSERT_EQ(d.height, 500);

  // The same drawing in memory, with its frame: the file holds exactly these pixels.
  const auto series = read_metric_series(dir.file("metrics.jsonl"), {"loss", "val_loss"});
  PlotFrame f;
  const RgbImage img = render_plot(series, PlotOptions{}, &f);
  EXPECT_EQ(d.rgb, img.pixels);

  // Auto-scaled axes cover the data, without more than a tick or so of slack.
  double lo = 1e9, hi = -1e9;
  for (const auto& s : series)
    for (double v : s.values) lo = std::min(lo, v), hi = std::max(hi, v);
  EXPECT_LE(f.y_lo, lo);
  EXPECT_GE(f.y_hi, hi);
  EXPECT_LT(f.y_hi - f.y_lo, 1.1 * (hi - lo));  // a small margin, no wasted band
  EXPECT_LE(f.x_lo, 1);
  EXPECT_GE(f.x_hi, 301);
  EXPECT_LT(f.x_hi - f.x_lo, 1.05 * 300);
  EXPECT_GT(f.right - f.left, 600);
  EXPECT_GT(f.bottom - f.top, 330);

  // Every point of both curves lies on its colour; the legend sits in the empty top right.
  EXPECT_GT(f.legend_left, (f.left + f.right) / 2);
  EXPECT_LT(f.legend_bottom, (f.top + f.bottom) / 2);
  const Rgb blue = series_color(0), orange = series_color(1);
  for (size_t k = 0; k < 2; ++k) {
    const auto& s = series[k];
    ASSERT_FALSE(s.steps.empty());
    for (size_t i = 0; i < s.steps.size(); ++i) {
      const int x = f.px(static_cast<double>(s.steps[i])), y = f.py(s.values[i]);
      EXPECT_TRUE(x > f.left && x < f.right && y > f.top && y < f.bottom) << "on or outside the frame";
      if (under_legend(f, x, y)) continue;
      EXPECT_TRUE(near_color(d, x, y, series_color(k), 1)) << s.name << " step " << s.steps[i];
    }
  }
  EXPECT_GT(count_color(d, blue), 600u);
  EXPECT_GT(count_color(d, orange), 200u);
  // Black frame corners, and text (tick labels, title, legend) drawn.
  EXPECT_EQ(d.at(f.left, f.top), kBlack);
  EXPECT_EQ(d.at(f.right, f.bottom), kBlack);
  EXPECT_GT(count_color(d, Rgb{40, 40, 40}), 300u);
}

TEST(LossPlot, WithoutValidationOnlyTheTrainColourAppears) {
  ScratchDir dir;
  write_run(dir.file("metrics.jsonl"), 40, false);
  render_loss_plot(dir.file("metrics.jsonl"), dir.file("loss.png"));
  const Decoded d = decode_png(read_bytes(dir.file("loss.png")));
  EXPECT_GT(count_color(d, series_color(0)), 100u);
  EXPECT_EQ(count_color(d, series_color(1)), 0u);
}

TEST(LossPlot, LegendAvoidsTheCurves) {
  // A rising curve fills the bottom-left and top-right corners: the legend takes another.
  MetricSeries rising{"accuracy", {}, {}};
  for (int s = 0; s <= 100; ++s) rising.steps.push_back(s), rising.values.push_back(s / 100.0);
  PlotFrame f;
  const RgbImage img = render_plot({rising}, PlotOptions{}, &f);
  const bool right = f.legend_left > (f.left + f.right) / 2, top = f.legend_bottom < (f.top + f.bottom) / 2;
  EXPECT_NE(right, top) << "legend in a corner the curve crosses";
  for (int s = 0; s <= 100; s += 5)  // none hidden: not by the legend, nor by the frame
    EXPECT_EQ(img.get(f.px(s), f.py(s / 100.0)), series_color(0)) << s;
}

TEST(LossPlot, SinglePointAndFlatSeriesStillDraw) {
  MetricSeries one{"loss", {5}, {1.0}};
  PlotFrame f;
  const RgbImage img = render_plot({one}, PlotOptions{}, &f);
  EXPECT_LT(f.y_lo, 1.0);
  EXPECT_GT(f.y_hi, 1.0);
  EXPECT_EQ(img.get(f.px(5), f.py(1.0)), series_color(0));
  MetricSeries flat{"loss", {0, 10, 20}, {0.0, 0.0, 0.0}};
  EXPECT_NO_THROW(render_plot({flat}, PlotOptions{}, &f));
  EXPECT_THROW(render_plot({MetricSeries{"loss", {}, {}}}, PlotOptions{}), ssm::Error);
}

TEST(PlotRun, DefaultsAndOneLineErrors) {
  ScratchDir dir;
  const std::string run = dir.file("myrun");
  auto message = [](const auto& f) {
    try {
      f();
    } catch (const ssm::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string no_dir = message([&] { plot_run(run, "", {}); });
  EXPECT_NE(no_dir.find("run directory '" + run + "' does not exist"), std::string::npos) << no_dir;
  EXPECT_EQ(no_dir.find('\n'), std::string::npos);

  fs::create_directories(run);
  const std::string no_file = message([&] { plot_run(run, "", {}); });
  EXPECT_NE(no_file.find("no metrics file '" + run + "/metrics.jsonl'"), std::string::npos) << no_file;
  EXPECT_EQ(no_file.find('\n'), std::string::npos);

  write_run(run + "/metrics.jsonl", 60, false);
  EXPECT_EQ(plot_run(run, "", {}), run + "/loss.png");
  EXPECT_EQ(decode_png(read_bytes(run + "/loss.png")).width, 800);
  EXPECT_FALSE(fs::exists(run + "/loss.png.tmp"));

  const std::string custom = dir.file("lr.png");
  EXPECT_EQ(plot_run(run, custom, {"lr"}), custom);
  EXPECT_GT(count_color(decode_png(read_bytes(custom)), series_color(0)), 100u);

  const std::string none = message([&] { plot_run(run, "", {"grad_norm"}); });
  EXPECT_NE(none.find("has no values for grad_norm"), std::string::npos) << none;
}

// ---- artifacts for the Python cross-checks -------------------------------------------------------

TEST(PythonArtifacts, Write) {
  ScratchDir scratch;
  const char* env = std::getenv("SSM_TEST_ARTIFACT_DIR");
  const fs::path out = env && *env ? fs::path(env) : fs::path(scratch.str());
  fs::create_directories(out);
  // Remove only what this test writes.
  for (const char* name : {"tensorboard", "tensorboard_resumed", "metrics.jsonl", "loss.png", "expected.json"})
    fs::remove_all(out / name);

  nlohmann::json expected;
  expected["t0"] = unix_time_now();
  std::mt19937 rng(29);
  std::normal_distribution<double> n01;

  // One run: 3 tags, odd steps.
  nlohmann::json single;
  {
    TensorBoardSink tb((out / "tensorboard").string());
    for (int64_t step = 0; step < 23; step += 2) {
      const Scalars s = {{"loss", 3.0 + n01(rng)}, {"lr", 1e-3 * (1 + step)}, {"grad_norm", std::fabs(n01(rng))}};
      tb.log(step, s);
      for (const auto& [name, v] : s) single[name].push_back({step, v});
    }
  }
  expected["single"] = single;

  // An interrupted run resumed from step 10: TensorBoard must show steps <= 10 of the first
  // attempt and everything of the second.
  nlohmann::json resumed;
  {
    TensorBoardSink first((out / "tensorboard_resumed").string());
    for (int64_t step = 1; step <= 15; ++step) {
      const double v = 10.0 + n01(rng);
      first.log(step, {{"loss", v}});
      if (step <= 10) resumed["loss"].push_back({step, v});
    }
    TensorBoardSink second((out / "tensorboard_resumed").string(), /*resumed_at=*/10);
    for (int64_t step = 11; step <= 20; ++step) {
      const double v = -1.0 - 0.5 * n01(rng);
      second.log(step, {{"loss", v}});
      resumed["loss"].push_back({step, v});
    }
  }
  expected["resumed"] = resumed;

  // A plot and where its curves are.
  write_run((out / "metrics.jsonl").string(), 300, true);
  render_loss_plot((out / "metrics.jsonl").string(), (out / "loss.png").string());
  PlotFrame f;
  const auto series = read_metric_series((out / "metrics.jsonl").string(), {"loss", "val_loss"});
  render_plot(series, PlotOptions{}, &f);
  nlohmann::json png;
  png["width"] = 800;
  png["height"] = 500;
  for (size_t k = 0; k < series.size(); ++k) {
    const Rgb c = series_color(k);
    nlohmann::json curve;
    curve["name"] = series[k].name;
    curve["color"] = {c.r, c.g, c.b};
    for (size_t i = 0; i < series[k].steps.size(); i += 7) {
      const int x = f.px(static_cast<double>(series[k].steps[i])), y = f.py(series[k].values[i]);
      if (under_legend(f, x, y)) continue;
      curve["points"].push_back({x, y});
    }
    png["curves"].push_back(curve);
  }
  expected["png"] = png;
  expected["t1"] = unix_time_now();
  std::ofstream((out / "expected.json").string()) << expected.dump(1) << "\n";

  EXPECT_TRUE(fs::exists(out / "loss.png"));
  EXPECT_EQ(std::distance(fs::directory_iterator(out / "tensorboard_resumed"), fs::directory_iterator{}), 2);
}

}  // namespace
}  // namespace ssm::train
