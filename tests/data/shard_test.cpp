#include "data/shard.h"

#include <gtest/gtest.h>

#include <cstring>

#include "data/dataset.h"
#include "tests/data/data_test_util.h"

namespace ssm::data {
namespace {

using test::expect_error;
using test::random_tokens;
using test::read_bytes;
using test::ScratchDir;
using test::write_bytes;

// Independent FNV-1a 64, written from the spec, byte by byte over a std::string.
uint64_t naive_fnv1a(const std::string& bytes) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

uint64_t le64(const std::string& s, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + size_t(i)]);
  return v;
}
uint32_t le32(const std::string& s, size_t at) {
  return uint32_t(le64(s + std::string(8, '\0'), at));
}

TEST(Fnv1a, KnownVectors) {
  EXPECT_EQ(fnv1a64("", 0), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a", 1), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a64("foobar", 6), 0x85944171f73967e8ull);
  // Streaming in pieces equals hashing at once.
  EXPECT_EQ(fnv1a64("bar", 3, fnv1a64("foo", 3)), fnv1a64("foobar", 6));
}

void check_round_trip(int64_t vocab, size_t n, uint32_t seed, TokenDType expect_dtype) {
  ScratchDir dir;
  const std::string path = dir.file("s.bin");
  const std::vector<int32_t> tokens = random_tokens(n, int32_t(vocab), seed);
  write_shard(path, tokens, vocab);

  const std::string raw = read_bytes(path);
  const int64_t width = token_width(expect_dtype);
  ASSERT_EQ(int64_t(raw.size()), kShardHeaderBytes + int64_t(n) * width);
  // Header layout byte by byte, as documented.
  EXPECT_EQ(raw.substr(0, 8), std::string("SSMTOKS\0", 8));
  EXPECT_EQ(le32(raw, 8), 1u);
  EXPECT_EQ(le32(raw, 12), uint32_t(width));
  EXPECT_EQ(le64(raw, 16), n);
  EXPECT_EQ(le32(raw, 24), uint32_t(vocab));
  EXPECT_EQ(le32(raw, 28), 0u);
  EXPECT_EQ(le64(raw, 32), naive_fnv1a(raw.substr(kShardHeaderBytes)));
  EXPECT_EQ(raw.substr(40, 24), std::string(24, '\0'));
  // Payload: little-endian tokens.
  for (size_t i = 0; i < n; i += 97) {
    uint64_t v = 0;
    for (int64_t b = width - 1; b >= 0; --b) {
      v = (v << 8) |
          static_cast<unsigned char>(raw[size_t(kShardHeaderBytes + int64_t(i) * width + b)]);
    }
    ASSERT_EQ(v, uint64_t(tokens[i])) << i;
  }

  Shard s = Shard::open(path);
  EXPECT_EQ(s.size(), int64_t(n));
  EXPECT_EQ(s.vocab_size(), vocab);
  EXPECT_EQ(s.dtype(), expect_dtype);
  EXPECT_EQ(s.file_bytes(), int64_t(raw.size()));
  std::vector<int32_t> back(n);
  s.read(0, int64_t(n), back.data());
  EXPECT_EQ(back, tokens);
  EXPECT_EQ(s.at(int64_t(n) - 1), tokens.back());
  std::vector<int32_t> mid(13);
  s.read(101, 13, mid.data());
  EXPECT_TRUE(std::equal(mid.begin(), mid.end(), tokens.begin() + 101));
  EXPECT_NO_THROW(s.verify());
  EXPECT_EQ(s.compute_checksum(), s.header().checksum);
  // Nothing but the shard is left in the directory (the temp file was renamed).
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"s.bin"});
}

TEST(Shard, RoundTripU16) { check_round_trip(50277, 4099, 1, TokenDType::kU16); }
TEST(Shard, RoundTripU16FullRange) { check_round_trip(65536, 3001, 2, TokenDType::kU16); }
TEST(Shard, RoundTripU32) { check_round_trip(100003, 3001, 3, TokenDType::kU32); }

TEST(Shard, ForcedU32ForSmallVocab) {
  ScratchDir dir;
  const auto tokens = random_tokens(517, 259, 4);
  write_shard(dir.file("a.bin"), tokens, 259, TokenDType::kU32);
  Shard s = Shard::open(dir.file("a.bin"));
  EXPECT_EQ(s.dtype(), TokenDType::kU32);
  std::vector<int32_t> back(tokens.size());
  s.read(0, s.size(), back.data());
  EXPECT_EQ(back, tokens);
  expect_error([&] { write_shard(dir.file("b.bin"), tokens, 70000, TokenDType::kU16); },
               {"b.bin", "u16"});
}

TEST(Shard, EmptyShard) {
  ScratchDir dir;
  write_shard(dir.file("e.bin"), {}, 259);
  Shard s = Shard::open(dir.file("e.bin"));
  EXPECT_EQ(s.size(), 0);
  EXPECT_NO_THROW(s.verify());
}

TEST(Shard, StreamingWriterMatchesOneShotAcrossBufferFlushes) {
  ScratchDir dir;
  // 1.4 MB of u16 payload crosses the writer's 1 MiB buffer; uneven append sizes.
  const auto tokens = random_tokens(700001, 30000, 5);
  write_shard(dir.file("one.bin"), tokens, 30000);
  {
    ShardWriter w(dir.file("many.bin"), 30000);
    size_t at = 0, chunk = 1;
    while (at < tokens.size()) {
      const size_t n = std::min(chunk, tokens.size() - at);
      w.append(std::span(tokens).subspan(at, n));
      at += n;
      chunk = chunk * 3 + 1;
    }
    EXPECT_EQ(w.num_tokens(), int64_t(tokens.size()));
    // Not visible under the final name before finish().
    EXPECT_FALSE(std::filesystem::exists(dir.file("many.bin")));
    w.finish();
  }
  EXPECT_EQ(read_bytes(dir.file("one.bin")), read_bytes(dir.file("many.bin")));
}

TEST(Shard, WriterRejectsOutOfRangeIdsAndCleansUp) {
  ScratchDir dir;
  const std::string path = dir.file("bad.bin");
  expect_error(
      [&] {
        write_shard(path, std::vector<int32_t>{1, 2, 259}, 259);
      },
      {"bad.bin", "259", "position 2"});
  expect_error([&] { write_shard(path, std::vector<int32_t>{-1}, 259); }, {"bad.bin", "-1"});
  EXPECT_TRUE(dir.entries().empty()) << "temp files left behind";
}

TEST(Shard, UnfinishedWriterLeavesNothing) {
  ScratchDir dir;
  {
    ShardWriter w(dir.file("x.bin"), 259);
    w.append(std::vector<int32_t>{1, 2, 3});
  }
  EXPECT_TRUE(dir.entries().empty());
}

TEST(Shard, RewriteReplacesAtomically) {
  ScratchDir dir;
  write_shard(dir.file("r.bin"), std::vector<int32_t>{1, 2, 3}, 259);
  write_shard(dir.file("r.bin"), std::vector<int32_t>{4, 5}, 259);
  Shard s = Shard::open(dir.file("r.bin"));
  ASSERT_EQ(s.size(), 2);
  EXPECT_EQ(s.at(0), 4);
}

class CorruptShard : public ::testing::Test {
 protected:
  void SetUp() override {
    path = dir.file("corrupt_me.bin");
    write_shard(path, random_tokens(1001, 259, 6), 259);
    raw = read_bytes(path);
  }
  ScratchDir dir;
  std::string path, raw;
};

TEST_F(CorruptShard, TruncatedPayload) {
  write_bytes(path, raw.substr(0, raw.size() - 1));
  // expected 64 + 1001 * 2 = 2066 bytes, the file has 2065.
  expect_error([&] { Shard::open(path); }, {path, "2066", "2065", "truncated"});
}

TEST_F(CorruptShard, TrailingGarbage) {
  write_bytes(path, raw + "x");
  expect_error([&] { Shard::open(path); }, {path, "2066", "2067"});
}

TEST_F(CorruptShard, TruncatedHeader) {
  write_bytes(path, raw.substr(0, 10));
  expect_error([&] { Shard::open(path); }, {path, "64", "10"});
}

TEST_F(CorruptShard, FlippedPayloadByteFailsVerify) {
  raw[kShardHeaderBytes + 777] ^= 0x01;
  write_bytes(path, raw);
  Shard s = Shard::open(path);  // structure is fine
  expect_error([&] { s.verify(); }, {path, "checksum"});
}

TEST_F(CorruptShard, FlippedChecksumFailsVerify) {
  raw[33] ^= 0x10;
  write_bytes(path, raw);
  expect_error([&] { Shard::open(path).verify(); }, {path, "checksum"});
}

TEST_F(CorruptShard, WrongMagic) {
  raw[3] = 'X';
  write_bytes(path, raw);
  expect_error([&] { Shard::open(path); }, {path, "magic"});
}

TEST_F(CorruptShard, WrongVersion) {
  raw[8] = 2;
  write_bytes(path, raw);
  expect_error([&] { Shard::open(path); }, {path, "version 2"});
}

TEST_F(CorruptShard, WrongDtype) {
  raw[12] = 3;
  write_bytes(path, raw);
  expect_error([&] { Shard::open(path); }, {path, "dtype"});
}

TEST_F(CorruptShard, IdBeyondVocabFailsVerify) {
  // Rewrite token 5 as 300 (>= vocab 259) and fix the checksum, so only the range check fires.
  raw[size_t(kShardHeaderBytes) + 10] = char(300 & 0xff);
  raw[size_t(kShardHeaderBytes) + 11] = char(300 >> 8);
  const uint64_t h = naive_fnv1a(raw.substr(kShardHeaderBytes));
  for (int i = 0; i < 8; ++i) raw[size_t(32 + i)] = char((h >> (8 * i)) & 0xff);
  write_bytes(path, raw);
  expect_error([&] { Shard::open(path).verify(); }, {path, "300", "259"});
}

TEST(Shard, MissingFile) {
  ScratchDir dir;
  expect_error([&] { Shard::open(dir.file("nope.bin")); }, {"nope.bin"});
  expect_error([&] { Shard::open(dir.str()); }, {dir.str(), "not a regular file"});
}

TEST(TokenStream, ReadsAcrossShardBoundaries) {
  ScratchDir dir;
  // Sizes include an empty shard in the middle; tokens are their own stream positions.
  const std::vector<size_t> sizes = {17, 0, 5, 31, 1};
  std::vector<int32_t> all;
  std::vector<std::string> paths;
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::vector<int32_t> t(sizes[i]);
    for (auto& x : t) x = int32_t(all.size() + size_t(&x - t.data()));
    all.insert(all.end(), t.begin(), t.end());
    paths.push_back(dir.file("s" + std::to_string(i) + ".bin"));
    write_shard(paths.back(), t, 1000);
  }
  const TokenStream s = TokenStream::open(paths);
  ASSERT_EQ(s.size(), int64_t(all.size()));
  EXPECT_EQ(s.num_shards(), 5);
  for (int64_t off = 0; off <= s.size(); ++off) {
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(6), s.size() - off}) {
      if (off + n > s.size()) continue;
      std::vector<int32_t> got(static_cast<size_t>(n));
      s.read(off, n, got.data());
      ASSERT_TRUE(std::equal(got.begin(), got.end(), all.begin() + off)) << off << " " << n;
    }
  }
  expect_error([&] { s.at(s.size()); }, {"outside"});
}

}  // namespace
}  // namespace ssm::data
