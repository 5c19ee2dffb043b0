#include "data/sampler.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "data/random.h"
#include "tests/data/data_test_util.h"

namespace ssm::data {
namespace {

using test::expect_error;
using test::ScratchDir;

constexpr int32_t kEos = Tokenizer::kEos;

// A stream whose token at position p is p itself (u32 shards), so every read reveals where
// it came from. Split over three uneven shards so windows straddle shard boundaries.
TokenStream position_stream(const ScratchDir& dir, int64_t n) {
  std::vector<std::string> paths;
  const int64_t cuts[] = {0, n / 3, n / 3 + 7, n};
  for (int i = 0; i < 3; ++i) {
    std::vector<int32_t> t;
    for (int64_t p = cuts[i]; p < cuts[i + 1]; ++p) t.push_back(int32_t(p));
    paths.push_back(dir.file("pos" + std::to_string(i) + ".bin"));
    write_shard(paths.back(), t, n + 1);
  }
  return TokenStream::open(paths);
}

// Random byte-level tokens with EOS sprinkled in (about 1 in 13), in two shards.
TokenStream document_stream(const ScratchDir& dir, int64_t n, uint32_t seed,
                            std::vector<int32_t>* tokens_out = nullptr) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = rng() % 13 == 0 ? kEos : int32_t(rng() % 256);
  const size_t cut = size_t(n / 2 + 3);
  write_shard(dir.file("doc0.bin"), std::span(t).first(cut), 259);
  write_shard(dir.file("doc1.bin"), std::span(t).subspan(cut), 259);
  if (tokens_out) *tokens_out = t;
  return TokenStream::open({dir.file("doc0.bin"), dir.file("doc1.bin")});
}

SamplerConfig config(SampleMode mode, int64_t L, int64_t global_batch, uint64_t seed = 17) {
  SamplerConfig c;
  c.mode = mode;
  c.seq_len = L;
  c.global_batch = global_batch;
  c.seed = seed;
  return c;
}

void expect_same(const Batch& a, const Batch& b) {
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.inputs, b.inputs);
  EXPECT_EQ(a.targets, b.targets);
  EXPECT_EQ(a.seq_idx, b.seq_idx);
  EXPECT_EQ(a.continues, b.continues);
  EXPECT_EQ(a.offsets, b.offsets);
}

// Naive seq_idx: number of EOS among inputs[r][0 .. t-1].
void expect_seq_idx(const Batch& b, int32_t eos) {
  for (int64_t r = 0; r < b.rows; ++r) {
    int32_t count = 0;
    for (int64_t t = 0; t < b.seq_len; ++t) {
      ASSERT_EQ(b.seq_idx[size_t(r * b.seq_len + t)], count) << "row " << r << " t " << t;
      if (b.input(r, t) == eos) ++count;
    }
  }
}

TEST(Feistel, IsABijectionForAnySize) {
  for (uint64_t n : {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 100, 257, 1000, 4097, 10007}) {
    for (uint64_t tweak : {0, 1, 99}) {
      std::vector<uint8_t> seen(n, 0);
      for (uint64_t x = 0; x < n; ++x) {
        const uint64_t y = feistel_permute(x, n, 42, tweak);
        ASSERT_LT(y, n);
        ASSERT_FALSE(seen[y]) << "n " << n << " collision at " << y;
        seen[y] = 1;
      }
    }
  }
  // Different epochs / seeds give different orders.
  int same_epoch = 0, same_seed = 0;
  for (uint64_t x = 0; x < 1000; ++x) {
    same_epoch += feistel_permute(x, 1000, 42, 0) == feistel_permute(x, 1000, 42, 1);
    same_seed += feistel_permute(x, 1000, 42, 0) == feistel_permute(x, 1000, 43, 0);
  }
  EXPECT_LT(same_epoch, 20);
  EXPECT_LT(same_seed, 20);
}

TEST(ResetSampler, WindowsAreNextTokenPairsFromTheStream) {
  ScratchDir dir;
  const int64_t T = 1001, L = 13;
  const TokenStream s = position_stream(dir, T);
  const TokenSampler sampler(s, config(SampleMode::kReset, L, 6));
  EXPECT_EQ(sampler.num_windows(), (T - 1) / L);
  for (int64_t step = 0; step < 30; ++step) {
    const Batch b = sampler.batch(step);
    ASSERT_EQ(b.rows, 6);
    ASSERT_EQ(b.seq_len, L);
    for (int64_t r = 0; r < b.rows; ++r) {
      const int64_t off = b.offsets[size_t(r)];
      EXPECT_EQ(off % L, 0);
      EXPECT_LE(off + L + 1, T);
      EXPECT_EQ(off, sampler.window_of_sample(step * 6 + r) * L);
      for (int64_t t = 0; t < L; ++t) {
        ASSERT_EQ(b.input(r, t), off + t);
        ASSERT_EQ(b.target(r, t), off + t + 1);
      }
      EXPECT_EQ(b.continues[size_t(r)], 0);
    }
  }
}

TEST(ResetSampler, DeterministicInSeedStepRank) {
  ScratchDir dir;
  const TokenStream s = document_stream(dir, 5000, 1);
  SamplerConfig c = config(SampleMode::kReset, 31, 8);
  c.dp_size = 2;
  c.dp_rank = 1;
  const TokenSampler a(s, c), b(s, c);
  for (int64_t step : {0, 1, 7, 100}) expect_same(a.batch(step), b.batch(step));
  c.seed += 1;
  const TokenSampler other(s, c);
  EXPECT_NE(a.batch(3).offsets, other.batch(3).offsets);
  EXPECT_NE(a.batch(3).offsets, a.batch(4).offsets);
}

TEST(ResetSampler, RanksAreDisjointAndTogetherFormTheGlobalBatch) {
  ScratchDir dir;
  const TokenStream s = position_stream(dir, 3000);
  const int64_t L = 10, G = 12;
  const TokenSampler global(s, config(SampleMode::kReset, L, G));
  for (int dp : {2, 3, 4}) {
    std::vector<TokenSampler> ranks;
    for (int r = 0; r < dp; ++r) {
      SamplerConfig c = config(SampleMode::kReset, L, G);
      c.dp_size = dp;
      c.dp_rank = r;
      ranks.emplace_back(s, c);
    }
    for (int64_t step = 0; step < 40; ++step) {
      std::vector<int64_t> joined;
      std::set<int64_t> distinct;
      for (const auto& rs : ranks) {
        const Batch b = rs.batch(step);
        ASSERT_EQ(b.rows, G / dp);
        joined.insert(joined.end(), b.offsets.begin(), b.offsets.end());
        distinct.insert(b.offsets.begin(), b.offsets.end());
      }
      EXPECT_EQ(distinct.size(), size_t(G)) << "two ranks shared a window at step " << step;
      EXPECT_EQ(joined, global.batch(step).offsets);  // same data for any dp layout
    }
  }
}

TEST(ResetSampler, EveryWindowExactlyOncePerEpoch) {
  ScratchDir dir;
  const int64_t L = 8, G = 7;
  // W = (T - 1) / L = 105 windows = 15 steps of 7 rows.
  const TokenStream s = position_stream(dir, 105 * L + 1 + 5);
  for (int dp : {1, 7}) {
    std::vector<std::map<int64_t, int>> uses(3);
    for (int r = 0; r < dp; ++r) {
      SamplerConfig c = config(SampleMode::kReset, L, G);
      c.dp_size = dp;
      c.dp_rank = r;
      const TokenSampler sampler(s, c);
      ASSERT_EQ(sampler.num_windows(), 105);
      ASSERT_EQ(sampler.steps_per_epoch(), 15);
      for (int64_t step = 0; step < 45; ++step) {
        for (int64_t off : sampler.batch(step).offsets) ++uses[size_t(step / 15)][off / L];
      }
    }
    for (int e = 0; e < 3; ++e) {
      ASSERT_EQ(uses[size_t(e)].size(), 105u) << "epoch " << e;
      for (const auto& [w, n] : uses[size_t(e)]) {
        EXPECT_GE(w, 0);
        EXPECT_LT(w, 105);
        EXPECT_EQ(n, 1) << "window " << w << " used " << n << " times in epoch " << e;
      }
    }
  }
  // A fresh order every epoch.
  const TokenSampler sampler(s, config(SampleMode::kReset, L, G));
  int same = 0;
  for (int64_t g = 0; g < 105; ++g)
    same += sampler.window_of_sample(g) == sampler.window_of_sample(g + 105);
  EXPECT_LT(same, 10);
}

TEST(ResetSampler, ResumeReproducesTheSameBatches) {
  ScratchDir dir;
  const TokenStream s = document_stream(dir, 4000, 2);
  SamplerConfig c = config(SampleMode::kReset, 17, 6);
  std::vector<Batch> run;
  {
    const TokenSampler sampler(s, c);
    for (int64_t step = 0; step < 10; ++step) run.push_back(sampler.batch(step));
  }
  const TokenSampler resumed(s, c);  // a new process after a checkpoint at step 5
  for (int64_t step = 5; step < 10; ++step) expect_same(resumed.batch(step), run[size_t(step)]);
}

TEST(ResetSampler, SeqIdxCountsDocuments) {
  ScratchDir dir;
  const TokenStream s = document_stream(dir, 3000, 3);
  const TokenSampler sampler(s, config(SampleMode::kReset, 40, 5));
  for (int64_t step = 0; step < 10; ++step) expect_seq_idx(sampler.batch(step), kEos);
  SamplerConfig c = config(SampleMode::kReset, 40, 5);
  c.eos_id = -1;
  const Batch b = TokenSampler(s, c).batch(0);
  EXPECT_TRUE(std::all_of(b.seq_idx.begin(), b.seq_idx.end(), [](int32_t v) { return v == 0; }));
}

TEST(ResetSampler, SeqIdxOnAKnownRow) {
  ScratchDir dir;
  // Exactly 2 windows of L = 6: positions 0..6 and 6..12.
  const std::vector<int32_t> t = {5, kEos, 7, 8, kEos, kEos, 9, 1, 2, kEos, 3, 4, 0};
  write_shard(dir.file("k.bin"), t, 259);
  const TokenSampler sampler(TokenStream::open({dir.file("k.bin")}),
                             config(SampleMode::kReset, 6, 2));
  const Batch b = sampler.batch(0);
  for (int64_t r = 0; r < 2; ++r) {
    const std::vector<int32_t> idx(b.seq_idx.begin() + r * 6, b.seq_idx.begin() + (r + 1) * 6);
    if (b.offsets[size_t(r)] == 0) {
      EXPECT_EQ(idx, (std::vector<int32_t>{0, 0, 1, 1, 1, 2}));
    } else {
      EXPECT_EQ(idx, (std::vector<int32_t>{0, 0, 0, 0, 1, 1}));
    }
  }
}

TEST(CarrySampler, RowsContinueWhereTheyStopped) {
  ScratchDir dir;
  const int64_t T = 2000, L = 9, G = 6;
  const TokenStream s = position_stream(dir, T);
  const TokenSampler sampler(s, config(SampleMode::kCarry, L, G));
  const int64_t region = T / G, S = (region - 1) / L;
  ASSERT_EQ(sampler.num_windows(), S);
  Batch prev = sampler.batch(0);
  for (int64_t r = 0; r < G; ++r) {
    EXPECT_EQ(prev.offsets[size_t(r)], r * region);
    EXPECT_EQ(prev.continues[size_t(r)], 0);  // nothing to continue at step 0
  }
  for (int64_t step = 1; step < 3 * S + 2; ++step) {
    const Batch b = sampler.batch(step);
    for (int64_t r = 0; r < G; ++r) {
      const int64_t off = b.offsets[size_t(r)];
      for (int64_t t = 0; t < L; ++t) {
        ASSERT_EQ(b.input(r, t), off + t);
        ASSERT_EQ(b.target(r, t), off + t + 1);
      }
      EXPECT_GE(off, r * region);
      EXPECT_LE(off + L + 1, (r + 1) * region);  // a row never reads another row's region
      if (step % S == 0) {                       // wrapped around to the start of its region
        EXPECT_EQ(off, r * region);
        EXPECT_EQ(b.continues[size_t(r)], 0);
      } else {
        // The first input is exactly the token after the previous window's last input.
        EXPECT_EQ(off, prev.offsets[size_t(r)] + L);
        EXPECT_EQ(b.input(r, 0), prev.target(r, L - 1));
        EXPECT_EQ(b.continues[size_t(r)], 1);
      }
    }
    prev = b;
  }
}

TEST(CarrySampler, RanksOwnDisjointRowsOfTheGlobalBatch) {
  ScratchDir dir;
  const TokenStream s = position_stream(dir, 5000);
  const TokenSampler global(s, config(SampleMode::kCarry, 11, 8));
  for (int64_t step : {0, 1, 5, 40}) {
    std::vector<int64_t> joined;
    for (int r = 0; r < 4; ++r) {
      SamplerConfig c = config(SampleMode::kCarry, 11, 8);
      c.dp_size = 4;
      c.dp_rank = r;
      const Batch b = TokenSampler(s, c).batch(step);
      joined.insert(joined.end(), b.offsets.begin(), b.offsets.end());
    }
    EXPECT_EQ(joined, global.batch(step).offsets);
    EXPECT_EQ(std::set<int64_t>(joined.begin(), joined.end()).size(), joined.size());
  }
}

TEST(CarrySampler, SeqIdxAndDocumentBoundaryAtWindowEdge) {
  ScratchDir dir;
  std::vector<int32_t> tokens;
  const TokenStream s = document_stream(dir, 6000, 4, &tokens);
  const int64_t L = 16, G = 4;
  const TokenSampler sampler(s, config(SampleMode::kCarry, L, G));
  int boundary_cases = 0;
  for (int64_t step = 0; step < 2 * sampler.num_windows() + 3; ++step) {
    const Batch b = sampler.batch(step);
    expect_seq_idx(b, kEos);
    for (int64_t r = 0; r < G; ++r) {
      const int64_t off = b.offsets[size_t(r)];
      const bool first_of_pass = step % sampler.num_windows() == 0;
      const bool doc_ended = off > 0 && tokens[size_t(off - 1)] == kEos;
      boundary_cases += !first_of_pass && doc_ended;
      EXPECT_EQ(b.continues[size_t(r)], !first_of_pass && !doc_ended) << step << " " << r;
    }
  }
  EXPECT_GT(boundary_cases, 0) << "test data never put an EOS at a window edge";
}

TEST(CarrySampler, ResumeReproducesTheSameBatches) {
  ScratchDir dir;
  const TokenStream s = document_stream(dir, 3000, 5);
  const SamplerConfig c = config(SampleMode::kCarry, 7, 5);
  std::vector<Batch> run;
  const TokenSampler a(s, c);
  for (int64_t step = 0; step < 10; ++step) run.push_back(a.batch(step));
  const TokenSampler b(s, c);
  for (int64_t step = 5; step < 10; ++step) expect_same(b.batch(step), run[size_t(step)]);
}

TEST(ValidationSampler, FirstWindowsInOrderWithPadding) {
  ScratchDir dir;
  const int64_t L = 10;
  const TokenStream s = position_stream(dir, 253);  // W = 25 windows
  SamplerConfig c = config(SampleMode::kReset, L, 4);
  c.dp_size = 2;
  for (int64_t max_windows : {int64_t(7), int64_t(1000)}) {
    const int64_t n = std::min<int64_t>(max_windows, 25);
    std::vector<int64_t> seen;
    for (int r = 0; r < 2; ++r) {
      c.dp_rank = r;
      const ValidationSampler v(s, c, max_windows);
      EXPECT_EQ(v.num_windows(), n);
      ASSERT_EQ(v.num_batches(), (n + 3) / 4);
      for (int64_t k = 0; k < v.num_batches(); ++k) {
        const Batch b = v.batch(k);
        for (int64_t i = 0; i < b.rows; ++i) {
          const int64_t w = k * 4 + r * 2 + i;
          if (w < n) {
            EXPECT_EQ(b.offsets[size_t(i)], w * L);
            EXPECT_EQ(b.input(i, 0), w * L);
            EXPECT_EQ(b.target(i, L - 1), w * L + L);
            seen.push_back(w);
          } else {  // padding: no loss
            EXPECT_EQ(b.offsets[size_t(i)], -1);
            for (int64_t t = 0; t < L; ++t) {
              EXPECT_EQ(b.target(i, t), kIgnoreTarget);
              EXPECT_EQ(b.input(i, t), Tokenizer::kPad);
            }
          }
        }
      }
    }
    std::sort(seen.begin(), seen.end());
    ASSERT_EQ(int64_t(seen.size()), n);
    for (int64_t w = 0; w < n; ++w) EXPECT_EQ(seen[size_t(w)], w);
  }
}

TEST(Sampler, ConfigErrors) {
  ScratchDir dir;
  const TokenStream s = position_stream(dir, 100);
  expect_error([&] { TokenSampler(s, config(SampleMode::kReset, 10, 20)); },
               {"100 tokens", "9 windows", "global_batch = 20"});
  expect_error([&] { TokenSampler(s, config(SampleMode::kCarry, 30, 4)); }, {"carry", "25"});
  SamplerConfig c = config(SampleMode::kReset, 5, 6);
  c.dp_size = 4;
  expect_error([&] { TokenSampler(s, c); }, {"global_batch 6", "dp_size 4"});
  c.dp_size = 2;
  c.dp_rank = 2;
  expect_error([&] { TokenSampler(s, c); }, {"dp_rank 2"});
  EXPECT_EQ(parse_sample_mode("carry"), SampleMode::kCarry);
  expect_error([] { parse_sample_mode("bptt"); }, {"bptt"});
}

}  // namespace
}  // namespace ssm::data
