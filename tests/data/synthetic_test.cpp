#include "data/synthetic.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "tests/data/data_test_util.h"

namespace ssm::data {
namespace {

using test::expect_error;
namespace ids = synthetic_ids;

SyntheticConfig make(SyntheticTask task, int64_t V, int64_t L, int64_t items, int64_t G,
                     int64_t queries = 0) {
  SyntheticConfig c;
  c.task = task;
  c.vocab_size = V;
  c.seq_len = L;
  c.num_items = items;
  c.num_queries = queries;
  c.global_batch = G;
  c.seed = 5;
  return c;
}

// Re-derives every row's answers from its inputs alone, by the task's definition, and checks
// targets and answer_pos against them.
void check_selective_copy(const Batch& b, int64_t V, int64_t K) {
  const int64_t L = b.seq_len;
  ASSERT_EQ(b.answers_per_row, K);
  for (int64_t r = 0; r < b.rows; ++r) {
    std::vector<int32_t> coloured;
    for (int64_t t = 0; t < L - K; ++t) {
      const int32_t x = b.input(r, t);
      ASSERT_NE(x, ids::kCopyMarker) << "marker inside the data region";
      ASSERT_LT(x, V);
      if (x != ids::kCopyNoise) coloured.push_back(x);
    }
    ASSERT_EQ(int64_t(coloured.size()), K) << "row " << r;
    for (int64_t j = 0; j < K; ++j) {
      const int64_t t = L - K + j;
      EXPECT_EQ(b.input(r, t), ids::kCopyMarker);
      EXPECT_EQ(b.target(r, t), coloured[size_t(j)]);
      EXPECT_EQ(b.answer_pos[size_t(r * K + j)], t);
    }
    for (int64_t t = 0; t < L - K; ++t) EXPECT_EQ(b.target(r, t), kIgnoreTarget);
  }
}

void check_induction(const Batch& b, int64_t V) {
  const int64_t L = b.seq_len;
  ASSERT_EQ(b.answers_per_row, 1);
  for (int64_t r = 0; r < b.rows; ++r) {
    std::vector<int64_t> triggers;
    for (int64_t t = 0; t < L - 1; ++t) {
      ASSERT_GE(b.input(r, t), 0);
      ASSERT_LT(b.input(r, t), V);
      if (b.input(r, t) == ids::kInductionTrigger) triggers.push_back(t);
    }
    ASSERT_EQ(triggers.size(), 1u) << "row " << r;
    ASSERT_LE(triggers[0], L - 3);
    EXPECT_EQ(b.input(r, L - 1), ids::kInductionTrigger);
    EXPECT_EQ(b.target(r, L - 1), b.input(r, triggers[0] + 1));
    EXPECT_EQ(b.answer_pos[size_t(r)], L - 1);
    for (int64_t t = 0; t < L - 1; ++t) EXPECT_EQ(b.target(r, t), kIgnoreTarget);
  }
}

void check_mqar(const Batch& b, int64_t V, int64_t P, int64_t Q) {
  const int64_t L = b.seq_len, nk = (V - 1) / 2;
  ASSERT_EQ(b.answers_per_row, Q);
  for (int64_t r = 0; r < b.rows; ++r) {
    std::map<int32_t, int32_t> kv;
    for (int64_t i = 0; i < P; ++i) {
      const int32_t k = b.input(r, 2 * i), v = b.input(r, 2 * i + 1);
      ASSERT_GE(k, 1);
      ASSERT_LE(k, nk);
      ASSERT_GT(v, nk);
      ASSERT_LT(v, V);
      ASSERT_TRUE(kv.emplace(k, v).second) << "duplicate key " << k;
      EXPECT_EQ(b.target(r, 2 * i), kIgnoreTarget);
      EXPECT_EQ(b.target(r, 2 * i + 1), kIgnoreTarget);
    }
    std::set<int32_t> asked;
    std::vector<int32_t> positions;
    for (int64_t t = 2 * P; t < L; ++t) {
      const int32_t x = b.input(r, t);
      if (x == ids::kRecallFiller) {
        EXPECT_EQ(b.target(r, t), kIgnoreTarget);
        continue;
      }
      ASSERT_TRUE(kv.count(x)) << "query for a key that was never stored";
      EXPECT_TRUE(asked.insert(x).second) << "key asked twice";
      EXPECT_EQ(b.target(r, t), kv[x]);
      positions.push_back(int32_t(t));
    }
    ASSERT_EQ(int64_t(positions.size()), Q);
    EXPECT_TRUE(std::equal(positions.begin(), positions.end(), b.answer_pos.begin() + r * Q));
  }
}

TEST(Synthetic, SelectiveCopyTargetsFollowFromInputs) {
  for (auto [V, L, K] : {std::tuple{16, 64, 8}, {3, 11, 5}, {50, 203, 16}, {7, 2, 1}}) {
    const SyntheticTaskSource src(make(SyntheticTask::kSelectiveCopy, V, L, K, 9));
    for (int64_t step : {0, 1, 13}) check_selective_copy(src.batch(step), V, K);
    check_selective_copy(src.eval_batch(2), V, K);
  }
}

TEST(Synthetic, InductionHeadsTargetsFollowFromInputs) {
  for (auto [V, L] : {std::pair{20, 30}, {3, 3}, {101, 257}}) {
    const SyntheticTaskSource src(make(SyntheticTask::kInductionHeads, V, L, 0, 11));
    for (int64_t step : {0, 4, 99}) check_induction(src.batch(step), V);
  }
  // The trigger lands everywhere in [0, L-3] over many rows.
  const SyntheticTaskSource src(make(SyntheticTask::kInductionHeads, 20, 9, 0, 200));
  const Batch b = src.batch(0);
  std::set<int64_t> where;
  for (int64_t r = 0; r < b.rows; ++r) {
    for (int64_t t = 0; t < 8; ++t) {
      if (b.input(r, t) == ids::kInductionTrigger) where.insert(t);
    }
  }
  EXPECT_EQ(where, (std::set<int64_t>{0, 1, 2, 3, 4, 5, 6}));
}

TEST(Synthetic, AssociativeRecallTargetsFollowFromInputs) {
  for (auto [V, L, P, Q] :
       {std::tuple{64, 128, 8, 0}, {9, 13, 4, 4}, {8192, 257, 32, 17}, {5, 5, 2, 1}}) {
    const SyntheticTaskSource src(make(SyntheticTask::kAssociativeRecall, V, L, P, 6, Q));
    const int64_t q = Q > 0 ? Q : P;
    for (int64_t step : {0, 3, 50}) check_mqar(src.batch(step), V, P, q);
    check_mqar(src.eval_batch(0), V, P, q);
  }
}

TEST(Synthetic, DeterministicAndLayoutInvariant) {
  for (auto task : {SyntheticTask::kSelectiveCopy, SyntheticTask::kInductionHeads,
                    SyntheticTask::kAssociativeRecall}) {
    const SyntheticConfig c = make(task, 32, 64, 6, 12);
    const SyntheticTaskSource a(c), b(c);
    EXPECT_EQ(a.batch(7).inputs, b.batch(7).inputs);
    EXPECT_EQ(a.batch(7).targets, b.batch(7).targets);
    EXPECT_EQ(a.batch(7).answer_pos, b.batch(7).answer_pos);
    EXPECT_NE(a.batch(7).inputs, a.batch(8).inputs);
    SyntheticConfig reseeded = c;
    reseeded.seed = 6;
    EXPECT_NE(SyntheticTaskSource(reseeded).batch(7).inputs, a.batch(7).inputs);
    // Rows on dp ranks are slices of the single-rank batch: disjoint, and the same data for
    // any layout.
    for (int dp : {2, 3, 4}) {
      std::vector<int32_t> joined;
      for (int r = 0; r < dp; ++r) {
        SyntheticConfig cr = c;
        cr.dp_size = dp;
        cr.dp_rank = r;
        const Batch br = SyntheticTaskSource(cr).batch(7);
        ASSERT_EQ(br.rows, 12 / dp);
        joined.insert(joined.end(), br.inputs.begin(), br.inputs.end());
      }
      EXPECT_EQ(joined, a.batch(7).inputs) << synthetic_task_name(task) << " dp " << dp;
    }
    // Held-out rows never coincide with training rows of early steps.
    std::set<std::vector<int32_t>> train_rows;
    for (int64_t step = 0; step < 20; ++step) {
      const Batch tb = a.batch(step);
      for (int64_t r = 0; r < tb.rows; ++r) {
        train_rows.emplace(tb.inputs.begin() + r * 64, tb.inputs.begin() + (r + 1) * 64);
      }
    }
    const Batch eb = a.eval_batch(0);
    for (int64_t r = 0; r < eb.rows; ++r) {
      EXPECT_FALSE(
          train_rows.count({eb.inputs.begin() + r * 64, eb.inputs.begin() + (r + 1) * 64}));
    }
    // Resume: a fresh source reproduces steps 5..9.
    const SyntheticTaskSource resumed(c);
    for (int64_t step = 5; step < 10; ++step)
      EXPECT_EQ(resumed.batch(step).targets, a.batch(step).targets);
  }
}

TEST(Synthetic, ColoursAndValuesCoverTheirRange) {
  const SyntheticTaskSource copy(make(SyntheticTask::kSelectiveCopy, 10, 40, 10, 64));
  std::map<int32_t, int> colours;
  const Batch b = copy.batch(0);
  for (int32_t y : b.targets) {
    if (y != kIgnoreTarget) ++colours[y];
  }
  ASSERT_EQ(colours.size(), 8u);  // ids 2..9
  for (const auto& [c, n] : colours) {
    EXPECT_GE(c, ids::kCopyFirstColour);
    EXPECT_GT(n, 40) << "colour " << c << " is rare: " << n << " of 640";  // expectation 80
  }
}

TEST(Synthetic, AccuracyAndExactMatch) {
  const SyntheticTaskSource src(make(SyntheticTask::kAssociativeRecall, 64, 48, 8, 4, 4));
  const Batch b = src.batch(0);
  std::vector<int32_t> pred(b.targets.size(), 0);
  for (size_t i = 0; i < pred.size(); ++i)
    pred[i] = b.targets[i] == kIgnoreTarget ? 3 : b.targets[i];
  EXPECT_DOUBLE_EQ(accuracy(pred, b), 1.0);
  EXPECT_DOUBLE_EQ(exact_match(pred, b), 1.0);
  // Break one answer in row 0 and two in row 2: 13 of 16 correct, 2 of 4 rows exact.
  pred[size_t(b.answer_pos[0])] += 1;
  pred[size_t(2 * 48 + b.answer_pos[8])] += 1;
  pred[size_t(2 * 48 + b.answer_pos[9])] += 1;
  EXPECT_DOUBLE_EQ(accuracy(pred, b), 13.0 / 16.0);
  EXPECT_DOUBLE_EQ(exact_match(pred, b), 0.5);
  // Non-answer positions never count.
  for (size_t i = 0; i < pred.size(); ++i) {
    if (b.targets[i] == kIgnoreTarget) pred[i] = 12345;
  }
  EXPECT_DOUBLE_EQ(accuracy(pred, b), 13.0 / 16.0);
  expect_error([&] { accuracy(std::vector<int32_t>(5), b); }, {"5", "(4, 48)"});
}

TEST(Synthetic, ConfigErrors) {
  expect_error([] { SyntheticTaskSource(make(SyntheticTask::kSelectiveCopy, 16, 15, 8, 1)); },
               {"selective_copy", "seq_len = 15"});
  expect_error([] { SyntheticTaskSource(make(SyntheticTask::kSelectiveCopy, 2, 64, 8, 1)); },
               {"vocab_size 2"});
  expect_error([] { SyntheticTaskSource(make(SyntheticTask::kAssociativeRecall, 11, 64, 6, 1)); },
               {"mqar", "(vocab_size - 1) / 2 = 5"});
  expect_error([] { SyntheticTaskSource(make(SyntheticTask::kAssociativeRecall, 64, 20, 8, 1)); },
               {"exceeds seq_len 20"});
  expect_error(
      [] { SyntheticTaskSource(make(SyntheticTask::kAssociativeRecall, 64, 64, 4, 1, 5)); },
      {"num_queries 5"});
  SyntheticConfig c = make(SyntheticTask::kInductionHeads, 16, 64, 0, 6);
  c.dp_size = 4;
  expect_error([&] { SyntheticTaskSource{c}; }, {"global_batch 6", "dp_size 4"});
  EXPECT_EQ(parse_synthetic_task("mqar"), SyntheticTask::kAssociativeRecall);
  expect_error([] { parse_synthetic_task("copy"); }, {"copy"});
}

}  // namespace
}  // namespace ssm::data
