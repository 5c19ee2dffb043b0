// The MPI backend (CPU tensors) and the Runtime that starts it.
//
// Every collective is non-blocking underneath (MPI_I*), and waiting is a polling loop with a
// deadline. While a rank polls it also answers "where are you?" pings from its peers on a
// private duplicate of each communicator; a rank whose wait expires pings every peer of the
// communicator and reports who did not answer (dead or hung) and who waits in a different
// collective (mismatched call order). That is the whole watchdog: no extra thread, and only
// ranks that are stuck anyway pay for it.
#include <mpi.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "framework/dist/runtime.h"
#include "framework/ops/view.h"

namespace ssm::dist {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kPingTag = 7101, kPongTag = 7102;

enum class OpCode : int64_t { none, all_reduce, all_gather, reduce_scatter, broadcast, barrier, split };
const char* op_code_name(int64_t c) {
  static const char* names[] = {"none", "all_reduce", "all_gather", "reduce_scatter", "broadcast", "barrier",
                                "split"};
  return c >= 0 && c < 7 ? names[c] : "?";
}

// Answer to a ping: what the answering rank is blocked in.
struct Pong {
  int64_t diag_id = 0;
  int64_t seq = -1;  // per-communicator collective counter
  int64_t op = 0;    // OpCode
  char comm[40] = {};
};

std::string mpi_error_string(int rc) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, buf, &len) != MPI_SUCCESS) return fmt::format("MPI error code {}", rc);
  return std::string(buf, size_t(len));
}

void check_mpi(int rc, const char* call, const std::string& what) {
  if (rc != MPI_SUCCESS) [[unlikely]]
    SSM_FAIL("{}: {} failed: {}", what, call, mpi_error_string(rc));
}

bool mpi_finalized() {
  int fin = 0;
  MPI_Finalized(&fin);
  return fin != 0;
}

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::bf16: return MPI_UINT16_T;  // data movement only; reductions go through f32
    case DType::i32: return MPI_INT32_T;
    case DType::i64: return MPI_INT64_T;
  }
  return MPI_DATATYPE_NULL;
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return MPI_SUM;
    case ReduceOp::max: return MPI_MAX;
    case ReduceOp::min: return MPI_MIN;
  }
  return MPI_OP_NULL;
}

int int_count(int64_t n, const std::string& what) {
  SSM_CHECK(n <= INT_MAX, "{}: {} elements per rank exceed the MPI count limit {}", what, n, INT_MAX);
  return int(n);
}

// ---- process-wide liveness plumbing -------------------------------------------------
// MPI is process-global, and a rank blocked in one communicator must still answer pings
// sent on another (a dp peer asking while this rank waits on its tp group), so the live
// communicators and "what am I blocked in" are process-wide. Only the MPI-calling thread
// touches them (MPI_THREAD_SERIALIZED use).

class MpiCommunicator;

struct WaitState {
  int64_t seq = -1;
  OpCode op = OpCode::none;
  std::string comm;
};
WaitState& wait_state() {
  static WaitState s;
  return s;
}

std::vector<MpiCommunicator*>& live_comms() {
  static std::vector<MpiCommunicator*> r;
  return r;
}

// Small sends whose buffers must outlive MPI_Isend; checked off as they complete.
struct PendingSend {
  MPI_Request req = MPI_REQUEST_NULL;
  std::shared_ptr<void> buf;
};
std::deque<PendingSend>& pending_sends() {
  static std::deque<PendingSend> q;
  return q;
}
void progress_pending_sends() {
  auto& q = pending_sends();
  for (auto it = q.begin(); it != q.end();) {
    int done = 0;
    if (MPI_Test(&it->req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || done)
      it = q.erase(it);
    else
      ++it;
  }
}

// Requests and buffers of Work dropped before completion (during error unwinding): MPI may
// still write into the buffers, so they are parked here instead of freed.
std::vector<std::pair<std::vector<MPI_Request>, std::vector<Tensor>>>& abandoned() {
  static std::vector<std::pair<std::vector<MPI_Request>, std::vector<Tensor>>> a;
  return a;
}

void answer_all_pings();

class MpiCommunicator final : public Communicator, public std::enable_shared_from_this<MpiCommunicator> {
 public:
  // Takes ownership of `comm` (freed in the destructor while MPI is up).
  MpiCommunicator(MPI_Comm comm, std::string name) : comm_(comm), name_(std::move(name)) {
    const std::string what = fmt::format("creating communicator '{}'", name_);
    check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", what);
    check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank", what);
    check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size", what);
    check_mpi(MPI_Comm_dup(comm_, &health_), "MPI_Comm_dup", what);
    check_mpi(MPI_Comm_set_errhandler(health_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", what);
    // World ranks of this communicator's ranks, for messages about sub-communicators.
    MPI_Group mine, world;
    MPI_Comm_group(comm_, &mine);
    MPI_Comm_group(MPI_COMM_WORLD, &world);
    std::vector<int> local(size_t(size_), 0);
    for (int i = 0; i < size_; ++i) local[size_t(i)] = i;
    world_ranks_.assign(size_t(size_), -1);
    MPI_Group_translate_ranks(mine, size_, local.data(), world, world_ranks_.data());
    MPI_Group_free(&mine);
    MPI_Group_free(&world);
    timeout_s_ = collective_timeout_s();
    live_comms().push_back(this);
  }

  ~MpiCommunicator() override {
    auto& live = live_comms();
    live.erase(std::remove(live.begin(), live.end(), this), live.end());
    if (mpi_finalized()) return;
    MPI_Comm_free(&health_);
    MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }
  const char* backend() const override { return "mpi"; }
  bool supports(Device d) const override { return d.is_cpu(); }

  bool test_all(std::vector<MPI_Request>& reqs, const std::string& what) {
    int done = 0;
    check_mpi(MPI_Testall(int(reqs.size()), reqs.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall", what);
    return done != 0;
  }

  // Polls `reqs` to completion, answering peers' pings meanwhile; on the deadline, finds
  // out which ranks are missing and throws.
  void wait_all(std::vector<MPI_Request>& reqs, OpCode op, int64_t seq, const std::string& what) {
    struct Restore {  // also on the timeout exception
      WaitState saved = wait_state();
      ~Restore() { wait_state() = saved; }
    } restore;
    wait_state() = {seq, op, name_};
    const auto start = Clock::now();
    const auto deadline = start + std::chrono::duration<double>(timeout_s_);
    auto nap = std::chrono::microseconds(20);
    for (int spins = 0;; ++spins) {
      if (test_all(reqs, what)) break;
      answer_all_pings();
      if (Clock::now() >= deadline) diagnose_timeout(op, seq, what);
      // Spin briefly for latency, then back off: ranks are often oversubscribed on CPU.
      if (spins > 32) {
        std::this_thread::sleep_for(nap);
        nap = std::min(nap * 2, std::chrono::microseconds(1000));
      }
    }
  }

  // Replies to every ping queued on this communicator's health channel.
  void answer_pings() {
    for (;;) {
      int flag = 0;
      MPI_Status st;
      if (MPI_Iprobe(MPI_ANY_SOURCE, kPingTag, health_, &flag, &st) != MPI_SUCCESS || !flag) return;
      int64_t ping[2] = {0, 0};
      if (MPI_Recv(ping, 2, MPI_INT64_T, st.MPI_SOURCE, kPingTag, health_, MPI_STATUS_IGNORE) != MPI_SUCCESS) return;
      auto p = std::make_shared<Pong>();
      p->diag_id = ping[0];
      p->seq = wait_state().seq;
      p->op = int64_t(wait_state().op);
      std::strncpy(p->comm, wait_state().comm.c_str(), sizeof(p->comm) - 1);
      PendingSend s{MPI_REQUEST_NULL, p};
      if (MPI_Isend(p.get(), int(sizeof(Pong)), MPI_BYTE, st.MPI_SOURCE, kPongTag, health_, &s.req) == MPI_SUCCESS)
        pending_sends().push_back(std::move(s));
    }
  }

 protected:
  std::unique_ptr<Work> all_reduce_impl(const Tensor& buf, ReduceOp op, const std::string& what) override;
  void all_gather_impl(const Tensor& in, const Tensor& out, const std::string& what) override;
  void reduce_scatter_impl(const Tensor& in, const Tensor& out, ReduceOp op, const std::string& what) override;
  void broadcast_impl(const Tensor& buf, int root, const std::string& what) override;
  void barrier_impl(const std::string& what) override;
  std::shared_ptr<Communicator> split_impl(int color, int key, const std::string& name,
                                           const std::string& what) override;

 private:
  std::string rank_label(int r) const {
    const int w = world_ranks_[size_t(r)];
    return w == r ? fmt::format("rank {}", r) : fmt::format("rank {} (world rank {})", r, w);
  }
  void wait_one(MPI_Request req, OpCode op, int64_t seq, const std::string& what) {
    std::vector<MPI_Request> reqs{req};
    wait_all(reqs, op, seq, what);
  }
  [[noreturn]] void diagnose_timeout(OpCode op, int64_t seq, const std::string& what);

  MPI_Comm comm_ = MPI_COMM_NULL, health_ = MPI_COMM_NULL;
  std::string name_;
  int rank_ = 0, size_ = 1;
  std::vector<int> world_ranks_;
  double timeout_s_ = 60;
  int64_t seq_ = 0;  // collectives started on this communicator (identical on every rank)

  int64_t next_seq() { return ++seq_; }
};

void answer_all_pings() {
  for (MpiCommunicator* c : live_comms()) c->answer_pings();
  progress_pending_sends();
}

void MpiCommunicator::diagnose_timeout(OpCode op, int64_t seq, const std::string& what) {
  static int64_t diag_counter = 0;
  const int64_t id = ++diag_counter;
  for (int p = 0; p < size_; ++p) {
    if (p == rank_) continue;
    auto ping = std::make_shared<std::array<int64_t, 2>>(std::array<int64_t, 2>{id, seq});
    PendingSend s{MPI_REQUEST_NULL, ping};
    if (MPI_Isend(ping->data(), 2, MPI_INT64_T, p, kPingTag, health_, &s.req) == MPI_SUCCESS)
      pending_sends().push_back(std::move(s));
  }
  // Peers blocked in a collective answer within milliseconds; give slow schedulers slack.
  const double grace_s = std::clamp(timeout_s_ / 4, 1.0, 10.0);
  const auto until = Clock::now() + std::chrono::duration<double>(grace_s);
  std::vector<int> answered(size_t(size_), 0);
  std::vector<Pong> pongs(static_cast<size_t>(size_));
  int missing = size_ - 1;
  while (missing > 0 && Clock::now() < until) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, kPongTag, health_, &flag, &st) == MPI_SUCCESS && flag) {
      Pong p;
      if (MPI_Recv(&p, int(sizeof(Pong)), MPI_BYTE, st.MPI_SOURCE, kPongTag, health_, MPI_STATUS_IGNORE) ==
              MPI_SUCCESS &&
          p.diag_id == id && !answered[size_t(st.MPI_SOURCE)]) {
        answered[size_t(st.MPI_SOURCE)] = 1;
        pongs[size_t(st.MPI_SOURCE)] = p;
        --missing;
      }
      continue;
    }
    answer_all_pings();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::string dead, elsewhere;
  for (int p = 0; p < size_; ++p) {
    if (p == rank_) continue;
    if (!answered[size_t(p)]) {
      dead += (dead.empty() ? "" : ", ") + rank_label(p);
      continue;
    }
    const Pong& q = pongs[size_t(p)];
    if (q.seq != seq || q.op != int64_t(op) || name_ != q.comm)
      elsewhere += fmt::format("; {} waits in collective #{} '{}' on '{}'", rank_label(p), q.seq,
                               op_code_name(q.op), q.comm);
  }
  std::string msg = fmt::format("{}: collective #{} made no progress for {} s (SSM_COLLECTIVE_TIMEOUT_S)", what,
                                seq, timeout_s_);
  if (!dead.empty())
    msg += fmt::format(". No answer from {} within a further {} s: dead, hung, or busy outside any collective", dead,
                       grace_s);
  if (!elsewhere.empty()) msg += ". Collectives are called in a different order across ranks" + elsewhere;
  if (dead.empty() && elsewhere.empty()) msg += ". Every rank answered from this same collective: the transport is stuck";
  SSM_FAIL("{}", msg);
}

// ---- Work ---------------------------------------------------------------------------

class MpiWork final : public Work {
 public:
  MpiWork(std::shared_ptr<MpiCommunicator> comm, OpCode op, int64_t seq, std::string what,
          std::vector<MPI_Request> reqs, std::vector<Tensor> keep, std::function<void()> on_done)
      : comm_(std::move(comm)), op_(op), seq_(seq), what_(std::move(what)), reqs_(std::move(reqs)),
        keep_(std::move(keep)), on_done_(std::move(on_done)) {}
  ~MpiWork() override {
    if (done_ || mpi_finalized()) return;
    int flag = 0;
    if (MPI_Testall(int(reqs_.size()), reqs_.data(), &flag, MPI_STATUSES_IGNORE) == MPI_SUCCESS && flag) return;
    abandoned().emplace_back(std::move(reqs_), std::move(keep_));
  }
  bool test() override {
    if (done_) return true;
    if (!comm_->test_all(reqs_, what_)) return false;
    finish();
    return true;
  }
  void wait() override {
    if (done_) return;
    comm_->wait_all(reqs_, op_, seq_, what_);
    finish();
  }

 private:
  void finish() {
    done_ = true;
    if (on_done_) on_done_();
    keep_.clear();
  }
  std::shared_ptr<MpiCommunicator> comm_;
  OpCode op_;
  int64_t seq_;
  std::string what_;
  std::vector<MPI_Request> reqs_;
  std::vector<Tensor> keep_;  // buffers MPI reads or writes until completion
  std::function<void()> on_done_;
  bool done_ = false;
};

// ---- collectives --------------------------------------------------------------------

std::unique_ptr<Work> MpiCommunicator::all_reduce_impl(const Tensor& buf, ReduceOp op, const std::string& what) {
  const int64_t seq = next_seq();
  Tensor work = buf;
  std::function<void()> done;
  if (buf.dtype() == DType::bf16) {  // reduce in f32: bf16 sums lose too much, and MPI has no bf16
    work = to(buf, DType::f32);
    done = [buf, work] { copy_(buf, work); };
  }
  // Tensors beyond the int count limit go as several in-order requests.
  std::vector<MPI_Request> reqs;
  char* base = static_cast<char*>(work.raw_data());
  const int64_t n = work.numel();
  for (int64_t off = 0; off < n; off += INT_MAX) {
    const int cnt = int(std::min<int64_t>(INT_MAX, n - off));
    MPI_Request r;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, base + off * int64_t(work.element_size()), cnt, mpi_type(work.dtype()),
                             mpi_op(op), comm_, &r),
              "MPI_Iallreduce", what);
    reqs.push_back(r);
  }
  return std::make_unique<MpiWork>(shared_from_this(), OpCode::all_reduce, seq, what, std::move(reqs),
                                   std::vector<Tensor>{work}, std::move(done));
}

void MpiCommunicator::all_gather_impl(const Tensor& in, const Tensor& out, const std::string& what) {
  const int64_t seq = next_seq();
  const int cnt = int_count(in.numel(), what);
  const MPI_Datatype t = mpi_type(in.dtype());
  MPI_Request r;
  check_mpi(MPI_Iallgather(in.raw_data(), cnt, t, out.raw_data(), cnt, t, comm_, &r), "MPI_Iallgather", what);
  wait_one(r, OpCode::all_gather, seq, what);
}

void MpiCommunicator::reduce_scatter_impl(const Tensor& in, const Tensor& out, ReduceOp op, const std::string& what) {
  const int64_t seq = next_seq();
  const int cnt = int_count(out.numel(), what);
  const bool bf = in.dtype() == DType::bf16;
  Tensor src = bf ? to(in, DType::f32) : in;
  Tensor dst = bf ? Tensor::empty(out.shape(), DType::f32) : out;
  MPI_Request r;
  check_mpi(MPI_Ireduce_scatter_block(src.raw_data(), dst.raw_data(), cnt, mpi_type(src.dtype()), mpi_op(op), comm_,
                                      &r),
            "MPI_Ireduce_scatter_block", what);
  wait_one(r, OpCode::reduce_scatter, seq, what);
  if (bf) copy_(out, dst);
}

void MpiCommunicator::broadcast_impl(const Tensor& buf, int root, const std::string& what) {
  const int64_t seq = next_seq();
  MPI_Request r;
  check_mpi(MPI_Ibcast(buf.raw_data(), int_count(buf.numel(), what), mpi_type(buf.dtype()), root, comm_, &r),
            "MPI_Ibcast", what);
  wait_one(r, OpCode::broadcast, seq, what);
}

void MpiCommunicator::barrier_impl(const std::string& what) {
  const int64_t seq = next_seq();
  MPI_Request r;
  check_mpi(MPI_Ibarrier(comm_, &r), "MPI_Ibarrier", what);
  wait_one(r, OpCode::barrier, seq, what);
}

std::shared_ptr<Communicator> MpiCommunicator::split_impl(int color, int key, const std::string& name,
                                                          const std::string& what) {
  const int64_t seq = next_seq();
  // MPI_Comm_split blocks without a deadline: first make sure every rank has arrived.
  MPI_Request r;
  check_mpi(MPI_Ibarrier(comm_, &r), "MPI_Ibarrier", what);
  wait_one(r, OpCode::split, seq, what);
  MPI_Comm sub;
  check_mpi(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split", what);
  return std::make_shared<MpiCommunicator>(sub, name);
}

}  // namespace

// ---- Runtime ------------------------------------------------------------------------

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

Runtime::Runtime(int* argc, char*** argv, bool force_mpi) {
  collective_timeout_s();  // a malformed SSM_COLLECTIVE_TIMEOUT_S fails here, before MPI starts
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited && !force_mpi && !launched_by_mpi()) {
    world_ = self_communicator("world");
    return;
  }
  if (!inited) {
    int provided = 0;
    const int rc = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
    SSM_CHECK(rc == MPI_SUCCESS, "MPI_Init_thread failed (error code {}): is this process started by mpirun?", rc);
    owns_mpi_ = true;
  }
  uses_mpi_ = true;
  const std::string what = "starting MPI";
  check_mpi(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", what);
  MPI_Comm w;
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &w), "MPI_Comm_dup", what);
  world_ = std::make_shared<MpiCommunicator>(w, "world");
  MPI_Comm node;
  check_mpi(MPI_Comm_split_type(w, MPI_COMM_TYPE_SHARED, world_->rank(), MPI_INFO_NULL, &node),
            "MPI_Comm_split_type", what);
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
}

Runtime::~Runtime() {
  world_.reset();
  if (owns_mpi_ && !mpi_finalized()) MPI_Finalize();
}

void Runtime::abort(int code) const {
  int inited = 0;
  MPI_Initialized(&inited);
  if (uses_mpi_ && inited && !mpi_finalized()) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

}  // namespace ssm::dist
