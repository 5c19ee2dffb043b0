// Process start-up for distributed runs: MPI when launched by mpirun (or srun), a self
// communicator otherwise, so `ssm train` works the same with and without a launcher.
//
//   int main(int argc, char** argv) {
//     dist::Runtime rt(&argc, &argv);                   // MPI_Init_thread under mpirun
//     try {
//       auto world = rt.world();                        // "world": MPI (CPU tensors) or self
//       dist::ProcessGrid grid(world, /*tp=*/2);        // framework/dist/grid.h
//       Device dev = dist::device_for_local_rank(rt.local_rank());
//       ...
//     } catch (const ssm::Error& e) {
//       fmt::print(stderr, "error (rank {}): {}\n", rt.world()->rank(), e.what());
//       rt.abort(1);                                    // brings every rank down, not only this one
//     }
//   }                                                   // ~Runtime: MPI_Finalize
//
// Communicators created from MPI use MPI_ERRORS_RETURN (failures become ssm::Error, never an
// MPI abort inside library code) and a collective timeout (SSM_COLLECTIVE_TIMEOUT_S).
#pragma once
#include <memory>

#include "framework/dist/communicator.h"

namespace ssm::dist {

// True when the environment says a launcher started this process as one rank of a job
// (Open MPI, MPICH/Hydra, PMIx, Slurm srun).
bool launched_by_mpi();

class Runtime {
 public:
  // Initialises MPI when launched_by_mpi() or `force_mpi` (singleton MPI), or adopts an
  // MPI already initialised by someone else (then never finalises it). Otherwise the world
  // is a self communicator and MPI is never touched.
  Runtime(int* argc, char*** argv, bool force_mpi = false);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  const std::shared_ptr<Communicator>& world() const { return world_; }
  bool uses_mpi() const { return uses_mpi_; }
  // This process among the ranks of its node (for the GPU it should drive).
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }

  // Ends the whole job with `code`: MPI_Abort when MPI is up (every rank exits, so none is
  // left waiting in a collective), else std::exit. For main() only.
  [[noreturn]] void abort(int code) const;

 private:
  std::shared_ptr<Communicator> world_;
  bool uses_mpi_ = false, owns_mpi_ = false;
  int local_rank_ = 0, local_size_ = 1;
};

}  // namespace ssm::dist
