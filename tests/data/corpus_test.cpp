#include "data/corpus.h"

#include <gtest/gtest.h>

#include "data/dataset.h"
#include "tests/data/data_test_util.h"

namespace ssm::data {
namespace {

using test::english_text;
using test::expect_error;
using test::read_bytes;
using test::ScratchDir;
using test::write_bytes;

std::vector<std::string> as_strings(const std::vector<std::string_view>& v) {
  return {v.begin(), v.end()};
}

// Decodes a whole split and cuts it at EOS tokens: the documents it holds, in order.
std::vector<std::string> documents_of(const TokenStream& s, const Tokenizer& tok) {
  std::vector<int32_t> ids(static_cast<size_t>(s.size()));
  s.read(0, s.size(), ids.data());
  std::vector<std::string> docs;
  std::vector<int32_t> cur;
  for (int32_t id : ids) {
    if (id == Tokenizer::kEos) {
      docs.push_back(tok.decode(cur));
      cur.clear();
    } else {
      cur.push_back(id);
    }
  }
  EXPECT_TRUE(cur.empty()) << "split does not end with EOS";
  return docs;
}

TEST(SplitDocuments, BlankLines) {
  const std::string text = "\n\nfirst line\nsecond line\n\n \t\nthird\n\n\nfourth\r\nend";
  EXPECT_EQ(as_strings(split_documents(text, DocumentSplit::kBlankLine)),
            (std::vector<std::string>{"first line\nsecond line", "third", "fourth\r\nend"}));
  EXPECT_TRUE(split_documents("\n \n\t", DocumentSplit::kBlankLine).empty());
  EXPECT_EQ(as_strings(split_documents("one", DocumentSplit::kBlankLine)),
            std::vector<std::string>{"one"});
}

TEST(SplitDocuments, WholeFile) {
  EXPECT_EQ(as_strings(split_documents("a\n\nb\n", DocumentSplit::kWholeFile)),
            std::vector<std::string>{"a\n\nb\n"});
  EXPECT_TRUE(split_documents(" \n\n ", DocumentSplit::kWholeFile).empty());
}

class Corpus : public ::testing::Test {
 protected:
  void SetUp() override {
    // Three files; 4, 8 and 4 paragraphs, all distinct (numbered).
    for (int f = 0; f < 3; ++f) {
      std::string text;
      for (int p = 0; p < 4 + 4 * (f == 1); ++p) {
        const std::string para = "Doc " + std::to_string(f) + "." + std::to_string(p) + ": " +
                                 english_text(200 + 37 * size_t(p), uint32_t(10 * f + p));
        std::string trimmed = para.substr(0, para.find("\n\n"));
        docs.push_back(trimmed);
        text += trimmed + "\n\n";
      }
      files.push_back(in.file("part" + std::to_string(f) + ".txt"));
      write_bytes(files.back(), text);
    }
  }
  ScratchDir in, out;
  std::vector<std::string> files, docs;
};

TEST_F(Corpus, ByteTokenizerReproducesEveryDocument) {
  CorpusOptions opt;
  opt.inputs = files;
  opt.out_dir = out.str();
  opt.val_fraction = 0.25;
  opt.shard_tokens = 300;
  const DatasetIndex idx = prepare_corpus(opt);
  EXPECT_EQ(idx.tokenizer_kind, "byte");
  EXPECT_EQ(idx.vocab_size, 259);
  // 16 documents, round(0.25 * 16) = 4 held out, evenly: documents 3, 7, 11, 15.
  const Dataset ds = Dataset::open(out.str(), /*verify=*/true);
  const Tokenizer tok = ds.tokenizer();
  const auto train_docs = documents_of(ds.train, tok);
  const auto val_docs = documents_of(ds.val, tok);
  std::vector<std::string> want_train, want_val;
  for (size_t i = 0; i < docs.size(); ++i) (i % 4 == 3 ? want_val : want_train).push_back(docs[i]);
  EXPECT_EQ(train_docs, want_train);
  EXPECT_EQ(val_docs, want_val);
  // Shards are full (shard_tokens) except the last, and their counts add up.
  int64_t total = 0;
  for (size_t i = 0; i < idx.train.size(); ++i) {
    if (i + 1 < idx.train.size()) {
      EXPECT_EQ(idx.train[i].tokens, 300);
    }
    EXPECT_LE(idx.train[i].tokens, 300);
    EXPECT_EQ(ds.train.shard(int64_t(i)).size(), idx.train[i].tokens);
    total += idx.train[i].tokens;
  }
  EXPECT_EQ(total, ds.train.size());
  EXPECT_EQ(int64_t(idx.train.size()), (total + 299) / 300);
  EXPECT_GE(idx.train.size(), 3u);
  EXPECT_EQ(idx.train.front().file, "train_00000.bin");
  EXPECT_EQ(idx.val.front().file, "val_00000.bin");
}

TEST_F(Corpus, BpeDatasetRoundTripsAndIsDeterministic) {
  ScratchDir out2;
  CorpusOptions opt;
  opt.inputs = {in.str()};  // a directory: its files in name order
  opt.tokenizer = TokenizerKind::kBpe;
  opt.bpe_vocab_size = 400;
  opt.val_fraction = 0.1;
  opt.shard_tokens = 700;
  opt.out_dir = out.str();
  const DatasetIndex a = prepare_corpus(opt);
  opt.out_dir = out2.str();
  prepare_corpus(opt);
  EXPECT_EQ(a.tokenizer_kind, "bpe");
  EXPECT_EQ(a.vocab_size, 400);
  ASSERT_EQ(out.entries(), out2.entries());
  for (const auto& f : out.entries()) {
    EXPECT_EQ(read_bytes(out.file(f)), read_bytes(out2.file(f))) << f << " differs between runs";
  }
  const Dataset ds = Dataset::open(out.str(), true);
  const Tokenizer tok = ds.tokenizer();
  EXPECT_EQ(tok.kind(), TokenizerKind::kBpe);
  EXPECT_EQ(ds.vocab_size(), tok.vocab_size());
  auto all = documents_of(ds.train, tok);
  const auto val = documents_of(ds.val, tok);
  EXPECT_EQ(val.size(), 2u);  // round(0.1 * 16)
  all.insert(all.end(), val.begin(), val.end());
  std::sort(all.begin(), all.end());
  std::vector<std::string> want = docs;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(all, want);
  // BPE compresses: fewer tokens than bytes + EOS.
  size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size() + 1;
  EXPECT_LT(double(ds.train.size() + ds.val.size()), 0.7 * double(bytes));
}

TEST_F(Corpus, SingleDocumentIsCutForValidation) {
  CorpusOptions opt;
  opt.inputs = {files[1]};
  opt.split = DocumentSplit::kWholeFile;
  opt.val_fraction = 0.2;
  opt.out_dir = out.str();
  prepare_corpus(opt);
  const Dataset ds = Dataset::open(out.str());
  const auto train = documents_of(ds.train, ds.tokenizer());
  const auto val = documents_of(ds.val, ds.tokenizer());
  ASSERT_EQ(train.size(), 1u);
  ASSERT_EQ(val.size(), 1u);
  EXPECT_EQ(train[0] + val[0], read_bytes(files[1]));
  EXPECT_EQ(train[0].back(), '\n');  // cut at a line break
  const double frac = double(val[0].size()) / double(read_bytes(files[1]).size());
  EXPECT_NEAR(frac, 0.2, 0.1);
}

TEST_F(Corpus, NoValidationSplit) {
  CorpusOptions opt;
  opt.inputs = files;
  opt.val_fraction = 0;
  opt.out_dir = out.str();
  const DatasetIndex idx = prepare_corpus(opt);
  EXPECT_TRUE(idx.val.empty());
  EXPECT_EQ(documents_of(Dataset::open(out.str()).train, Tokenizer::byte_level()), docs);
  // Preparing again into the same directory (now with a validation split) replaces it.
  opt.val_fraction = 0.25;
  const DatasetIndex again = prepare_corpus(opt);
  EXPECT_EQ(again.val.size(), 1u);
  const Dataset ds = Dataset::open(out.str(), true);
  EXPECT_EQ(documents_of(ds.val, Tokenizer::byte_level()).size(), 4u);
}

TEST_F(Corpus, IndexMismatchesAreErrors) {
  CorpusOptions opt;
  opt.inputs = files;
  opt.out_dir = out.str();
  prepare_corpus(opt);
  const std::string index_path = out.file("dataset.json");
  const std::string good = read_bytes(index_path);
  // A shard whose token count disagrees with the index.
  std::string bad = good;
  const size_t at = bad.find("\"tokens\": ") + 10;
  bad.insert(at, "1");
  write_bytes(index_path, bad);
  expect_error([&] { Dataset::open(out.str()); }, {"train_00000.bin", "dataset.json"});
  // An index that is not JSON.
  write_bytes(index_path, "{");
  expect_error([&] { Dataset::open(out.str()); }, {index_path});
  write_bytes(index_path, good);
  // A corrupt shard is caught by verify.
  std::string shard = read_bytes(out.file("train_00000.bin"));
  shard[100] ^= 4;
  write_bytes(out.file("train_00000.bin"), shard);
  EXPECT_NO_THROW(Dataset::open(out.str(), false));
  expect_error([&] { Dataset::open(out.str(), true); }, {"train_00000.bin", "checksum"});
  expect_error([&] { Dataset::open(in.file("nowhere")); }, {"nowhere", "dataset.json"});
}

TEST_F(Corpus, ModelVocabCheck) {
  CorpusOptions opt;
  opt.inputs = files;
  opt.out_dir = out.str();
  prepare_corpus(opt);
  const Dataset ds = Dataset::open(out.str());
  EXPECT_NO_THROW(check_model_vocab(ds, 259));
  EXPECT_NO_THROW(check_model_vocab(ds, 264));  // padded embedding
  expect_error([&] { check_model_vocab(ds, 256); }, {"vocab", "259", "256", out.str()});
}

TEST_F(Corpus, InspectShard) {
  CorpusOptions opt;
  opt.inputs = files;
  opt.out_dir = out.str();
  prepare_corpus(opt);
  const std::string path = out.file("train_00000.bin");
  const Tokenizer tok = Tokenizer::byte_level();
  const std::string report = inspect_shard(path, &tok, 8);
  const int64_t n = Shard::open(path).size();
  for (const std::string& needle :
       {path, std::string("u16"), "tokens          " + std::to_string(n),
        std::string("vocab size      259"), std::string("OK"),
        std::string("[68, 111, 99, 32, 48, 46, 48, 58]"), std::string("\"Doc 0.0:\"")}) {
    EXPECT_NE(report.find(needle), std::string::npos) << "missing '" << needle << "' in\n"
                                                      << report;
  }
  std::string raw = read_bytes(path);
  raw[70] ^= 1;
  write_bytes(path, raw);
  EXPECT_NE(inspect_shard(path).find("MISMATCH"), std::string::npos);
  write_bytes(path, raw.substr(0, 50));
  expect_error([&] { inspect_shard(path); }, {path});
}

TEST(CorpusErrors, BadInputs) {
  ScratchDir out;
  CorpusOptions opt;
  opt.out_dir = out.str();
  opt.inputs = {out.file("missing.txt")};
  expect_error([&] { prepare_corpus(opt); }, {"missing.txt"});
  write_bytes(out.file("blank.txt"), "\n\n  \n");
  opt.inputs = {out.file("blank.txt")};
  expect_error([&] { prepare_corpus(opt); }, {"no text"});
  opt.val_fraction = 1.0;
  expect_error([&] { prepare_corpus(opt); }, {"val_fraction"});
}

}  // namespace
}  // namespace ssm::data
