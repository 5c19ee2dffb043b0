// Valid recipes: defaults, overrides, inheritance, the resolved round trip and diff.
#include "framework/config/recipe.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "tests/config/config_test_util.h"

namespace ssm::config {
namespace {

using testing::error_of;
using testing::lines;
using testing::TempDir;

const std::string kMinimal = lines({"model:", "  family: mamba", "  d_model: 64", "  n_layers: 2",
                                    "data:", "  path: d", "train:", "  steps: 10"});

TEST(Recipe, DefaultsFromTheSchema) {
  Recipe r = parse_recipe(kMinimal, "some/dir/minimal.yaml");
  EXPECT_EQ(r.name, "minimal");  // the file's stem
  EXPECT_EQ(r.logging.run_dir, "runs/minimal");
  EXPECT_EQ(r.checkpoint_dir(), "runs/minimal/checkpoints");
  EXPECT_EQ(r.device, Device::cpu());
  EXPECT_EQ(r.precision, Precision::fp32);
  EXPECT_EQ(r.model.family, ModelFamily::mamba);
  EXPECT_EQ(r.model.d_state, 16);
  EXPECT_EQ(r.model.d_conv, 4);
  EXPECT_EQ(r.model.dt_rank, 0);  // auto
  EXPECT_EQ(r.model.resolved_dt_rank(), 4);
  EXPECT_EQ(r.model.dt_limit[0], 0.0);
  EXPECT_TRUE(std::isinf(r.model.dt_limit[1]));
  EXPECT_EQ(r.model.a_init_range[1], 16.0);
  EXPECT_TRUE(r.model.conv_bias);
  EXPECT_FALSE(r.model.proj_bias);
  EXPECT_EQ(r.model.norm_eps, 1e-5);
  EXPECT_EQ(r.data.kind, DataKind::tokens);
  EXPECT_EQ(r.train.batch_size, 8);
  EXPECT_EQ(r.train.seq_len, 256);
  EXPECT_EQ(r.train.seed, 1234);
  EXPECT_EQ(r.train.state, StateMode::reset);
  EXPECT_EQ(r.optim.lr, 3e-4);
  EXPECT_EQ(r.optim.beta2, 0.95);
  EXPECT_EQ(r.optim.schedule, Schedule::cosine);
  EXPECT_EQ(r.parallel.tp, 1);
  EXPECT_EQ(r.parallel.bucket_mb, 25.0);
  EXPECT_EQ(r.checkpoint.keep_last, 3);
  EXPECT_EQ(r.logging.console, ConsoleMode::automatic);
  EXPECT_FALSE(r.kernels.deterministic);
}

TEST(Recipe, FamilyDependentDefaultsAndDerivedSizes) {
  std::string yaml =
      lines({"model:", "  family: mamba2", "  d_model: 96", "  n_layers: 2", "  headdim: 48",
             "data: {kind: synthetic, task: mqar}", "train: {tokens: 2.5e6, batch_size: 4, seq_len: 100}"});
  Recipe r = parse_recipe(yaml, "x.yaml");
  EXPECT_EQ(r.model.d_state, 128);
  EXPECT_EQ(r.model.d_inner(), 192);
  EXPECT_EQ(r.model.ssd_heads(), 4);
  EXPECT_EQ(r.data.task, SyntheticTask::mqar);
  EXPECT_EQ(r.train.tokens, 2'500'000);  // an integer field accepts 2.5e6
  EXPECT_EQ(r.train.steps, 0);
  EXPECT_EQ(r.train.total_steps(), 6250);
  // An explicit d_state wins over the family default.
  EXPECT_EQ(parse_recipe(yaml, "x.yaml", {"model.d_state=16"}).model.d_state, 16);
}

TEST(Recipe, JambaAutoFields) {
  std::string yaml = lines({"model: {family: jamba, d_model: 64, n_layers: 8, n_heads: 4}", "data: {path: d}",
                            "train: {steps: 5}"});
  Recipe r = parse_recipe(yaml, "j.yaml");
  EXPECT_EQ(r.model.n_kv_heads, 0);
  EXPECT_EQ(r.model.resolved_kv_heads(), 4);
  EXPECT_EQ(r.model.resolved_intermediate_size(), 256);
  EXPECT_EQ(r.model.num_experts_per_tok, 2);
}

TEST(Recipe, EmptySectionMeansDefaults) {
  Recipe r = parse_recipe(kMinimal + "kernels:\noptim:\n", "e.yaml");
  EXPECT_EQ(r, parse_recipe(kMinimal, "e.yaml"));
}

TEST(Recipe, StringsKeepTheirText) {
  Recipe r =
      parse_recipe(kMinimal + "name: 'run: #1'\ndevice: cuda:1\ncheckpoint: {dir: \"a b/c\"}\n", "s.yaml");
  EXPECT_EQ(r.name, "run: #1");
  EXPECT_EQ(r.device, Device::cuda(1));
  EXPECT_EQ(r.checkpoint_dir(), "a b/c");
  EXPECT_EQ(r.logging.run_dir, "runs/run: #1");
}

// ---- overrides ------------------------------------------------------------------------------

TEST(Overrides, ApplyInOrderWithTheSameValidation) {
  Recipe r =
      parse_recipe(kMinimal, "o.yaml",
                   {"optim.lr=1e-3", "model.dt_limit=[0.001, .inf]", "name=renamed", "device=cuda",
                    "optim.lr=2e-3", "kernels.deterministic=true", "model.dt_rank=8", "data.path=other dir"});
  EXPECT_EQ(r.optim.lr, 2e-3);  // the later override wins
  EXPECT_EQ(r.model.dt_limit[0], 0.001);
  EXPECT_TRUE(std::isinf(r.model.dt_limit[1]));
  EXPECT_EQ(r.name, "renamed");
  EXPECT_EQ(r.logging.run_dir, "runs/renamed");  // derived defaults follow the override
  EXPECT_EQ(r.device, Device::cuda(0));
  EXPECT_TRUE(r.kernels.deterministic);
  EXPECT_EQ(r.model.dt_rank, 8);
  EXPECT_EQ(r.data.path, "other dir");
}

TEST(Overrides, CanSupplyARequiredKeyAndANewSection) {
  std::string no_path = lines({"model: {family: s4d, d_model: 8, n_layers: 1}", "train: {steps: 1}"});
  EXPECT_EQ(parse_recipe(no_path, "p.yaml", {"data.path=data_cache/x"}).data.path, "data_cache/x");
  EXPECT_EQ(parse_recipe(kMinimal, "p.yaml", {"parallel.tp=2"}).parallel.tp, 2);
}

TEST(Overrides, ErrorsNameTheOverride) {
  auto err = [](const std::string& o) { return error_of([&] { parse_recipe(kMinimal, "o.yaml", {o}); }); };
  EXPECT_EQ(err("train.stepz=5"),
            "override 'train.stepz=5': unknown key 'stepz' in section 'train' (did you mean 'steps'?)");
  EXPECT_EQ(err("train.steps=abc"),
            "override 'train.steps=abc': train.steps: expected an integer, got 'abc'");
  EXPECT_EQ(err("optim.beta1=1"), "override 'optim.beta1=1': optim.beta1: 1 is out of range [0, 1)");
  EXPECT_EQ(err("optm.lr=1"), "override 'optm.lr=1': unknown section 'optm' (did you mean 'optim'?)");
  EXPECT_EQ(err("model.family=rnn"),
            "override 'model.family=rnn': model.family: 'rnn' is not one of: mamba, mamba2, s4d, s5, jamba");
  EXPECT_EQ(err("model.dt_limit=[1, 2"),
            "override 'model.dt_limit=[1, 2': malformed YAML: end of sequence flow not found");
  EXPECT_EQ(err("train.steps"), "override 'train.steps': expected key.path=value (e.g. optim.lr=1e-3)");
  EXPECT_EQ(err("train..steps=1"), "override 'train..steps=1': expected key.path=value (e.g. optim.lr=1e-3)");
  EXPECT_EQ(err("data.path="), "override 'data.path=': data.path: expected a string, got an empty value");
  EXPECT_EQ(err("inherit=x.yaml"),
            "override 'inherit=x.yaml': 'inherit' cannot be overridden; pass the other recipe instead");
  EXPECT_EQ(err("optim=3"), "override 'optim=3': section 'optim' must be a mapping of keys, got '3'");
  // A cross-field rule broken by an override is reported at the override.
  EXPECT_EQ(err("optim.min_lr=1"), "override 'optim.min_lr=1': optim.min_lr = 1 exceeds optim.lr = 0.0003");
}

// ---- inherit --------------------------------------------------------------------------------

TEST(Inherit, ChainMergesMapsAndChildWins) {
  TempDir t;
  t.write("base/root.yaml", lines({"name: root-name", "model:", "  family: mamba", "  d_model: 32",
                                   "  n_layers: 2", "  a_init_range: [2, 4]", "data: {path: d}",
                                   "train: {steps: 10, seq_len: 64}", "optim: {lr: 0.01}"}));
  t.write("base/mid.yaml", lines({"inherit: root.yaml", "model:", "  d_model: 48", "  a_init_range: [1, 3]",
                                  "train:", "  batch_size: 4"}));
  std::string leaf = t.write(
      "leaf.yaml", lines({"inherit: base/mid.yaml", "model:", "  n_layers: 6", "optim:", "  lr: 0.02"}));
  Recipe r = load_recipe(leaf);
  EXPECT_EQ(r.name, "leaf");  // never inherited
  EXPECT_EQ(r.model.family, ModelFamily::mamba);
  EXPECT_EQ(r.model.d_model, 48);
  EXPECT_EQ(r.model.n_layers, 6);
  EXPECT_EQ(r.model.a_init_range[0], 1.0);  // lists are replaced whole
  EXPECT_EQ(r.model.a_init_range[1], 3.0);
  EXPECT_EQ(r.train.steps, 10);
  EXPECT_EQ(r.train.seq_len, 64);
  EXPECT_EQ(r.train.batch_size, 4);
  EXPECT_EQ(r.optim.lr, 0.02);
  // Overrides apply on top of the whole chain.
  EXPECT_EQ(load_recipe(leaf, {"model.d_model=16"}).model.d_model, 16);
}

TEST(Inherit, ParseRecipeResolvesRelativeToItsFileName) {
  TempDir t;
  t.write("cfg/base.yaml", kMinimal);
  Recipe r = parse_recipe("inherit: base.yaml\ntrain: {steps: 3}\n", t.path("cfg/child.yaml"));
  EXPECT_EQ(r.train.steps, 3);
  EXPECT_EQ(r.model.d_model, 64);
}

TEST(Inherit, ErrorsPointAtTheFileHoldingTheValue) {
  TempDir t;
  std::string base =
      t.write("base.yaml", lines({"model:", "  family: mamba", "  d_model: 64", "  n_layers: 2",
                                  "  d_conv: 12", "data: {path: d}", "train: {steps: 1}"}));
  std::string child = t.write("child.yaml", lines({"inherit: base.yaml", "optim: {lr: 0.1}"}));
  EXPECT_EQ(error_of([&] { load_recipe(child); }), base + ":5:11: model.d_conv: 12 is out of range [1, 8]");
  // The child fixing the value makes the chain valid; the child breaking a rule is reported
  // in the child even when the other key of the rule sits in the base.
  t.write("child.yaml", lines({"inherit: base.yaml", "model:", "  d_conv: 4", "optim:", "  min_lr: 1"}));
  EXPECT_EQ(error_of([&] { load_recipe(child); }),
            child + ":5:3: optim.min_lr = 1 exceeds optim.lr = 0.0003");
}

TEST(Inherit, MissingFile) {
  TempDir t;
  std::string child = t.write("dir/child.yaml", lines({"model: {d_model: 8}", "inherit: ../nothere.yaml"}));
  EXPECT_EQ(error_of([&] { load_recipe(child); }),
            child + ":2:10: inherited file '../nothere.yaml' not found (looked for '" +
                t.path("nothere.yaml") + "')");
}

TEST(Inherit, Cycle) {
  TempDir t;
  std::string a = t.write("a.yaml", "inherit: b.yaml\n");
  std::string b = t.write("b.yaml", "model: {}\ninherit: a.yaml\n");
  EXPECT_EQ(error_of([&] { load_recipe(a); }),
            b + ":2:10: inheritance cycle: " + a + " -> " + b + " -> " + a);
  std::string self = t.write("self.yaml", "inherit: self.yaml\n");
  EXPECT_EQ(error_of([&] { load_recipe(self); }), self + ":1:10: inheritance cycle: " + self + " -> " + self);
}

TEST(Inherit, ValueMustBeAFileName) {
  TempDir t;
  std::string p = t.write("x.yaml", "inherit: [a.yaml, b.yaml]\n");
  EXPECT_EQ(error_of([&] { load_recipe(p); }),
            p + ":1:10: inherit: expected the file name of a base recipe, got a list");
}

// ---- resolved YAML and diff -----------------------------------------------------------------

TEST(Resolved, HasEveryFieldAndRoundTrips) {
  Recipe r = parse_recipe(kMinimal, "rt.yaml",
                          {"name=odd \"name\"\\ #x", "model.dt_min=0.00123456789012345", "optim.eps=1e-300",
                           "model.dt_limit=[0.0001, 0.5]", "train.tokens=123456789012", "train.steps=0",
                           "device=cuda:3", "precision=bf16", "logging.console=plain"});
  for (bool docs : {false, true}) {
    std::string text = resolved_yaml(r, docs);
    size_t n_lines = std::count(text.begin(), text.end(), '\n');
    EXPECT_EQ(n_lines, recipe_schema().fields().size() + recipe_schema().sections().size() - 1);
    Recipe back = parse_recipe(text, "resolved.yaml");
    EXPECT_EQ(back, r) << text;
    EXPECT_TRUE(diff(back, r).empty());
  }
  std::string text = resolved_yaml(r);
  EXPECT_NE(text.find("  dt_rank: auto\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  dt_limit: [0.0001, 0.5]\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  lr: 0.0003\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  clip_grad_norm: 1.0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("device: \"cuda:3\"\n"), std::string::npos) << text;
  EXPECT_NE(resolved_yaml(Recipe(r), true).find("# model width D"), std::string::npos);
}

TEST(Resolved, InfinityRoundTrips) {
  Recipe r = parse_recipe(kMinimal, "inf.yaml");
  std::string text = resolved_yaml(r);
  EXPECT_NE(text.find("  dt_limit: [0.0, .inf]\n"), std::string::npos) << text;
  EXPECT_EQ(parse_recipe(text, "inf.yaml"), r);
}

TEST(Diff, ListsChangedFieldsInSchemaOrder) {
  Recipe a = parse_recipe(kMinimal, "d.yaml");
  EXPECT_TRUE(diff(a, a).empty());
  Recipe b = parse_recipe(kMinimal, "d.yaml", {"train.steps=20", "model.d_state=8", "logging.jsonl=false"});
  EXPECT_EQ(diff(a, b), (std::vector<std::string>{"model.d_state", "train.steps", "logging.jsonl"}));
  Recipe c = parse_recipe(kMinimal, "other.yaml");  // a different name, and so run_dir
  EXPECT_EQ(diff(a, c), (std::vector<std::string>{"name", "logging.run_dir"}));
}

TEST(Layout, InfersDpAndMicroBatch) {
  Recipe r = parse_recipe(kMinimal, "l.yaml", {"train.batch_size=16", "parallel.tp=2"});
  ParallelLayout l = resolve_layout(r, 8);
  EXPECT_EQ(l.dp, 4);
  EXPECT_EQ(l.tp, 2);
  EXPECT_EQ(l.micro_batch_size, 4);
  EXPECT_EQ(l.grad_accum, 1);
  r.train.micro_batch_size = 2;
  l = resolve_layout(r, 8);
  EXPECT_EQ(l.grad_accum, 2);
  EXPECT_NE(error_of([&] { resolve_layout(r, 7); }).find("parallel.tp = 2 does not divide the world size 7"),
            std::string::npos);
  r.parallel.dp = 3;
  EXPECT_NE(error_of([&] { resolve_layout(r, 8); }).find("but 8 ranks were launched"), std::string::npos);
  r.parallel.dp = 0;
  r.train.micro_batch_size = 3;
  EXPECT_NE(error_of([&] { resolve_layout(r, 8); }).find("not divisible by micro_batch_size * dp = 3 * 4"),
            std::string::npos);
}

}  // namespace
}  // namespace ssm::config
