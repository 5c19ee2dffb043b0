// Token shards: one flat file of token ids with a 64-byte header, read through mmap.
//
//   std::vector<int32_t> ids = tokenizer.encode(text);           // (T)
//   ssm::data::write_shard("train_00000.bin", ids, tokenizer.vocab_size());
//   ssm::data::Shard shard = ssm::data::Shard::open("train_00000.bin");
//   shard.verify();                                               // recompute the checksum
//   std::vector<int32_t> window(129);
//   shard.read(/*offset=*/0, 129, window.data());                 // u16/u32 -> int32
//
// File format, version 1 (all integers little-endian):
//
//   offset size  field
//   0      8     magic "SSMTOKS\0"
//   8      4     u32 format version (= 1)
//   12     4     u32 token dtype code: 2 = u16 tokens, 4 = u32 tokens (the code is the width)
//   16     8     u64 token count T
//   24     4     u32 vocab size V (every token is < V)
//   28     4     u32 reserved, 0
//   32     8     u64 payload checksum: FNV-1a 64 over the T*width payload bytes
//                (offset basis 0xcbf29ce484222325, prime 0x100000001b3)
//   40     24    zero padding
//   64     T*w   tokens
//
// The payload starts at byte 64, so an mmap (page-aligned) gives aligned u16/u32 tokens.
// A reader accepts a file only if its size is exactly 64 + T*width; a writer writes to a
// temporary name beside the target, fsyncs it, renames it over the target and fsyncs the
// directory, so a crash never leaves a half-written shard under the final name.
// Every error is one line naming the file (ssm::Error via SSM_CHECK / SSM_FAIL).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace ssm::data {

inline constexpr char kShardMagic[8] = {'S', 'S', 'M', 'T', 'O', 'K', 'S', '\0'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr int64_t kShardHeaderBytes = 64;

// The code stored in the header is the token width in bytes.
enum class TokenDType : uint32_t { kU16 = 2, kU32 = 4 };

inline int64_t token_width(TokenDType d) { return static_cast<int64_t>(d); }
const char* token_dtype_name(TokenDType d);  // "u16" / "u32"
// The narrowest dtype that holds every id < vocab_size.
TokenDType token_dtype_for_vocab(int64_t vocab_size);

struct ShardHeader {
  uint32_t version = kShardVersion;
  TokenDType dtype = TokenDType::kU16;
  uint64_t num_tokens = 0;  // T
  uint32_t vocab_size = 0;  // V
  uint64_t checksum = 0;    // FNV-1a 64 of the payload bytes
};

// FNV-1a 64, continuing from `state` (start with kFnvOffsetBasis) so a writer can hash
// the payload as it streams out.
inline constexpr uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ull;
uint64_t fnv1a64(const void* data, size_t bytes, uint64_t state = kFnvOffsetBasis);

// Streams tokens into a new shard: append() any number of times, then finish().
// Tokens go to "<path>.tmp.<pid>"; finish() writes the header, fsyncs and renames. A writer
// destroyed without finish() (e.g. during stack unwinding) deletes its temporary file.
class ShardWriter {
 public:
  ShardWriter(std::string path, int64_t vocab_size, TokenDType dtype);
  ShardWriter(std::string path, int64_t vocab_size)
      : ShardWriter(std::move(path), vocab_size, token_dtype_for_vocab(vocab_size)) {}
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Checks 0 <= id < vocab_size for every token.
  void append(std::span<const int32_t> tokens);  // (T_chunk)
  void finish();
  int64_t num_tokens() const { return num_tokens_; }
  const std::string& path() const { return path_; }

 private:
  void flush_buffer();

  std::string path_, tmp_path_;
  int fd_ = -1;
  TokenDType dtype_;
  int64_t vocab_size_;
  int64_t num_tokens_ = 0;
  uint64_t checksum_ = kFnvOffsetBasis;
  std::vector<unsigned char> buffer_;
  bool finished_ = false;
};

// One-shot helper around ShardWriter.
void write_shard(const std::string& path, std::span<const int32_t> tokens, int64_t vocab_size);
void write_shard(const std::string& path, std::span<const int32_t> tokens, int64_t vocab_size,
                 TokenDType dtype);

// A read-only, memory-mapped shard. open() validates magic, version, dtype and the exact
// file size (a truncated or padded file is an error naming expected and actual bytes);
// verify() additionally recomputes the payload checksum and checks every id < vocab_size.
class Shard {
 public:
  static Shard open(const std::string& path);

  Shard() = default;
  ~Shard();
  Shard(Shard&& other) noexcept;
  Shard& operator=(Shard&& other) noexcept;
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  const std::string& path() const { return path_; }
  const ShardHeader& header() const { return header_; }
  int64_t size() const { return static_cast<int64_t>(header_.num_tokens); }  // T
  int64_t vocab_size() const { return header_.vocab_size; }
  TokenDType dtype() const { return header_.dtype; }
  int64_t file_bytes() const { return static_cast<int64_t>(map_bytes_); }

  int32_t at(int64_t i) const;  // bounds-checked single token
  // Copies tokens [offset, offset + count) into out (count), converting to int32.
  void read(int64_t offset, int64_t count, int32_t* out) const;

  uint64_t compute_checksum() const;  // FNV-1a 64 of the payload as stored now
  void verify() const;                // throws on checksum mismatch or id >= vocab_size

 private:
  const unsigned char* payload() const { return base_ + kShardHeaderBytes; }

  std::string path_;
  ShardHeader header_;
  const unsigned char* base_ = nullptr;  // mapping of the whole file
  size_t map_bytes_ = 0;
};

}  // namespace ssm::data
