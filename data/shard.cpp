#include "data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "framework/core/error.h"

namespace ssm::data {

// Tokens are stored little-endian and read through a plain pointer cast of the mapping.
static_assert(std::endian::native == std::endian::little,
              "token shards are read in place; a big-endian host would need byte swapping");

namespace {

constexpr size_t kWriteBufferBytes = size_t(1) << 20;

void put_u32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
void put_u64(unsigned char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
uint32_t get_u32(const unsigned char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(p[i]) << (8 * i);
  return v;
}
uint64_t get_u64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

void encode_header(const ShardHeader& h, unsigned char* out) {
  std::memset(out, 0, kShardHeaderBytes);
  std::memcpy(out, kShardMagic, sizeof(kShardMagic));
  put_u32(out + 8, h.version);
  put_u32(out + 12, static_cast<uint32_t>(h.dtype));
  put_u64(out + 16, h.num_tokens);
  put_u32(out + 24, h.vocab_size);
  put_u64(out + 32, h.checksum);
}

void write_all(int fd, const void* data, size_t bytes, const std::string& path) {
  const auto* p = static_cast<const unsigned char*>(data);
  while (bytes > 0) {
    ssize_t n = ::write(fd, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    SSM_CHECK(n > 0, "shard {}: write failed: {}", path, std::strerror(errno));
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

// Makes the rename itself durable: without it a power loss can forget the new name.
void fsync_parent_dir(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) parent = ".";
  int dfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd < 0) return;  // best effort: some filesystems refuse to open directories
  ::fsync(dfd);
  ::close(dfd);
}

}  // namespace

const char* token_dtype_name(TokenDType d) { return d == TokenDType::kU16 ? "u16" : "u32"; }

TokenDType token_dtype_for_vocab(int64_t vocab_size) {
  return vocab_size <= 65536 ? TokenDType::kU16 : TokenDType::kU32;
}

uint64_t fnv1a64(const void* data, size_t bytes, uint64_t state) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) {
    state ^= p[i];
    state *= 0x100000001b3ull;
  }
  return state;
}

// ---- writer ----------------------------------------------------------------------------

ShardWriter::ShardWriter(std::string path, int64_t vocab_size, TokenDType dtype)
    : path_(std::move(path)), dtype_(dtype), vocab_size_(vocab_size) {
  SSM_CHECK(vocab_size > 0 && vocab_size <= int64_t(UINT32_MAX),
            "shard {}: vocab size {} out of range", path_, vocab_size);
  SSM_CHECK(dtype == TokenDType::kU32 || vocab_size <= 65536,
            "shard {}: vocab size {} does not fit u16 tokens", path_, vocab_size);
  tmp_path_ = path_ + ".tmp." + std::to_string(::getpid());
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  SSM_CHECK(fd_ >= 0, "shard {}: cannot create {}: {}", path_, tmp_path_, std::strerror(errno));
  buffer_.reserve(kWriteBufferBytes);
  // Placeholder header; the real one (count, checksum) is written by finish().
  buffer_.resize(kShardHeaderBytes, 0);
  flush_buffer();
}

ShardWriter::~ShardWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) ::unlink(tmp_path_.c_str());
}

void ShardWriter::flush_buffer() {
  write_all(fd_, buffer_.data(), buffer_.size(), path_);
  buffer_.clear();
}

void ShardWriter::append(std::span<const int32_t> tokens) {
  SSM_CHECK(!finished_, "shard {}: append after finish", path_);
  const size_t width = static_cast<size_t>(token_width(dtype_));
  for (int32_t t : tokens) {
    SSM_CHECK(t >= 0 && t < vocab_size_,
              "shard {}: token id {} at position {} outside vocab [0, {})", path_, t, num_tokens_,
              vocab_size_);
    unsigned char bytes[4];
    put_u32(bytes, static_cast<uint32_t>(t));
    if (buffer_.size() + width > kWriteBufferBytes) {
      checksum_ = fnv1a64(buffer_.data(), buffer_.size(), checksum_);
      flush_buffer();
    }
    buffer_.insert(buffer_.end(), bytes, bytes + width);
    ++num_tokens_;
  }
}

void ShardWriter::finish() {
  SSM_CHECK(!finished_, "shard {}: finish called twice", path_);
  checksum_ = fnv1a64(buffer_.data(), buffer_.size(), checksum_);
  flush_buffer();
  ShardHeader h;
  h.dtype = dtype_;
  h.num_tokens = static_cast<uint64_t>(num_tokens_);
  h.vocab_size = static_cast<uint32_t>(vocab_size_);
  h.checksum = checksum_;
  unsigned char header[kShardHeaderBytes];
  encode_header(h, header);
  SSM_CHECK(::pwrite(fd_, header, sizeof(header), 0) == ssize_t(sizeof(header)),
            "shard {}: header write failed: {}", path_, std::strerror(errno));
  SSM_CHECK(::fsync(fd_) == 0, "shard {}: fsync failed: {}", path_, std::strerror(errno));
  SSM_CHECK(::close(fd_) == 0, "shard {}: close failed: {}", path_, std::strerror(errno));
  fd_ = -1;
  SSM_CHECK(::rename(tmp_path_.c_str(), path_.c_str()) == 0, "shard {}: rename from {} failed: {}",
            path_, tmp_path_, std::strerror(errno));
  finished_ = true;
  fsync_parent_dir(path_);
}

void write_shard(const std::string& path, std::span<const int32_t> tokens, int64_t vocab_size,
                 TokenDType dtype) {
  ShardWriter w(path, vocab_size, dtype);
  w.append(tokens);
  w.finish();
}

void write_shard(const std::string& path, std::span<const int32_t> tokens, int64_t vocab_size) {
  write_shard(path, tokens, vocab_size, token_dtype_for_vocab(vocab_size));
}

// ---- reader ----------------------------------------------------------------------------

Shard Shard::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  SSM_CHECK(fd >= 0, "shard {}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    SSM_FAIL("shard {}: cannot stat: {}", path, std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    SSM_FAIL("shard {}: not a regular file", path);
  }
  const size_t bytes = static_cast<size_t>(st.st_size);
  if (bytes < size_t(kShardHeaderBytes)) {
    ::close(fd);
    SSM_FAIL("shard {}: truncated header: expected at least {} bytes, file has {}", path,
             kShardHeaderBytes, bytes);
  }
  void* map = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);  // the mapping keeps the file alive
  SSM_CHECK(map != MAP_FAILED, "shard {}: mmap failed: {}", path, std::strerror(map_err));

  Shard s;  // owns the mapping from here on, so every failure below unmaps it
  s.path_ = path;
  s.base_ = static_cast<const unsigned char*>(map);
  s.map_bytes_ = bytes;
  const unsigned char* h = s.base_;
  SSM_CHECK(std::memcmp(h, kShardMagic, sizeof(kShardMagic)) == 0,
            "shard {}: bad magic (not an SSMTOKS token shard)", path);
  s.header_.version = get_u32(h + 8);
  SSM_CHECK(s.header_.version == kShardVersion,
            "shard {}: unsupported format version {} (this build reads version {})", path,
            s.header_.version, kShardVersion);
  uint32_t code = get_u32(h + 12);
  SSM_CHECK(code == uint32_t(TokenDType::kU16) || code == uint32_t(TokenDType::kU32),
            "shard {}: unknown token dtype code {} (expected 2 = u16 or 4 = u32)", path, code);
  s.header_.dtype = static_cast<TokenDType>(code);
  s.header_.num_tokens = get_u64(h + 16);
  s.header_.vocab_size = get_u32(h + 24);
  s.header_.checksum = get_u64(h + 32);
  SSM_CHECK(s.header_.vocab_size > 0, "shard {}: vocab size is 0", path);

  const uint64_t width = static_cast<uint64_t>(token_width(s.header_.dtype));
  SSM_CHECK(s.header_.num_tokens <= (UINT64_MAX - kShardHeaderBytes) / width,
            "shard {}: token count {} overflows", path, s.header_.num_tokens);
  const uint64_t expected = kShardHeaderBytes + s.header_.num_tokens * width;
  SSM_CHECK(expected == bytes,
            "shard {}: size mismatch: header says {} tokens ({}) = {} bytes, file has {} bytes{}",
            path, s.header_.num_tokens, token_dtype_name(s.header_.dtype), expected, bytes,
            bytes < expected ? " (truncated)" : "");
  return s;
}

Shard::~Shard() {
  if (base_) ::munmap(const_cast<unsigned char*>(base_), map_bytes_);
}

Shard::Shard(Shard&& o) noexcept
    : path_(std::move(o.path_)), header_(o.header_), base_(o.base_), map_bytes_(o.map_bytes_) {
  o.base_ = nullptr;
  o.map_bytes_ = 0;
}

Shard& Shard::operator=(Shard&& o) noexcept {
  if (this != &o) {
    if (base_) ::munmap(const_cast<unsigned char*>(base_), map_bytes_);
    path_ = std::move(o.path_);
    header_ = o.header_;
    base_ = o.base_;
    map_bytes_ = o.map_bytes_;
    o.base_ = nullptr;
    o.map_bytes_ = 0;
  }
  return *this;
}

int32_t Shard::at(int64_t i) const {
  SSM_CHECK(i >= 0 && i < size(), "shard {}: token index {} outside [0, {})", path_, i, size());
  int32_t v;
  read(i, 1, &v);
  return v;
}

void Shard::read(int64_t offset, int64_t count, int32_t* out) const {
  SSM_CHECK(offset >= 0 && count >= 0 && offset + count <= size(),
            "shard {}: read of [{}, {}) outside [0, {})", path_, offset, offset + count, size());
  if (header_.dtype == TokenDType::kU16) {
    const auto* p = reinterpret_cast<const uint16_t*>(payload()) + offset;
    for (int64_t i = 0; i < count; ++i) out[i] = static_cast<int32_t>(p[i]);
  } else {
    const auto* p = reinterpret_cast<const uint32_t*>(payload()) + offset;
    for (int64_t i = 0; i < count; ++i) out[i] = static_cast<int32_t>(p[i]);
  }
}

uint64_t Shard::compute_checksum() const {
  if (!base_) return kFnvOffsetBasis;
  return fnv1a64(payload(), map_bytes_ - kShardHeaderBytes);
}

void Shard::verify() const {
  SSM_CHECK(base_ != nullptr, "shard: verify() on a Shard that was never opened");
  const uint64_t actual = compute_checksum();
  SSM_CHECK(
      actual == header_.checksum,
      "shard {}: checksum mismatch (header 0x{:016x}, payload 0x{:016x}): the file is corrupt",
      path_, header_.checksum, actual);
  // Ids beyond the vocab would index past the embedding table; catch them here, not in a kernel.
  int64_t max_id = 0;
  if (header_.dtype == TokenDType::kU16) {
    const auto* p = reinterpret_cast<const uint16_t*>(payload());
    for (int64_t i = 0; i < size(); ++i) max_id = std::max<int64_t>(max_id, p[i]);
  } else {
    const auto* p = reinterpret_cast<const uint32_t*>(payload());
    for (int64_t i = 0; i < size(); ++i) max_id = std::max<int64_t>(max_id, p[i]);
  }
  SSM_CHECK(size() == 0 || max_id < vocab_size(), "shard {}: token id {} >= vocab size {}", path_,
            max_id, vocab_size());
}

}  // namespace ssm::data
