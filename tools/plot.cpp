// `ssm plot RUN_DIR [--out FILE] [--metrics NAMES]`: draws a run's loss curves into a PNG.
//
//   ssm plot runs/quickstart                         # -> runs/quickstart/loss.png
//   ssm plot runs/quickstart --metrics loss,grad_norm --out /tmp/q.png
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "framework/train/plot.h"
#include "tools/commands.h"

namespace ssm::tools {

void register_plot(CLI::App& app) {
  struct Args {
    std::string run_dir;
    std::string out;
    std::vector<std::string> metrics;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("plot", "Plot a run's loss curves (RUN_DIR/metrics.jsonl) as a PNG");
  cmd->add_option("run_dir", args->run_dir, "Run directory (holds metrics.jsonl)")->required();
  cmd->add_option("--out,-o", args->out, "Output PNG (default RUN_DIR/loss.png)");
  cmd->add_option("--metrics,-m", args->metrics, "Comma-separated scalar names to draw (default loss,val_loss)")
      ->delimiter(',');
  cmd->callback([args] {
    const std::string png = ssm::train::plot_run(args->run_dir, args->out, args->metrics);
    std::printf("wrote %s\n", png.c_str());
  });
}

}  // namespace ssm::tools
