// A minimal PNG writer: 8-bit RGB, no compression (zlib stream of stored deflate blocks).
//
//   RgbImage img(800, 500, kWhite);
//   img.set(10, 20, {255, 0, 0});
//   write_png("runs/x/loss.png", img);   // 1.2 MB for 800x500: size is not the point here
//
// Layout: signature, IHDR (width, height, depth 8, colour type 2), IDAT chunks holding
// zlib(0x78 0x01 | stored blocks of <= 65535 bytes | Adler-32 of the raw scanlines), IEND.
// Each scanline is filter byte 0 followed by width*3 bytes. Every chunk ends with the CRC-32
// of its type and data.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ssm::train {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};
inline constexpr Rgb kWhite{255, 255, 255};
inline constexpr Rgb kBlack{0, 0, 0};

struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // (height, width, 3), rows top to bottom

  RgbImage() = default;
  RgbImage(int width, int height, Rgb fill);
  bool contains(int x, int y) const { return x >= 0 && y >= 0 && x < width && y < height; }
  void set(int x, int y, Rgb c);  // silently clipped: drawing code need not test bounds
  Rgb get(int x, int y) const;    // (x, y) must be inside
};

// CRC-32 (ISO-HDLC, reflected polynomial 0xEDB88320) as PNG chunks use; crc32("123456789")
// == 0xCBF43926. `crc` continues a previous result.
uint32_t crc32(const void* data, size_t size, uint32_t crc = 0);
// Adler-32 as the zlib trailer uses; `adler` continues a previous result (start: 1).
uint32_t adler32(const void* data, size_t size, uint32_t adler = 1);

// The PNG file's bytes.
std::string encode_png(const RgbImage& image);
// Writes `path` (through a temporary name and a rename, so a viewer never sees half a file).
void write_png(const std::string& path, const RgbImage& image);

}  // namespace ssm::train
