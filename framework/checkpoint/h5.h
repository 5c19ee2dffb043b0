// Thin RAII layer over the HDF5 C API for checkpoint shards: one plain dataset per tensor
// (readable by h5dump / h5py), nested names become groups ("model/layers.0.mixer.A_log").
//
//   { H5Writer w("rank_00000.h5");
//     w.write("model/embedding.weight", DType::f32, {V, D}, ptr, checksum); }   // closed + flushed
//   H5Reader r("rank_00000.h5");
//   H5Dataset d = r.read("model/embedding.weight");   // shape, dtype, bytes, stored checksum
//
// Every HDF5 failure becomes an ssm::Error naming the file and the dataset.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "framework/core/dims.h"
#include "kernels/common/dtype.h"

namespace ssm::checkpoint {

struct H5Dataset {
  std::string name;
  DType dtype = DType::f32;
  Dims shape;
  std::vector<char> bytes;  // row-major, little endian
  uint64_t checksum = 0;    // as stored in the "checksum" attribute
};

class H5Writer {
 public:
  explicit H5Writer(const std::string& path);  // creates/truncates
  ~H5Writer();
  H5Writer(const H5Writer&) = delete;
  H5Writer& operator=(const H5Writer&) = delete;
  void write(const std::string& name, DType dtype, const Dims& shape, const void* data, uint64_t checksum);
  // Flushes and closes; throws on failure (e.g. disk full). The destructor closes quietly.
  void close();

 private:
  std::string path_;
  int64_t file_ = -1;
};

class H5Reader {
 public:
  explicit H5Reader(const std::string& path);
  ~H5Reader();
  H5Reader(const H5Reader&) = delete;
  H5Reader& operator=(const H5Reader&) = delete;
  bool has(const std::string& name) const;
  H5Dataset read(const std::string& name) const;
  // Shape/dtype/checksum without the data.
  H5Dataset info(const std::string& name) const;
  std::vector<std::string> list() const;  // every dataset, full path without leading '/'

 private:
  std::string path_;
  int64_t file_ = -1;
};

// 64-bit FNV-1a over bytes (checksums of datasets; stable across machines).
uint64_t checksum64(const void* data, size_t n);

}  // namespace ssm::checkpoint
