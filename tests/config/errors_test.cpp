// Malformed recipes: every error must be "FILE:LINE:COL: message" pointing at the offending
// key or value, with the message naming what is wrong.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "framework/config/recipe.h"
#include "tests/config/config_test_util.h"

namespace ssm::config {
namespace {

using testing::error_of;
using testing::TempDir;

// A valid recipe of 8 lines; the model section comes last so that cases can append model keys
// (line 9 on) or new sections.
const std::vector<std::string> kBase = {
    "data:",            //  1
    "  path: d",        //  2
    "train:",           //  3
    "  steps: 10",      //  4
    "model:",           //  5
    "  family: mamba",  //  6
    "  d_model: 64",    //  7
    "  n_layers: 2",    //  8
};

// kBase with lines replaced ("" removes the line), then `extra` appended.
std::string recipe(std::vector<std::string> extra, std::map<int, std::string> replace = {}) {
  std::string out;
  for (size_t i = 0; i < kBase.size(); ++i) {
    auto it = replace.find(static_cast<int>(i) + 1);
    if (it == replace.end())
      out += kBase[i] + "\n";
    else if (!it->second.empty())
      out += it->second + "\n";
  }
  for (const std::string& l : extra) out += l + "\n";
  return out;
}

// The same recipe with the train section last, for cases that append train keys.
std::string recipe_train_last(std::vector<std::string> extra) {
  std::string out = testing::lines({"data:", "  path: d", "model:", "  family: mamba", "  d_model: 64",
                                    "  n_layers: 2", "train:", "  steps: 10"});
  for (const std::string& l : extra) out += l + "\n";
  return out;
}

struct Case {
  std::string name;
  std::string yaml;
  std::string loc;  // "LINE:COL"
  std::string msg;  // the message after "FILE:LINE:COL: " must start with this
};

std::vector<Case> cases() {
  return {
      // The example of the brief, verbatim.
      {"UnknownKeyDidYouMean",
       testing::lines({"model:", "  family: mamba", "  d_model: 64", "  n_layers: 2", "train: {steps: 10}",
                       "optim:", "  lrr: 0.1", "data: {path: d}"}),
       "7:3", "unknown key 'lrr' in section 'optim' (did you mean 'lr'?)"},
      {"UnknownSection", recipe({"modle:", "  x: 1"}), "9:1",
       "unknown section 'modle' (did you mean 'model'?)"},
      {"UnknownKeyInOtherSection", recipe({"parallel:", "  lr: 0.1"}), "10:3",
       "unknown key 'lr' in section 'parallel' (did you mean 'optim.lr'?)"},
      {"UnknownKeyNoSuggestion", recipe({"  qwerty: 1"}), "9:3", "unknown key 'qwerty' in section 'model'"},
      {"InheritTypo", recipe({"inherts: base.yaml"}), "9:1",
       "unknown section 'inherts' (did you mean 'inherit'?)"},
      {"NotAnInteger", recipe({}, {{7, "  d_model: abc"}}), "7:12",
       "model.d_model: expected an integer, got 'abc'"},
      {"FractionalInteger", recipe({}, {{8, "  n_layers: 2.5"}}), "8:13",
       "model.n_layers: expected an integer, got '2.5'"},
      {"QuotedInteger", recipe({"optim:", "  warmup_steps: \"10\""}), "10:17",
       "optim.warmup_steps: expected an integer, got the quoted string \"10\""},
      {"NotANumber", recipe({"optim:", "  lr: fast"}), "10:7", "optim.lr: expected a number, got 'fast'"},
      {"NumberOverflows", recipe({"optim:", "  lr: 1e400"}), "10:7", "optim.lr: expected a number, got '1e400'"},
      {"NotABoolean", recipe({"kernels:", "  deterministic: yes"}), "10:18",
       "kernels.deterministic: expected a boolean (true or false), got 'yes'"},
      {"EmptyValue", recipe({"  d_state:"}), "9:3", "model.d_state: expected an integer, got an empty value"},
      {"BadAuto", recipe({"  dt_rank: automatic"}), "9:12",
       "model.dt_rank: expected an integer or 'auto', got 'automatic'"},
      {"OutOfClosedRange", recipe({"  d_conv: 9"}), "9:11", "model.d_conv: 9 is out of range [1, 8]"},
      {"OutOfHalfOpenRange", recipe({"optim:", "  beta2: 1.0"}), "10:10",
       "optim.beta2: 1.0 is out of range [0, 1)"},
      {"NotPositive", recipe({"optim:", "  lr: 0"}), "10:7", "optim.lr: must be > 0, got 0"},
      {"TooLargeForInt", recipe({"  d_state: 1e12"}), "9:12",
       "model.d_state: 1e12 is out of range [1, 2147483647]"},
      {"TopKRange", recipe({"  num_experts_per_tok: 3"}), "9:24",
       "model.num_experts_per_tok: 3 is out of range [1, 2]"},
      {"NotAChoice", recipe({}, {{6, "  family: mamba3"}}), "6:11",
       "model.family: 'mamba3' is not one of: mamba, mamba2, s4d, s5, jamba"},
      {"ListTooShort", recipe({"  dt_limit: [0]"}), "9:13",
       "model.dt_limit: expected a list of 2 numbers, got 1 item"},
      {"ListItemType", recipe({"  dt_limit: [0, x]"}), "9:17",
       "model.dt_limit[1]: expected a number, got 'x'"},
      {"ListItemRange", recipe({"  a_init_range: [0, 16]"}), "9:18",
       "model.a_init_range[0]: must be > 0, got 0"},
      {"NotAList", recipe({"  dt_limit: 5"}), "9:13",
       "model.dt_limit: expected a list of 2 numbers, got '5'"},
      {"SectionNotAMap", recipe({"optim: 5"}), "9:8", "section 'optim' must be a mapping of keys, got '5'"},
      {"ScalarGivenAMap", recipe({"device: {type: cuda}"}), "9:9",
       "device: expected a string, got a mapping"},
      {"InvalidDevice", recipe({"device: gpu"}), "9:9",
       "device: invalid device 'gpu': expected cpu, cuda or cuda:N"},
      {"MissingRequiredKey", recipe({}, {{7, ""}}), "5:1",
       "missing required key 'd_model' in section 'model'"},
      {"MissingRequiredSection", testing::lines({"data:", "  path: d", "train:", "  steps: 10"}), "1:1",
       "missing required section 'model' (needs 'family')"},
      {"DuplicateKey", recipe({"optim:", "  lr: 0.1", "  lr: 0.2"}), "11:3",
       "duplicate key 'lr' in section 'optim' (first set at line 10)"},
      {"DuplicateSection", recipe({"train:", "  steps: 5"}), "9:1",
       "duplicate key 'train' (first set at line 3)"},
      {"MalformedIndent", recipe({"optim:", "  lr: 0.1", "   eps: 1"}), "11:7",
       "malformed YAML: illegal map value"},
      {"MalformedFlow", recipe({"  dt_limit: [0, 1"}), "10:1",
       "malformed YAML: end of sequence flow not found"},
      {"EmptyFile", "", "1:1", "missing required section 'model' (needs 'family')"},
      {"NotAMapping", "just a sentence\n", "1:1", "a recipe must be a mapping of sections"},
      {"TwoDocuments", recipe({"---", "optim: {lr: 1}"}), "10:1", "a recipe holds one YAML document"},
      {"DottedKeyInFile", recipe({"optim.lr: 0.1"}), "9:1",
       "unknown section 'optim.lr' (nest it: 'optim:' with 'lr:' indented under it)"},
      {"FieldAtTopLevel", recipe({"lr: 0.1"}), "9:1", "unknown section 'lr' (did you mean 'optim.lr'?)"},
      // Cross-field rules, reported at the key to edit.
      {"Mamba2HeaddimDivides", recipe({"  headdim: 48"}, {{6, "  family: mamba2"}}), "9:3",
       "mamba2: d_model * expand = 128 must be divisible by headdim = 48"},
      {"Mamba2GroupsDivide", recipe({"  headdim: 16", "  n_groups: 3"}, {{6, "  family: mamba2"}}), "10:3",
       "mamba2: the 8 heads (d_model * expand / headdim) must be divisible by n_groups = 3"},
      {"Mamba2TensorParallel", recipe({"parallel:", "  tp: 4"}, {{6, "  family: mamba2"}}), "10:3",
       "parallel.tp = 4 must divide both the mamba2 heads (2) and n_groups (1)"},
      {"JambaKvHeads", recipe({"  n_heads: 8", "  n_kv_heads: 3"}, {{6, "  family: jamba"}}), "10:3",
       "jamba: n_heads = 8 must be divisible by n_kv_heads = 3"},
      {"JambaHeadsDivideWidth", recipe({"  n_heads: 6"}, {{6, "  family: jamba"}}), "9:3",
       "jamba: d_model = 64 must be divisible by n_heads = 6"},
      {"JambaOffsetBelowPeriod", recipe({"  attn_layer_offset: 8"}, {{6, "  family: jamba"}}), "9:3",
       "jamba: attn_layer_offset = 8 must be < attn_layer_period = 8"},
      {"JambaTopKAboveExperts", recipe({"  num_experts: 1"}, {{6, "  family: jamba"}}), "9:3",
       "jamba: num_experts_per_tok = 2 exceeds num_experts = 1"},
      {"DtMinAboveMax", recipe({"  dt_min: 0.5"}), "9:3", "model.dt_min (0.5) must be <= model.dt_max (0.1)"},
      {"MinLrAboveLr", recipe({"optim:", "  lr: 1e-3", "  min_lr: 1e-2"}), "11:3",
       "optim.min_lr = 0.01 exceeds optim.lr = 0.001"},
      {"WarmupAboveSteps", recipe({"optim:", "  warmup_steps: 20"}), "10:3",
       "optim.warmup_steps = 20 exceeds train.steps = 10"},
      {"MicroBatchDivides", recipe_train_last({"  batch_size: 8", "  micro_batch_size: 3"}), "10:3",
       "train.batch_size = 8 must be divisible by micro_batch_size = 3"},
      {"MicroBatchTimesDp", recipe_train_last({"  micro_batch_size: 2", "parallel: {dp: 3}"}), "9:3",
       "train.batch_size = 8 must be divisible by micro_batch_size * dp = 2 * 3"},
      {"PathRequiredForTokens", recipe({}, {{2, "  kind: tokens"}}), "2:3",
       "missing required key 'path' in section 'data' (required when kind is 'tokens')"},
      {"StepsAndTokens", recipe_train_last({"  tokens: 1000"}), "9:3",
       "train.steps and train.tokens are both set"},
      {"NoStepsNorTokens", recipe({}, {{4, "  seq_len: 64"}}), "3:1",
       "missing required key 'steps' in section 'train' (or set 'tokens')"},
  };
}

class RecipeErrors : public ::testing::TestWithParam<Case> {};

TEST_P(RecipeErrors, ReportsFileLineColumnAndCause) {
  const Case& c = GetParam();
  TempDir t;
  const std::string path = t.write("bad.yaml", c.yaml);
  const std::string msg = error_of([&] { load_recipe(path); });
  const std::string prefix = path + ":" + c.loc + ": ";
  ASSERT_EQ(msg.rfind(prefix, 0), 0u) << "message: " << msg << "\nexpected prefix: " << prefix;
  EXPECT_EQ(msg.substr(prefix.size(), c.msg.size()), c.msg) << "message: " << msg;
}

INSTANTIATE_TEST_SUITE_P(Malformed, RecipeErrors, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

// The example of the brief, as one exact string with a relative path.
TEST(RecipeErrorsExact, BriefExampleVerbatim) {
  std::string yaml = testing::lines({"model:", "  family: mamba", "  d_model: 64", "  n_layers: 2",
                                     "train: {steps: 10}", "optim:", "  lrr: 0.1", "data: {path: d}"});
  EXPECT_EQ(error_of([&] { parse_recipe(yaml, "recipes/bad.yaml"); }),
            "recipes/bad.yaml:7:3: unknown key 'lrr' in section 'optim' (did you mean 'lr'?)");
}

TEST(RecipeErrorsExact, MissingFileNamesIt) {
  TempDir t;
  std::string msg = error_of([&] { load_recipe(t.path("nope.yaml")); });
  EXPECT_EQ(msg.rfind(t.path("nope.yaml") + ": cannot open recipe file", 0), 0u) << msg;
}

// A cross-field rule whose other keys come from defaults points at the one key that was written.
TEST(RecipeErrorsExact, RuleOnDefaultsPointsAtTheWrittenKey) {
  // mamba2 with d_model 40: 80 % headdim 64 != 0, and none of the three keys but d_model set.
  std::string yaml = recipe({}, {{6, "  family: mamba2"}, {7, "  d_model: 40"}});
  EXPECT_EQ(error_of([&] { parse_recipe(yaml, "r.yaml"); }),
            "r.yaml:7:3: mamba2: d_model * expand = 80 must be divisible by headdim = 64");
}

}  // namespace
}  // namespace ssm::config
