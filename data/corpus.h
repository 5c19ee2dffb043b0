// Corpus preparation (text files -> tokenizer + token shards + dataset.json) and inspection.
//
//   ssm::data::CorpusOptions opt;
//   opt.inputs = {"corpus/tinyshakespeare.txt"};
//   opt.out_dir = "data/shakespeare";
//   opt.tokenizer = ssm::data::TokenizerKind::kBpe;  opt.bpe_vocab_size = 2048;
//   ssm::data::DatasetIndex idx = ssm::data::prepare_corpus(opt);
//   fmt::print("{}", ssm::data::inspect_shard("data/shakespeare/train_00000.bin", &tok));
//
// prepare_corpus, step by step (deterministic: the same inputs and options give
// byte-identical outputs):
//  1. Inputs are files, or directories whose regular (non-hidden) files are taken in name
//     order; files are read in the order given, each one whole into memory (once per pass).
//     Each is split into documents: paragraphs separated by blank (whitespace-only) lines, or
//     the whole file. Empty documents are dropped.
//  2. Validation documents: n_val = clamp(round(val_fraction * N), 1, N - 1) of the N
//     documents, spread evenly (document i is held out when floor((i + 1) * n_val / N) >
//     floor(i * n_val / N)), so a corpus sorted by topic still gets a representative split.
//     A corpus of a single document is first cut in two at the line break nearest to
//     (1 - val_fraction) of its length. val_fraction = 0 means no validation split.
//  3. For BPE, the tokenizer is trained on the training documents only.
//  4. Every document is encoded and followed by EOS; tokens stream into train_NNNNN.bin /
//     val_NNNNN.bin shards of at most shard_tokens tokens (documents may straddle shards).
//  5. A dataset.json from an earlier run is deleted before anything is written, and the new
//     one is written last (temp file + rename), so a directory with a dataset.json is complete.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/dataset.h"
#include "data/tokenizer.h"

namespace ssm::data {

enum class DocumentSplit { kBlankLine, kWholeFile };

struct CorpusOptions {
  std::vector<std::string> inputs;  // text files or directories
  std::string out_dir;              // created if missing
  TokenizerKind tokenizer = TokenizerKind::kByte;
  int64_t bpe_vocab_size = 4096;  // including the 259 byte and special ids
  double val_fraction = 0.05;     // in [0, 1)
  int64_t shard_tokens = int64_t(1) << 27;
  DocumentSplit split = DocumentSplit::kBlankLine;
};

DatasetIndex prepare_corpus(const CorpusOptions& options);

// The documents of one text (views into it), as prepare_corpus splits them. Blank-line
// splitting drops the separating lines and a document's trailing line break.
std::vector<std::string_view> split_documents(std::string_view text, DocumentSplit split);

// A printable multi-line summary of a shard: header fields, file size, whether the checksum
// matches, and the first num_tokens ids (decoded when a tokenizer is given). Throws only when
// the file cannot be opened as a shard (bad magic, truncation, ...).
std::string inspect_shard(const std::string& path, const Tokenizer* tokenizer = nullptr,
                          int64_t num_tokens = 32);

}  // namespace ssm::data
