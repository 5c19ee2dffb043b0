// main() of ssm_test_dist: MPI (or a self communicator) around GoogleTest. Rank 0 prints the
// usual output; other ranks print only their failures, prefixed with their rank; the exit
// code is non-zero on every rank when any rank failed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "framework/dist/grid.h"
#include "framework/dist/nccl.h"
#include "framework/dist/runtime.h"
#include "tests/dist/mpi_env.h"

namespace ssm::test {
namespace {
dist::Runtime* g_runtime = nullptr;

class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  // The name is kept from OnTestStart: UnitTest::current_test_info() would deadlock here
  // (gtest holds its mutex while it reports a part result).
  void OnTestStart(const ::testing::TestInfo& t) override {
    test_ = std::string(t.test_suite_name()) + "." + t.name();
  }
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "[rank %d] %s failed at %s:%d\n%s\n", rank_, test_.c_str(),
                 r.file_name() ? r.file_name() : "?", r.line_number(), r.message());
  }

 private:
  int rank_;
  std::string test_;
};
}  // namespace

const std::shared_ptr<dist::Communicator>& world() { return g_runtime->world(); }
int local_rank() { return g_runtime->local_rank(); }

namespace {
std::shared_ptr<dist::Communicator> g_nccl;  // released before MPI_Finalize
bool g_nccl_tried = false;

std::string g_nccl_reason;

std::string local_nccl_problem() {
  if (!dist::nccl_compiled()) return "this build has no NCCL";
  if (cuda_device_count() <= g_runtime->local_rank())
    return "rank " + std::to_string(world()->rank()) + " has no GPU of its own (" +
           std::to_string(cuda_device_count()) + " visible)";
  return "";
}
}  // namespace

std::shared_ptr<dist::Communicator> nccl_world() {
  if (!g_nccl_tried) {
    g_nccl_tried = true;
    // Collective decision: NCCL creation must be entered by every rank or by none.
    g_nccl_reason = local_nccl_problem();
    Tensor ok = Tensor::from_vector({g_nccl_reason.empty() ? 1.0 : 0.0}, {1}, DType::i32);
    world()->all_reduce(ok, dist::ReduceOp::min);
    if (ok.item() == 1)
      g_nccl = dist::nccl_communicator(world(), dist::device_for_local_rank(local_rank()), "world-nccl");
    else if (g_nccl_reason.empty())
      g_nccl_reason = "another rank has no NCCL or no GPU of its own";
  }
  return g_nccl;
}

std::string nccl_unavailable_reason() {
  nccl_world();
  return g_nccl_reason;
}

double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]) / std::max(1.0, std::abs(b[i])));
  return m;
}

}  // namespace ssm::test

int main(int argc, char** argv) {
  ssm::dist::Runtime rt(&argc, &argv);
  ssm::test::g_runtime = &rt;
  ::testing::InitGoogleTest(&argc, argv);
  const int rank = rt.world()->rank();
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  if (rank != 0) {
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new ssm::test::FailurePrinter(rank));
  }
  const int rc = RUN_ALL_TESTS();
  ssm::test::g_nccl.reset();
  int failed = rc != 0;
  try {
    ssm::Tensor f = ssm::Tensor::from_vector({double(failed)}, {1}, ssm::DType::i32);
    rt.world()->all_reduce(f, ssm::dist::ReduceOp::max);
    failed = int(f.item());
  } catch (const ssm::Error& e) {
    std::fprintf(stderr, "error (rank %d): %s\n", rank, e.what());
    rt.abort(1);
  }
  if (rank == 0 && failed && rc == 0) std::fprintf(stderr, "FAILED on another rank (see the [rank N] lines)\n");
  return failed;
}
