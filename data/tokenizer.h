// Byte-level tokenizers: plain bytes, and byte-level BPE trained on a corpus.
//
//   auto bytes = ssm::data::Tokenizer::byte_level();           // vocab 259
//   auto bpe = ssm::data::Tokenizer::train_bpe(text, 4096);    // learns 4096 - 259 merges
//   std::vector<int32_t> ids = bpe.encode("Hello world");      // (T)
//   assert(bpe.decode(ids) == "Hello world");                  // any byte string round-trips
//   bpe.save(dir + "/tokenizer.json");
//   auto again = ssm::data::Tokenizer::load(dir + "/tokenizer.json");
//
// Id layout, shared by both kinds so that the specials never move:
//   0..255   the raw bytes
//   256      BOS  (kBos)   beginning of sequence; the data pipeline does not insert it
//   257      EOS  (kEos)   end of document; prepare_corpus appends one after every document
//   258      PAD  (kPad)   padding of partial validation batches (its targets are -1)
//   259..    BPE merges, in the order they were learnt: id 259 + i is merges()[i]
// The byte tokenizer is the BPE tokenizer with no merges (vocab 259).
//
// BPE details. Text is first split into pre-tokens (like GPT-2, without a regex): a pre-token
// is an optional single leading space followed by a run of letters (ASCII letters and every
// byte >= 0x80, so UTF-8 characters stay whole), or a run of digits, or a run of other
// printable symbols; runs of whitespace are pre-tokens of their own, except that the last
// space before a word joins the word. Runs are cut every kMaxPretokenBytes bytes, which
// bounds the cost of encoding pathological input. Merges never cross pre-tokens. Training
// counts pre-tokens, then repeatedly merges the most frequent adjacent pair (ties go to the
// lowest (left id, right id)), updating pair counts incrementally; the result depends only on
// the text, never on hash-table order. Encoding applies merges by rank, like GPT-2.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ssm::data {

enum class TokenizerKind { kByte, kBpe };
const char* tokenizer_kind_name(TokenizerKind k);        // "byte" / "bpe"
TokenizerKind parse_tokenizer_kind(std::string_view s);  // throws on anything else

class Tokenizer {
 public:
  static constexpr int32_t kNumBytes = 256;
  static constexpr int32_t kBos = 256;
  static constexpr int32_t kEos = 257;
  static constexpr int32_t kPad = 258;
  static constexpr int32_t kNumBase = 259;  // bytes + specials: the first merge gets this id
  static constexpr int64_t kMaxPretokenBytes = 256;

  static Tokenizer byte_level();
  // Learns up to vocab_size - kNumBase merges (fewer if the text runs out of pairs, so
  // vocab_size() may come out smaller than asked). vocab_size >= kNumBase.
  static Tokenizer train_bpe(std::string_view text, int64_t vocab_size);
  // merges[i] = (left id, right id) of token kNumBase + i; both ids must already exist.
  static Tokenizer from_merges(std::vector<std::pair<int32_t, int32_t>> merges);
  static Tokenizer load(const std::string& path);  // JSON written by save()
  void save(const std::string& path) const;        // temp file + rename

  TokenizerKind kind() const { return kind_; }
  int64_t vocab_size() const { return kNumBase + static_cast<int64_t>(merges_.size()); }
  const std::vector<std::pair<int32_t, int32_t>>& merges() const { return merges_; }

  std::vector<int32_t> encode(std::string_view text) const;
  void encode_append(std::string_view text, std::vector<int32_t>& out) const;
  // Specials decode to nothing, or to "<|bos|>", "<|eos|>", "<|pad|>" with render_specials.
  std::string decode(std::span<const int32_t> ids, bool render_specials = false) const;
  std::string_view token_bytes(int32_t id) const;  // the bytes of a non-special id

 private:
  struct Impl;
  Tokenizer(TokenizerKind kind, std::vector<std::pair<int32_t, int32_t>> merges);

  TokenizerKind kind_ = TokenizerKind::kByte;
  std::vector<std::pair<int32_t, int32_t>> merges_;
  std::shared_ptr<const Impl> impl_;  // immutable lookup tables, shared by copies
};

// Incremental BPE training for corpora read piece by piece (prepare_corpus feeds it one
// document at a time): add_text() only counts pre-tokens, train() learns the merges.
class BpeTrainer {
 public:
  BpeTrainer();
  ~BpeTrainer();
  BpeTrainer(BpeTrainer&&) noexcept;
  BpeTrainer& operator=(BpeTrainer&&) noexcept;

  void add_text(std::string_view text);
  Tokenizer train(int64_t vocab_size) const;
  int64_t num_unique_pretokens() const;

 private:
  struct Counts;
  std::unique_ptr<Counts> counts_;
};

// Splits text into BPE pre-tokens (views into text); their concatenation is the text.
std::vector<std::string_view> pretokenize(std::string_view text);

}  // namespace ssm::data
