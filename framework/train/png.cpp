#include "framework/train/png.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "framework/core/error.h"

namespace ssm::train {

namespace {

constexpr std::array<uint32_t, 256> make_crc32_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32Table = make_crc32_table();

constexpr size_t kStoredBlockMax = 65535;  // LEN is a u16
constexpr size_t kIdatChunkMax = 1 << 20;

void put_be32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

void put_chunk(std::string& out, const char type[4], const std::string& data) {
  put_be32(out, static_cast<uint32_t>(data.size()));
  const size_t start = out.size();
  out.append(type, 4);
  out += data;
  put_be32(out, crc32(out.data() + start, out.size() - start));
}

}  // namespace

RgbImage::RgbImage(int w, int h, Rgb fill) : width(w), height(h) {
  SSM_CHECK(w > 0 && h > 0, "png: image size {}x{} must be positive", w, h);
  pixels.resize(static_cast<size_t>(w) * h * 3);
  for (size_t i = 0; i < pixels.size(); i += 3) {
    pixels[i] = fill.r;
    pixels[i + 1] = fill.g;
    pixels[i + 2] = fill.b;
  }
}

void RgbImage::set(int x, int y, Rgb c) {
  if (!contains(x, y)) return;
  uint8_t* p = &pixels[(static_cast<size_t>(y) * width + x) * 3];
  p[0] = c.r;
  p[1] = c.g;
  p[2] = c.b;
}

Rgb RgbImage::get(int x, int y) const {
  const uint8_t* p = &pixels[(static_cast<size_t>(y) * width + x) * 3];
  return {p[0], p[1], p[2]};
}

uint32_t crc32(const void* data, size_t size, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = kCrc32Table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint32_t adler32(const void* data, size_t size, uint32_t adler) {
  constexpr uint32_t kMod = 65521;
  // 5552 bytes is the longest run whose sums cannot overflow 32 bits before the modulo.
  constexpr size_t kRun = 5552;
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t a = adler & 0xFFFF, b = adler >> 16;
  while (size > 0) {
    const size_t n = std::min(size, kRun);
    for (size_t i = 0; i < n; ++i) {
      a += p[i];
      b += a;
    }
    a %= kMod;
    b %= kMod;
    p += n;
    size -= n;
  }
  return (b << 16) | a;
}

std::string encode_png(const RgbImage& image) {
  SSM_CHECK(image.width > 0 && image.height > 0 &&
                image.pixels.size() == static_cast<size_t>(image.width) * image.height * 3,
            "png: image {}x{} has {} bytes of pixels", image.width, image.height, image.pixels.size());
  // Raw scanlines: filter type 0 (None) + the row's RGB bytes.
  const size_t row_bytes = static_cast<size_t>(image.width) * 3;
  std::string raw;
  raw.reserve((row_bytes + 1) * image.height);
  for (int y = 0; y < image.height; ++y) {
    raw.push_back('\0');
    raw.append(reinterpret_cast<const char*>(&image.pixels[y * row_bytes]), row_bytes);
  }

  // zlib: CMF 0x78 (deflate, 32 KiB window), FLG 0x01 (no dictionary, 0x7801 % 31 == 0).
  std::string z = {'\x78', '\x01'};
  z.reserve(raw.size() + raw.size() / kStoredBlockMax * 5 + 16);
  size_t pos = 0;
  do {
    const size_t n = std::min(kStoredBlockMax, raw.size() - pos);
    const bool final = pos + n == raw.size();
    // Block header: BFINAL in bit 0, BTYPE 00 (stored) in bits 1-2; the rest of the byte is
    // the padding to a byte boundary that stored blocks require.
    z.push_back(final ? '\x01' : '\x00');
    const auto len = static_cast<uint16_t>(n);
    const auto nlen = static_cast<uint16_t>(~len);
    z.push_back(static_cast<char>(len & 0xFF));
    z.push_back(static_cast<char>(len >> 8));
    z.push_back(static_cast<char>(nlen & 0xFF));
    z.push_back(static_cast<char>(nlen >> 8));
    z.append(raw, pos, n);
    pos += n;
  } while (pos < raw.size());
  put_be32(z, adler32(raw.data(), raw.size()));

  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put_be32(ihdr, static_cast<uint32_t>(image.width));
  put_be32(ihdr, static_cast<uint32_t>(image.height));
  ihdr += {'\x08', '\x02', '\x00', '\x00', '\x00'};  // depth 8, RGB, deflate, filter 0, no interlace
  put_chunk(png, "IHDR", ihdr);
  for (size_t off = 0; off < z.size(); off += kIdatChunkMax) put_chunk(png, "IDAT", z.substr(off, kIdatChunkMax));
  put_chunk(png, "IEND", "");
  return png;
}

void write_png(const std::string& path, const RgbImage& image) {
  const std::string bytes = encode_png(image);
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  SSM_CHECK(f != nullptr, "png: cannot create '{}': {}", tmp, std::strerror(errno));
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  const bool closed = std::fclose(f) == 0;
  SSM_CHECK(ok && closed, "png: write to '{}' failed: {}", tmp, std::strerror(errno));
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  SSM_CHECK(!ec, "png: cannot rename '{}' to '{}': {}", tmp, path, ec.message());
}

}  // namespace ssm::train
