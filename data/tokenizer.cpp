#include "data/tokenizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>
#include <unordered_map>

#include "framework/core/error.h"

namespace ssm::data {

namespace {

using Pair = std::pair<int32_t, int32_t>;

// Pair (a, b) packed so that key order is (a, b) lexicographic order: the tie-break rule.
uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
int32_t key_left(uint64_t k) { return int32_t(k >> 32); }
int32_t key_right(uint64_t k) { return int32_t(k & 0xffffffffu); }

enum class ByteClass { kSpace, kLetter, kDigit, kOther };

ByteClass byte_class(unsigned char c) {
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
    return ByteClass::kSpace;
  }
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80) return ByteClass::kLetter;
  if (c >= '0' && c <= '9') return ByteClass::kDigit;
  return ByteClass::kOther;
}

constexpr const char* kFormat = "ssm-tokenizer";
constexpr int kFormatVersion = 1;

// Why a merge list is invalid, or "" when it is fine: every merge must combine two ids that
// already exist (bytes or earlier merges, never specials), and no pair may repeat.
std::string merge_problem(const std::vector<Pair>& merges) {
  std::unordered_map<uint64_t, size_t> seen;
  for (size_t i = 0; i < merges.size(); ++i) {
    const auto [a, b] = merges[i];
    const int64_t id = Tokenizer::kNumBase + int64_t(i);
    auto ok = [&](int32_t x) {
      return x >= 0 && x < id && (x < Tokenizer::kNumBytes || x >= Tokenizer::kNumBase);
    };
    if (!ok(a) || !ok(b)) {
      return fmt::format("merge {} ({}, {}) refers to a special id or one not yet defined", i, a,
                         b);
    }
    if (!seen.emplace(pair_key(a, b), i).second) {
      return fmt::format("merge {} ({}, {}) repeats merge {}", i, a, b, seen[pair_key(a, b)]);
    }
  }
  return "";
}

}  // namespace

const char* tokenizer_kind_name(TokenizerKind k) {
  return k == TokenizerKind::kByte ? "byte" : "bpe";
}

TokenizerKind parse_tokenizer_kind(std::string_view s) {
  if (s == "byte") return TokenizerKind::kByte;
  if (s == "bpe") return TokenizerKind::kBpe;
  SSM_FAIL("unknown tokenizer kind '{}' (expected 'byte' or 'bpe')", s);
}

std::vector<std::string_view> pretokenize(std::string_view text) {
  std::vector<std::string_view> out;
  const size_t n = text.size();
  auto emit = [&](size_t start, size_t end) {
    for (size_t s = start; s < end; s += Tokenizer::kMaxPretokenBytes) {
      out.push_back(text.substr(s, std::min<size_t>(Tokenizer::kMaxPretokenBytes, end - s)));
    }
  };
  auto cls = [&](size_t i) { return byte_class(static_cast<unsigned char>(text[i])); };
  size_t i = 0;
  while (i < n) {
    const size_t start = i;
    // A single space joins the word after it (" world"), as in GPT-2.
    if (text[i] == ' ' && i + 1 < n && cls(i + 1) != ByteClass::kSpace) ++i;
    const ByteClass c = cls(i);
    size_t j = i;
    while (j < n && cls(j) == c) ++j;
    // Leave the last space of a whitespace run to the word that follows it.
    if (c == ByteClass::kSpace && j < n && j - i > 1 && text[j - 1] == ' ') --j;
    emit(start, j);
    i = j;
  }
  return out;
}

// ---- lookup tables -----------------------------------------------------------------------

struct Tokenizer::Impl {
  std::vector<Pair> merges;                    // (vocab - kNumBase)
  std::unordered_map<uint64_t, int32_t> rank;  // pair -> merge index
  std::vector<std::string> bytes;              // (vocab) the bytes of every id; specials empty

  explicit Impl(const std::vector<Pair>& m) : merges(m) {
    bytes.resize(size_t(kNumBase + int64_t(merges.size())));
    for (int32_t b = 0; b < kNumBytes; ++b) bytes[size_t(b)] = std::string(1, char(b));
    const std::string problem = merge_problem(merges);
    SSM_CHECK(problem.empty(), "tokenizer: {}", problem);
    rank.reserve(merges.size() * 2);
    for (size_t i = 0; i < merges.size(); ++i) {
      const auto [a, b] = merges[i];
      rank.emplace(pair_key(a, b), int32_t(i));
      bytes[size_t(kNumBase) + i] = bytes[size_t(a)] + bytes[size_t(b)];
    }
  }

  // Applies merges by rank to one pre-token, appending ids to out.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const {
    std::vector<int32_t> ids(word.size());
    for (size_t i = 0; i < word.size(); ++i) ids[i] = static_cast<unsigned char>(word[i]);
    while (ids.size() > 1) {
      int32_t best = INT32_MAX;
      for (size_t i = 0; i + 1 < ids.size(); ++i) {
        auto it = rank.find(pair_key(ids[i], ids[i + 1]));
        if (it != rank.end() && it->second < best) best = it->second;
      }
      if (best == INT32_MAX) break;
      // Merging every occurrence of the lowest-rank pair reproduces what training did to this
      // word: a merge only creates ids newer than every merge that could already apply.
      const auto [a, b] = merges[size_t(best)];
      std::vector<int32_t> next;
      next.reserve(ids.size());
      for (size_t i = 0; i < ids.size();) {
        if (i + 1 < ids.size() && ids[i] == a && ids[i + 1] == b) {
          next.push_back(kNumBase + best);
          i += 2;
        } else {
          next.push_back(ids[i++]);
        }
      }
      ids.swap(next);
    }
    out.insert(out.end(), ids.begin(), ids.end());
  }
};

Tokenizer::Tokenizer(TokenizerKind kind, std::vector<Pair> merges)
    : kind_(kind), merges_(std::move(merges)), impl_(std::make_shared<const Impl>(merges_)) {}

Tokenizer Tokenizer::byte_level() { return Tokenizer(TokenizerKind::kByte, {}); }

Tokenizer Tokenizer::from_merges(std::vector<Pair> merges) {
  return Tokenizer(TokenizerKind::kBpe, std::move(merges));
}

Tokenizer Tokenizer::train_bpe(std::string_view text, int64_t vocab_size) {
  BpeTrainer trainer;
  trainer.add_text(text);
  return trainer.train(vocab_size);
}

void Tokenizer::encode_append(std::string_view text, std::vector<int32_t>& out) const {
  if (merges_.empty()) {
    for (char c : text) out.push_back(static_cast<unsigned char>(c));
    return;
  }
  // Natural text repeats its words constantly: cache each pre-token's ids for this call.
  std::unordered_map<std::string_view, std::pair<size_t, size_t>> cache;  // word -> [begin, end)
  std::vector<int32_t> cached;
  for (std::string_view word : pretokenize(text)) {
    auto it = cache.find(word);
    if (it == cache.end()) {
      const size_t begin = cached.size();
      impl_->encode_word(word, cached);
      it = cache.emplace(word, std::pair{begin, cached.size()}).first;
    }
    out.insert(out.end(), cached.begin() + ptrdiff_t(it->second.first),
               cached.begin() + ptrdiff_t(it->second.second));
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 2 + 1);
  encode_append(text, out);
  return out;
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  SSM_CHECK(id >= 0 && id < vocab_size(), "tokenizer: id {} outside vocab [0, {})", id,
            vocab_size());
  SSM_CHECK(id < kNumBytes || id >= kNumBase, "tokenizer: id {} is a special token", id);
  return impl_->bytes[size_t(id)];
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_specials) const {
  std::string out;
  for (int32_t id : ids) {
    SSM_CHECK(id >= 0 && id < vocab_size(), "tokenizer: cannot decode id {} (vocab size {})", id,
              vocab_size());
    if (id >= kNumBytes && id < kNumBase) {
      if (render_specials) out += id == kBos ? "<|bos|>" : id == kEos ? "<|eos|>" : "<|pad|>";
      continue;
    }
    out += impl_->bytes[size_t(id)];
  }
  return out;
}

// ---- save / load -------------------------------------------------------------------------

void Tokenizer::save(const std::string& path) const {
  nlohmann::json j;
  j["format"] = kFormat;
  j["version"] = kFormatVersion;
  j["kind"] = tokenizer_kind_name(kind_);
  j["vocab_size"] = vocab_size();
  j["special_tokens"] = {{"bos", kBos}, {"eos", kEos}, {"pad", kPad}};
  nlohmann::json merges = nlohmann::json::array();
  for (const auto& [a, b] : merges_) merges.push_back({a, b});
  j["merges"] = std::move(merges);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    SSM_CHECK(f.good(), "tokenizer {}: cannot create {}", path, tmp);
    f << j.dump(1) << '\n';
    f.flush();
    SSM_CHECK(f.good(), "tokenizer {}: write failed", path);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  SSM_CHECK(!ec, "tokenizer {}: rename from {} failed: {}", path, tmp, ec.message());
}

Tokenizer Tokenizer::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  SSM_CHECK(f.good(), "tokenizer {}: cannot open", path);
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    SSM_FAIL("tokenizer {}: invalid JSON: {}", path, e.what());
  }
  try {
    SSM_CHECK(j.value("format", "") == kFormat, "tokenizer {}: not an ssm tokenizer file", path);
    const int version = j.at("version").get<int>();
    SSM_CHECK(version == kFormatVersion, "tokenizer {}: unsupported version {} (expected {})", path,
              version, kFormatVersion);
    const std::string kind_name = j.at("kind").get<std::string>();
    SSM_CHECK(kind_name == "byte" || kind_name == "bpe",
              "tokenizer {}: unknown kind '{}' (expected 'byte' or 'bpe')", path, kind_name);
    const TokenizerKind kind = parse_tokenizer_kind(kind_name);
    const auto& sp = j.at("special_tokens");
    SSM_CHECK(sp.at("bos") == kBos && sp.at("eos") == kEos && sp.at("pad") == kPad,
              "tokenizer {}: special token ids differ from bos={} eos={} pad={}", path, kBos, kEos,
              kPad);
    std::vector<Pair> merges;
    for (const auto& m : j.at("merges")) {
      SSM_CHECK(m.is_array() && m.size() == 2, "tokenizer {}: merge {} is not a pair", path,
                merges.size());
      merges.emplace_back(m[0].get<int32_t>(), m[1].get<int32_t>());
    }
    SSM_CHECK(kind == TokenizerKind::kBpe || merges.empty(),
              "tokenizer {}: a byte tokenizer has no merges", path);
    const int64_t vocab = j.at("vocab_size").get<int64_t>();
    SSM_CHECK(vocab == kNumBase + int64_t(merges.size()),
              "tokenizer {}: vocab_size {} but {} merges (expected {})", path, vocab, merges.size(),
              kNumBase + int64_t(merges.size()));
    const std::string problem = merge_problem(merges);
    SSM_CHECK(problem.empty(), "tokenizer {}: {}", path, problem);
    return Tokenizer(kind, std::move(merges));
  } catch (const nlohmann::json::exception& e) {
    SSM_FAIL("tokenizer {}: malformed field: {}", path, e.what());
  }
}

// ---- BPE training ------------------------------------------------------------------------

struct BpeTrainer::Counts {
  std::unordered_map<std::string, int64_t> freq;  // pre-token -> occurrences
};

BpeTrainer::BpeTrainer() : counts_(std::make_unique<Counts>()) {}
BpeTrainer::~BpeTrainer() = default;
BpeTrainer::BpeTrainer(BpeTrainer&&) noexcept = default;
BpeTrainer& BpeTrainer::operator=(BpeTrainer&&) noexcept = default;

void BpeTrainer::add_text(std::string_view text) {
  for (std::string_view w : pretokenize(text)) {
    if (w.size() >= 2) ++counts_->freq[std::string(w)];  // single bytes hold no pairs
  }
}

int64_t BpeTrainer::num_unique_pretokens() const { return int64_t(counts_->freq.size()); }

Tokenizer BpeTrainer::train(int64_t vocab_size) const {
  SSM_CHECK(vocab_size >= Tokenizer::kNumBase, "bpe: vocab size {} < {} (bytes + specials)",
            vocab_size, Tokenizer::kNumBase);
  SSM_CHECK(vocab_size <= INT32_MAX, "bpe: vocab size {} too large", vocab_size);

  std::vector<std::vector<int32_t>> words;  // (unique pre-tokens) current ids of each
  std::vector<int64_t> freq;
  words.reserve(counts_->freq.size());
  for (const auto& [w, f] : counts_->freq) {
    words.emplace_back(w.begin(), w.end());
    for (auto& id : words.back()) id = static_cast<unsigned char>(id);
    freq.push_back(f);
  }

  std::unordered_map<uint64_t, int64_t> count;               // pair -> weighted occurrences
  std::unordered_map<uint64_t, std::vector<int32_t>> where;  // pair -> words that may hold it
  for (size_t w = 0; w < words.size(); ++w) {
    const auto& s = words[w];
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t k = pair_key(s[i], s[i + 1]);
      count[k] += freq[w];
      where[k].push_back(int32_t(w));
    }
  }

  // Max-heap on (count, then lowest pair). Entries go stale when counts drop; a popped entry
  // whose count is out of date is re-pushed with the current count, so the first up-to-date
  // entry popped is the true maximum with the lowest pair among ties.
  struct Entry {
    int64_t count;
    uint64_t key;
    bool operator<(const Entry& o) const {
      return count != o.count ? count < o.count : key > o.key;
    }
  };
  std::priority_queue<Entry> heap;
  for (const auto& [k, c] : count) heap.push({c, k});

  std::vector<Pair> merges;
  const int64_t num_merges = vocab_size - Tokenizer::kNumBase;
  std::unordered_map<uint64_t, int64_t> delta;
  while (int64_t(merges.size()) < num_merges && !heap.empty()) {
    const Entry top = heap.top();
    heap.pop();
    auto cit = count.find(top.key);
    const int64_t current = cit == count.end() ? 0 : cit->second;
    if (current != top.count) {
      if (current > 0) heap.push({current, top.key});
      continue;
    }
    const int32_t a = key_left(top.key), b = key_right(top.key);
    const int32_t id = Tokenizer::kNumBase + int32_t(merges.size());
    merges.emplace_back(a, b);

    std::vector<int32_t> list = std::move(where[top.key]);
    where.erase(top.key);
    std::sort(list.begin(), list.end());
    list.erase(std::unique(list.begin(), list.end()), list.end());
    delta.clear();
    std::vector<int32_t> next;
    for (int32_t w : list) {
      auto& s = words[size_t(w)];
      next.clear();
      bool changed = false;
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          next.push_back(id);
          i += 2;
          changed = true;
        } else {
          next.push_back(s[i]);
          ++i;
        }
      }
      if (!changed) continue;  // stale entry in `where`
      const int64_t f = freq[size_t(w)];
      for (size_t i = 0; i + 1 < s.size(); ++i) delta[pair_key(s[i], s[i + 1])] -= f;
      for (size_t i = 0; i + 1 < next.size(); ++i) {
        const uint64_t k = pair_key(next[i], next[i + 1]);
        delta[k] += f;
        if (next[i] == id || next[i + 1] == id) where[k].push_back(w);
      }
      s.swap(next);
    }
    for (const auto& [k, d] : delta) {
      if (d == 0) continue;
      int64_t& c = count[k];
      c += d;
      if (c <= 0) {
        count.erase(k);
      } else if (d > 0) {
        heap.push({c, k});
      }
    }
  }
  return Tokenizer::from_merges(std::move(merges));
}

}  // namespace ssm::data
