// Every file under recipes/ parses: full recipes load and round-trip through resolved_yaml;
// fragments under recipes/base/ (meant only to be inherited) pass the schema's key/type checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "framework/config/recipe.h"
#include "tests/config/config_test_util.h"

namespace ssm::config {
namespace {

namespace fs = std::filesystem;

std::map<std::string, fs::path> recipe_files(const fs::path& root) {
  std::map<std::string, fs::path> out;  // relative name -> path, sorted
  for (const auto& e : fs::recursive_directory_iterator(root / "recipes")) {
    if (!e.is_regular_file()) continue;
    const std::string ext = e.path().extension().string();
    if (ext == ".yaml" || ext == ".yml") out[fs::relative(e.path(), root / "recipes").string()] = e.path();
  }
  return out;
}

bool is_fragment(const std::string& rel) { return rel.rfind("base/", 0) == 0; }

TEST(RecipesDir, EveryFileParses) {
  const fs::path root = testing::repo_root();
  ASSERT_FALSE(root.empty()) << "cannot find the repository root: set SSM_SOURCE_DIR";
  auto files = recipe_files(root);
  ASSERT_GE(files.size(), 19u);
  for (const auto& [rel, path] : files) {
    SCOPED_TRACE(rel);
    try {
      if (is_fragment(rel)) {
        check_recipe_fragment(path.string());
        continue;
      }
      Recipe r = load_recipe(path.string());
      EXPECT_EQ(parse_recipe(resolved_yaml(r), path.string()), r);
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
  }
}

TEST(RecipesDir, FamiliesAndSizesAsDocumented) {
  const fs::path root = testing::repo_root();
  ASSERT_FALSE(root.empty());
  auto load = [&](const std::string& rel) { return load_recipe((root / "recipes" / rel).string()); };

  Recipe q = load("quickstart.yaml");
  EXPECT_EQ(q.name, "quickstart");
  EXPECT_EQ(q.device, Device::cpu());
  EXPECT_EQ(q.model.family, ModelFamily::mamba2);
  EXPECT_EQ(q.model.d_model, 128);
  EXPECT_EQ(q.model.n_layers, 4);
  EXPECT_EQ(q.model.headdim, 32);
  EXPECT_EQ(q.model.d_state, 32);
  EXPECT_EQ(q.model.chunk_size, 64);
  EXPECT_EQ(q.data.path, "data_cache/quickstart");
  EXPECT_EQ(q.train.seq_len, 128);
  EXPECT_EQ(q.train.batch_size, 8);
  // The quickstart must stay a few-minute CPU run: at most ~1M tokens.
  EXPECT_TRUE(q.device.is_cpu());
  EXPECT_LE(q.train.total_steps() * q.train.batch_size * q.train.seq_len, int64_t(1) << 20);
  EXPECT_EQ(q.optim.schedule, Schedule::cosine);
  EXPECT_LT(q.optim.warmup_steps, q.train.total_steps() / 4);

  const std::pair<const char*, ModelFamily> families[] = {{"mamba", ModelFamily::mamba},
                                                          {"mamba2", ModelFamily::mamba2},
                                                          {"s4d", ModelFamily::s4d},
                                                          {"s5", ModelFamily::s5},
                                                          {"jamba", ModelFamily::jamba}};
  std::vector<std::string> names;
  for (const auto& [dir, family] : families) {
    for (const char* size : {"tiny", "small", "130m"}) {
      SCOPED_TRACE(std::string(dir) + "/" + size);
      Recipe r = load(std::string(dir) + "/" + size + ".yaml");
      EXPECT_EQ(r.model.family, family);
      EXPECT_EQ(r.name, std::string(dir) + "-" + size);
      names.push_back(r.name);
      if (std::string(size) == "130m") {
        EXPECT_EQ(r.model.d_model, 768);
        EXPECT_EQ(r.model.n_layers, 24);
        EXPECT_EQ(r.precision, Precision::bf16);
        EXPECT_TRUE(r.device.is_cuda());
        ParallelLayout l = resolve_layout(r, 8);
        EXPECT_EQ(l.grad_accum * l.micro_batch_size * l.dp, r.train.batch_size);
      }
    }
  }
  EXPECT_EQ(load("mamba/130m.yaml").model.d_state, 16);
  EXPECT_EQ(load("mamba/130m.yaml").model.resolved_dt_rank(), 48);
  Recipe m2 = load("mamba2/130m.yaml");
  EXPECT_EQ(m2.model.d_state, 128);
  EXPECT_EQ(m2.model.headdim, 64);
  EXPECT_EQ(m2.model.expand, 2);
  EXPECT_EQ(m2.model.ssd_heads(), 24);
  Recipe js = load("jamba/small.yaml");
  EXPECT_EQ(js.model.attn_layer_period, 8);
  EXPECT_EQ(js.model.expert_layer_period, 2);
  EXPECT_EQ(js.model.num_experts, 8);
  EXPECT_EQ(js.model.num_experts_per_tok, 2);
  // Run names (and so run directories) are distinct across the recipe set.
  std::sort(names.begin(), names.end());
  EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end());

  for (const char* task : {"selective_copy", "induction", "mqar"}) {
    Recipe r = load(std::string("synthetic/") + task + ".yaml");
    EXPECT_EQ(r.data.kind, DataKind::synthetic);
    EXPECT_EQ(to_string(r.data.task), task);
  }
}

// ---- schema pieces ----------------------------------------------------------------------------

TEST(Schema, EditDistanceAndSuggestions) {
  EXPECT_EQ(edit_distance("lr", "lr"), 0u);
  EXPECT_EQ(edit_distance("lrr", "lr"), 1u);
  EXPECT_EQ(edit_distance("modle", "model"), 1u);  // a swap is one edit
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  const std::vector<std::string> keys = {"lr", "min_lr", "eps", "beta1", "beta2"};
  EXPECT_EQ(closest_name("lrr", keys), "lr");
  EXPECT_EQ(closest_name("beta3", keys), "beta1");  // ties go to the first candidate
  EXPECT_EQ(closest_name("x", keys), "");           // not a plausible typo of anything
  EXPECT_EQ(closest_name("minlr", keys), "min_lr");
}

TEST(Schema, ScalarsAreShortestRoundTrip) {
  EXPECT_EQ(yaml_scalar(0.1, FieldKind::number), "0.1");
  EXPECT_EQ(yaml_scalar(1.0, FieldKind::number), "1.0");
  EXPECT_EQ(yaml_scalar(1e-8, FieldKind::number), "1e-08");
  EXPECT_EQ(yaml_scalar(-std::numeric_limits<double>::infinity(), FieldKind::number), "-.inf");
  EXPECT_EQ(yaml_scalar(int64_t{0}, FieldKind::auto_int), "auto");
  EXPECT_EQ(yaml_scalar(int64_t{0}, FieldKind::integer), "0");
  EXPECT_EQ(yaml_scalar(std::string("a\"b"), FieldKind::string), "\"a\\\"b\"");
  EXPECT_EQ(yaml_scalar(std::string("zoh"), FieldKind::choice), "zoh");
}

TEST(Schema, RangesDescribeThemselves) {
  EXPECT_EQ(Range::closed(1, 8).str(), "[1, 8]");
  EXPECT_EQ(Range::half_open(0, 1).str(), "[0, 1)");
  EXPECT_EQ(Range::above(0).str(), "> 0");
  EXPECT_EQ(Range::at_least(0).str(), ">= 0");
  EXPECT_TRUE(Range::half_open(0, 1).contains(0.0));
  EXPECT_FALSE(Range::half_open(0, 1).contains(1.0));
  EXPECT_FALSE(Range::above(0).contains(0.0));
}

TEST(Schema, DescribeListsEveryField) {
  const std::string text = recipe_schema().describe();
  EXPECT_EQ(static_cast<size_t>(std::count(text.begin(), text.end(), '\n')), recipe_schema().fields().size());
  EXPECT_NE(text.find("model.family"), std::string::npos);
  EXPECT_NE(text.find("mamba | mamba2 | s4d | s5 | jamba"), std::string::npos);
  EXPECT_NE(text.find("required"), std::string::npos);
}

TEST(Schema, FragmentModeSkipsRequiredButNotTypes) {
  testing::TempDir t;
  EXPECT_NO_THROW(check_recipe_fragment(t.write("f.yaml", "optim: {lr: 0.1}\n")));
  std::string bad = t.write("g.yaml", "optim: {lr: x}\n");
  EXPECT_EQ(testing::error_of([&] { check_recipe_fragment(bad); }),
            bad + ":1:13: optim.lr: expected a number, got 'x'");
}

}  // namespace
}  // namespace ssm::config
