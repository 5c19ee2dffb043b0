#include "data/corpus.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>

#include "data/shard.h"
#include "framework/core/error.h"

namespace ssm::data {

namespace fs = std::filesystem;

namespace {

constexpr const char* kTokenizerFile = "tokenizer.json";

bool is_blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
  });
}

std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> found;
      for (const auto& e : fs::directory_iterator(in)) {
        const std::string name = e.path().filename().string();
        if (e.is_regular_file() && !name.empty() && name[0] != '.')
          found.push_back(e.path().string());
      }
      std::sort(found.begin(), found.end());
      SSM_CHECK(!found.empty(), "prepare_corpus: input directory {} has no files", in);
      files.insert(files.end(), found.begin(), found.end());
    } else {
      SSM_CHECK(fs::is_regular_file(in, ec), "prepare_corpus: input {} is not a file or directory",
                in);
      files.push_back(in);
    }
  }
  SSM_CHECK(!files.empty(), "prepare_corpus: no input files");
  return files;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  SSM_CHECK(f.good(), "prepare_corpus: cannot open {}", path);
  std::stringstream ss;
  ss << f.rdbuf();
  SSM_CHECK(!f.bad(), "prepare_corpus: read error on {}", path);
  return std::move(ss).str();
}

// Where to cut a lone document (size >= 2) so that about `fraction` of it is held out: just
// after the line break nearest to the target byte, else at the target byte moved off a UTF-8
// continuation byte. The cut is in [1, size - 1], so both halves are non-empty.
size_t single_document_cut(std::string_view doc, double fraction) {
  const size_t size = doc.size();
  const size_t target = std::clamp<size_t>(size_t(double(size) * (1.0 - fraction)), 1, size - 1);
  size_t cut = 0;
  auto consider = [&](size_t nl) {
    if (nl == std::string_view::npos || nl + 1 >= size) return;
    const size_t c = nl + 1;
    const size_t dist = c > target ? c - target : target - c;
    const size_t best = cut > target ? cut - target : target - cut;
    if (cut == 0 || dist < best) cut = c;
  };
  consider(doc.rfind('\n', target - 1));
  consider(doc.find('\n', target - 1));
  if (cut == 0) {
    cut = target;
    while (cut < size - 1 && (static_cast<unsigned char>(doc[cut]) & 0xC0) == 0x80) ++cut;
  }
  return cut;
}

// Walks the documents of all files in order, calling fn(index, text). With split_single the
// corpus (known to hold exactly one document) is presented as two documents cut by
// single_document_cut.
struct DocumentWalker {
  const std::vector<std::string>& files;
  DocumentSplit split;
  bool split_single = false;
  double val_fraction = 0;

  int64_t walk(const std::function<void(int64_t, std::string_view)>& fn) const {
    int64_t index = 0;
    for (const auto& file : files) {
      const std::string text = read_file(file);
      for (std::string_view doc : split_documents(text, split)) {
        if (split_single) {
          const size_t cut = single_document_cut(doc, val_fraction);
          fn(index++, doc.substr(0, cut));
          fn(index++, doc.substr(cut));
        } else {
          fn(index++, doc);
        }
      }
    }
    return index;
  }
};

// Writes one split (train or val) as a sequence of shards of at most shard_tokens tokens.
class SplitWriter {
 public:
  SplitWriter(std::string dir, std::string prefix, int64_t shard_tokens, int64_t vocab)
      : dir_(std::move(dir)),
        prefix_(std::move(prefix)),
        shard_tokens_(shard_tokens),
        vocab_(vocab) {}

  void append(std::span<const int32_t> tokens) {
    while (!tokens.empty()) {
      if (!cur_) {
        info_.push_back({fmt::format("{}_{:05d}.bin", prefix_, info_.size()), 0});
        cur_ = std::make_unique<ShardWriter>((fs::path(dir_) / info_.back().file).string(), vocab_);
      }
      const size_t n =
          size_t(std::min<int64_t>(int64_t(tokens.size()), shard_tokens_ - cur_->num_tokens()));
      cur_->append(tokens.first(n));
      tokens = tokens.subspan(n);
      if (cur_->num_tokens() == shard_tokens_) close();
    }
  }

  std::vector<ShardInfo> finish() {
    if (cur_) close();
    return info_;
  }

 private:
  void close() {
    info_.back().tokens = cur_->num_tokens();
    cur_->finish();
    cur_.reset();
  }

  std::string dir_, prefix_;
  int64_t shard_tokens_, vocab_;
  std::unique_ptr<ShardWriter> cur_;
  std::vector<ShardInfo> info_;
};

// Printable form of decoded text for a one-screen summary: control bytes escaped.
std::string escape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += fmt::format("\\x{:02x}", c);
        } else {
          out += ch;
        }
    }
  }
  return out;
}

}  // namespace

std::vector<std::string_view> split_documents(std::string_view text, DocumentSplit split) {
  std::vector<std::string_view> docs;
  if (split == DocumentSplit::kWholeFile) {
    const bool any_text = std::any_of(text.begin(), text.end(), [](char c) {
      return !(c == '\n' || c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f');
    });
    if (any_text) docs.push_back(text);
    return docs;
  }
  size_t doc_start = std::string_view::npos, doc_end = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view line = text.substr(pos, nl - pos);
    if (is_blank(line)) {
      if (doc_start != std::string_view::npos)
        docs.push_back(text.substr(doc_start, doc_end - doc_start));
      doc_start = std::string_view::npos;
    } else {
      if (doc_start == std::string_view::npos) doc_start = pos;
      doc_end = nl;
    }
    if (nl == text.size()) break;
    pos = nl + 1;
  }
  if (doc_start != std::string_view::npos)
    docs.push_back(text.substr(doc_start, doc_end - doc_start));
  return docs;
}

DatasetIndex prepare_corpus(const CorpusOptions& opt) {
  SSM_CHECK(opt.val_fraction >= 0.0 && opt.val_fraction < 1.0,
            "prepare_corpus: val_fraction {} outside [0, 1)", opt.val_fraction);
  SSM_CHECK(opt.shard_tokens >= 1, "prepare_corpus: shard_tokens must be >= 1, got {}",
            opt.shard_tokens);
  SSM_CHECK(!opt.out_dir.empty(), "prepare_corpus: out_dir is empty");
  const std::vector<std::string> files = expand_inputs(opt.inputs);
  std::error_code ec;
  fs::create_directories(opt.out_dir, ec);
  SSM_CHECK(!ec, "prepare_corpus: cannot create {}: {}", opt.out_dir, ec.message());
  // An index left by an earlier run would describe shards this run is about to overwrite:
  // remove it first, so only a finished run leaves a dataset.json behind.
  fs::remove(fs::path(opt.out_dir) / kDatasetIndexFile, ec);
  SSM_CHECK(!ec, "prepare_corpus: cannot remove the old {} in {}: {}", kDatasetIndexFile,
            opt.out_dir, ec.message());

  // Pass 1: count documents, to place the validation documents evenly.
  DocumentWalker walker{files, opt.split};
  size_t last_doc_bytes = 0;
  int64_t num_docs =
      walker.walk([&](int64_t, std::string_view doc) { last_doc_bytes = doc.size(); });
  SSM_CHECK(num_docs > 0, "prepare_corpus: the inputs contain no text");
  if (num_docs == 1 && opt.val_fraction > 0 && last_doc_bytes >= 2) {
    walker.split_single = true;
    walker.val_fraction = opt.val_fraction;
    num_docs = 2;
  }
  int64_t num_val = 0;
  if (opt.val_fraction > 0 && num_docs >= 2) {
    num_val =
        std::clamp<int64_t>(std::llround(opt.val_fraction * double(num_docs)), 1, num_docs - 1);
  }
  auto is_val = [&](int64_t i) { return (i + 1) * num_val / num_docs > i * num_val / num_docs; };

  // Pass 2: the tokenizer, trained on training documents only.
  Tokenizer tok = Tokenizer::byte_level();
  if (opt.tokenizer == TokenizerKind::kBpe) {
    BpeTrainer trainer;
    walker.walk([&](int64_t i, std::string_view doc) {
      if (!is_val(i)) trainer.add_text(doc);
    });
    tok = trainer.train(opt.bpe_vocab_size);
  }
  tok.save((fs::path(opt.out_dir) / kTokenizerFile).string());

  // Pass 3: encode and write shards.
  SplitWriter train(opt.out_dir, "train", opt.shard_tokens, tok.vocab_size());
  SplitWriter val(opt.out_dir, "val", opt.shard_tokens, tok.vocab_size());
  std::vector<int32_t> ids;
  walker.walk([&](int64_t i, std::string_view doc) {
    ids.clear();
    tok.encode_append(doc, ids);
    ids.push_back(Tokenizer::kEos);
    (is_val(i) ? val : train).append(ids);
  });

  DatasetIndex idx;
  idx.tokenizer_kind = tokenizer_kind_name(tok.kind());
  idx.tokenizer_file = kTokenizerFile;
  idx.vocab_size = tok.vocab_size();
  idx.eos_id = Tokenizer::kEos;
  idx.train = train.finish();
  idx.val = val.finish();
  save_dataset_index(idx, opt.out_dir);
  return idx;
}

std::string inspect_shard(const std::string& path, const Tokenizer* tokenizer, int64_t num_tokens) {
  const Shard s = Shard::open(path);
  const uint64_t actual = s.compute_checksum();
  std::string out;
  out += fmt::format("shard {}\n", path);
  out += fmt::format("  format version  {}\n", s.header().version);
  out += fmt::format("  token dtype     {}\n", token_dtype_name(s.dtype()));
  out += fmt::format("  tokens          {}\n", s.size());
  out += fmt::format("  vocab size      {}\n", s.vocab_size());
  out += fmt::format("  file bytes      {}\n", s.file_bytes());
  if (actual == s.header().checksum) {
    out += fmt::format("  checksum        0x{:016x} OK\n", actual);
  } else {
    out += fmt::format("  checksum        0x{:016x} MISMATCH (payload hashes to 0x{:016x})\n",
                       s.header().checksum, actual);
  }
  const int64_t n = std::clamp<int64_t>(num_tokens, 0, s.size());
  std::vector<int32_t> ids(static_cast<size_t>(n));
  s.read(0, n, ids.data());
  out += fmt::format("  first {} ids     [{}]\n", n, fmt::join(ids, ", "));
  if (tokenizer) {
    const bool in_range = std::all_of(ids.begin(), ids.end(),
                                      [&](int32_t id) { return id < tokenizer->vocab_size(); });
    if (in_range) {
      out += fmt::format("  decoded         \"{}\"\n", escape(tokenizer->decode(ids, true)));
    } else {
      out += fmt::format("  decoded         (ids exceed the tokenizer's vocab {})\n",
                         tokenizer->vocab_size());
    }
  }
  return out;
}

}  // namespace ssm::data
