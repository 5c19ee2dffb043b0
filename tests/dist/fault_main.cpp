// A job that loses rank 1 in the middle of a loop of all-reduces:
//   ssm_dist_fault kill   rank 1 raise(SIGKILL)s itself (a crashed process, an OOM kill)
//   ssm_dist_fault hang   rank 1 stops calling collectives (a deadlock, a stuck device)
// Driven by tests/dist/expect_failure.cmake: the surviving ranks must make the job exit
// non-zero with a message naming rank 1 (from the collective watchdog or from mpirun).
#include <csignal>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "framework/dist/runtime.h"

int main(int argc, char** argv) {
  ssm::dist::Runtime rt(&argc, &argv);
  const std::string mode = argc > 1 ? argv[1] : "kill";
  const auto& world = rt.world();
  try {
    ssm::Tensor x = ssm::Tensor::zeros({16});
    for (int it = 0; it < 50; ++it) {
      if (it == 3 && world->rank() == 1) {
        // (No rank number in this line: the test looks for the survivors' report of rank 1.)
        std::fprintf(stderr, "fault driver: simulating a %s\n", mode == "kill" ? "crash (SIGKILL)" : "hang");
        if (mode == "kill") std::raise(SIGKILL);
        std::this_thread::sleep_for(std::chrono::seconds(120));
      }
      world->all_reduce(x);
    }
    std::fprintf(stderr, "rank %d: finished without noticing the lost rank\n", world->rank());
  } catch (const ssm::Error& e) {
    std::fprintf(stderr, "error (rank %d): %s\n", world->rank(), e.what());
    rt.abort(1);
  }
  return 0;
}
