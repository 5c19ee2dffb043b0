// safetensors reader/writer: round trips of every dtype, the reader against hand-built bytes,
// every kind of malformed file (an error naming file and tensor, never a crash), random
// corruption, sharded directories.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "framework/checkpoint/safetensors.h"
#include "framework/ops/ops.h"
#include "tests/support/run_util.h"

namespace ssm::checkpoint {
namespace {

namespace fs = std::filesystem;

std::string bytes_of(const std::string& path) { return test::read_file(path); }

// A file from a header text and raw data, with the true header length unless `len` is given.
void craft(const std::string& path, const std::string& header, const std::string& data,
           std::optional<uint64_t> len = {}) {
  uint64_t n = len.value_or(header.size());
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  test::write_file(path, out + header + data);
}

std::string f32_bytes(const std::vector<float>& v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4); }

// Raw bytes of a tensor (contiguous copy) for bit-exact comparisons.
std::string raw(const Tensor& t) {
  Tensor c = contiguous(t);
  return std::string(static_cast<const char*>(c.raw_data()), c.nbytes());
}

Tensor random_tensor(const Dims& shape, DType dt, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> n01;
  std::vector<double> v(size_t(shape.numel()));
  for (double& x : v) x = dt == DType::i32 || dt == DType::i64 ? double(int64_t(rng() % 2001) - 1000) : n01(rng);
  return Tensor::from_vector(v, shape, dt);
}

// Expects `f` to throw an ssm::Error whose message contains every string of `parts`.
template <class F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << parts.at(0);
  } catch (const Error& e) {
    for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(Safetensors, RoundTripEveryDtypeBitExact) {
  test::TempDir dir("st-rt");
  Tensor m = random_tensor({3, 5}, DType::f32, 1);
  std::vector<NamedTensor> ts = {
      {"a.f32", random_tensor({3, 7}, DType::f32, 2)},       {"b.f64", random_tensor({5}, DType::f64, 3)},
      {"c.bf16", random_tensor({2, 3, 5}, DType::bf16, 4)},  {"d.i32", random_tensor({9}, DType::i32, 5)},
      {"e.i64", random_tensor({2, 2}, DType::i64, 6)},       {"f.scalar", Tensor::scalar(2.5)},
      {"g.empty", Tensor::zeros({0, 3})},                    {"h.transposed", m.transpose(0, 1)}};
  const std::string path = dir / "x.safetensors";
  write_safetensors(path, ts);
  SafetensorsFile f(path);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  ASSERT_EQ(f.entries().size(), ts.size());
  for (const NamedTensor& t : ts) {
    const SafetensorsEntry* e = f.find(t.name);
    ASSERT_NE(e, nullptr) << t.name;
    EXPECT_EQ(e->shape, t.data.shape()) << t.name;
    EXPECT_EQ(e->dtype, t.data.dtype()) << t.name;
    Tensor back = f.read(t.name);
    EXPECT_EQ(raw(back), raw(t.data)) << t.name;
  }
  // The layout itself: little-endian length, a JSON header padded to 8 bytes, tensors back to
  // back in the given order.
  std::string b = bytes_of(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(b[size_t(i)])) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
  nlohmann::json h = nlohmann::json::parse(b.substr(8, n));
  EXPECT_EQ(h["__metadata__"]["format"], "pt");
  EXPECT_EQ(h["a.f32"]["dtype"], "F32");
  EXPECT_EQ(h["c.bf16"]["dtype"], "BF16");
  EXPECT_EQ(h["e.i64"]["dtype"], "I64");
  EXPECT_EQ(h["a.f32"]["data_offsets"], nlohmann::json({0, 84}));
  EXPECT_EQ(h["b.f64"]["data_offsets"], nlohmann::json({84, 124}));
  EXPECT_EQ(h["f.scalar"]["shape"], nlohmann::json::array());
  EXPECT_EQ(b.size(), 8 + n + 84 + 40 + 60 + 36 + 32 + 4 + 0 + 60);
}

TEST(Safetensors, ReaderAgreesWithHandBuiltBytes) {
  test::TempDir dir("st-hand");
  // Key order in the header differs from data order; whitespace padding as Python writes it.
  std::string header = R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  craft(dir / "h.safetensors", header, f32_bytes({-1.f, 2.f}) + f32_bytes({1.f, 2.f, 3.f, 4.f}));
  SafetensorsFile f(dir / "h.safetensors");
  EXPECT_EQ(f.read("w").to_vector(), (std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(f.read("b").to_vector(), (std::vector<double>{-1, 2}));
  EXPECT_EQ(f.entries()[0].name, "b");  // offset order
  // F16 (written by other tools) is widened to f32 exactly: 1, -2, 0.5, 2^-24, inf.
  std::vector<uint16_t> half = {0x3C00, 0xC000, 0x3800, 0x0001, 0x7C00};
  craft(dir / "h16.safetensors", R"({"h":{"dtype":"F16","shape":[5],"data_offsets":[0,10]}})",
        std::string(reinterpret_cast<const char*>(half.data()), 10));
  Tensor h = SafetensorsFile(dir / "h16.safetensors").read("h");
  EXPECT_EQ(h.dtype(), DType::f32);
  EXPECT_EQ(h.to_vector(), (std::vector<double>{1, -2, 0.5, std::ldexp(1.0, -24), INFINITY}));
}

TEST(Safetensors, MalformedFilesGiveErrorsNamingFileAndTensor) {
  test::TempDir dir("st-bad");
  const std::string p = dir / "bad.safetensors";
  const std::string d12 = f32_bytes({1, 2, 3});
  auto open = [&] { SafetensorsFile f(p); };

  test::write_file(p, "abc");
  expect_error(open, {p, "shorter than the 8-byte header length"});
  craft(p, R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})", d12, 4096);
  expect_error(open, {p, "bad header length 4096"});
  craft(p, R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})", d12, UINT64_MAX);
  expect_error(open, {p, "bad header length"});
  craft(p, R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,12]})", d12);  // missing brace
  expect_error(open, {p, "not valid JSON"});
  craft(p, "[1, 2, 3]", "");
  expect_error(open, {p, "must be a JSON object"});
  craft(p, R"({"t":{"dtype":"F17","shape":[3],"data_offsets":[0,12]}})", d12);
  expect_error(open, {p, "'t'", "unknown dtype 'F17'"});
  craft(p, R"({"t":{"dtype":7,"shape":[3],"data_offsets":[0,12]}})", d12);
  expect_error(open, {p, "'t'", "dtype must be a string"});
  craft(p, R"({"t":{"dtype":"F32","shape":[3]}})", d12);
  expect_error(open, {p, "'t'", "data_offsets"});
  craft(p, R"({"t":{"dtype":"F32","shape":[-3],"data_offsets":[0,12]}})", d12);
  expect_error(open, {p, "'t'", "non-negative integers"});
  craft(p, R"({"t":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,12]}})", d12);
  expect_error(open, {p, "'t'", "overflows"});
  craft(p, R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[12,0]}})", d12);
  expect_error(open, {p, "'t'", "end before they begin"});
  craft(p, R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", d12);
  expect_error(open, {p, "'t'", "span 8 bytes", "needs 12 bytes"});
  craft(p, R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,1200]}})", d12);
  expect_error(open, {p, "'t'", "out of range", "12 bytes"});
  craft(p, R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[18446744073709551604,18446744073709551615]}})", d12);
  expect_error(open, {p, "'t'", "out of range"});
  craft(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
        d12);
  expect_error(open, {p, "'a'", "'b'", "overlap"});
  craft(p, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
        d12);
  expect_error(open, {p, "'b'", "belong to no tensor"});
  craft(p, R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", d12);
  expect_error(open, {p, "trailing bytes"});
  craft(p, R"({"__metadata__":{"format":1},"t":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})", d12);
  expect_error(open, {p, "__metadata__", "'format'"});

  // Truncated data: a valid file missing its last bytes.
  write_safetensors(p, {{"first", random_tensor({4}, DType::f32, 1)}, {"last", random_tensor({6}, DType::f32, 2)}});
  std::string whole = bytes_of(p);
  test::write_file(p, whole.substr(0, whole.size() - 5));
  expect_error(open, {p, "'last'", "out of range", "truncated"});
  // Reading an absent tensor.
  test::write_file(p, whole);
  expect_error([&] { SafetensorsFile(p).read("nope"); }, {p, "no tensor 'nope'"});
}

// Random corruption of a valid file: the reader either accepts it (a flip inside the data) or
// throws ssm::Error; it never crashes or reads out of bounds (run under ASan in CI).
TEST(Safetensors, RandomCorruptionNeverCrashes) {
  test::TempDir dir("st-fuzz");
  const std::string good = dir / "good.safetensors", p = dir / "fuzz.safetensors";
  write_safetensors(good, {{"x", random_tensor({3, 5}, DType::f32, 1)},
                           {"y", random_tensor({7}, DType::bf16, 2)},
                           {"z", random_tensor({2}, DType::i64, 3)}});
  const std::string whole = bytes_of(good);
  std::mt19937 rng(1234);
  int errors = 0, accepted = 0;
  for (int it = 0; it < 400; ++it) {
    std::string b = whole;
    switch (it % 3) {
      case 0: b[rng() % b.size()] = char(rng()); break;                 // flip a byte anywhere
      case 1: b[rng() % std::min<size_t>(b.size(), 120)] = char(rng()); break;  // in length + header
      case 2: b.resize(rng() % b.size()); break;                        // truncate
    }
    test::write_file(p, b);
    try {
      SafetensorsFile f(p);
      for (const SafetensorsEntry& e : f.entries()) (void)f.read(e.name);
      ++accepted;
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 100);
  EXPECT_GT(accepted, 10);
}

TEST(Safetensors, ShardedDirectoryRoundTripAndIndex) {
  test::TempDir dir("st-shard");
  std::vector<NamedTensor> ts;
  for (int i = 0; i < 7; ++i) ts.push_back({fmt::format("t{}", i), random_tensor({10 + i, 3}, DType::f32, 10 + i)});
  uint64_t total = 0;
  for (const auto& t : ts) total += t.data.nbytes();
  // ~3 tensors per shard.
  std::vector<std::string> files = write_safetensors_dir(dir.path(), ts, 500);
  ASSERT_GE(files.size(), 3u);
  EXPECT_EQ(files.back(), "model.safetensors.index.json");
  EXPECT_EQ(files.front(), fmt::format("model-00001-of-{:05d}.safetensors", files.size() - 1));
  nlohmann::json index = nlohmann::json::parse(test::read_file(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  EXPECT_EQ(index["weight_map"].size(), ts.size());
  for (size_t s = 0; s + 1 < files.size(); ++s)
    EXPECT_LE(fs::file_size(dir / files[s]), 500u + 1024u) << files[s];  // data <= limit, plus a header
  SafetensorsDir d(dir.path());
  EXPECT_EQ(d.num_files(), files.size() - 1);
  ASSERT_EQ(d.names().size(), ts.size());
  for (const auto& t : ts) EXPECT_EQ(raw(d.read(t.name)), raw(t.data)) << t.name;

  // Under the limit: one file, and the stale shards and index of the sharded export are gone.
  files = write_safetensors_dir(dir.path(), ts);
  EXPECT_EQ(files, std::vector<std::string>{"model.safetensors"});
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir / "model-00001-of-00003.safetensors"));
  EXPECT_EQ(SafetensorsDir(dir.path()).num_files(), 1u);
}

TEST(Safetensors, BadDirectoriesAndIndexes) {
  test::TempDir dir("st-dir");
  expect_error([&] { SafetensorsDir d(dir.path()); }, {dir.path(), "no model.safetensors"});
  test::write_file(dir / "pytorch_model.bin", "x");
  expect_error([&] { SafetensorsDir d(dir.path()); }, {"safe_serialization=True"});
  write_safetensors(dir / "s1.safetensors", {{"a", Tensor::zeros({2})}});
  auto index = [&](const std::string& wm) {
    test::write_file(dir / "model.safetensors.index.json", R"({"metadata":{},"weight_map":)" + wm + "}");
  };
  index(R"({"a":"s1.safetensors","b":"s2.safetensors"})");
  expect_error([&] { SafetensorsDir d(dir.path()); }, {"'b'", "missing shard s2.safetensors"});
  index(R"({"a":"s1.safetensors","c":"s1.safetensors"})");
  expect_error([&] { SafetensorsDir d(dir.path()); }, {"'c'", "s1.safetensors", "no such tensor"});
  index(R"({"a":"../s1.safetensors"})");
  expect_error([&] { SafetensorsDir d(dir.path()); }, {"not a plain file name"});
  test::write_file(dir / "model.safetensors.index.json", "{oops");
  expect_error([&] { SafetensorsDir d(dir.path()); }, {"model.safetensors.index.json", "not valid JSON"});
  index(R"({"a":"s1.safetensors"})");
  SafetensorsDir ok(dir.path());
  EXPECT_EQ(ok.names(), std::vector<std::string>{"a"});
  expect_error([&] { ok.read("zz"); }, {"no tensor 'zz'"});
}

}  // namespace
}  // namespace ssm::checkpoint
