#include "framework/train/tensorboard.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "framework/core/error.h"

namespace ssm::train {

namespace {

// Byte-at-a-time table for the reflected Castagnoli polynomial, built at compile time.
constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

// ---- protobuf wire format (only what Event needs) --------------------------------------------
enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_key(std::string& out, uint32_t field, WireType type) { put_varint(out, (uint64_t{field} << 3) | type); }
void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_double(std::string& out, uint32_t field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, kFixed64);
  put_le(out, bits, 8);
}
void put_float(std::string& out, uint32_t field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, kFixed32);
  put_le(out, bits, 4);
}
// int64 is encoded as the two's-complement uint64 (negative steps take 10 bytes).
void put_int64(std::string& out, uint32_t field, int64_t v) {
  put_key(out, field, kVarint);
  put_varint(out, static_cast<uint64_t>(v));
}
void put_bytes(std::string& out, uint32_t field, const std::string& bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out += bytes;
}

// Field numbers of tensorboard/compat/proto/{event,summary}.proto.
namespace event_field {
constexpr uint32_t kWallTime = 1, kStep = 2, kFileVersion = 3, kSummary = 5, kSessionLog = 7;
}
constexpr uint32_t kSummaryValue = 1;
constexpr uint32_t kValueTag = 1, kValueSimpleValue = 2;
constexpr uint32_t kSessionLogStatus = 1;
constexpr int64_t kSessionStart = 1;

std::string hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  std::string name(buf);
  for (char& c : name)
    if (c == '/' || c == '\\') c = '_';
  return name;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = kCrc32cTable[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

TensorBoardSink::TensorBoardSink(const std::string& dir, std::optional<int64_t> resumed_at) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  SSM_CHECK(!ec, "tensorboard: cannot create directory '{}': {}", dir, ec.message());
  const double now = unix_time_now();
  const std::string base = fmt::format("{}/events.out.tfevents.{}.{}", dir, static_cast<int64_t>(now), hostname());
  // A second writer within the same second (a quick resume) must not append to, or clobber,
  // the first file; TensorBoard reads the files of a directory in name order, and "base.1"
  // sorts after "base".
  path_ = base;
  for (int n = 1; fs::exists(path_); ++n) path_ = fmt::format("{}.{}", base, n);
  file_ = std::fopen(path_.c_str(), "wb");
  SSM_CHECK(file_ != nullptr, "tensorboard: cannot create '{}': {}", path_, std::strerror(errno));

  std::string event;
  put_double(event, event_field::kWallTime, now);
  put_bytes(event, event_field::kFileVersion, "brain.Event:2");
  write_record(event);
  if (resumed_at) {
    std::string session_log;
    put_key(session_log, kSessionLogStatus, kVarint);
    put_varint(session_log, kSessionStart);
    std::string start;
    put_double(start, event_field::kWallTime, now);
    put_int64(start, event_field::kStep, *resumed_at + 1);
    put_bytes(start, event_field::kSessionLog, session_log);
    write_record(start);
  }
  flush();
}

TensorBoardSink::~TensorBoardSink() {
  if (file_) std::fclose(file_);
}

void TensorBoardSink::write_record(const std::string& payload) {
  std::string header;
  put_le(header, payload.size(), 8);
  put_le(header, masked_crc32c(header.data(), 8), 4);
  std::string footer;
  put_le(footer, masked_crc32c(payload.data(), payload.size()), 4);
  const bool ok = std::fwrite(header.data(), 1, header.size(), file_) == header.size() &&
                  std::fwrite(payload.data(), 1, payload.size(), file_) == payload.size() &&
                  std::fwrite(footer.data(), 1, footer.size(), file_) == footer.size();
  SSM_CHECK(ok, "tensorboard: write to '{}' failed: {}", path_, std::strerror(errno));
}

void TensorBoardSink::log(int64_t step, const Scalars& scalars) {
  const double now = unix_time_now();
  for (const auto& [name, value] : scalars) {
    std::string value_msg;
    put_bytes(value_msg, kValueTag, name);
    put_float(value_msg, kValueSimpleValue, static_cast<float>(value));
    std::string summary;
    put_bytes(summary, kSummaryValue, value_msg);
    std::string event;
    put_double(event, event_field::kWallTime, now);
    put_int64(event, event_field::kStep, step);
    put_bytes(event, event_field::kSummary, summary);
    write_record(event);
  }
  flush();
}

void TensorBoardSink::flush() {
  SSM_CHECK(std::fflush(file_) == 0, "tensorboard: flush of '{}' failed: {}", path_, std::strerror(errno));
}

}  // namespace ssm::train
