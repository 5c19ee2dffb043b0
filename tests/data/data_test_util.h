// Helpers shared by the data-layer tests: scratch directories, raw file edits, error checks.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "framework/core/error.h"

namespace ssm::data::test {

// A fresh directory under the system temp dir, removed with everything in it on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "ssm_data_";
    // Appended piece by piece: `"_" + std::string` trips a GCC 12 -Wrestrict false positive.
    for (const std::string& part :
         {std::string(info ? info->test_suite_name() : "x"), std::string(info ? info->name() : "x"),
          std::to_string(::getpid()), std::to_string(counter++)}) {
      name += part;
      name += '_';
    }
    path_ = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path_)) {
      out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::filesystem::path path_;
};

inline std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
}

// Runs fn, expects an ssm::Error whose message contains every one of `needles`, and that
// the message is a single line.
inline void expect_error(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  try {
    fn();
  } catch (const ssm::Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "multi-line error: " << msg;
    for (const auto& n : needles) {
      EXPECT_NE(msg.find(n), std::string::npos) << "error '" << msg << "' lacks '" << n << "'";
    }
    return;
  }
  ADD_FAILURE() << "expected an ssm::Error";
}

inline std::vector<int32_t> random_tokens(size_t n, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, vocab - 1);
  std::vector<int32_t> v(n);
  for (auto& t : v) t = d(rng);
  return v;
}

// Pseudo-English text: sentences of common words with punctuation and paragraph breaks.
inline std::string english_text(size_t min_bytes, uint32_t seed) {
  static const char* words[] = {
      "the",      "of",        "and",      "to",        "in",        "a",          "is",
      "that",     "for",       "it",       "as",        "was",       "with",       "be",
      "by",       "on",        "not",      "he",        "this",      "are",        "or",
      "his",      "from",      "at",       "which",     "but",       "have",       "an",
      "had",      "they",      "you",      "were",      "their",     "one",        "all",
      "we",       "can",       "her",      "has",       "there",     "been",       "if",
      "more",     "when",      "will",     "would",     "who",       "so",         "no",
      "state",    "space",     "model",    "sequence",  "selective", "memory",     "training",
      "language", "recurrent", "network",  "attention", "hidden",    "token",      "length",
      "time",     "river",     "mountain", "village",   "morning",   "evening",    "garden",
      "window",   "letter",    "people",   "little",    "great",     "small",      "between",
      "through",  "because",   "however",  "something", "nothing",   "everything", "remember",
      "question", "answer",    "thousand", "walked",    "looked",    "turned",     "quickly",
      "slowly",   "together",  "without",  "against"};
  constexpr size_t kNumWords = sizeof(words) / sizeof(words[0]);
  std::mt19937 rng(seed);
  // Zipf-like: low indices far more frequent, as in real text.
  std::vector<double> w(kNumWords);
  for (size_t i = 0; i < kNumWords; ++i) w[i] = 1.0 / double(i + 1);
  std::discrete_distribution<size_t> pick(w.begin(), w.end());
  std::string out;
  while (out.size() < min_bytes) {
    const int sentences = 1 + int(rng() % 5);
    for (int s = 0; s < sentences; ++s) {
      const int n = 4 + int(rng() % 12);
      for (int i = 0; i < n; ++i) {
        std::string word = words[pick(rng)];
        if (i == 0) word[0] = char(word[0] - 'a' + 'A');
        out += word;
        if (i + 1 < n) out += (rng() % 9 == 0) ? ", " : " ";
      }
      out += (rng() % 6 == 0) ? "? " : ". ";
      if (rng() % 4 == 0) out += std::to_string(rng() % 2000) + " ";
    }
    out += "\n\n";
  }
  return out;
}

}  // namespace ssm::data::test
