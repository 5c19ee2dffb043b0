// The training loop behind `ssm train RECIPE`.
//
//   config::Recipe r = config::load_recipe("recipes/quickstart.yaml", {"train.steps=50"});
//   train::Trainer t(r);
//   train::TrainSummary s = t.run();      // writes RUN_DIR/{recipe.yaml, metrics.jsonl, ...}
//
// One optimizer step = batch_size sequences split into micro-batches (gradient
// accumulation); the loss is the mean over every counted target of the step, whatever the
// micro-batching. Batches are a pure function of (seed, step, rank), so a resumed run sees
// exactly the batches it would have seen.
//
// Distributed (every rank of `mpirun -np N ssm train` builds a Trainer over the world):
//   train::Trainer t(r, {}, runtime.world());   // grid dp × tp from parallel.{dp,tp}
// Each dp rank reads its own rows of every step (the tp ranks of a group read the same
// rows); gradients are averaged over dp by bucketed all-reduces overlapping the last
// backward (dist::GradReducer) or, with parallel.zero: 1, reduce-scattered into the ZeRO-1
// optimizer (dist::ZeroAdamW); the clipping norm is global (split parameters summed over
// tp, replicated ones counted once); losses and evaluations are reduced over dp so every
// rank sees the same numbers. Only global rank 0 prints and writes metrics; checkpoints are
// written by all ranks together (each its own pieces) and load into any layout.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "framework/checkpoint/checkpoint.h"
#include "framework/config/recipe.h"
#include "framework/dist/communicator.h"
#include "framework/nn/lm.h"
#include "framework/optim/adamw.h"
#include "framework/optim/schedule.h"

namespace ssm::data {
class BatchSource;
struct Batch;
class Tokenizer;
}  // namespace ssm::data

namespace ssm::dist {
class GradReducer;
class ProcessGrid;
class ZeroAdamW;
}  // namespace ssm::dist

namespace ssm::train {

class MultiSink;

// Where a run starts: fresh, or from a checkpoint ("latest" = RUN_DIR/checkpoints/latest).
struct ResumeFrom {
  std::string where;  // "" = fresh run; "latest"; or a checkpoint / run directory
};

struct TrainSummary {
  int64_t steps = 0;                 // optimizer steps taken in this run
  double first_loss = 0.0;           // training loss of the first step of this run
  double last_loss = 0.0;            // training loss of the last step
  std::vector<double> losses;        // training loss of every step of this run (same on every rank)
  std::optional<double> first_val;   // evaluation at step 0 (before training)
  std::optional<double> last_val;    // final evaluation
  std::optional<double> last_accuracy;  // synthetic tasks: final answer accuracy
  double tokens_per_s = 0.0;
  std::string run_dir;
  bool interrupted = false;  // stopped early by SIGINT/SIGTERM after checkpointing
};

struct EvalResult {
  double loss = 0.0;
  double accuracy = 0.0;      // fraction of counted targets predicted exactly
  double bits_per_byte = 0.0; // token datasets: loss in bits per byte of text
  int64_t count = 0;
};

class Trainer {
 public:
  // `world`: the ranks of this run (null: this process alone). Collective over `world`: every
  // rank constructs its Trainer and calls run(), save_checkpoint() and evaluate() in step.
  explicit Trainer(config::Recipe recipe, ResumeFrom resume = {}, std::shared_ptr<dist::Communicator> world = nullptr);
  ~Trainer();
  TrainSummary run();

  nn::LanguageModel& model() { return *model_; }
  const config::Recipe& recipe() const { return recipe_; }
  EvalResult evaluate();
  // Tokenizer of a token dataset (byte-level for synthetic tasks).
  const data::Tokenizer& tokenizer() const { return *tokenizer_; }
  int64_t step() const { return step_; }
  const dist::ProcessGrid& grid() const { return *grid_; }
  // Global rank 0: prints, writes the run directory's recipe and metrics.
  bool is_main_rank() const;
  // Saves a checkpoint of the current state (waits for the previous write to commit).
  void save_checkpoint(bool wait);
  // Called between steps: true when SIGINT/SIGTERM asked the run to stop.
  static bool stop_requested();

 private:
  // Runs one optimizer step; returns (loss, grad-norm).
  std::pair<double, double> train_step(int64_t step);
  // Global gradient norm (tp-aware), clipping to optim.clip_grad_norm; AdamW path only.
  double clip_gradients();
  // True when `local` is true on some rank (collective over the world).
  bool any_rank(bool local) const;
  // Checkpoint name prefix of the carried recurrent state of this rank.
  std::string carry_prefix() const;
  void build_data();
  std::string write_run_dir();
  void resume_from(const std::string& where);

  config::Recipe recipe_;
  config::ParallelLayout layout_;
  std::unique_ptr<dist::ProcessGrid> grid_;
  nn::TpPlacement tp_;
  std::unique_ptr<data::BatchSource> train_data_;
  std::unique_ptr<data::Tokenizer> tokenizer_;
  struct EvalData;
  std::unique_ptr<EvalData> eval_data_;
  std::unique_ptr<nn::LanguageModel> model_;
  std::unique_ptr<optim::AdamW> optimizer_;      // parallel.zero: 0
  std::unique_ptr<dist::GradReducer> reducer_;   // with optimizer_, when dp > 1
  std::unique_ptr<dist::ZeroAdamW> zero_;        // parallel.zero: 1
  optim::LrSchedule schedule_;
  std::unique_ptr<MultiSink> sinks_;
  std::unique_ptr<checkpoint::CheckpointWriter> writer_;
  std::optional<int64_t> resumed_at_;
  std::vector<std::vector<nn::LayerState>> carry_;  // per micro-batch, train.state = carry
  Rng rng_;  // training-time randomness (dropout); saved in checkpoints
  int64_t step_ = 0;
  int64_t tokens_seen_ = 0;
};

}  // namespace ssm::train
