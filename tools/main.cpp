// ssm: train, sample from and inspect state space models.
#include <cstdio>
#include <exception>

#include "framework/core/device.h"
#include "framework/core/error.h"
#include "kernels/cpu/gemm.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"ssm — train state space models (S4D, S5, Mamba, Mamba-2, Jamba)"};
  app.set_version_flag("--version", [] {
    return fmt::format("ssm 0.1.0 (CUDA backend: {}, CPU BLAS: {})", ssm::cuda_compiled() ? "yes" : "no",
                       ssm::kernels::cpu::gemm_uses_blas() ? "OpenBLAS" : "built-in");
  });
  app.require_subcommand(1);
  ssm::tools::register_train(app);
  ssm::tools::register_generate(app);
  ssm::tools::register_data(app);
  ssm::tools::register_plot(app);
  ssm::tools::register_inspect(app);
  ssm::tools::register_bench(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const ssm::Error& e) {
    std::fprintf(stderr, "ssm: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ssm: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
