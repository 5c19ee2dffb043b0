#include "framework/checkpoint/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "framework/checkpoint/h5.h"
#include "framework/ops/view.h"

namespace ssm::checkpoint {

namespace fs = std::filesystem;

namespace {

void fsync_path(const std::string& path, bool dir) {
  int fd = ::open(path.c_str(), dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  SSM_CHECK(fd >= 0, "{}: cannot open for fsync", path);
  int rc = ::fsync(fd);
  ::close(fd);
  SSM_CHECK(rc == 0, "{}: fsync failed (disk full or I/O error)", path);
}

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%08lld", static_cast<long long>(step));
  return buf;
}

std::string rank_file(int rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "rank_%05d.h5", rank);
  return buf;
}

std::vector<int64_t> vec(const Dims& d) { return d.vec(); }

}  // namespace

void write_file_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    f.flush();
    SSM_CHECK(f.good(), "{}: write failed (disk full?)", tmp);
  }
  fsync_path(tmp, false);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  SSM_CHECK(!ec, "{}: rename to {} failed: {}", tmp, path, ec.message());
  fsync_path(fs::path(path).parent_path().empty() ? "." : fs::path(path).parent_path().string(), true);
}

// ---- writer --------------------------------------------------------------------------------

namespace {

bool multi(const std::shared_ptr<dist::Communicator>& w) { return w && w->size() > 1; }

std::string rank_table(int rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "rank_%05d.json", rank);
  return buf;
}

std::string rank_failed(int rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "rank_%05d.failed", rank);
  return buf;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

CheckpointWriter::CheckpointWriter(std::string dir, int keep_last, bool async, std::shared_ptr<dist::Communicator> world)
    : dir_(std::move(dir)), keep_last_(keep_last), async_(async), world_(std::move(world)) {
  tag_ = ::getpid();
  if (multi(world_)) {
    // Every rank names the shared temp directory after rank 0's pid.
    Tensor t = Tensor::empty({1}, DType::i64);
    t.data<int64_t>()[0] = tag_;
    world_->broadcast(t, 0);
    tag_ = t.data<int64_t>()[0];
  }
}

CheckpointWriter::~CheckpointWriter() {
  cancel_ = true;
  try {
    wait();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ssm: error: checkpoint write failed: %s\n", e.what());
  }
}

std::string CheckpointWriter::last_committed() const {
  std::lock_guard<std::mutex> lk(mu_);
  return last_;
}

void CheckpointWriter::wait() {
  if (thread_.joinable()) thread_.join();
  std::exception_ptr e;
  {
    std::lock_guard<std::mutex> lk(mu_);
    std::swap(e, error_);
  }
  if (e) std::rethrow_exception(e);
}

void CheckpointWriter::wait_all() {
  wait();
  if (multi(world_)) world_->barrier();
}

std::string CheckpointWriter::tmp_dir_for(int64_t step) const {
  return dir_ + "/" + step_name(step) + ".tmp-" + std::to_string(tag_);
}

void CheckpointWriter::save(Snapshot snap) {
  wait();  // at most one write in flight
  const std::string tmp_dir = tmp_dir_for(snap.step);
  if (multi(world_)) {
    SSM_CHECK(snap.rank == world_->rank() && snap.world == world_->size(),
              "checkpoint: snapshot of rank {} of {} given to the writer of {}", snap.rank, snap.world,
              world_->describe());
    if (world_->rank() == 0) {
      std::error_code ec;
      fs::create_directories(dir_);
      fs::remove_all(tmp_dir, ec);  // a stale copy of the same step (e.g. from a crashed run)
      fs::create_directories(tmp_dir);
    }
    world_->barrier();  // the directory exists for every rank
  } else {
    fs::create_directories(dir_);
    std::error_code ec;
    fs::remove_all(tmp_dir, ec);
    fs::create_directories(tmp_dir);
  }
  if (!async_) {
    write_now(snap, tmp_dir);
    return;
  }
  // The thread owns the snapshot (and its host buffers) until the write has committed.
  thread_ = std::thread([this, s = std::move(snap), tmp_dir]() mutable {
    try {
      write_now(s, tmp_dir);
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu_);
      error_ = std::current_exception();
    }
  });
}

void CheckpointWriter::write_now(const Snapshot& snap, const std::string& tmp_dir) {
  const std::string final_dir = dir_ + "/" + step_name(snap.step);
  const bool leader = !multi(world_) || world_->rank() == 0;
  std::error_code ec;
  try {
    // This rank's shard.
    const std::string file = rank_file(snap.rank);
    nlohmann::json tensors = nlohmann::json::object();
    {
      H5Writer w(tmp_dir + "/" + file);
      for (const SaveItem& it : snap.items) {
        const Tensor& t = it.data;
        SSM_CHECK(t.device().is_cpu() && t.is_contiguous(), "checkpoint: item '{}' is not a contiguous host copy", it.name);
        uint64_t sum = checksum64(t.raw_data(), t.nbytes());
        // Dataset names must be unique in the file: a rank may write several pieces of one
        // logical tensor (ZeRO shards cut tensors into boxes).
        const std::string dataset =
            tensors.contains(it.name) ? fmt::format("{}#{}", it.name, tensors[it.name]["pieces"].size()) : it.name;
        w.write(dataset, t.dtype(), t.shape(), t.raw_data(), sum);
        nlohmann::json& lt = tensors[it.name];
        lt["dtype"] = dtype_name(t.dtype());
        lt["shape"] = vec(it.global_shape);
        lt["pieces"].push_back({{"file", file},
                                {"dataset", dataset},
                                {"start", vec(it.start)},
                                {"shape", vec(t.shape())},
                                {"checksum", sum}});
      }
      w.close();
    }
    fsync_path(tmp_dir + "/" + file, false);
    if (!leader) {
      // The table is this rank's "done" marker: written atomically, after the shard is durable.
      write_file_atomic(tmp_dir + "/" + rank_table(snap.rank), tensors.dump());
      return;
    }
    if (multi(world_)) tensors = gather_tables(tmp_dir, std::move(tensors));
    commit(snap, tmp_dir, tensors);
  } catch (const std::exception& e) {
    if (!leader) {
      // Tell rank 0 instead of letting it wait for a table that never comes.
      try {
        write_file_atomic(tmp_dir + "/" + rank_failed(snap.rank), e.what());
      } catch (...) {
      }
      SSM_FAIL("checkpoint {}: rank {} could not write its shard: {}", final_dir, snap.rank, e.what());
    }
    fs::remove_all(tmp_dir, ec);  // never leave a half-written directory behind
    std::string prev = last_committed();
    if (prev.empty() && fs::exists(dir_ + "/latest")) prev = dir_ + "/latest";
    SSM_FAIL("checkpoint {} was not written: {}; {}", final_dir, e.what(),
             prev.empty() ? std::string("no earlier checkpoint exists")
                          : "the previous checkpoint (" + prev + ") is intact");
  }
}

nlohmann::json CheckpointWriter::gather_tables(const std::string& tmp_dir, nlohmann::json own) const {
  const int n = world_->size();
  // A rank's write can take long (large shards, slow disks); a dead rank ends the job anyway.
  const double limit_s = 10.0 * dist::collective_timeout_s();
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<bool> have(size_t(n), false);
  have[0] = true;
  int missing = n - 1;
  nlohmann::json merged = std::move(own);
  while (missing > 0) {
    for (int r = 1; r < n; ++r) {
      if (have[size_t(r)]) continue;
      SSM_CHECK(!fs::exists(tmp_dir + "/" + rank_failed(r)), "rank {} failed to write its shard: {}", r,
                read_text(tmp_dir + "/" + rank_failed(r)));
      const std::string table = tmp_dir + "/" + rank_table(r);
      if (!fs::exists(table)) continue;
      nlohmann::json t;
      try {
        t = nlohmann::json::parse(read_text(table));
      } catch (const std::exception& e) {
        SSM_FAIL("{}: corrupt tensor table of rank {} ({})", table, r, e.what());
      }
      for (auto& [name, lt] : t.items()) {
        nlohmann::json& m = merged[name];
        if (m.is_null()) {
          m = lt;
          continue;
        }
        SSM_CHECK(m["shape"] == lt["shape"] && m["dtype"] == lt["dtype"],
                  "checkpoint: ranks disagree on tensor '{}': {} {} vs {} {} (rank {})", name, m["dtype"].dump(),
                  m["shape"].dump(), lt["dtype"].dump(), lt["shape"].dump(), r);
        for (auto& piece : lt["pieces"]) m["pieces"].push_back(piece);
      }
      have[size_t(r)] = true;
      --missing;
    }
    if (missing == 0) break;
    SSM_CHECK(!cancel_, "the run is ending before every rank wrote its shard; not committed");
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (waited > limit_s) {
      std::string who;
      for (int r = 1; r < n; ++r)
        if (!have[size_t(r)]) who += (who.empty() ? "" : ", ") + std::to_string(r);
      SSM_FAIL("no shard from rank(s) {} after {:.0f} s (dead, hung, or not seeing {})", who, waited, tmp_dir);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // Every element of every tensor is written exactly once (pieces never overlap by
  // construction, so counting elements is enough to catch a missing or doubled piece).
  for (auto& [name, lt] : merged.items()) {
    int64_t numel = 1, covered = 0;
    for (const auto& d : lt["shape"]) numel *= d.get<int64_t>();
    for (const auto& p : lt["pieces"]) {
      int64_t k = 1;
      for (const auto& d : p["shape"]) k *= d.get<int64_t>();
      covered += k;
    }
    SSM_CHECK(covered == numel, "checkpoint: the ranks' pieces of tensor '{}' hold {} elements, the tensor has {} "
              "(a piece is missing or written twice)", name, covered, numel);
  }
  for (int r = 1; r < n; ++r) {
    std::error_code ec;
    fs::remove(tmp_dir + "/" + rank_table(r), ec);
  }
  return merged;
}

void CheckpointWriter::commit(const Snapshot& snap, const std::string& tmp_dir, const nlohmann::json& tensors) {
  const std::string final_dir = dir_ + "/" + step_name(snap.step);
  std::error_code ec;
  nlohmann::json index = snap.meta;
  index["format"] = "ssm-checkpoint";
  index["version"] = kFormatVersion;
  index["step"] = snap.step;
  index["world_size"] = snap.world;
  index["tensors"] = tensors;
  {
    std::ofstream f(tmp_dir + "/index.json");
    f << index.dump(1);
    f.flush();
    SSM_CHECK(f.good(), "{}/index.json: write failed (disk full?)", tmp_dir);
  }
  fsync_path(tmp_dir + "/index.json", false);
  fsync_path(tmp_dir, true);
  // Commit: rename the directory, fsync its parent, then move `latest`.
  fs::remove_all(final_dir, ec);  // a stale copy of the same step (e.g. from a crashed run)
  fs::rename(tmp_dir, final_dir, ec);
  SSM_CHECK(!ec, "{}: rename to {} failed: {}", tmp_dir, final_dir, ec.message());
  fsync_path(dir_, true);
  write_file_atomic(dir_ + "/latest", step_name(snap.step) + "\n");
  {
    std::lock_guard<std::mutex> lk(mu_);
    last_ = final_dir;
  }
  // Prune only now that a newer checkpoint is committed.
  if (keep_last_ > 0) {
    std::vector<std::string> steps;
    for (const auto& e : fs::directory_iterator(dir_)) {
      std::string n = e.path().filename().string();
      if (e.is_directory() && n.rfind("step_", 0) == 0 && n.find(".tmp") == std::string::npos) steps.push_back(n);
    }
    std::sort(steps.begin(), steps.end());
    for (size_t i = 0; i + size_t(keep_last_) < steps.size(); ++i) fs::remove_all(dir_ + "/" + steps[i], ec);
  }
}

// ---- reader --------------------------------------------------------------------------------

std::string resolve_checkpoint_dir(const std::string& where) {
  fs::path p(where);
  SSM_CHECK(fs::exists(p), "{}: no such checkpoint or run directory", where);
  if (fs::exists(p / "index.json")) return p.string();
  for (fs::path base : {p, p / "checkpoints"}) {
    if (fs::exists(base / "latest")) {
      std::ifstream f(base / "latest");
      std::string name;
      f >> name;
      SSM_CHECK(!name.empty(), "{}: the 'latest' pointer is empty", (base / "latest").string());
      fs::path c = base / name;
      SSM_CHECK(fs::exists(c / "index.json"), "{}: 'latest' names {}, which has no index.json", base.string(),
                c.string());
      return c.string();
    }
  }
  SSM_FAIL("{}: not a checkpoint (no index.json) and no checkpoints/latest inside", where);
}

const LogicalTensor* LoadedCheckpoint::find(const std::string& name) const {
  for (const LogicalTensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

LoadedCheckpoint open_checkpoint(const std::string& where, bool verify) {
  LoadedCheckpoint c;
  c.path = resolve_checkpoint_dir(where);
  std::ifstream f(c.path + "/index.json");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    c.index = nlohmann::json::parse(ss.str());
  } catch (const std::exception& e) {
    SSM_FAIL("{}/index.json: corrupt index ({})", c.path, e.what());
  }
  SSM_CHECK(c.index.value("format", "") == "ssm-checkpoint", "{}/index.json: not an ssm checkpoint index", c.path);
  int version = c.index.value("version", 0);
  SSM_CHECK(version == kFormatVersion, "{}/index.json: format version {} is not supported (this build reads {})",
            c.path, version, kFormatVersion);
  std::map<std::string, std::unique_ptr<H5Reader>> files;
  auto reader = [&](const std::string& file) -> H5Reader& {
    auto& r = files[file];
    if (!r) r = std::make_unique<H5Reader>(c.path + "/" + file);
    return *r;
  };
  for (auto& [name, j] : c.index.at("tensors").items()) {
    LogicalTensor t;
    t.name = name;
    std::string dt = j.at("dtype").get<std::string>();
    bool ok = false;
    for (DType d : {DType::f32, DType::f64, DType::bf16, DType::i32, DType::i64})
      if (dt == dtype_name(d)) {
        t.dtype = d;
        ok = true;
      }
    SSM_CHECK(ok, "{}/index.json: tensor '{}' has unknown dtype '{}'", c.path, name, dt);
    t.shape = j.at("shape").get<std::vector<int64_t>>();
    for (const auto& pj : j.at("pieces")) {
      TensorPiece p;
      p.file = pj.at("file").get<std::string>();
      p.dataset = pj.at("dataset").get<std::string>();
      p.start = pj.at("start").get<std::vector<int64_t>>();
      p.shape = pj.at("shape").get<std::vector<int64_t>>();
      p.checksum = pj.at("checksum").get<uint64_t>();
      H5Reader& r = reader(p.file);
      if (verify) {
        H5Dataset d = r.read(p.dataset);
        uint64_t sum = checksum64(d.bytes.data(), d.bytes.size());
        SSM_CHECK(sum == p.checksum && d.checksum == p.checksum,
                  "{}/{}: dataset '{}' fails its checksum (corrupted checkpoint)", c.path, p.file, p.dataset);
        SSM_CHECK(d.shape.vec() == p.shape, "{}/{}: dataset '{}' has shape {}, index says {}", c.path, p.file,
                  p.dataset, d.shape.str(), Dims(p.shape).str());
      } else {
        SSM_CHECK(r.has(p.dataset), "{}/{}: dataset '{}' is missing", c.path, p.file, p.dataset);
      }
      t.pieces.push_back(p);
    }
    c.tensors.push_back(std::move(t));
  }
  return c;
}

Tensor LoadedCheckpoint::read(const std::string& name, const Dims& start, const Dims& shape) const {
  const LogicalTensor* t = find(name);
  SSM_CHECK(t != nullptr, "{}: the checkpoint has no tensor '{}'", path, name);
  SSM_CHECK(int(t->shape.size()) == shape.size() && start.size() == shape.size(),
            "{}: tensor '{}' has rank {}, asked for a slice of rank {}", path, name, t->shape.size(), shape.size());
  for (int d = 0; d < shape.size(); ++d)
    SSM_CHECK(start[d] >= 0 && start[d] + shape[d] <= t->shape[size_t(d)],
              "{}: slice {}+{} out of range for tensor '{}' of shape {}", path, start.str(), shape.str(), name,
              Dims(t->shape).str());
  Tensor out = Tensor::zeros(shape, t->dtype);
  int64_t covered = 0;
  for (const TensorPiece& p : t->pieces) {
    // Intersection of the piece with the requested slice, per dim.
    Dims lo, len;
    bool empty = false;
    for (int d = 0; d < shape.size(); ++d) {
      int64_t a = std::max(start[d], p.start[size_t(d)]);
      int64_t b = std::min(start[d] + shape[d], p.start[size_t(d)] + p.shape[size_t(d)]);
      if (b <= a) empty = true;
      lo.push_back(a);
      len.push_back(std::max<int64_t>(0, b - a));
    }
    if (empty && shape.size() > 0) continue;
    H5Reader r(path + "/" + p.file);
    H5Dataset d = r.read(p.dataset);
    Tensor piece = Tensor::empty(Dims(p.shape), t->dtype);
    std::copy(d.bytes.begin(), d.bytes.end(), static_cast<char*>(piece.raw_data()));
    Tensor src = piece, dst = out;
    NoGradGuard ng;
    for (int dd = 0; dd < shape.size(); ++dd) {
      src = src.narrow(dd, lo[dd] - p.start[size_t(dd)], len[dd]);
      dst = dst.narrow(dd, lo[dd] - start[dd], len[dd]);
    }
    copy_(dst, src);
    covered += len.numel();
  }
  SSM_CHECK(covered == shape.numel(), "{}: the pieces of tensor '{}' cover {} of the {} requested elements", path, name,
            covered, shape.numel());
  return out;
}

Tensor LoadedCheckpoint::read_full(const std::string& name) const {
  const LogicalTensor* t = find(name);
  SSM_CHECK(t != nullptr, "{}: the checkpoint has no tensor '{}'", path, name);
  return read(name, Dims::filled(int(t->shape.size()), 0), Dims(t->shape));
}

}  // namespace ssm::checkpoint
