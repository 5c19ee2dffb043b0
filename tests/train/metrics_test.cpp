// Metrics sinks: JSONL parsed back with nlohmann, TensorBoard records parsed back by an
// independent TFRecord + protobuf reader (bitwise CRC-32C, hand-decoded wire format), and the
// console's plain lines and progress bar (fake clock; a real pseudo-terminal for `auto`).
#include <gtest/gtest.h>
#include <pty.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "framework/config/recipe.h"
#include "framework/core/error.h"
#include "framework/train/metrics.h"
#include "framework/train/progress.h"
#include "framework/train/tensorboard.h"

namespace ssm::train {
namespace {

namespace fs = std::filesystem;

class ScratchDir {
 public:
  ScratchDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("ssm_metrics_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// ---- JSONL -------------------------------------------------------------------------------------

TEST(JsonlSink, LinesParseBackWithExactValuesInOrder) {
  ScratchDir dir;
  const std::string path = dir.file("run/metrics.jsonl");  // parent created by the sink
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-5.0, 5.0);
  std::vector<std::pair<int64_t, Scalars>> logged;
  const double t0 = unix_time_now();
  {
    JsonlSink sink(path);
    for (int64_t step : {0, 1, 7, 13, 1000003}) {
      Scalars s = {{"loss", std::exp(u(rng))}, {"lr", 3e-4 * std::exp(u(rng))}, {"grad_norm", 1e-300},
                   {"zeta/odd name", u(rng)}};
      sink.log(step, s);
      logged.emplace_back(step, s);
    }
    // Every line is on disk before the sink is closed (flushed per line).
    EXPECT_EQ(read_lines(path).size(), logged.size());
  }
  const double t1 = unix_time_now();

  const std::vector<std::string> lines = read_lines(path);
  ASSERT_EQ(lines.size(), logged.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    const nlohmann::ordered_json row = nlohmann::ordered_json::parse(lines[i]);
    std::vector<std::string> keys;
    for (auto it = row.begin(); it != row.end(); ++it) keys.push_back(it.key());
    ASSERT_EQ(keys, (std::vector<std::string>{"step", "time", "loss", "lr", "grad_norm", "zeta/odd name"}));
    EXPECT_TRUE(row["step"].is_number_integer());
    EXPECT_EQ(row["step"].get<int64_t>(), logged[i].first);
    EXPECT_GE(row["time"].get<double>(), t0 - 1e-3);
    EXPECT_LE(row["time"].get<double>(), t1 + 1e-3);
    for (const auto& [name, value] : logged[i].second) EXPECT_EQ(row[name].get<double>(), value) << name;  // bit-exact
  }
}

TEST(JsonlSink, AppendsAcrossReopenAndWritesNullForNonFinite) {
  ScratchDir dir;
  const std::string path = dir.file("metrics.jsonl");
  {
    JsonlSink a(path);
    a.log(1, {{"loss", 2.5}});
    a.log(2, {{"loss", std::numeric_limits<double>::quiet_NaN()}, {"lr", 1.0}});
  }
  {
    JsonlSink b(path);  // a resumed run continues the file
    b.log(3, {{"loss", std::numeric_limits<double>::infinity()}});
    b.log(4, {{"val_loss", 1.25}});
  }
  const std::vector<std::string> lines = read_lines(path);
  ASSERT_EQ(lines.size(), 4u);
  const auto r0 = nlohmann::json::parse(lines[0]), r1 = nlohmann::json::parse(lines[1]),
             r2 = nlohmann::json::parse(lines[2]), r3 = nlohmann::json::parse(lines[3]);
  EXPECT_EQ(r0["loss"].get<double>(), 2.5);
  EXPECT_TRUE(r1["loss"].is_null());
  EXPECT_EQ(r1["lr"].get<double>(), 1.0);
  EXPECT_EQ(r2["step"].get<int64_t>(), 3);
  EXPECT_TRUE(r2["loss"].is_null());
  EXPECT_EQ(r3["val_loss"].get<double>(), 1.25);
}

TEST(JsonlSink, RejectsReservedAndDuplicateNamesAndUnwritablePaths) {
  ScratchDir dir;
  JsonlSink sink(dir.file("m.jsonl"));
  EXPECT_THROW(sink.log(1, {{"step", 1.0}}), ssm::Error);
  EXPECT_THROW(sink.log(1, {{"time", 1.0}}), ssm::Error);
  EXPECT_THROW(sink.log(1, {{"loss", 1.0}, {"loss", 2.0}}), ssm::Error);
  // A directory where the file should be: a clear error, not a crash.
  fs::create_directories(dir.file("is_a_dir"));
  EXPECT_THROW(JsonlSink{dir.file("is_a_dir")}, ssm::Error);
}

// ---- an independent TFRecord / protobuf reader ---------------------------------------------------

// Bit-at-a-time CRC-32C: the definition, not the library's table.
uint32_t crc32c_bitwise(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : bytes) {
    crc ^= byte;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}
uint32_t mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

uint64_t le(const std::string& s, size_t pos, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint64_t{static_cast<unsigned char>(s[pos + i])} << (8 * i);
  return v;
}

// Splits a TFRecord file into payloads, verifying both CRCs of every record.
std::vector<std::string> read_records(const std::string& path) {
  const std::string data = read_bytes(path);
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < data.size()) {
    EXPECT_LE(pos + 12, data.size()) << "truncated header";
    if (pos + 12 > data.size()) break;
    const uint64_t len = le(data, pos, 8);
    EXPECT_EQ(le(data, pos + 8, 4), mask(crc32c_bitwise(data.substr(pos, 8)))) << "length crc, record " << out.size();
    EXPECT_LE(pos + 12 + len + 4, data.size()) << "truncated payload";
    if (pos + 12 + len + 4 > data.size()) break;
    std::string payload = data.substr(pos + 12, len);
    EXPECT_EQ(le(data, pos + 12 + len, 4), mask(crc32c_bitwise(payload))) << "payload crc, record " << out.size();
    out.push_back(std::move(payload));
    pos += 12 + len + 4;
  }
  return out;
}

// Protobuf fields by number; repeated fields keep every occurrence.
struct Field {
  int wire = 0;
  uint64_t u = 0;     // varint, fixed32, fixed64
  std::string bytes;  // length-delimited
};
std::multimap<uint32_t, Field> decode(const std::string& msg) {
  std::multimap<uint32_t, Field> fields;
  size_t pos = 0;
  auto varint = [&] {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      const auto b = static_cast<unsigned char>(msg.at(pos++));
      v |= uint64_t{b & 0x7Fu} << shift;
      if (!(b & 0x80)) return v;
    }
  };
  while (pos < msg.size()) {
    const uint64_t key = varint();
    Field f;
    f.wire = static_cast<int>(key & 7);
    switch (f.wire) {
      case 0: f.u = varint(); break;
      case 1: f.u = le(msg, pos, 8), pos += 8; break;
      case 5: f.u = le(msg, pos, 4), pos += 4; break;
      case 2: {
        const uint64_t n = varint();
        f.bytes = msg.substr(pos, n);
        pos += n;
        break;
      }
      default: ADD_FAILURE() << "unexpected wire type " << f.wire; return fields;
    }
    fields.emplace(static_cast<uint32_t>(key >> 3), f);
  }
  EXPECT_EQ(pos, msg.size());
  return fields;
}
const Field& one(const std::multimap<uint32_t, Field>& m, uint32_t field, int wire) {
  EXPECT_EQ(m.count(field), 1u) << "field " << field;
  static const Field kMissing;
  const auto it = m.find(field);
  if (it == m.end()) return kMissing;
  EXPECT_EQ(it->second.wire, wire) << "field " << field;
  return it->second;
}
double as_double(uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}
float as_float(uint64_t bits) {
  const auto b = static_cast<uint32_t>(bits);
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

struct ScalarEvent {
  double wall_time;
  int64_t step;
  std::string tag;
  float value;
};

// Checks the header event and returns the scalar events (and SessionLog START steps).
std::vector<ScalarEvent> read_scalar_events(const std::string& path, std::vector<int64_t>* starts = nullptr) {
  const std::vector<std::string> records = read_records(path);
  EXPECT_FALSE(records.empty());
  std::vector<ScalarEvent> out;
  if (records.empty()) return out;
  const auto header = decode(records[0]);
  EXPECT_EQ(one(header, 3, 2).bytes, "brain.Event:2");
  EXPECT_GT(as_double(one(header, 1, 1).u), 1.6e9);
  for (size_t i = 1; i < records.size(); ++i) {
    const auto ev = decode(records[i]);
    const double wall = as_double(one(ev, 1, 1).u);
    const auto step = static_cast<int64_t>(one(ev, 2, 0).u);
    if (ev.count(7)) {  // SessionLog
      const auto log = decode(one(ev, 7, 2).bytes);
      EXPECT_EQ(one(log, 1, 0).u, 1u) << "SessionLog status START";
      if (starts) starts->push_back(step);
      continue;
    }
    const auto summary = decode(one(ev, 5, 2).bytes);
    const auto value = decode(one(summary, 1, 2).bytes);
    out.push_back({wall, step, one(value, 1, 2).bytes, as_float(one(value, 2, 5).u)});
  }
  return out;
}

TEST(Crc32c, MatchesKnownVectorAndBitwiseDefinition) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  std::mt19937 rng(3);
  for (size_t n : {1u, 3u, 31u, 257u, 4099u}) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    EXPECT_EQ(crc32c(s.data(), s.size()), crc32c_bitwise(s)) << n;
    // Continuing a CRC over a split buffer gives the CRC of the whole.
    EXPECT_EQ(crc32c(s.data() + n / 3, n - n / 3, crc32c(s.data(), n / 3)), crc32c_bitwise(s)) << n;
    EXPECT_EQ(masked_crc32c(s.data(), s.size()), mask(crc32c_bitwise(s)));
  }
}

TEST(TensorBoardSink, RecordsParseBackWithVerifiedCrcsAndFieldNumbers) {
  ScratchDir dir;
  const std::string tb_dir = dir.file("tb");
  std::mt19937 rng(11);
  std::normal_distribution<double> n01;
  std::vector<ScalarEvent> expected;
  const double t0 = unix_time_now();
  std::string path;
  {
    TensorBoardSink sink(tb_dir);
    path = sink.path();
    // Odd and extreme steps: 0, a 5-byte varint, a negative (10-byte) varint.
    for (int64_t step : {int64_t{0}, int64_t{1}, int64_t{37}, int64_t{1} << 33, int64_t{-5}}) {
      const Scalars s = {{"loss", 2.0 + n01(rng)}, {"lr", 1e-3 * std::exp(n01(rng))}, {"val/ppl", 1e30}};
      sink.log(step, s);
      for (const auto& [name, v] : s) expected.push_back({0, step, name, static_cast<float>(v)});
    }
  }
  const double t1 = unix_time_now();

  const std::string name = fs::path(path).filename().string();
  EXPECT_EQ(fs::path(path).parent_path(), fs::path(tb_dir));
  ASSERT_TRUE(name.starts_with("events.out.tfevents.")) << name;
  const std::string rest = name.substr(std::strlen("events.out.tfevents."));
  const size_t dot = rest.find('.');
  ASSERT_NE(dot, std::string::npos);
  const long long file_time = std::stoll(rest.substr(0, dot));
  EXPECT_GE(file_time, static_cast<long long>(t0) - 1);
  EXPECT_LE(file_time, static_cast<long long>(t1) + 1);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  EXPECT_EQ(rest.substr(dot + 1), std::string(host));

  const std::vector<ScalarEvent> got = read_scalar_events(path);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].step, expected[i].step) << i;
    EXPECT_EQ(got[i].tag, expected[i].tag) << i;
    EXPECT_EQ(got[i].value, expected[i].value) << i;  // float32, bit-exact
    EXPECT_GE(got[i].wall_time, t0 - 1e-3);
    EXPECT_LE(got[i].wall_time, t1 + 1e-3);
  }
}

TEST(TensorBoardSink, ResumeWritesSessionStartAndNeverReusesAFileName) {
  ScratchDir dir;
  const std::string tb_dir = dir.file("tb");
  TensorBoardSink first(tb_dir);
  first.log(10, {{"loss", 1.5}});
  TensorBoardSink second(tb_dir, /*resumed_at=*/7);  // same second, same host: must not collide
  second.log(8, {{"loss", 1.25}});
  EXPECT_NE(first.path(), second.path());
  EXPECT_LT(first.path(), second.path());  // TensorBoard reads a directory in name order

  std::vector<int64_t> starts_first, starts_second;
  const auto a = read_scalar_events(first.path(), &starts_first);
  const auto b = read_scalar_events(second.path(), &starts_second);
  EXPECT_TRUE(starts_first.empty());
  EXPECT_EQ(starts_second, std::vector<int64_t>{8});  // TensorBoard drops steps >= 8 it read before
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(a[0].step, 10);
  EXPECT_EQ(b[0].value, 1.25f);
}

// ---- console -----------------------------------------------------------------------------------

// A FILE* backed by memory, and a clock the test moves by hand.
class Captured {
 public:
  Captured() { file_ = open_memstream(&buf_, &size_); }
  ~Captured() {
    if (file_) std::fclose(file_);
    std::free(buf_);
  }
  std::FILE* file() { return file_; }
  std::string text() {
    std::fflush(file_);
    return {buf_, size_};
  }

 private:
  std::FILE* file_ = nullptr;
  char* buf_ = nullptr;
  size_t size_ = 0;
};

ConsoleOptions options(config::ConsoleMode mode, int64_t total, std::FILE* out, const double* now) {
  ConsoleOptions o;
  o.mode = mode;
  o.total_steps = total;
  o.out = out;
  o.clock = [now] { return *now; };
  return o;
}

TEST(ConsoleSink, PlainLinesAndEvalLines) {
  Captured cap;
  double now = 100.0;
  {
    ConsoleSink c(options(config::ConsoleMode::plain, 300, cap.file(), &now));
    EXPECT_FALSE(c.bar());
    now = 112.3;
    c.log(120, {{"loss", 2.31414}, {"lr", 2.9e-3}, {"grad_norm", 0.8123}, {"tokens_per_s", 41234.0}});
    now = 113.0;
    c.log(121, {{"tokens_per_s", 950.0}, {"aux_loss", 0.0123456}, {"loss", 2.25}});
    c.log(200, {{"val_loss", 2.29171}, {"val_ppl", 9.8912}});
  }
  EXPECT_EQ(cap.text(),
            "step 120/300 | loss 2.3141 | lr 2.9e-03 | grad-norm 0.81 | 41.2k tok/s | 12.3 s\n"
            "step 121/300 | loss 2.2500 | aux_loss 0.01235 | 950 tok/s | 13.0 s\n"
            "eval step 200/300 | val_loss 2.2917 | val_ppl 9.8912\n");
}

TEST(ConsoleSink, UnknownTotalAndFormatting) {
  Captured cap;
  double now = 0.0;
  {
    ConsoleSink c(options(config::ConsoleMode::plain, 0, cap.file(), &now));
    now = 245.0;
    c.log(7, {{"loss", 10.5}, {"tokens_per_s", 3.07e6}});
    now = 7385.0;
    c.log(8, {});
  }
  EXPECT_EQ(cap.text(), "step 7 | loss 10.5000 | 3.07M tok/s | 4m 05s\nstep 8 | 2h 03m\n");
  EXPECT_EQ(format_count(999.4), "999");
  EXPECT_EQ(format_count(1500.0), "1.5k");
  EXPECT_EQ(format_count(2.5e9), "2.50G");
  EXPECT_EQ(format_duration(59.94), "59.9 s");
  EXPECT_EQ(format_duration(-1.0), "--");
}

// Splits bar output into the successive screen states ('\r' starts a redraw).
std::vector<std::string> redraws(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = s.find('\r', pos)) != std::string::npos) {
    const size_t end = s.find_first_of("\r\n", pos + 1);
    out.push_back(s.substr(pos + 1, end == std::string::npos ? std::string::npos : end - pos - 1));
    pos += 1;
  }
  return out;
}

TEST(ConsoleSink, BarRedrawsInPlaceWithEtaAndKeepsEvalLines) {
  ::setenv("COLUMNS", "100", 1);  // a memstream has no window size
  Captured cap;
  double now = 50.0;
  {
    ConsoleSink c(options(config::ConsoleMode::bar, 300, cap.file(), &now));
    EXPECT_TRUE(c.bar());
    now = 60.0;
    c.log(100, {{"loss", 3.0}, {"lr", 1e-3}, {"grad_norm", 5.0}, {"tokens_per_s", 1000.0}});
    now = 60.05;  // throttled: within 0.1 s of the last redraw
    c.log(101, {{"loss", 2.9}});
    now = 70.0;
    c.log(150, {{"loss", 2.5}, {"lr", 1e-3}, {"tokens_per_s", 2000.0}});
    now = 71.0;
    c.log(150, {{"val_loss", 2.75}});
    now = 80.0;
    c.log(300, {{"loss", 2.0}});  // the last step is always drawn
  }
  const std::string out = cap.text();
  const std::vector<std::string> screens = redraws(out);
  ASSERT_EQ(screens.size(), 5u) << out;
  // 100 -> 150 took 10 s for 50 steps: 150 steps left take 30 s.
  EXPECT_NE(screens[0].find(" 33% 100/300 | loss 3.0000 | lr 1.0e-03 | 1.0k tok/s | ETA --"), std::string::npos)
      << screens[0];
  EXPECT_EQ(screens[0].find("grad-norm"), std::string::npos);  // the bar stays short
  EXPECT_NE(screens[1].find(" 50% 150/300 | loss 2.5000 | lr 1.0e-03 | 2.0k tok/s | ETA 30.0 s"), std::string::npos)
      << screens[1];
  EXPECT_EQ(screens[2].substr(0, 3), "\033[K");  // the eval line replaces the bar ...
  EXPECT_NE(out.find("\033[Keval step 150/300 | val_loss 2.7500\n"), std::string::npos) << out;
  // ... which is redrawn under it, its ETA from the time now: (71 - 60) / 50 * 150 = 33 s.
  EXPECT_NE(screens[3].find(" 50% 150/300 | loss 2.5000 | lr 1.0e-03 | 2.0k tok/s | ETA 33.0 s"), std::string::npos)
      << screens[3];
  EXPECT_NE(screens[4].find("100% 300/300 | loss 2.0000 | 30.0 s"), std::string::npos) << screens[4];
  EXPECT_EQ(out.back(), '\n');  // the sink ends its bar line
  for (const std::string& s : {screens[0], screens[1], screens[4]}) {
    EXPECT_EQ(s.front(), '[');
    const std::string visible = s.substr(0, s.find("\033[K"));
    EXPECT_LE(visible.size(), 99u) << visible;
  }
  ::unsetenv("COLUMNS");
}

TEST(ConsoleSink, BarIsTruncatedToANarrowTerminal) {
  ::setenv("COLUMNS", "40", 1);
  Captured cap;
  double now = 0.0;
  {
    ConsoleSink c(options(config::ConsoleMode::bar, 1000, cap.file(), &now));
    c.log(10, {{"loss", 3.0}, {"lr", 1e-3}, {"tokens_per_s", 12345.0}});
  }
  const auto screens = redraws(cap.text());
  ASSERT_EQ(screens.size(), 1u);
  EXPECT_EQ(screens[0].substr(0, screens[0].find("\033[K")).size(), 39u);
  ::unsetenv("COLUMNS");
}

TEST(ConsoleSink, AutoModeDrawsABarOnATerminalOnly) {
  Captured cap;
  double now = 0.0;
  EXPECT_FALSE(ConsoleSink(options(config::ConsoleMode::automatic, 10, cap.file(), &now)).bar());

  int master = -1, slave = -1;
  winsize ws{};
  ws.ws_col = 60;
  ws.ws_row = 24;
  ASSERT_EQ(openpty(&master, &slave, nullptr, nullptr, &ws), 0);
  const char* old_term = std::getenv("TERM");
  const std::string saved = old_term ? old_term : "";
  ::setenv("TERM", "xterm", 1);
  std::FILE* tty = fdopen(slave, "w");
  ASSERT_NE(tty, nullptr);
  {
    ConsoleSink c(options(config::ConsoleMode::automatic, 500, tty, &now));
    EXPECT_TRUE(c.bar());
    c.log(250, {{"loss", 1.2345}, {"lr", 3e-4}, {"tokens_per_s", 5.0e5}});
  }
  std::fclose(tty);
  std::string seen;
  char buf[4096];
  for (ssize_t n; (n = ::read(master, buf, sizeof buf)) > 0;) {
    seen.append(buf, static_cast<size_t>(n));
    if (seen.find('\n') != std::string::npos) break;
  }
  ::close(master);
  if (old_term) ::setenv("TERM", saved.c_str(), 1); else ::unsetenv("TERM");
  const auto screens = redraws(seen);
  ASSERT_FALSE(screens.empty()) << seen;
  const std::string visible = screens[0].substr(0, screens[0].find("\033[K"));
  EXPECT_NE(visible.find(" 50% 250/500 | loss 1.2345"), std::string::npos) << visible;
  EXPECT_LE(visible.size(), 59u);  // fits the pty's 60 columns without wrapping
}

// ---- fan-out and the run's sinks -----------------------------------------------------------------

class Recorder final : public MetricsSink {
 public:
  Recorder(std::vector<std::string>* log, std::string name) : log_(log), name_(std::move(name)) {}
  void log(int64_t step, const Scalars& s) override {
    log_->push_back(name_ + ":" + std::to_string(step) + ":" + std::to_string(s.size()));
  }
  void flush() override { log_->push_back(name_ + ":flush"); }

 private:
  std::vector<std::string>* log_;
  std::string name_;
};

TEST(MultiSink, FansOutInOrder) {
  std::vector<std::string> calls;
  MultiSink m;
  m.add(std::make_unique<Recorder>(&calls, "a"));
  m.add(std::make_unique<Recorder>(&calls, "b"));
  EXPECT_THROW(m.add(nullptr), ssm::Error);
  m.log(5, {{"loss", 1.0}, {"lr", 2.0}});
  m.flush();
  EXPECT_EQ(calls, (std::vector<std::string>{"a:5:2", "b:5:2", "a:flush", "b:flush"}));
  EXPECT_TRUE(is_eval_log({{"val_loss", 1.0}, {"val_acc", 0.5}}));
  EXPECT_FALSE(is_eval_log({{"val_loss", 1.0}, {"loss", 0.5}}));
  EXPECT_FALSE(is_eval_log({}));
}

TEST(MakeRunSinks, FollowsTheLoggingSection) {
  ScratchDir dir;
  config::LoggingConfig logging;
  logging.run_dir = dir.file("run");
  logging.console = config::ConsoleMode::plain;
  {
    auto sinks = make_run_sinks(logging, 10, std::nullopt);
    EXPECT_EQ(sinks->size(), 3u);
    sinks->log(1, {{"loss", 4.0}});
  }
  EXPECT_EQ(read_lines(dir.file("run/metrics.jsonl")).size(), 1u);
  ASSERT_TRUE(fs::is_directory(dir.file("run/tensorboard")));
  const auto entries = fs::directory_iterator(dir.file("run/tensorboard"));
  const std::string tb_file = fs::begin(entries)->path().string();
  ASSERT_EQ(read_scalar_events(tb_file).size(), 1u);

  logging.jsonl = false;
  logging.tensorboard = false;
  EXPECT_EQ(make_run_sinks(logging, 10, std::nullopt)->size(), 1u);
}

}  // namespace
}  // namespace ssm::train
