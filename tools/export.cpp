// ssm export CHECKPOINT --format hf|safetensors --out DIR [--dtype fp32|bf16]
// ssm eval-logits CHECKPOINT --ids FILE --out FILE.npy   (hidden: the parity check's side)
#include <cstdio>
#include <fstream>
#include <sstream>

#include "data/tokenizer.h"
#include "framework/checkpoint/hf.h"
#include "framework/checkpoint/train_state.h"
#include "framework/ops/ops.h"
#include "tools/commands.h"

namespace ssm::tools {

namespace {

// Parses "4GB", "512MB", "1000000" (bytes) for --max-shard-size.
uint64_t parse_size(const std::string& s) {
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(s, &pos);
  } catch (const std::exception&) {
    SSM_FAIL("export: --max-shard-size '{}' is not a size (e.g. 4GB, 500MB, 1000000)", s);
  }
  std::string unit = s.substr(pos);
  double mult = unit.empty() || unit == "B" ? 1 : unit == "KB" ? 1e3 : unit == "MB" ? 1e6 : unit == "GB" ? 1e9 : 0;
  SSM_CHECK(mult > 0 && v > 0, "export: --max-shard-size '{}' is not a size (e.g. 4GB, 500MB, 1000000)", s);
  return uint64_t(v * mult);
}

// Token ids a sequence file holds: one sequence per line, ids separated by spaces.
Tensor read_ids(const std::string& path) {
  std::ifstream f(path);
  SSM_CHECK(f.good(), "eval-logits: cannot read {}", path);
  std::vector<std::vector<int32_t>> rows;
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream ss(line);
    std::vector<int32_t> row;
    long long id;
    while (ss >> id) row.push_back(int32_t(id));
    SSM_CHECK(ss.eof(), "{}:{}: expected integers separated by spaces", path, rows.size() + 1);
    if (!row.empty()) rows.push_back(std::move(row));
  }
  SSM_CHECK(!rows.empty(), "eval-logits: {} holds no token ids", path);
  for (const auto& r : rows)
    SSM_CHECK(r.size() == rows[0].size(), "eval-logits: {}: every line must hold the same number of ids ({} vs {})",
              path, r.size(), rows[0].size());
  Tensor t = Tensor::empty({int64_t(rows.size()), int64_t(rows[0].size())}, DType::i32);
  int32_t* p = t.data<int32_t>();
  for (const auto& r : rows) p = std::copy(r.begin(), r.end(), p);
  return t;
}

// numpy .npy v1.0, little-endian float32, C order.
void write_npy(const std::string& path, const Tensor& t) {
  Tensor c = contiguous(to(t, DType::f32));
  std::string shape;
  for (int d = 0; d < c.dim(); ++d) shape += std::to_string(c.shape()[d]) + (c.dim() == 1 || d + 1 < c.dim() ? ", " : "");
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + shape + "), }";
  header.append(63 - (10 + header.size()) % 64, ' ');  // magic + version + len + header + '\n' = k * 64
  header += '\n';
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write("\x93NUMPY\x01\x00", 8);
  uint16_t n = uint16_t(header.size());
  char len[2] = {char(n & 0xff), char(n >> 8)};
  f.write(len, 2);
  f.write(header.data(), std::streamsize(header.size()));
  f.write(static_cast<const char*>(c.raw_data()), std::streamsize(c.nbytes()));
  SSM_CHECK(f.good(), "{}: write failed", path);
}

}  // namespace

void register_export(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "export", "Write a checkpoint as Hugging Face safetensors + config.json (Mamba, Mamba-2, Jamba) or as a native "
                "safetensors dump");
  auto where = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto format = std::make_shared<std::string>("hf");
  auto dtype = std::make_shared<std::string>("fp32");
  auto shard = std::make_shared<std::string>("4GB");
  cmd->add_option("checkpoint", *where, "Run directory (uses checkpoints/latest) or checkpoint directory")->required();
  cmd->add_option("--out", *out, "Output directory")->required();
  cmd->add_option("--format", *format, "hf: transformers names and config.json; safetensors: our names, any family")
      ->check(CLI::IsMember({"hf", "safetensors"}))
      ->capture_default_str();
  cmd->add_option("--dtype", *dtype, "Weights dtype in the files")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  cmd->add_option("--max-shard-size", *shard, "Shard the weights above this size (e.g. 4GB, 500MB)")
      ->capture_default_str();
  cmd->callback([=] {
    checkpoint::LoadedCheckpoint c = checkpoint::open_checkpoint(*where);
    checkpoint::ExportOptions o;
    o.format = *format;
    o.dtype = *dtype == "bf16" ? DType::bf16 : DType::f32;
    o.max_shard_bytes = parse_size(*shard);
    // A model trained on our tokenizers carries its specials at fixed ids (data/tokenizer.h).
    config::Recipe r = checkpoint::checkpoint_recipe(c);
    if (!c.index.contains("hf_token_ids") && r.data.kind == config::DataKind::tokens &&
        r.model.vocab_size >= data::Tokenizer::kNumBase)
      o.token_ids = checkpoint::HfTokenIds{data::Tokenizer::kPad, data::Tokenizer::kBos, data::Tokenizer::kEos};
    std::vector<std::string> files = checkpoint::export_checkpoint(c, *out, o);
    std::fprintf(stderr, "exported %s (step %lld) to %s:", c.path.c_str(), static_cast<long long>(c.step()),
                 out->c_str());
    for (const std::string& f : files) std::fprintf(stderr, " %s", f.c_str());
    std::fprintf(stderr, "\n");
  });

  // Hidden: logits of a checkpoint on given token ids, for tools/hf_parity.py.
  auto* ev = app.add_subcommand("eval-logits", "Logits of a checkpoint on token ids (.npy), for parity checks");
  ev->group("");
  auto ev_where = std::make_shared<std::string>();
  auto ids = std::make_shared<std::string>();
  auto ev_out = std::make_shared<std::string>();
  ev->add_option("checkpoint", *ev_where, "Run or checkpoint directory")->required();
  ev->add_option("--ids", *ids, "Token ids: one sequence per line, the same length each")->required();
  ev->add_option("--out", *ev_out, "Output .npy file, float32 (B, L, V)")->required();
  ev->callback([=] {
    checkpoint::LoadedCheckpoint c = checkpoint::open_checkpoint(*ev_where);
    config::Recipe r = checkpoint::checkpoint_recipe(c);
    nn::Init init(uint64_t(r.train.seed));
    nn::LanguageModel model(r.model, init);
    checkpoint::load_training_state(c, model, nullptr, nn::TpPlacement{});
    NoGradGuard ng;
    nn::LmBatch batch;
    batch.ids = read_ids(*ids);
    nn::LmResult res = model.forward(batch);
    write_npy(*ev_out, res.logits);
    std::fprintf(stderr, "logits %s -> %s\n", res.logits.shape().str().c_str(), ev_out->c_str());
  });
}

}  // namespace ssm::tools
