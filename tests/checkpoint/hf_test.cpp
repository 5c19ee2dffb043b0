// Hugging Face export/import: the layout table against the models' own parameters, exact
// names/shapes/row orders and config.json fields (anchors.md §3), bit-exact round trips with
// identical logits for Mamba, Mamba-2 and Jamba, export from a tp-sharded checkpoint, bf16,
// shards, refusals, import validation errors, model.init_from and the CLI.
// HfArtifacts.Write leaves exported directories for tests/checkpoint/check_safetensors.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "framework/checkpoint/hf.h"
#include "framework/checkpoint/train_state.h"
#include "framework/ops/ops.h"
#include "framework/train/trainer.h"
#include "tests/support/run_util.h"

namespace ssm::checkpoint {
namespace {

namespace fs = std::filesystem;

// Small models with odd sizes; every family, with and without biases and tied embeddings.
const char* kMamba = "{family: mamba, vocab_size: 40, d_model: 16, n_layers: 2, d_state: 4}";
const char* kMambaBias =
    "{family: mamba, vocab_size: 37, d_model: 24, n_layers: 3, d_state: 5, d_conv: 3, dt_rank: 3, proj_bias: true, "
    "tie_embeddings: false}";
const char* kMamba2 =
    "{family: mamba2, vocab_size: 40, d_model: 16, n_layers: 2, d_state: 4, headdim: 8, n_groups: 2, chunk_size: 4}";
const char* kMamba2Bias =
    "{family: mamba2, vocab_size: 41, d_model: 24, n_layers: 2, d_state: 3, headdim: 6, n_groups: 2, chunk_size: 5, "
    "proj_bias: true, conv_bias: false, tie_embeddings: false, dt_limit: [0.0, 0.5]}";
const char* kJamba =
    "{family: jamba, vocab_size: 40, d_model: 16, n_layers: 4, d_state: 4, n_heads: 4, n_kv_heads: 2, "
    "intermediate_size: 24, attn_layer_period: 4, attn_layer_offset: 1, expert_layer_period: 2, "
    "expert_layer_offset: 1, num_experts: 3, num_experts_per_tok: 2, tie_embeddings: false}";

config::Recipe make_recipe(const std::string& model, const std::string& run_dir) {
  return config::parse_recipe("name: hf-test\nmodel: " + model +
                                  "\ndata: {kind: synthetic, task: induction, synthetic_vocab: 16}\n"
                                  "train: {steps: 2, batch_size: 2, seq_len: 16, eval_every: 0, threads: 1}\n"
                                  "logging: {run_dir: " + run_dir + ", console: plain, tensorboard: false}\n",
                              run_dir + ".yaml");
}

// Moves every parameter off its init (norm weights 1, D 1, zero biases would hide swaps).
void perturb(nn::Module& m, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> n01;
  NoGradGuard ng;
  for (nn::Parameter* p : m.parameters()) {
    std::vector<double> v = p->value.to_vector();
    for (double& x : v) x += 0.1 * n01(rng);
    copy_(p->value.detach(), Tensor::from_vector(v, p->value.shape(), p->value.dtype()));
  }
}

void save(nn::LanguageModel& m, const config::Recipe& r, const std::string& ckpt_dir, nn::TpPlacement tp = {},
          int rank = 0, int world = 1) {
  nlohmann::json meta = {{"step", 5}, {"recipe", config::resolved_yaml(r)}};
  CheckpointWriter w(ckpt_dir, 0, false);
  w.save(snapshot_training_state(m, nullptr, tp, rank == 0, meta, rank, world));
}

struct Saved {
  config::Recipe recipe;
  std::unique_ptr<nn::LanguageModel> model;
};
Saved make_saved(const std::string& model_yaml, const std::string& run_dir, uint32_t seed) {
  Saved s{make_recipe(model_yaml, run_dir), nullptr};
  nn::Init init(seed);
  s.model = std::make_unique<nn::LanguageModel>(s.recipe.model, init);
  perturb(*s.model, seed);
  save(*s.model, s.recipe, run_dir + "/checkpoints");
  return s;
}

std::string raw(const Tensor& t) {
  Tensor c = contiguous(t);
  return std::string(static_cast<const char*>(c.raw_data()), c.nbytes());
}

Tensor logits(nn::LanguageModel& m, int64_t vocab) {
  std::vector<double> ids;
  for (int i = 0; i < 2 * 13; ++i) ids.push_back(double((i * 7 + 3) % vocab));
  NoGradGuard ng;
  nn::LmBatch b;
  b.ids = Tensor::from_vector(ids, {2, 13}, DType::i32);
  return m.forward(b).logits;
}

template <class F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << parts.at(0);
  } catch (const Error& e) {
    for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

Dims shape_in(const SafetensorsDir& d, const std::string& name) {
  EXPECT_TRUE(d.has(name)) << name;
  return d.has(name) ? d.entry(name).shape : Dims{};
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(test::read_file(path)); }

// ---- the table against the models ------------------------------------------------------

TEST(HfLayout, CoversExactlyTheModelsLogicalTensors) {
  for (const char* yaml : {kMamba, kMambaBias, kMamba2, kMamba2Bias, kJamba}) {
    config::Recipe r = make_recipe(yaml, "unused");
    nn::Init init(1);
    nn::LanguageModel m(r.model, init);
    std::map<std::string, Dims> ours;
    for (const LogicalPart& lp : logical_parts(m, {})) ours[lp.name] = lp.global_shape;
    EXPECT_EQ(hf_layout(r.model).logical, ours) << yaml;
  }
}

// ---- names, shapes, row orders, config.json ----------------------------------------------

TEST(HfExport, MambaNamesShapesRowOrderAndConfig) {
  test::TempDir dir("hf-mamba");
  Saved s = make_saved(kMamba, dir / "run", 3);
  LoadedCheckpoint c = open_checkpoint(dir / "run");
  export_checkpoint(c, dir / "hf", {});
  SafetensorsDir d(dir / "hf");
  const int64_t V = 40, D = 16, E = 32, N = 4, R = 1, K = 4;
  EXPECT_EQ(shape_in(d, "backbone.embeddings.weight"), (Dims{V, D}));
  EXPECT_EQ(shape_in(d, "backbone.layers.1.norm.weight"), (Dims{D}));
  EXPECT_EQ(shape_in(d, "backbone.layers.1.mixer.in_proj.weight"), (Dims{2 * E, D}));
  EXPECT_EQ(shape_in(d, "backbone.layers.0.mixer.conv1d.weight"), (Dims{E, 1, K}));
  EXPECT_EQ(shape_in(d, "backbone.layers.0.mixer.conv1d.bias"), (Dims{E}));
  EXPECT_EQ(shape_in(d, "backbone.layers.0.mixer.x_proj.weight"), (Dims{R + 2 * N, E}));
  EXPECT_EQ(shape_in(d, "backbone.layers.0.mixer.dt_proj.weight"), (Dims{E, R}));
  EXPECT_EQ(shape_in(d, "backbone.layers.0.mixer.dt_proj.bias"), (Dims{E}));
  EXPECT_EQ(shape_in(d, "backbone.layers.0.mixer.A_log"), (Dims{E, N}));
  EXPECT_EQ(shape_in(d, "backbone.layers.0.mixer.D"), (Dims{E}));
  EXPECT_EQ(shape_in(d, "backbone.layers.0.mixer.out_proj.weight"), (Dims{D, E}));
  EXPECT_EQ(shape_in(d, "backbone.norm_f.weight"), (Dims{D}));
  EXPECT_FALSE(d.has("lm_head.weight"));  // tied: transformers ties it to the embedding
  EXPECT_FALSE(d.has("backbone.layers.0.mixer.in_proj.bias"));
  EXPECT_EQ(d.names().size(), 1u + 2 * 10 + 1);
  // in_proj rows are [x | z].
  Tensor in = d.read("backbone.layers.1.mixer.in_proj.weight");
  EXPECT_EQ(raw(in.narrow(0, 0, E)), raw(c.read_full("model/layers.1.mixer.in_proj.weight.x")));
  EXPECT_EQ(raw(in.narrow(0, E, E)), raw(c.read_full("model/layers.1.mixer.in_proj.weight.z")));
  EXPECT_EQ(SafetensorsFile(dir / "hf/model.safetensors").metadata().at("format"), "pt");

  const std::string text = test::read_file(dir / "hf/config.json");
  for (const char* bad : {"Infinity", "NaN", "null"}) EXPECT_EQ(text.find(bad), std::string::npos) << bad;
  nlohmann::json j = nlohmann::json::parse(text);
  EXPECT_EQ(j["architectures"], nlohmann::json({"MambaForCausalLM"}));
  EXPECT_EQ(j["model_type"], "mamba");
  EXPECT_EQ(j["use_bias"], false);
  EXPECT_EQ(j["use_conv_bias"], true);
  EXPECT_EQ(j["tie_word_embeddings"], true);
  EXPECT_EQ(j["pad_token_id"], 0);
  EXPECT_EQ(j["bos_token_id"], 0);
  EXPECT_EQ(j["eos_token_id"], 0);
  EXPECT_EQ(j["time_step_rank"], R);
  EXPECT_EQ(j["intermediate_size"], E);
  EXPECT_EQ(j["state_size"], N);
  EXPECT_EQ(j["conv_kernel"], K);
  EXPECT_EQ(j["hidden_size"], D);
  EXPECT_EQ(j["vocab_size"], V);
  EXPECT_EQ(j["rescale_prenorm_residual"], false);  // transformers would rescale loaded weights
  EXPECT_EQ(j["dtype"], "float32");
}

TEST(HfExport, Mamba2NamesShapesRowOrderAndConfig) {
  test::TempDir dir("hf-mamba2");
  Saved s = make_saved(kMamba2, dir / "run", 4);
  LoadedCheckpoint c = open_checkpoint(dir / "run");
  export_checkpoint(c, dir / "hf", {});
  SafetensorsDir d(dir / "hf");
  const int64_t D = 16, E = 32, H = 4, G = 2, N = 4, K = 4, C = E + 2 * G * N;
  EXPECT_EQ(shape_in(d, "backbone.layers.0.mixer.in_proj.weight"), (Dims{2 * E + 2 * G * N + H, D}));
  EXPECT_EQ(shape_in(d, "backbone.layers.0.mixer.conv1d.weight"), (Dims{C, 1, K}));
  EXPECT_EQ(shape_in(d, "backbone.layers.0.mixer.conv1d.bias"), (Dims{C}));
  for (const char* n : {"dt_bias", "A_log", "D"}) EXPECT_EQ(shape_in(d, std::string("backbone.layers.1.mixer.") + n), (Dims{H}));
  EXPECT_EQ(shape_in(d, "backbone.layers.1.mixer.norm.weight"), (Dims{E}));
  EXPECT_EQ(shape_in(d, "backbone.layers.1.mixer.out_proj.weight"), (Dims{D, E}));
  // Rows [z | x | B | C | dt], conv channels [x | B | C].
  Tensor in = d.read("backbone.layers.1.mixer.in_proj.weight");
  int64_t at = 0;
  for (auto [seg, n] : std::vector<std::pair<std::string, int64_t>>{{"z", E}, {"x", E}, {"B", G * N}, {"C", G * N}, {"dt", H}}) {
    EXPECT_EQ(raw(in.narrow(0, at, n)), raw(c.read_full("model/layers.1.mixer.in_proj.weight." + seg))) << seg;
    at += n;
  }
  Tensor conv = d.read("backbone.layers.1.mixer.conv1d.weight");
  at = 0;
  for (auto [seg, n] : std::vector<std::pair<std::string, int64_t>>{{"x", E}, {"B", G * N}, {"C", G * N}}) {
    EXPECT_EQ(raw(conv.narrow(0, at, n)), raw(c.read_full("model/layers.1.mixer.conv1d.weight." + seg))) << seg;
    at += n;
  }
  nlohmann::json j = read_json(dir / "hf/config.json");
  EXPECT_EQ(j["model_type"], "mamba2");
  EXPECT_EQ(j["num_heads"], H);
  EXPECT_EQ(j["head_dim"], 8);
  EXPECT_EQ(j["n_groups"], G);
  EXPECT_EQ(j["chunk_size"], 4);
  EXPECT_EQ(j["use_bias"], false);
  EXPECT_EQ(j["tie_word_embeddings"], true);  // transformers' Mamba-2 default is false: written explicitly
  EXPECT_EQ(j["pad_token_id"], 1);
  EXPECT_EQ(j["bos_token_id"], 0);
  EXPECT_EQ(j["eos_token_id"], 2);
  EXPECT_FALSE(j.contains("time_step_limit"));  // (0, inf) is the default; inf has no JSON spelling

  // A finite clamp is written; an infinite upper bound with a lower one becomes FLT_MAX.
  config::ModelConfig m = s.recipe.model;
  m.dt_limit = {0.0, 0.5};
  EXPECT_EQ(hf_layout(m).config["time_step_limit"], nlohmann::json({0.0, 0.5}));
  m.dt_limit = {0.01, INFINITY};
  EXPECT_EQ(hf_layout(m).config["time_step_limit"], nlohmann::json({0.01, double(std::numeric_limits<float>::max())}));
}

TEST(HfExport, JambaNamesShapesPerExpertKeysAndConfig) {
  test::TempDir dir("hf-jamba");
  Saved s = make_saved(kJamba, dir / "run", 5);
  LoadedCheckpoint c = open_checkpoint(dir / "run");
  export_checkpoint(c, dir / "hf", {});
  SafetensorsDir d(dir / "hf");
  const int64_t V = 40, D = 16, E = 32, N = 4, R = 1, F = 24, X = 3;
  EXPECT_EQ(shape_in(d, "model.embed_tokens.weight"), (Dims{V, D}));
  EXPECT_EQ(shape_in(d, "model.layers.0.input_layernorm.weight"), (Dims{D}));
  EXPECT_EQ(shape_in(d, "model.layers.0.pre_ff_layernorm.weight"), (Dims{D}));
  EXPECT_EQ(shape_in(d, "model.layers.0.mamba.in_proj.weight"), (Dims{2 * E, D}));
  EXPECT_EQ(shape_in(d, "model.layers.0.mamba.x_proj.weight"), (Dims{R + 2 * N, E}));
  EXPECT_EQ(shape_in(d, "model.layers.0.mamba.dt_layernorm.weight"), (Dims{R}));
  EXPECT_EQ(shape_in(d, "model.layers.0.mamba.b_layernorm.weight"), (Dims{N}));
  EXPECT_EQ(shape_in(d, "model.layers.0.mamba.c_layernorm.weight"), (Dims{N}));
  EXPECT_EQ(shape_in(d, "model.layers.0.feed_forward.gate_proj.weight"), (Dims{F, D}));  // dense on layer 0
  EXPECT_EQ(shape_in(d, "model.layers.0.feed_forward.down_proj.weight"), (Dims{D, F}));
  EXPECT_EQ(shape_in(d, "model.layers.1.self_attn.q_proj.weight"), (Dims{D, D}));  // attention on layer 1
  EXPECT_EQ(shape_in(d, "model.layers.1.self_attn.k_proj.weight"), (Dims{8, D}));
  EXPECT_EQ(shape_in(d, "model.layers.1.self_attn.v_proj.weight"), (Dims{8, D}));
  EXPECT_EQ(shape_in(d, "model.layers.1.self_attn.o_proj.weight"), (Dims{D, D}));
  EXPECT_EQ(shape_in(d, "model.layers.3.feed_forward.router.weight"), (Dims{X, D}));  // MoE on layers 1, 3
  EXPECT_EQ(shape_in(d, "model.layers.3.feed_forward.experts.2.gate_proj.weight"), (Dims{F, D}));
  EXPECT_EQ(shape_in(d, "model.layers.3.feed_forward.experts.2.up_proj.weight"), (Dims{F, D}));
  EXPECT_EQ(shape_in(d, "model.layers.3.feed_forward.experts.2.down_proj.weight"), (Dims{D, F}));
  EXPECT_FALSE(d.has("model.layers.3.feed_forward.experts.3.gate_proj.weight"));
  EXPECT_FALSE(d.has("model.layers.1.mamba.in_proj.weight"));
  EXPECT_EQ(shape_in(d, "model.final_layernorm.weight"), (Dims{D}));
  EXPECT_EQ(shape_in(d, "lm_head.weight"), (Dims{V, D}));
  // Expert e of the HF file is slice e of our fused [X, F, D] tensor.
  Tensor up = c.read_full("model/layers.3.ffn.experts.up_proj");
  EXPECT_EQ(raw(d.read("model.layers.3.feed_forward.experts.1.up_proj.weight")), raw(up.select(0, 1)));
  nlohmann::json j = read_json(dir / "hf/config.json");
  EXPECT_EQ(j["model_type"], "jamba");
  EXPECT_EQ(j["attn_layer_period"], 4);
  EXPECT_EQ(j["attn_layer_offset"], 1);
  EXPECT_EQ(j["expert_layer_period"], 2);
  EXPECT_EQ(j["expert_layer_offset"], 1);
  EXPECT_EQ(j["num_experts"], X);
  EXPECT_EQ(j["num_experts_per_tok"], 2);
  EXPECT_EQ(j["num_attention_heads"], 4);
  EXPECT_EQ(j["num_key_value_heads"], 2);
  EXPECT_EQ(j["intermediate_size"], F);
  EXPECT_EQ(j["mamba_d_state"], N);
  EXPECT_EQ(j["mamba_dt_rank"], R);
  EXPECT_EQ(j["mamba_expand"], 2);
  EXPECT_EQ(j["mamba_conv_bias"], true);
  EXPECT_EQ(j["mamba_proj_bias"], false);
  EXPECT_EQ(j["use_mamba_kernels"], false);
  EXPECT_EQ(j["tie_word_embeddings"], false);
  EXPECT_EQ(j["pad_token_id"], 0);
  EXPECT_EQ(j["bos_token_id"], 1);
  EXPECT_EQ(j["eos_token_id"], 2);
}

// ---- round trips -------------------------------------------------------------------------

// export -> import gives bit-identical tensors and identical logits.
void round_trip(const char* yaml, uint32_t seed) {
  test::TempDir dir("hf-rt");
  Saved s = make_saved(yaml, dir / "run", seed);
  LoadedCheckpoint c = open_checkpoint(dir / "run");
  export_checkpoint(c, dir / "hf", {});
  ImportResult imp = import_hf(dir / "hf", dir / "imported", make_recipe(kMamba, "ignored"));
  EXPECT_EQ(imp.recipe.model, s.recipe.model) << yaml;
  EXPECT_EQ(imp.recipe.logging.run_dir, dir / "imported");
  LoadedCheckpoint back = open_checkpoint(dir / "imported");
  EXPECT_EQ(back.step(), 0);
  int n = 0;
  for (const LogicalTensor& t : c.tensors) {
    if (t.name.rfind("model/", 0) != 0) continue;
    ASSERT_NE(back.find(t.name), nullptr) << t.name;
    EXPECT_EQ(raw(back.read_full(t.name)), raw(c.read_full(t.name))) << yaml << " " << t.name;
    EXPECT_EQ(back.read_full("optim/exp_avg/" + t.name.substr(6)).to_vector(),
              std::vector<double>(size_t(Dims(t.shape).numel()), 0.0));
    ++n;
  }
  EXPECT_EQ(int64_t(n), imp.num_tensors);
  EXPECT_TRUE(fs::exists(dir / "imported/recipe.yaml"));
  nn::Init init(77);
  nn::LanguageModel m(imp.recipe.model, init);
  load_training_state(back, m, nullptr, {});
  EXPECT_EQ(raw(logits(m, imp.recipe.model.vocab_size)), raw(logits(*s.model, s.recipe.model.vocab_size))) << yaml;
  // Exporting the imported checkpoint again reproduces the same files' tensors.
  export_checkpoint(back, dir / "hf2", {});
  SafetensorsDir a(dir / "hf"), b(dir / "hf2");
  ASSERT_EQ(a.names(), b.names());
  for (const std::string& name : a.names()) EXPECT_EQ(raw(a.read(name)), raw(b.read(name))) << name;
  EXPECT_EQ(read_json(dir / "hf/config.json"), read_json(dir / "hf2/config.json"));
}

TEST(HfRoundTrip, Mamba) { round_trip(kMamba, 11); }
TEST(HfRoundTrip, MambaWithBiasesUntied) { round_trip(kMambaBias, 12); }
TEST(HfRoundTrip, Mamba2) { round_trip(kMamba2, 13); }
TEST(HfRoundTrip, Mamba2WithBiasesUntiedClamp) { round_trip(kMamba2Bias, 14); }
TEST(HfRoundTrip, Jamba) { round_trip(kJamba, 15); }

// A checkpoint written by a tp = 2 run (a shard file per rank, segments split per rank)
// exports to exactly what the single-rank model with the same init exports.
TEST(HfExport, FromTensorParallelShardsEqualsSingleRank) {
  test::TempDir dir("hf-tp");
  const char* yaml = kMamba2;
  config::Recipe r = make_recipe(yaml, dir / "run");
  nlohmann::json merged;
  for (int rank = 0; rank < 2; ++rank) {
    nn::Init init(21, {rank, 2});
    nn::LanguageModel m(r.model, init);
    const std::string sub = dir / ("rank" + std::to_string(rank));
    save(m, r, sub, {rank, 2}, rank, 2);
    nlohmann::json ix = read_json(sub + "/step_00000005/index.json");
    if (rank == 0) {
      merged = ix;
    } else {
      for (auto& [name, t] : ix["tensors"].items())
        for (const auto& p : t["pieces"]) merged["tensors"][name]["pieces"].push_back(p);
    }
  }
  fs::create_directories(dir / "run/checkpoints/step_00000005");
  for (int rank = 0; rank < 2; ++rank) {
    std::string f = "rank_0000" + std::to_string(rank) + ".h5";
    fs::copy_file(dir / ("rank" + std::to_string(rank) + "/step_00000005/" + f), dir / "run/checkpoints/step_00000005/" + f);
  }
  test::write_file(dir / "run/checkpoints/step_00000005/index.json", merged.dump());
  LoadedCheckpoint c = open_checkpoint(dir / "run/checkpoints/step_00000005");
  ASSERT_EQ(c.find("model/layers.0.mixer.in_proj.weight.z")->pieces.size(), 2u);  // really sharded
  export_checkpoint(c, dir / "hf_tp", {});

  nn::Init init(21);
  nn::LanguageModel single(r.model, init);
  save(single, r, dir / "single/checkpoints");
  export_checkpoint(open_checkpoint(dir / "single"), dir / "hf_single", {});
  SafetensorsDir a(dir / "hf_tp"), b(dir / "hf_single");
  ASSERT_EQ(a.names(), b.names());
  for (const std::string& name : a.names()) EXPECT_EQ(raw(a.read(name)), raw(b.read(name))) << name;
}

TEST(HfExport, Bf16AndShardedExportsImportBack) {
  test::TempDir dir("hf-bf16");
  Saved s = make_saved(kJamba, dir / "run", 31);
  LoadedCheckpoint c = open_checkpoint(dir / "run");
  ExportOptions o;
  o.dtype = DType::bf16;
  o.max_shard_bytes = 6000;
  std::vector<std::string> files = export_checkpoint(c, dir / "hf", o);
  EXPECT_GT(files.size(), 3u);
  EXPECT_TRUE(fs::exists(dir / "hf/model.safetensors.index.json"));
  EXPECT_EQ(read_json(dir / "hf/config.json")["dtype"], "bfloat16");
  SafetensorsDir d(dir / "hf");
  EXPECT_GT(d.num_files(), 1u);
  EXPECT_EQ(d.entry("model.layers.0.mamba.A_log").dtype_name, "BF16");
  NoGradGuard ng;
  Tensor want = to(c.read_full("model/layers.0.mixer.A_log"), DType::bf16);
  EXPECT_EQ(raw(d.read("model.layers.0.mamba.A_log")), raw(want));  // round to nearest even
  ImportResult imp = import_hf(dir / "hf", dir / "imported", make_recipe(kMamba, "x"));
  LoadedCheckpoint back = open_checkpoint(dir / "imported");
  Tensor widened = back.read_full("model/layers.0.mixer.A_log");
  EXPECT_EQ(widened.dtype(), DType::f32);
  EXPECT_EQ(widened.to_vector(), want.to_vector());
}

// ---- refusals and validation -------------------------------------------------------------

TEST(HfExport, RefusesFamiliesTransformersCannotLoad) {
  test::TempDir dir("hf-refuse");
  Saved s = make_saved("{family: s4d, vocab_size: 20, d_model: 8, n_layers: 1, d_state: 4}", dir / "s4d", 1);
  LoadedCheckpoint c = open_checkpoint(dir / "s4d");
  expect_error([&] { export_checkpoint(c, dir / "hf", {}); }, {"s4d", "no Hugging Face", "--format safetensors"});
  // The native dump works for any family, under our names.
  ExportOptions native;
  native.format = "safetensors";
  export_checkpoint(c, dir / "native", native);
  SafetensorsDir d(dir / "native");
  for (const LogicalTensor& t : c.tensors) {
    if (t.name.rfind("model/", 0) == 0) {
      EXPECT_EQ(raw(d.read(t.name.substr(6))), raw(c.read_full(t.name))) << t.name;
    }
  }
  EXPECT_EQ(SafetensorsFile(dir / "native/model.safetensors").metadata().at("ssm_family"), "s4d");
  EXPECT_EQ(config::parse_recipe(test::read_file(dir / "native/recipe.yaml"), "r.yaml").model, s.recipe.model);

  config::ModelConfig m = make_recipe(kMamba2, "x").model;
  m.d_intermediate = 8;
  expect_error([&] { hf_layout(m); }, {"d_intermediate = 8", "Mamba2ForCausalLM", "--format safetensors"});
  m = make_recipe(kJamba, "x").model;
  m.bcdt_norm = false;
  expect_error([&] { hf_layout(m); }, {"bcdt_norm"});
}

TEST(HfImport, ValidatesNamesShapesAndConfig) {
  test::TempDir dir("hf-bad");
  Saved s = make_saved(kMamba, dir / "run", 41);
  export_checkpoint(open_checkpoint(dir / "run"), dir / "hf", {});
  const config::Recipe base = make_recipe(kMamba, "x");
  std::vector<NamedTensor> good;
  {
    SafetensorsDir d(dir / "hf");
    for (const std::string& n : d.names()) good.push_back({n, d.read(n)});
  }
  auto rewrite = [&](std::vector<NamedTensor> ts) { write_safetensors(dir / "hf/model.safetensors", ts); };
  int run = 0;
  auto import = [&] { import_hf(dir / "hf", dir / ("imp" + std::to_string(run++)), base); };

  std::vector<NamedTensor> ts = good;
  ts.erase(std::find_if(ts.begin(), ts.end(), [](const NamedTensor& t) { return t.name == "backbone.layers.1.mixer.D"; }));
  rewrite(ts);
  expect_error(import, {"1 missing tensor(s): backbone.layers.1.mixer.D", "MambaForCausalLM"});
  ts = good;
  ts.push_back({"backbone.layers.0.mixer.extra.weight", Tensor::zeros({2})});
  rewrite(ts);
  expect_error(import, {"1 unexpected tensor(s): backbone.layers.0.mixer.extra.weight"});
  ts = good;
  for (NamedTensor& t : ts)
    if (t.name == "backbone.layers.0.mixer.A_log") t.data = Tensor::zeros({32, 5});
  rewrite(ts);
  expect_error(import, {"backbone.layers.0.mixer.A_log is [32, 5] in the file, config.json implies [32, 4]"});
  ts = good;
  for (NamedTensor& t : ts)
    if (t.name == "backbone.layers.0.mixer.D") t.data = Tensor::zeros({32}, DType::i32);
  rewrite(ts);
  expect_error(import, {"backbone.layers.0.mixer.D has dtype I32"});
  rewrite(good);

  nlohmann::json cfg = read_json(dir / "hf/config.json");
  auto with_config = [&](const nlohmann::json& j) { test::write_file(dir / "hf/config.json", j.dump()); };
  nlohmann::json j = cfg;
  j["model_type"] = "falcon_mamba";
  with_config(j);
  expect_error(import, {"model_type 'falcon_mamba' is not supported"});
  j = cfg;
  j.erase("hidden_size");
  with_config(j);
  expect_error(import, {"config.json", "missing required key 'hidden_size'"});
  j = cfg;
  j["state_size"] = 8;
  with_config(j);
  expect_error(import, {"is [32, 4] in the file, config.json implies [32, 8]"});
  test::write_file(dir / "hf/config.json", "{not json");
  expect_error(import, {"config.json", "not valid JSON"});
  with_config(cfg);
  EXPECT_NO_THROW(import());
  // The run directory must be new.
  expect_error([&] { import_hf(dir / "hf", dir / "imp" + std::to_string(run - 1), base); }, {"already holds checkpoints"});
}

// transformers writes Mamba-2's default time_step_limit as Infinity (v4) or
// {"__float__": "Infinity"} (v5); both read as (0, inf).
TEST(HfImport, ReadsPythonInfinityInConfig) {
  test::TempDir dir("hf-inf");
  Saved s = make_saved(kMamba2, dir / "run", 51);
  export_checkpoint(open_checkpoint(dir / "run"), dir / "hf", {});
  std::string text = test::read_file(dir / "hf/config.json");
  const std::string key = "\"model_type\": \"mamba2\",";
  ASSERT_NE(text.find(key), std::string::npos);
  int i = 0;
  for (const char* lim : {R"([0.0, Infinity])", R"([0.0, {"__float__": "Infinity"}])", R"([0.001, 0.25])"}) {
    std::string t = text;
    t.replace(t.find(key), key.size(), key + " \"time_step_limit\": " + lim + ", \"note\": \"NaN Infinity\",");
    test::write_file(dir / "hf/config.json", t);
    ImportResult r = import_hf(dir / "hf", dir / ("imp" + std::to_string(i++)), make_recipe(kMamba, "x"));
    if (i < 3) {
      EXPECT_EQ(r.recipe.model.dt_limit[0], 0.0);
      EXPECT_TRUE(std::isinf(r.recipe.model.dt_limit[1]));
    } else {
      EXPECT_EQ(r.recipe.model.dt_limit[0], 0.001);
      EXPECT_EQ(r.recipe.model.dt_limit[1], 0.25);
    }
  }
}

// ---- model.init_from ---------------------------------------------------------------------

TEST(HfInitFrom, LoadsWeightsIntoTheRecipesModelOrNamesTheDifferences) {
  test::TempDir dir("hf-init");
  Saved s = make_saved(kJamba, dir / "run", 61);
  export_checkpoint(open_checkpoint(dir / "run"), dir / "hf", {});
  config::Recipe r = make_recipe(kJamba, dir / "ft");
  r.model.init_from = dir / "hf";
  train::Trainer t(r);
  std::vector<std::pair<std::string, nn::Parameter*>> want = s.model->named_parameters();
  std::vector<std::pair<std::string, nn::Parameter*>> got = t.model().named_parameters();
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(raw(got[i].second->value), raw(want[i].second->value)) << want[i].first;

  config::Recipe bad = make_recipe(kJamba, dir / "ft2");
  bad.model.init_from = dir / "hf";
  bad.model.d_state = 8;
  bad.model.num_experts = 4;
  expect_error([&] { train::Trainer t2(bad); },
               {"model.init_from", "model.d_state (recipe 8, config.json 4)", "model.num_experts (recipe 4, config.json 3)"});
}

// ---- the CLI -----------------------------------------------------------------------------

#ifdef SSM_BIN
TEST(HfCli, ExportImportInspectGenerateResume) {
  test::TempDir dir("hf-cli");
  // vocab 260 covers the byte tokenizer that `ssm generate` falls back to.
  Saved s = make_saved("{family: mamba2, vocab_size: 260, d_model: 16, n_layers: 1, d_state: 4, headdim: 8, "
                       "chunk_size: 8}", dir / "run", 71);
  test::RunResult r = test::run_process({SSM_BIN, "export", "run", "--out", "hf"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir / "hf/config.json"));
  r = test::run_process({SSM_BIN, "import", "hf", "--out", "imp"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ssm resume imp"), std::string::npos) << r.output;
  r = test::run_process({SSM_BIN, "inspect", "imp"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("model/layers.0.mixer.in_proj.weight.dt"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("all verified"), std::string::npos) << r.output;
  r = test::run_process({SSM_BIN, "generate", "imp", "--prompt", "ab", "--max-tokens", "4"}, dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = test::run_process({SSM_BIN, "resume", "imp", "train.steps=2", "logging.console=plain",
                         "logging.tensorboard=false"},
                        dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("done: 2 more steps"), std::string::npos) << r.output;

  Saved s4 = make_saved("{family: s5, vocab_size: 20, d_model: 8, n_layers: 1, d_state: 4}", dir / "s5", 1);
  r = test::run_process({SSM_BIN, "export", "s5", "--out", "hf_s5"}, dir.path());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--format safetensors"), std::string::npos) << r.output;
  r = test::run_process({SSM_BIN, "export", "s5", "--format", "safetensors", "--out", "native_s5", "--dtype", "bf16"},
                        dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = test::run_process({SSM_BIN, "import", "native_s5", "--out", "imp_s5"}, dir.path());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("no config.json"), std::string::npos) << r.output;
}
#endif

// ---- artifacts for the Python check (tests/checkpoint/check_safetensors.py) ---------------

TEST(HfArtifacts, Write) {
  const char* env = std::getenv("SSM_TEST_ARTIFACT_DIR");
  test::TempDir scratch("hf-art");
  const fs::path out = env && *env ? fs::path(env) : fs::path(scratch.path());
  nlohmann::json expected;
  struct Case {
    const char* name;
    const char* yaml;
    DType dtype;
    uint64_t shard;
  };
  for (const Case& k : {Case{"mamba", kMambaBias, DType::f32, kDefaultMaxShardBytes},
                        Case{"mamba2", kMamba2, DType::f32, kDefaultMaxShardBytes},
                        Case{"jamba", kJamba, DType::bf16, 8000}}) {
    fs::remove_all(out / k.name);
    fs::remove_all(out / (std::string(k.name) + "-run"));
    Saved s = make_saved(k.yaml, (out / (std::string(k.name) + "-run")).string(), 81);
    ExportOptions o;
    o.dtype = k.dtype;
    o.max_shard_bytes = k.shard;
    export_checkpoint(open_checkpoint((out / (std::string(k.name) + "-run")).string()), (out / k.name).string(), o);
    SafetensorsDir d((out / k.name).string());
    for (const std::string& n : d.names()) {
      Tensor t = d.read(n);
      double sum = 0;
      for (double v : t.to_vector()) sum += v;
      expected[k.name][n] = {{"shape", t.shape().vec()}, {"dtype", d.entry(n).dtype_name}, {"sum", sum}};
    }
  }
  test::write_file((out / "expected.json").string(), expected.dump(1));
}

}  // namespace
}  // namespace ssm::checkpoint
