#include "framework/train/trainer.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "data/dataset.h"
#include "data/sampler.h"
#include "data/synthetic.h"
#include "data/tokenizer.h"
#include <atomic>
#include <csignal>
#include <unistd.h>

#include "framework/checkpoint/hf.h"
#include "framework/checkpoint/train_state.h"
#include "framework/dist/dist.h"
#include "framework/ops/ops.h"
#include "framework/optim/clip.h"
#include "framework/train/metrics.h"
#include "kernels/cpu/adamw.h"

namespace ssm::train {

namespace fs = std::filesystem;

struct Trainer::EvalData {
  std::unique_ptr<data::ValidationSampler> val;        // token datasets
  const data::SyntheticTaskSource* synthetic = nullptr;  // synthetic tasks (eval_batch)
  double bytes_per_token = 1.0;
};

namespace {

std::atomic<int> g_signals{0};

// First SIGINT/SIGTERM: finish the step, checkpoint, exit 0. Second: exit at once; every
// checkpoint write goes to a temp directory renamed on commit, so nothing is corrupted.
void on_signal(int) {
  if (g_signals.fetch_add(1) >= 1) {
    const char msg[] = "ssm: second signal, exiting now (the last committed checkpoint is intact)\n";
    ssize_t w = ::write(2, msg, sizeof msg - 1);
    (void)w;
    std::_Exit(130);
  }
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

Tensor ids_tensor(const std::vector<int32_t>& v, int64_t rows, int64_t len, int64_t row0, int64_t nrows) {
  Tensor t = Tensor::empty({nrows, len}, DType::i32);
  std::copy(v.begin() + row0 * len, v.begin() + (row0 + nrows) * len, t.data<int32_t>());
  (void)rows;
  return t;
}

int64_t count_targets(const data::Batch& b, int64_t row0, int64_t nrows) {
  int64_t n = 0;
  for (int64_t i = row0 * b.seq_len; i < (row0 + nrows) * b.seq_len; ++i) n += b.targets[size_t(i)] != data::kIgnoreTarget;
  return n;
}

// Zeroes the recurrent state of rows that start a new stream (carry mode).
void reset_rows(std::vector<nn::LayerState>& states, const data::Batch& b, int64_t row0, int64_t nrows) {
  std::vector<double> keep(static_cast<size_t>(nrows));
  bool all = true;
  for (int64_t r = 0; r < nrows; ++r) {
    keep[size_t(r)] = b.continues[size_t(row0 + r)] ? 1.0 : 0.0;
    all = all && keep[size_t(r)] == 1.0;
  }
  if (all) return;
  NoGradGuard ng;
  for (nn::LayerState& st : states) {
    for (Tensor* t : {&st.conv, &st.ssm, &st.ssm_im}) {
      if (!t->defined()) continue;
      Dims mshape = Dims::filled(t->dim(), 1);
      mshape[0] = nrows;
      *t = mul(*t, Tensor::from_vector(keep, mshape, t->dtype(), t->device()));
    }
  }
}

// Identifies this build across ranks (computed once per process: it reads the executable).
const std::string& binary_id() {
  static const std::string id = std::to_string(dist::binary_fingerprint());
  return id;
}

// Σ g² of a gradient, in double.
double grad_sum_squares(const Tensor& g) {
  NoGradGuard ng;
  const Tensor c = contiguous(g);
  switch (c.dtype()) {
    case DType::f32: return kernels::cpu::sum_squares(c.data<float>(), c.numel());
    case DType::f64: return kernels::cpu::sum_squares(c.data<double>(), c.numel());
    default: SSM_FAIL("clip_grad_norm: gradient {} must be f32 or f64", g.describe());
  }
}

}  // namespace

bool Trainer::stop_requested() { return g_signals.load() > 0; }

bool Trainer::is_main_rank() const { return grid_->world()->rank() == 0; }

bool Trainer::any_rank(bool local) const {
  if (grid_->world()->size() == 1) return local;
  Tensor t = Tensor::from_vector({local ? 1.0 : 0.0}, {1}, DType::i32);
  grid_->world()->all_reduce(t, dist::ReduceOp::max);
  return t.item() != 0;
}

Trainer::Trainer(config::Recipe recipe, ResumeFrom resume, std::shared_ptr<dist::Communicator> world)
    : recipe_(std::move(recipe)), rng_(uint64_t(recipe_.train.seed), /*stream=*/1) {
  SSM_CHECK(recipe_.device.is_cpu() || cuda_compiled(),
            "recipe asks for device {} but this binary was built without CUDA support", recipe_.device.str());
  SSM_CHECK(recipe_.device.is_cpu(), "device {}: the trainer runs on cpu only in this build stage", recipe_.device.str());
  if (!world) world = dist::self_communicator("world");
  if (recipe_.train.threads > 0) omp_set_num_threads(recipe_.train.threads);
  // A stale binary on one node or an override given to some ranks only would otherwise show
  // up much later as a hang or as silently different numbers.
  if (world->size() > 1) dist::check_consistency(*world, config::resolved_yaml(recipe_), binary_id());
  layout_ = config::resolve_layout(recipe_, world->size());
  grid_ = std::make_unique<dist::ProcessGrid>(world, layout_.tp, layout_.dp);
  build_data();
  if (recipe_.model.vocab_size == 0) recipe_.model.vocab_size = int(train_data_->vocab_size());
  SSM_CHECK(recipe_.model.vocab_size >= train_data_->vocab_size(),
            "model.vocab_size {} is smaller than the data's vocabulary of {} tokens", recipe_.model.vocab_size,
            train_data_->vocab_size());
  nn::check_tp_layout(recipe_.model, layout_.tp);
  tp_ = nn::TpPlacement::over(grid_->tp());
  nn::Init init(uint64_t(recipe_.train.seed), tp_);  // every layout slices the same full tensors
  model_ = std::make_unique<nn::LanguageModel>(recipe_.model, init);
  // model.init_from: start from a Hugging Face model's weights (a resumed run loads its own).
  if (!recipe_.model.init_from.empty() && resume.where.empty()) checkpoint::load_hf(recipe_.model.init_from, *model_, tp_);

  optim::NamedParams params;
  std::vector<std::string> no_decay;
  for (auto& [name, p] : model_->named_parameters()) {
    params.emplace_back(name, p->value);
    if (!p->weight_decay) no_decay.push_back(name);
  }
  optim::AdamWOptions o;
  o.lr = recipe_.optim.lr;
  o.beta1 = recipe_.optim.beta1;
  o.beta2 = recipe_.optim.beta2;
  o.eps = recipe_.optim.eps;
  o.weight_decay = recipe_.optim.weight_decay;
  o.no_decay = [no_decay](const std::string& name, const Tensor&) {
    return std::find(no_decay.begin(), no_decay.end(), name) != no_decay.end();
  };
  if (recipe_.parallel.zero == 1) {
    dist::ZeroAdamWOptions zo;
    zo.lr = o.lr;
    zo.beta1 = o.beta1;
    zo.beta2 = o.beta2;
    zo.eps = o.eps;
    zo.weight_decay = o.weight_decay;
    zo.no_decay = o.no_decay;
    zero_ = std::make_unique<dist::ZeroAdamW>(params, grid_->dp(), zo);
  } else {
    optimizer_ = std::make_unique<optim::AdamW>(params, o);
    if (layout_.dp > 1) {
      std::vector<Tensor> ps;
      for (auto& [name, p] : params) ps.push_back(p);
      reducer_ = std::make_unique<dist::GradReducer>(ps, grid_->dp(),
                                                     dist::GradReducerOptions{recipe_.parallel.bucket_mb});
    }
  }
  schedule_.kind = recipe_.optim.schedule == config::Schedule::cosine     ? optim::LrKind::cosine
                   : recipe_.optim.schedule == config::Schedule::linear   ? optim::LrKind::linear
                                                                          : optim::LrKind::constant;
  schedule_.lr = recipe_.optim.lr;
  schedule_.min_lr = recipe_.optim.min_lr;
  schedule_.warmup_steps = recipe_.optim.warmup_steps;
  schedule_.total_steps = recipe_.train.total_steps();
  schedule_.validate();
  if (recipe_.checkpoint.every > 0 || !resume.where.empty())
    writer_ = std::make_unique<checkpoint::CheckpointWriter>(recipe_.checkpoint_dir(), recipe_.checkpoint.keep_last,
                                                             recipe_.checkpoint.async, grid_->world());
  if (!resume.where.empty()) resume_from(resume.where == "latest" ? recipe_.checkpoint_dir() : resume.where);
}

// Keys whose change would make a resumed run a different run.
static bool resume_breaking(const std::string& key) {
  // The parallel layout may change: checkpoints hold logical tensors and load into any layout.
  static const char* prefixes[] = {"model.", "data.", "train.seq_len", "train.batch_size", "train.seed",
                                   "train.state", "optim.", "precision"};
  for (const char* p : prefixes)
    if (key.rfind(p, 0) == 0) return true;
  return false;
}

void Trainer::resume_from(const std::string& where) {
  // Rank 0 verifies every checksum (a corrupt file stops the whole job); the others only
  // check that the files and datasets they may read exist.
  checkpoint::LoadedCheckpoint c = checkpoint::open_checkpoint(where, /*verify=*/is_main_rank());
  config::Recipe saved = config::parse_recipe(c.index.at("recipe").get<std::string>(), c.path + "/index.json");
  saved.model.vocab_size = saved.model.vocab_size ? saved.model.vocab_size : recipe_.model.vocab_size;
  std::vector<std::string> bad;
  for (const std::string& k : config::diff(saved, recipe_))
    if (resume_breaking(k)) bad.push_back(k);
  if (!bad.empty()) {
    std::string list;
    for (const std::string& k : bad) list += (list.empty() ? "" : ", ") + k;
    SSM_FAIL("{}: cannot resume: the recipe changed {} (allowed changes: train.steps/tokens, eval, logging, "
             "checkpoint)", c.path, list);
  }
  if (zero_)
    checkpoint::load_zero_state(c, *model_, *zero_, tp_);
  else
    checkpoint::load_training_state(c, *model_, optimizer_.get(), tp_);
  step_ = c.index.at("step").get<int64_t>();
  tokens_seen_ = c.index.value("tokens_seen", int64_t(0));
  const int64_t opt_steps = c.index.value("optimizer_steps", step_);
  if (zero_)
    zero_->set_step_count(opt_steps);
  else
    optimizer_->set_step_count(opt_steps);
  if (recipe_.train.state == config::StateMode::carry && c.index.contains("carry_micro_batches")) {
    // The carried recurrent state is per rank (rows of this dp rank, channels of this tp
    // rank) and is not resharded.
    const auto& saved = c.index.at("layout");
    const int sdp = saved.value("dp", 1), stp = saved.value("tp", 1);
    SSM_CHECK(sdp == layout_.dp && stp == layout_.tp,
              "{}: train.state = carry: the carried recurrent state was saved at dp {} × tp {} and cannot be "
              "resharded to dp {} × tp {} (resume with the same layout, or train.state: reset)", c.path, sdp, stp,
              layout_.dp, layout_.tp);
    int64_t micro = c.index.at("carry_micro_batches").get<int64_t>();
    carry_.assign(size_t(micro), model_->new_states());
    for (int64_t m = 0; m < micro; ++m)
      for (size_t l = 0; l < carry_[size_t(m)].size(); ++l) {
        nn::LayerState& st = carry_[size_t(m)][l];
        std::string base = carry_prefix() + fmt::format("{}/{}/", m, l);
        if (c.find(base + "conv")) st.conv = c.read_full(base + "conv");
        if (c.find(base + "ssm")) st.ssm = c.read_full(base + "ssm");
        if (c.find(base + "ssm_im")) st.ssm_im = c.read_full(base + "ssm_im");
      }
  }
  if (c.index.contains("rng")) {
    const auto& j = c.index.at("rng");
    rng_.set_state({j.at("seed").get<uint64_t>(), j.at("stream").get<uint64_t>(), j.at("offset").get<uint64_t>()});
  }
  resumed_at_ = step_;
  if (is_main_rank())
    std::fprintf(stderr, "resumed from %s at step %lld\n", c.path.c_str(), static_cast<long long>(step_));
}

void Trainer::save_checkpoint(bool wait) {
  if (!writer_)
    writer_ = std::make_unique<checkpoint::CheckpointWriter>(recipe_.checkpoint_dir(), recipe_.checkpoint.keep_last,
                                                             recipe_.checkpoint.async, grid_->world());
  nlohmann::json meta;
  meta["step"] = step_;
  meta["tokens_seen"] = tokens_seen_;
  meta["optimizer_steps"] = zero_ ? zero_->step_count() : optimizer_->step_count();
  meta["recipe"] = config::resolved_yaml(recipe_);
  meta["layout"] = {{"dp", layout_.dp}, {"tp", layout_.tp}, {"zero", recipe_.parallel.zero}};
  meta["data_cursor"] = {{"next_step", step_}, {"seed", recipe_.train.seed}};
  RngState rs = rng_.state();
  meta["rng"] = {{"seed", rs.seed}, {"stream", rs.stream}, {"offset", rs.offset}};
  meta["schedule"] = {{"lr", schedule_.lr}, {"min_lr", schedule_.min_lr}, {"warmup_steps", schedule_.warmup_steps},
                      {"total_steps", schedule_.total_steps}};
  // Each element once: replicated tensors by rank 0, tp shards by dp rank 0, ZeRO moment
  // shards by every rank (those of replicated tensors by the dp group of tp rank 0).
  const int rank = grid_->world()->rank();
  checkpoint::SaveRole role{rank == 0, grid_->dp_rank() == 0, grid_->tp_rank() == 0};
  checkpoint::Snapshot snap = checkpoint::snapshot_training_state(*model_, optimizer_.get(), zero_.get(), tp_, role,
                                                                  meta, rank, grid_->world()->size());
  if (!carry_.empty()) {
    snap.meta["carry_micro_batches"] = int64_t(carry_.size());
    for (size_t m = 0; m < carry_.size(); ++m)
      for (size_t l = 0; l < carry_[m].size(); ++l) {
        const nn::LayerState& st = carry_[m][l];
        std::string base = carry_prefix() + fmt::format("{}/{}/", m, l);
        for (auto [name, t] : {std::pair{"conv", &st.conv}, std::pair{"ssm", &st.ssm}, std::pair{"ssm_im", &st.ssm_im}}) {
          if (!t->defined()) continue;
          Tensor copy = clone(to(t->detach(), Device::cpu()));
          snap.items.push_back({base + name, copy, copy.shape(), Dims::filled(copy.dim(), 0)});
        }
      }
  }
  writer_->save(std::move(snap));
  if (wait) writer_->wait_all();
}

std::string Trainer::carry_prefix() const {
  // Single process: the historical names; otherwise one set per rank.
  if (grid_->world()->size() == 1) return "carry/";
  return fmt::format("carry/dp{}.tp{}/", grid_->dp_rank(), grid_->tp_rank());
}

Trainer::~Trainer() = default;

void Trainer::build_data() {
  const config::TrainConfig& t = recipe_.train;
  eval_data_ = std::make_unique<EvalData>();
  if (recipe_.data.kind == config::DataKind::tokens) {
    data::Dataset ds = data::Dataset::open(recipe_.data.path);
    tokenizer_ = std::make_unique<data::Tokenizer>(ds.tokenizer());
    data::SamplerConfig sc;
    sc.mode = t.state == config::StateMode::carry ? data::SampleMode::kCarry : data::SampleMode::kReset;
    sc.seq_len = t.seq_len;
    sc.global_batch = t.batch_size;
    sc.dp_rank = grid_->dp_rank();  // the tp ranks of a dp group read the same rows
    sc.dp_size = grid_->dp_size();
    sc.seed = uint64_t(t.seed);
    sc.eos_id = ds.index.eos_id;
    if (recipe_.model.vocab_size > 0) check_model_vocab(ds, recipe_.model.vocab_size);
    train_data_ = std::make_unique<data::TokenSampler>(ds.train, sc);
    if (ds.val.size() > t.seq_len) {
      data::SamplerConfig vc = sc;
      vc.mode = data::SampleMode::kReset;
      int64_t windows = int64_t(t.eval_batches) * layout_.micro_batch_size;
      eval_data_->val = std::make_unique<data::ValidationSampler>(ds.val, vc, windows);
      // Bytes of text per token, for bits-per-byte.
      int64_t n = std::min<int64_t>(ds.val.size(), 1 << 16), bytes = 0;
      std::vector<int32_t> buf(static_cast<size_t>(n));
      ds.val.read(0, n, buf.data());
      for (int32_t id : buf) bytes += id < data::Tokenizer::kNumBytes || id >= data::Tokenizer::kNumBase
                                          ? int64_t(tokenizer_->token_bytes(id).size())
                                          : 0;
      eval_data_->bytes_per_token = n > 0 && bytes > 0 ? double(bytes) / double(n) : 1.0;
    }
  } else {
    tokenizer_ = std::make_unique<data::Tokenizer>(data::Tokenizer::byte_level());
    data::SyntheticConfig sc;
    const config::DataConfig& d = recipe_.data;
    sc.task = d.task == config::SyntheticTask::selective_copy ? data::SyntheticTask::kSelectiveCopy
              : d.task == config::SyntheticTask::induction   ? data::SyntheticTask::kInductionHeads
                                                             : data::SyntheticTask::kAssociativeRecall;
    sc.vocab_size = d.synthetic_vocab;
    sc.seq_len = t.seq_len;
    sc.num_items = d.task == config::SyntheticTask::selective_copy ? d.num_tokens_to_copy : d.num_pairs;
    sc.num_queries = d.num_queries;
    sc.seed = uint64_t(t.seed);
    sc.global_batch = t.batch_size;
    sc.dp_rank = grid_->dp_rank();
    sc.dp_size = grid_->dp_size();
    auto src = std::make_unique<data::SyntheticTaskSource>(sc);
    eval_data_->synthetic = src.get();
    train_data_ = std::move(src);
  }
}

std::string Trainer::write_run_dir() {
  const std::string& dir = recipe_.logging.run_dir;
  if (!is_main_rank()) return dir;
  fs::create_directories(dir);
  std::ofstream f(dir + "/recipe.yaml");
  f << config::resolved_yaml(recipe_, /*docs=*/false);
  SSM_CHECK(f.good(), "{}: cannot write recipe.yaml", dir);
  return dir;
}

std::pair<double, double> Trainer::train_step(int64_t step) {
  data::Batch b = train_data_->batch(step);  // this dp rank's rows
  const int64_t mb = layout_.micro_batch_size, L = b.seq_len;
  const int64_t micro = b.rows / mb;
  const int dp = grid_->dp_size();
  // The step's loss is the mean over every counted target of every dp rank.
  int64_t total = count_targets(b, 0, b.rows);
  if (dp > 1) {
    Tensor t = Tensor::from_vector({double(total)}, {1}, DType::i64);
    grid_->dp()->all_reduce(t);
    total = int64_t(t.item());
  }
  total = std::max<int64_t>(1, total);
  const bool carry = recipe_.train.state == config::StateMode::carry;
  if (carry && carry_.empty()) carry_.assign(size_t(micro), model_->new_states());
  double loss_sum = 0;
  if (zero_)
    zero_->zero_grad();
  else
    optimizer_->zero_grad();
  for (int64_t m = 0; m < micro; ++m) {
    nn::LmBatch lb;
    lb.ids = ids_tensor(b.inputs, b.rows, L, m * mb, mb);
    lb.targets = ids_tensor(b.targets, b.rows, L, m * mb, mb);
    if (!b.seq_idx.empty()) lb.seq_idx = ids_tensor(b.seq_idx, b.rows, L, m * mb, mb);
    if (carry) {
      reset_rows(carry_[size_t(m)], b, m * mb, mb);
      lb.states = &carry_[size_t(m)];
    }
    nn::LmResult r = model_->forward(lb);
    // Weight each micro-batch by its share of the step's counted targets; × dp because the
    // dp reduction averages the ranks' gradients.
    double w = double(count_targets(b, m * mb, mb)) / double(total);
    loss_sum += r.loss.item() * w;
    Tensor weighted = mul(r.loss, w * double(dp));
    if (reducer_ && m == micro - 1)
      backward(weighted, Tensor(), reducer_->hook());  // buckets reduce while backward runs
    else
      backward(weighted);
    if (carry)
      for (nn::LayerState& st : carry_[size_t(m)]) st.detach();
  }
  if (dp > 1) {
    Tensor t = Tensor::from_vector({loss_sum}, {1}, DType::f64);
    grid_->dp()->all_reduce(t);
    loss_sum = t.item();
  }
  const double lr = schedule_.lr_at(step);
  double gnorm = 0;
  if (zero_) {
    dist::ZeroClip clip;
    clip.max_norm = recipe_.optim.clip_grad_norm;
    if (grid_->tp_size() > 1) {
      clip.tp = grid_->tp();
      std::vector<std::string> replicated;
      for (auto& [name, p] : model_->named_parameters())
        if (p->partition.replicated()) replicated.push_back(name);
      clip.tp_replicated = [replicated](const std::string& name) {
        return std::find(replicated.begin(), replicated.end(), name) != replicated.end();
      };
    }
    gnorm = zero_->step(lr, clip);
  } else {
    if (reducer_) reducer_->finish();  // every grad is now the dp mean
    gnorm = clip_gradients();
    optimizer_->step(lr);
  }
  tokens_seen_ += b.rows * L * dp;
  return {loss_sum, gnorm};
}

double Trainer::clip_gradients() {
  const double max_norm = recipe_.optim.clip_grad_norm;
  if (grid_->tp_size() == 1) return optim::clip_grad_norm(optimizer_->params(), max_norm);
  // Split parameters hold a different slice on each tp rank: their squares are summed over
  // tp. Replicated ones (norms, the MoE router) have the same gradient on every tp rank and
  // count once.
  double sq[2] = {0.0, 0.0};  // split, replicated
  std::vector<Tensor> grads;
  for (nn::Parameter* p : model_->parameters()) {
    Tensor g = p->value.grad();
    if (!g.defined()) continue;
    sq[p->partition.replicated() ? 1 : 0] += grad_sum_squares(g);
    grads.push_back(g);
  }
  Tensor split = Tensor::from_vector({sq[0]}, {1}, DType::f64);
  grid_->tp()->all_reduce(split);
  const double norm = std::sqrt(split.item() + sq[1]);
  if (max_norm > 0 && std::isfinite(norm) && norm > max_norm) {
    NoGradGuard ng;
    const double scale = max_norm / (norm + 1e-6);
    for (const Tensor& g : grads) mul_(g, scale);
  }
  return norm;
}

EvalResult Trainer::evaluate() {
  NoGradGuard ng;
  EvalResult e;
  double loss_sum = 0;
  int64_t count = 0, correct = 0;
  auto run = [&](const data::Batch& b) {
    const int64_t mb = layout_.micro_batch_size;
    for (int64_t r0 = 0; r0 < b.rows; r0 += mb) {
      int64_t n = std::min(mb, b.rows - r0);
      nn::LmBatch lb;
      lb.ids = ids_tensor(b.inputs, b.rows, b.seq_len, r0, n);
      lb.targets = ids_tensor(b.targets, b.rows, b.seq_len, r0, n);
      if (!b.seq_idx.empty()) lb.seq_idx = ids_tensor(b.seq_idx, b.rows, b.seq_len, r0, n);
      nn::LmResult r = model_->forward(lb);
      loss_sum += r.ce.item() * double(r.count);
      count += r.count;
      correct += r.correct;
    }
  };
  if (eval_data_->val) {
    for (int64_t k = 0; k < eval_data_->val->num_batches(); ++k) run(eval_data_->val->batch(k));
  } else if (eval_data_->synthetic) {
    for (int64_t k = 0; k < recipe_.train.eval_batches; ++k) run(eval_data_->synthetic->eval_batch(k));
  }
  if (grid_->dp_size() > 1) {  // each dp rank evaluated its own rows
    Tensor t = Tensor::from_vector({loss_sum, double(count), double(correct)}, {3}, DType::f64);
    grid_->dp()->all_reduce(t);
    const std::vector<double> v = t.to_vector();
    loss_sum = v[0];
    count = int64_t(v[1]);
    correct = int64_t(v[2]);
  }
  e.count = count;
  if (count > 0) {
    e.loss = loss_sum / double(count);
    e.accuracy = double(correct) / double(count);
    e.bits_per_byte = e.loss / std::log(2.0) / eval_data_->bytes_per_token;
  }
  return e;
}

TrainSummary Trainer::run() {
  TrainSummary s;
  s.run_dir = write_run_dir();
  const int64_t total = recipe_.train.total_steps();
  if (step_ >= total && is_main_rank())
    std::fprintf(stderr, "nothing to train: the run is at step %lld and train.steps is %lld (raise train.steps to "
                 "continue)\n", static_cast<long long>(step_), static_cast<long long>(total));
  // Only global rank 0 prints and writes metrics (every rank has the same reduced values).
  sinks_ = is_main_rank() ? make_run_sinks(recipe_.logging, total, resumed_at_) : std::make_unique<MultiSink>();
  install_signal_handlers();
  auto log_eval = [&](int64_t step) {
    EvalResult e = evaluate();
    if (e.count == 0) return e;
    Scalars sc{{"val_loss", e.loss}};
    if (eval_data_->synthetic)
      sc.emplace_back("val_accuracy", e.accuracy);
    else
      sc.emplace_back("val_bpb", e.bits_per_byte);
    sinks_->log(step, sc);
    return e;
  };
  const bool do_eval = recipe_.train.eval_every > 0;
  if (do_eval && step_ == 0) {
    EvalResult e = log_eval(0);
    if (e.count) s.first_val = e.loss;
  }
  auto t0 = std::chrono::steady_clock::now();
  int64_t tokens0 = tokens_seen_;
  auto window_start = t0;
  int64_t window_tokens = tokens_seen_;
  for (; step_ < total; ++step_) {
    auto [loss, gnorm] = train_step(step_);
    SSM_CHECK(std::isfinite(loss), "training diverged: loss is {} at step {}", loss, step_);
    if (s.steps == 0) s.first_loss = loss;
    s.last_loss = loss;
    s.losses.push_back(loss);
    ++s.steps;
    int64_t done = step_ + 1;
    if (done % recipe_.train.log_every == 0 || done == total) {
      auto now = std::chrono::steady_clock::now();
      double dt = std::chrono::duration<double>(now - window_start).count();
      double tps = dt > 0 ? double(tokens_seen_ - window_tokens) / dt : 0.0;
      window_start = now;
      window_tokens = tokens_seen_;
      double mem_mb = double(allocator_for(recipe_.device).stats().peak_allocated) / 1e6;
      sinks_->log(done, {{"loss", loss}, {"lr", schedule_.lr_at(step_)}, {"grad_norm", gnorm}, {"tokens_per_s", tps},
                         {"peak_mem_mb", mem_mb}});
    }
    if (do_eval && (done % recipe_.train.eval_every == 0 || done == total)) {
      EvalResult e = log_eval(done);
      if (e.count) {
        s.last_val = e.loss;
        if (eval_data_->synthetic) s.last_accuracy = e.accuracy;
      }
    }
    if (any_rank(stop_requested())) {  // every rank stops at the same step
      ++step_;
      sinks_->flush();
      if (is_main_rank())
        std::fprintf(stderr, "\nssm: stop requested: saving a checkpoint at step %lld...\n",
                     static_cast<long long>(step_));
      save_checkpoint(/*wait=*/true);
      if (is_main_rank())
        std::fprintf(stderr, "ssm: checkpoint committed; resume with `ssm resume %s`\n", s.run_dir.c_str());
      s.interrupted = true;
      break;
    }
    if (recipe_.checkpoint.every > 0 && (done % recipe_.checkpoint.every == 0 || done == total)) {
      ++step_;  // the checkpoint holds the state after `done` steps
      save_checkpoint(/*wait=*/done == total);
      --step_;
    }
  }
  if (writer_) writer_->wait_all();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.tokens_per_s = secs > 0 ? double(tokens_seen_ - tokens0) / secs : 0.0;
  sinks_->flush();
  return s;
}

}  // namespace ssm::train
