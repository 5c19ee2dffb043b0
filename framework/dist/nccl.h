// The NCCL backend: collectives on CUDA tensors, bootstrapped over an existing (MPI)
// communicator that carries the NCCL unique id, so no other rendezvous is needed.
//
//   dist::Runtime rt(&argc, &argv);
//   Device dev = dist::device_for_local_rank(rt.local_rank());        // cuda:local_rank
//   dist::ProcessGrid grid(rt.world(), /*tp=*/2);                     // MPI: ids, checks, CPU tensors
//   auto tp_gpu = dist::nccl_communicator(grid.tp(), dev, "tp");      // collective over grid.tp()
//   tp_gpu->all_reduce(partial);                                      // partial on cuda:local_rank
//
// Stream semantics: each collective runs on the communicator's own stream after the work
// already queued on the caller's current stream (cuda::current_stream), and the caller's
// stream waits for it, so results are ready in stream order without blocking the host;
// all_reduce_async returns at once and Work::wait() makes the caller's stream wait.
// bf16 is reduced natively by NCCL (GradReducer buckets are f32 anyway).
//
// Faults: a watchdog thread aborts the NCCL communicator when a collective has not finished
// after SSM_COLLECTIVE_TIMEOUT_S seconds or NCCL reports an asynchronous error; the aborted
// kernels let blocked host calls return, and the next call on the communicator throws the
// error. barrier() waits on the host with the same deadline.
#pragma once
#include <memory>
#include <string>

#include "framework/dist/communicator.h"

namespace ssm::dist {

// True when this binary was built with NCCL (CUDA build with libnccl found).
bool nccl_compiled();

// Collective over `bootstrap`: rank 0 creates the unique id, `bootstrap` broadcasts it and
// every rank joins with `device` (each rank its own GPU). split() of the result splits
// `bootstrap` the same way and builds a new NCCL communicator over the part.
std::shared_ptr<Communicator> nccl_communicator(const std::shared_ptr<Communicator>& bootstrap, Device device,
                                                const std::string& name);

}  // namespace ssm::dist
