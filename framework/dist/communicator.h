// Collective communication between ranks, behind one small interface with one backend per
// device kind: MPI for CPU tensors (started by framework/dist/runtime.h), NCCL for CUDA
// tensors (framework/dist/nccl.h), and a trivial self communicator (world size 1, no MPI).
//
//   dist::Runtime rt(&argc, &argv);                  // MPI under mpirun, else a self communicator
//   std::shared_ptr<dist::Communicator> world = rt.world();
//   Tensor g = ...;                                   // f32 (N) on every rank
//   world->all_reduce(g);                             // in place: g = Σ_ranks g
//   Tensor all = world->all_gather(x, /*dim=*/0);     // x (M, D) -> (size·M, D), rank order
//   Tensor mine = world->reduce_scatter(all, 0);      // (size·M, D) -> (M, D): Σ, then this rank's slice
//   auto tp = world->split(/*color=*/rank / 2, /*key=*/rank % 2, "tp");
//
// Every collective must be called by every rank of the communicator in the same order (as
// in MPI). The public methods check their arguments and accept any strides; errors are
// ssm::Error naming the op, the communicator, this rank and the tensor. Backends only see
// contiguous buffers (the protected *_impl hooks), so adding one (NCCL, gloo) is a matter of
// implementing six primitives.
//
// Fault handling: every blocking call waits with a deadline (SSM_COLLECTIVE_TIMEOUT_S,
// default 60 s, read when the communicator is created). On expiry the MPI backend asks the other ranks where they are and throws an
// error naming the ranks that did not answer (dead or hung) or that sit in a different
// collective (mismatched call order). main() prints it and aborts the job.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "framework/core/tensor.h"

namespace ssm::dist {

enum class ReduceOp { sum, max, min };
const char* reduce_op_name(ReduceOp op);

// A non-blocking collective in flight. wait() (or the destructor) must run before the
// tensor it operates on is read or freed.
class Work {
 public:
  virtual ~Work() = default;
  // Drives progress; true once complete (the result is then in place).
  virtual bool test() = 0;
  // Blocks until complete; throws ssm::Error on a backend error or on timeout.
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "world", "tp", "dp", ...: used in error messages.
  virtual const std::string& name() const = 0;
  // "self", "mpi", "nccl".
  virtual const char* backend() const = 0;
  // Whether tensors on `d` can be communicated by this backend.
  virtual bool supports(Device d) const = 0;

  // ---- collectives (every rank calls each one, in the same order) ----
  // In place: t = op over ranks of t. Any strides. f32/f64/i32/i64; bf16 is reduced in f32.
  void all_reduce(const Tensor& t, ReduceOp op = ReduceOp::sum);
  // Non-blocking all_reduce of a contiguous tensor, in place once the Work completes.
  std::unique_ptr<Work> all_reduce_async(const Tensor& t, ReduceOp op = ReduceOp::sum);
  // x (.., n, ..) with n at `dim` on every rank -> (.., size·n, ..): the blocks in rank order.
  Tensor all_gather(const Tensor& x, int dim = 0);
  // x (.., size·m, ..) -> (.., m, ..): block `rank` of the op over ranks of x.
  Tensor reduce_scatter(const Tensor& x, int dim = 0, ReduceOp op = ReduceOp::sum);
  // In place: t = t of rank `root`.
  void broadcast(const Tensor& t, int root);
  void barrier();
  // Sub-communicator of the ranks passing the same `color`, ordered by (key, rank).
  // Collective over this communicator.
  std::shared_ptr<Communicator> split(int color, int key, const std::string& name);

  // "'tp' (rank 1 of 2, mpi)": the communicator part of error messages.
  std::string describe() const;

 protected:
  // Backend primitives. Buffers are contiguous, on a supported device, already validated;
  // `what` names the call for error messages ("all_reduce of f32[4] cpu on 'tp' (rank 0 of 2, mpi)").
  virtual std::unique_ptr<Work> all_reduce_impl(const Tensor& buf, ReduceOp op, const std::string& what) = 0;
  // out holds size() blocks of in.numel() elements.
  virtual void all_gather_impl(const Tensor& in, const Tensor& out, const std::string& what) = 0;
  // in holds size() blocks of out.numel() elements.
  virtual void reduce_scatter_impl(const Tensor& in, const Tensor& out, ReduceOp op, const std::string& what) = 0;
  virtual void broadcast_impl(const Tensor& buf, int root, const std::string& what) = 0;
  virtual void barrier_impl(const std::string& what) = 0;
  virtual std::shared_ptr<Communicator> split_impl(int color, int key, const std::string& name,
                                                   const std::string& what) = 0;

 private:
  std::string what(const char* op, const Tensor* t) const;
  void check_tensor(const char* op, const Tensor& t) const;
};

// World size 1: every collective is the identity (gathers and scatters copy). Needs no MPI.
std::shared_ptr<Communicator> self_communicator(const std::string& name = "self");

// Seconds a blocking collective waits before it declares the job broken: the environment
// variable SSM_COLLECTIVE_TIMEOUT_S (a positive number) or 60. Throws on a malformed value.
double collective_timeout_s();

}  // namespace ssm::dist
