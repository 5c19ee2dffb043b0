// safetensors: the tensor file format of Hugging Face (our own reader and writer).
//
//   write_safetensors("model.safetensors", {{"w", w}, {"b", b}});     // {"format": "pt"} metadata
//   SafetensorsFile f("model.safetensors");     // header parsed and validated, no data read yet
//   Tensor w2 = f.read("w");                    // bytes of that tensor only (pread)
//
//   write_safetensors_dir(dir, tensors, /*max_shard_bytes=*/2 << 30);  // shards above 2 GiB
//   SafetensorsDir d(dir);                      // model.safetensors, or the index's shards
//   for (const std::string& n : d.names()) ... d.read(n) ...
//
// Layout of a file: 8 bytes little-endian header length N, N bytes of JSON
//   {"<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"format": "pt"}}
// padded with spaces so the data starts at a multiple of 8, then the data: every tensor
// contiguous, row-major, little endian, at [8 + N + begin, 8 + N + end). The writer stores
// tensors in the order given, back to back.
//
// The reader trusts nothing in the file: a header length beyond the file, JSON that does not
// parse or has the wrong structure, unknown dtype names, negative or overflowing shapes,
// offsets out of range, overlapping or gapped tensors, a byte size that is not
// numel * itemsize, and truncated data are each an ssm::Error naming the file and the tensor,
// before any tensor data is touched. Dtypes: F32, F64, BF16, I32, I64 read and write; F16
// (what some other tools write) is read and widened to f32.
//
// A sharded directory (what transformers writes above its size threshold) holds
// model-00001-of-0000N.safetensors ... and model.safetensors.index.json:
//   {"metadata": {"total_size": <bytes>}, "weight_map": {"<name>": "<file>", ...}}
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "framework/core/tensor.h"

namespace ssm::checkpoint {

struct NamedTensor {
  std::string name;
  Tensor data;  // any device, dtype and strides: the writer makes a contiguous host copy
};

// "F32", "F64", "BF16", "I32", "I64".
const char* safetensors_dtype(DType d);

// Writes one file (temp file + rename, so a reader never sees half a file).
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

struct SafetensorsEntry {
  std::string name;
  std::string dtype_name;  // as written in the file ("F16" for a widened f16 tensor)
  DType dtype = DType::f32;  // the dtype read() returns
  Dims shape;
  uint64_t begin = 0, end = 0;  // byte offsets within the data section
};

class SafetensorsFile {
 public:
  // Reads and validates the header (the data section is only size-checked).
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return path_; }
  // Every tensor, in data-offset order.
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const SafetensorsEntry* find(const std::string& name) const;  // nullptr when absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // A new contiguous CPU tensor with the tensor's values.
  Tensor read(const std::string& name) const;

 private:
  std::string path_;
  uint64_t data_start_ = 0;  // 8 + header length
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> by_name_;
  std::map<std::string, std::string> metadata_;
};

// Default shard size of write_safetensors_dir (transformers' default is 5 GB; smaller shards
// stay below common per-file upload limits).
inline constexpr uint64_t kDefaultMaxShardBytes = 4'000'000'000;  // "4GB", as `ssm export` spells it

// Writes `tensors` into `dir` as model.safetensors, or, when their total size exceeds
// `max_shard_bytes`, as model-0000k-of-0000N.safetensors files (tensors in order, a new shard
// when the next tensor would overflow the current one; a tensor larger than the limit gets a
// shard of its own) plus model.safetensors.index.json. Returns the file names written.
std::vector<std::string> write_safetensors_dir(const std::string& dir, const std::vector<NamedTensor>& tensors,
                                               uint64_t max_shard_bytes = kDefaultMaxShardBytes,
                                               const std::map<std::string, std::string>& metadata = {
                                                   {"format", "pt"}});

// A model directory: model.safetensors, or the shards named by model.safetensors.index.json
// (every shard is opened and every weight_map entry checked against its file's header).
class SafetensorsDir {
 public:
  explicit SafetensorsDir(const std::string& dir);
  const std::string& dir() const { return dir_; }
  std::vector<std::string> names() const;  // sorted
  bool has(const std::string& name) const { return where_.count(name) > 0; }
  const SafetensorsEntry& entry(const std::string& name) const;  // throws when absent
  Tensor read(const std::string& name) const;                    // throws when absent
  size_t num_files() const { return files_.size(); }

 private:
  std::string dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index in files_
};

}  // namespace ssm::checkpoint
