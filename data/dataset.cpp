#include "data/dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "framework/core/error.h"

namespace ssm::data {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "ssm-dataset";
constexpr int kFormatVersion = 1;

int64_t sum_tokens(const std::vector<ShardInfo>& v) {
  int64_t n = 0;
  for (const auto& s : v) n += s.tokens;
  return n;
}

std::string join(const std::string& dir, const std::string& file) {
  return (fs::path(dir) / file).string();
}

std::vector<ShardInfo> parse_shards(const nlohmann::json& j, const char* split,
                                    const std::string& path) {
  std::vector<ShardInfo> out;
  if (!j.contains(split)) return out;
  SSM_CHECK(j[split].is_array(), "dataset index {}: '{}' must be a list of shards", path, split);
  for (const auto& e : j[split]) {
    ShardInfo s;
    s.file = e.at("file").get<std::string>();
    s.tokens = e.at("tokens").get<int64_t>();
    SSM_CHECK(!s.file.empty() && s.tokens >= 0, "dataset index {}: bad {} shard entry {}", path,
              split, e.dump());
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

int64_t DatasetIndex::train_tokens() const { return sum_tokens(train); }
int64_t DatasetIndex::val_tokens() const { return sum_tokens(val); }

DatasetIndex load_dataset_index(const std::string& dir) {
  const std::string path = join(dir, kDatasetIndexFile);
  std::ifstream f(path, std::ios::binary);
  SSM_CHECK(f.good(), "dataset index {}: cannot open (is '{}' a prepared dataset directory?)", path,
            dir);
  std::stringstream ss;
  ss << f.rdbuf();
  DatasetIndex idx;
  try {
    const nlohmann::json j = nlohmann::json::parse(ss.str());
    SSM_CHECK(j.value("format", "") == kFormat, "dataset index {}: 'format' is not '{}'", path,
              kFormat);
    const int version = j.at("version").get<int>();
    SSM_CHECK(version == kFormatVersion, "dataset index {}: unsupported version {} (expected {})",
              path, version, kFormatVersion);
    const auto& tok = j.at("tokenizer");
    idx.tokenizer_kind = tok.at("kind").get<std::string>();
    parse_tokenizer_kind(idx.tokenizer_kind);  // validates
    idx.tokenizer_file = tok.value("file", "");
    idx.vocab_size = j.at("vocab_size").get<int64_t>();
    SSM_CHECK(idx.vocab_size > 0, "dataset index {}: vocab_size must be positive", path);
    idx.eos_id = j.value("eos_id", Tokenizer::kEos);
    idx.train = parse_shards(j, "train", path);
    idx.val = parse_shards(j, "val", path);
  } catch (const nlohmann::json::exception& e) {
    SSM_FAIL("dataset index {}: {}", path, e.what());
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.find(path) != std::string::npos) throw;
    SSM_FAIL("dataset index {}: {}", path, what);
  }
  SSM_CHECK(!idx.train.empty(), "dataset index {}: no train shards", path);
  return idx;
}

void save_dataset_index(const DatasetIndex& idx, const std::string& dir) {
  nlohmann::json j;
  j["format"] = kFormat;
  j["version"] = kFormatVersion;
  j["tokenizer"] = {{"kind", idx.tokenizer_kind}, {"file", idx.tokenizer_file}};
  j["vocab_size"] = idx.vocab_size;
  j["eos_id"] = idx.eos_id;
  for (const char* split : {"train", "val"}) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& s : split[0] == 't' ? idx.train : idx.val) {
      list.push_back({{"file", s.file}, {"tokens", s.tokens}});
    }
    j[split] = std::move(list);
  }
  j["train_tokens"] = idx.train_tokens();
  j["val_tokens"] = idx.val_tokens();
  const std::string path = join(dir, kDatasetIndexFile);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    SSM_CHECK(f.good(), "dataset index {}: cannot create {}", path, tmp);
    f << j.dump(2) << '\n';
    f.flush();
    SSM_CHECK(f.good(), "dataset index {}: write failed", path);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  SSM_CHECK(!ec, "dataset index {}: rename failed: {}", path, ec.message());
}

// ---- TokenStream -------------------------------------------------------------------------

TokenStream::TokenStream(std::vector<std::shared_ptr<const Shard>> shards)
    : shards_(std::move(shards)) {
  starts_.reserve(shards_.size() + 1);
  starts_.push_back(0);
  for (const auto& s : shards_) starts_.push_back(starts_.back() + s->size());
}

TokenStream TokenStream::open(const std::vector<std::string>& paths) {
  std::vector<std::shared_ptr<const Shard>> shards;
  for (const auto& p : paths) shards.push_back(std::make_shared<const Shard>(Shard::open(p)));
  return TokenStream(std::move(shards));
}

int64_t TokenStream::vocab_size() const {
  int64_t v = 0;
  for (const auto& s : shards_) v = std::max(v, s->vocab_size());
  return v;
}

void TokenStream::read(int64_t offset, int64_t count, int32_t* out) const {
  SSM_CHECK(offset >= 0 && count >= 0 && offset + count <= size(),
            "token stream: read of [{}, {}) outside [0, {})", offset, offset + count, size());
  // First shard whose range contains offset (skips empty shards).
  size_t i = size_t(std::upper_bound(starts_.begin(), starts_.end(), offset) - starts_.begin()) - 1;
  while (count > 0) {
    const int64_t local = offset - starts_[i];
    const int64_t n = std::min(count, shards_[i]->size() - local);
    if (n > 0) {
      shards_[i]->read(local, n, out);
      out += n;
      offset += n;
      count -= n;
    }
    ++i;
  }
}

int32_t TokenStream::at(int64_t offset) const {
  int32_t v;
  read(offset, 1, &v);
  return v;
}

// ---- Dataset -----------------------------------------------------------------------------

Dataset Dataset::open(const std::string& dir, bool verify) {
  Dataset ds;
  ds.dir = dir;
  ds.index = load_dataset_index(dir);
  auto open_split = [&](const std::vector<ShardInfo>& infos) {
    std::vector<std::shared_ptr<const Shard>> shards;
    for (const auto& info : infos) {
      auto s = std::make_shared<const Shard>(Shard::open(join(dir, info.file)));
      SSM_CHECK(s->size() == info.tokens, "shard {}: has {} tokens but {} lists {}", s->path(),
                s->size(), kDatasetIndexFile, info.tokens);
      SSM_CHECK(s->vocab_size() == ds.index.vocab_size,
                "shard {}: vocab size {} differs from the dataset's {}", s->path(), s->vocab_size(),
                ds.index.vocab_size);
      if (verify) s->verify();
      shards.push_back(std::move(s));
    }
    return TokenStream(std::move(shards));
  };
  ds.train = open_split(ds.index.train);
  ds.val = open_split(ds.index.val);
  return ds;
}

Tokenizer Dataset::tokenizer() const {
  if (index.tokenizer_file.empty()) {
    SSM_CHECK(index.tokenizer_kind == "byte", "dataset {}: a '{}' tokenizer needs a tokenizer file",
              dir, index.tokenizer_kind);
    return Tokenizer::byte_level();
  }
  Tokenizer tok = Tokenizer::load(join(dir, index.tokenizer_file));
  SSM_CHECK(tok.vocab_size() == index.vocab_size,
            "dataset {}: tokenizer {} has vocab {} but the dataset says {}", dir,
            index.tokenizer_file, tok.vocab_size(), index.vocab_size);
  return tok;
}

void check_model_vocab(const Dataset& ds, int64_t model_vocab_size) {
  SSM_CHECK(model_vocab_size >= ds.vocab_size(),
            "vocab mismatch: dataset {} has vocab size {} but the model's vocab_size is {}; set "
            "model.vocab_size >= {}",
            ds.dir, ds.vocab_size(), model_vocab_size, ds.vocab_size());
}

}  // namespace ssm::data
