// A prepared dataset: a directory of token shards plus a small JSON index.
//
//   ssm::data::Dataset ds = ssm::data::Dataset::open("data/tinystories", /*verify=*/true);
//   ssm::data::check_model_vocab(ds, model_vocab_size);   // one-line error on mismatch
//   ds.train.size();                                       // train tokens, all shards
//   ssm::data::Tokenizer tok = ds.tokenizer();
//
// <dir>/dataset.json (written by prepare_corpus, or by hand):
//   {
//     "format": "ssm-dataset", "version": 1,
//     "tokenizer": {"kind": "bpe", "file": "tokenizer.json"},
//     "vocab_size": 4096, "eos_id": 257,
//     "train": [{"file": "train_00000.bin", "tokens": 67108864}, ...],
//     "val":   [{"file": "val_00000.bin", "tokens": 3532041}],
//     "train_tokens": 134217728, "val_tokens": 3532041
//   }
// Shard file names are relative to the directory. "tokenizer.file" may be empty when the
// dataset has no tokenizer file (synthetic or externally tokenised data).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/shard.h"
#include "data/tokenizer.h"

namespace ssm::data {

inline constexpr const char* kDatasetIndexFile = "dataset.json";

struct ShardInfo {
  std::string file;    // relative to the dataset directory
  int64_t tokens = 0;  // T of that shard
};

struct DatasetIndex {
  std::string tokenizer_kind = "byte";  // "byte" | "bpe"
  std::string tokenizer_file;           // relative; "" when there is none
  int64_t vocab_size = 0;               // V of every shard
  int32_t eos_id = Tokenizer::kEos;     // document separator; -1 when documents are not marked
  std::vector<ShardInfo> train, val;

  int64_t train_tokens() const;
  int64_t val_tokens() const;
};

// Reads / writes <dir>/dataset.json. Errors name the file and the offending field.
DatasetIndex load_dataset_index(const std::string& dir);
void save_dataset_index(const DatasetIndex& index, const std::string& dir);  // temp + rename

// The concatenation of a list of shards, read as one token sequence. Copies share the
// mappings, so a sampler can hold a stream by value.
class TokenStream {
 public:
  TokenStream() = default;
  explicit TokenStream(std::vector<std::shared_ptr<const Shard>> shards);
  static TokenStream open(const std::vector<std::string>& paths);

  int64_t size() const { return starts_.empty() ? 0 : starts_.back(); }  // total tokens
  int64_t num_shards() const { return int64_t(shards_.size()); }
  const Shard& shard(int64_t i) const { return *shards_[size_t(i)]; }
  int64_t vocab_size() const;  // max over shards (they should agree; Dataset checks)

  // Copies tokens [offset, offset + count) into out (count), across shard boundaries.
  void read(int64_t offset, int64_t count, int32_t* out) const;
  int32_t at(int64_t offset) const;

 private:
  std::vector<std::shared_ptr<const Shard>> shards_;
  std::vector<int64_t> starts_;  // (num_shards + 1) prefix sums of shard sizes
};

struct Dataset {
  std::string dir;
  DatasetIndex index;
  TokenStream train, val;

  // Opens every shard listed in the index and checks that each one's token count and vocab
  // size agree with the index (an error names the shard); verify=true also checksums them.
  static Dataset open(const std::string& dir, bool verify = false);

  int64_t vocab_size() const { return index.vocab_size; }
  Tokenizer tokenizer() const;  // loads <dir>/<tokenizer_file>; byte-level when none
};

// The model's embedding must cover every id of the dataset: throws a one-line error when
// model_vocab_size < the dataset's vocab. A larger model vocab (padded to a multiple of 8 or
// 16 for fast GEMMs) is accepted: the extra rows are never indexed.
void check_model_vocab(const Dataset& ds, int64_t model_vocab_size);

}  // namespace ssm::data
