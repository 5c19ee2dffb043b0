// The world communicator of the MPI test binary (tests/dist/mpi_main.cpp starts MPI under
// mpirun, or a self communicator without it) and small helpers shared by the dist tests.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "framework/dist/communicator.h"

namespace ssm::test {

const std::shared_ptr<dist::Communicator>& world();
// This rank among the ranks of its node.
int local_rank();
// An NCCL communicator over the world on cuda:local_rank, created on first use (collective:
// every rank must ask, and all get the same answer); null when the build has no NCCL or some
// rank has no GPU of its own.
std::shared_ptr<dist::Communicator> nccl_world();
// Why nccl_world() is null ("" when it is not). Collective on first use, like nccl_world().
std::string nccl_unavailable_reason();

// max |a - b| / max(1, |b|) over the host values.
double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace ssm::test
