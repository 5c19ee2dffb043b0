// The `ssm` command line: one file per subcommand, each registering itself on the app.
// A registration adds a CLI11 subcommand whose callback does the work and throws
// ssm::Error on failure; main() prints the error on one line and exits non-zero.
#pragma once
#include <CLI/CLI.hpp>

#include <memory>

namespace ssm::dist {
class Communicator;
}  // namespace ssm::dist

namespace ssm::tools {

// Exit codes: 0 success, 1 runtime error (ssm::Error), 2 usage error (CLI11),
// 130 interrupted by a second signal.
// `world`: the ranks of this job (dist::Runtime); train and resume run on all of them.
void register_train(CLI::App& app, const std::shared_ptr<dist::Communicator>& world);
void register_generate(CLI::App& app);
void register_data(CLI::App& app);
void register_plot(CLI::App& app);
void register_inspect(CLI::App& app);
void register_bench(CLI::App& app);
void register_export(CLI::App& app);
void register_import(CLI::App& app);

}  // namespace ssm::tools
