// ssm: train, sample from and inspect state space models.
#include <cstdio>
#include <exception>

#include "framework/core/device.h"
#include "framework/core/error.h"
#include "framework/dist/runtime.h"
#include "kernels/cpu/gemm.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  // MPI when mpirun started this process (one rank of the job), else a world of size 1.
  ssm::dist::Runtime rt(&argc, &argv);
  const auto& world = rt.world();
  // An error on any rank ends the whole job (MPI_Abort), so no rank is left waiting in a
  // collective for one that gave up.
  auto fail = [&](const char* what) {
    if (world->size() == 1) {
      std::fprintf(stderr, "ssm: error: %s\n", what);
      return 1;
    }
    std::fprintf(stderr, "ssm: error (rank %d of %d): %s\n", world->rank(), world->size(), what);
    std::fflush(stderr);
    rt.abort(1);
  };
  CLI::App app{"ssm — train state space models (S4D, S5, Mamba, Mamba-2, Jamba)"};
  app.set_version_flag("--version", [] {
    return fmt::format("ssm 0.1.0 (CUDA backend: {}, CPU BLAS: {})", ssm::cuda_compiled() ? "yes" : "no",
                       ssm::kernels::cpu::gemm_uses_blas() ? "OpenBLAS" : "built-in");
  });
  app.require_subcommand(1);
  ssm::tools::register_train(app, world);
  ssm::tools::register_generate(app);
  ssm::tools::register_data(app);
  ssm::tools::register_plot(app);
  ssm::tools::register_inspect(app);
  ssm::tools::register_bench(app);
  ssm::tools::register_export(app);
  ssm::tools::register_import(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const ssm::Error& e) {
    return fail(e.what());
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return 0;
}
