// Checkpoints: RUN_DIR/checkpoints/step_NNNNNNNN/{index.json, rank_RRRRR.h5}.
//
//   CheckpointWriter w(ckpt_dir, /*keep_last=*/3, /*async=*/true);
//   w.save(snapshot_training_state(model, opt, meta));   // copies, then returns; a thread writes
//   ...
//   w.wait();                                            // rethrows a failed write
//   LoadedCheckpoint c = open_checkpoint("runs/x");      // newest committed one ("latest")
//   load_training_state(c, model, opt);                 // reshards when layouts differ
//
// Layout on disk: one HDF5 file per rank that owns unique state, one plain dataset per
// logical tensor piece ("model/layers.0.mixer.in_proj.weight.z", "optim/m/...", readable by
// h5py/h5dump), and index.json: format version, step, tokens seen, resolved recipe, parallel
// layout, every logical tensor's global shape, dtype and pieces (file, dataset, start, shape,
// checksum), RNG state, data cursor, schedule state. Packed projections are stored as their
// logical segments, so any tensor-parallel layout is plain slicing of these tensors.
//
// Commit protocol: everything is written under step_NNNNNNNN.tmp-PID, each file fsynced, the
// directory renamed to step_NNNNNNNN and its parent fsynced; only then is `latest` replaced
// (temp file + rename). A crash at any instant leaves the previous checkpoint loadable, and
// `keep_last` prunes old checkpoints only after a newer one committed.
//
// Multi-rank jobs (a writer given the world communicator; the directory on a filesystem
// every rank sees): at save() rank 0 creates step_NNNNNNNN.tmp-PID0 and the ranks meet at a
// barrier; then each rank's writer thread writes and fsyncs its rank_RRRRR.h5 and, last, its
// tensor table rank_RRRRR.json (or rank_RRRRR.failed with the reason). Rank 0's thread waits
// for every table, merges them into index.json (checking that the pieces of every tensor
// cover it exactly once), and commits as above. No collective runs on the writer threads.
#pragma once
#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "framework/core/tensor.h"
#include "framework/dist/communicator.h"

namespace ssm::checkpoint {

inline constexpr int kFormatVersion = 1;

struct TensorPiece {
  std::string file;              // relative to the checkpoint directory
  std::string dataset;           // HDF5 dataset path
  std::vector<int64_t> start;    // offset of this piece in the global tensor
  std::vector<int64_t> shape;    // shape of this piece
  uint64_t checksum = 0;         // checksum64 of the piece's bytes
};

struct LogicalTensor {
  std::string name;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;  // global
  std::vector<TensorPiece> pieces;
};

// One piece a rank contributes: a contiguous host copy owned by the snapshot.
struct SaveItem {
  std::string name;   // logical tensor name
  Tensor data;        // contiguous CPU copy of this rank's piece
  Dims global_shape;
  Dims start;         // offset of the piece in the global tensor
};

struct Snapshot {
  int64_t step = 0;
  nlohmann::json meta;  // step, tokens_seen, recipe, layout, rng, data cursor, schedule...
  std::vector<SaveItem> items;
  int rank = 0, world = 1;
};

// Writes snapshots, at most one in flight; the snapshot (and its buffers) belongs to the
// writer until the write committed.
class CheckpointWriter {
 public:
  // `world`: the ranks that save together (null or size 1: this process alone). With
  // several ranks the constructor, save() and wait_all() are collective over `world`.
  CheckpointWriter(std::string dir, int keep_last, bool async, std::shared_ptr<dist::Communicator> world = nullptr);
  // Waits for this rank's write in flight (errors are reported to stderr); rank 0 stops
  // waiting for the other ranks' shards (the checkpoint is then not committed): a writer
  // destroyed with a save in flight means the run is being torn down by an error.
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;
  // Waits for the previous write, then writes `snap` (async: on the writer thread).
  void save(Snapshot snap);
  // Blocks until this rank's write is done (rank 0: committed); rethrows its error.
  void wait();
  // wait(), then (multi-rank) a barrier: afterwards the last save is committed for everyone.
  void wait_all();
  const std::string& dir() const { return dir_; }
  // Path of the last committed checkpoint ("" before the first).
  std::string last_committed() const;

 private:
  void write_now(const Snapshot& snap, const std::string& tmp_dir);
  // Rank 0 of a multi-rank save: waits for the other ranks' tables, returns the merged one.
  nlohmann::json gather_tables(const std::string& tmp_dir, nlohmann::json own) const;
  void commit(const Snapshot& snap, const std::string& tmp_dir, const nlohmann::json& tensors);
  std::string tmp_dir_for(int64_t step) const;
  std::string dir_;
  int keep_last_;
  bool async_;
  std::shared_ptr<dist::Communicator> world_;  // null: single process
  int64_t tag_ = 0;                             // rank 0's pid: names the shared temp directory
  std::atomic<bool> cancel_{false};             // set by the destructor: stop waiting for other ranks
  std::thread thread_;
  mutable std::mutex mu_;
  std::exception_ptr error_;
  std::string last_;
};

struct LoadedCheckpoint {
  std::string path;  // the step_NNNNNNNN directory
  nlohmann::json index;
  std::vector<LogicalTensor> tensors;
  const LogicalTensor* find(const std::string& name) const;
  // The slice [start, start + shape) of a logical tensor as a CPU tensor of its dtype,
  // assembled from whichever pieces cover it (resharding).
  Tensor read(const std::string& name, const Dims& start, const Dims& shape) const;
  Tensor read_full(const std::string& name) const;
  int64_t step() const { return index.at("step").get<int64_t>(); }
};

// `where`: a checkpoint directory, a checkpoints directory or a run directory (then the
// `latest` pointer is followed). Parses index.json and checks every piece's file and
// dataset exist; `verify` also recomputes every checksum (errors name file and dataset).
LoadedCheckpoint open_checkpoint(const std::string& where, bool verify = true);
std::string resolve_checkpoint_dir(const std::string& where);

// Creates and fsyncs `path` with `text` via a temp file + rename.
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace ssm::checkpoint
