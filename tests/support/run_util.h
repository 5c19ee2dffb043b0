// Helpers for end-to-end tests: temp dirs, running the `ssm` binary, reading files.
#pragma once
#include <string>
#include <vector>

namespace ssm::test {

// A fresh empty directory under the system temp dir, removed by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

struct RunResult {
  int exit_code = -1;  // -signal when killed by a signal
  std::string output;  // stdout + stderr
};

// Runs `argv` (argv[0] a path) with cwd `dir`, captures output, waits.
RunResult run_process(const std::vector<std::string>& argv, const std::string& dir);
// Starts `argv` in the background; returns its pid (output to `log_path`).
int spawn_process(const std::vector<std::string>& argv, const std::string& dir, const std::string& log_path);
// Waits for `pid`; returns the exit code or -signal.
int wait_process(int pid);

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& text);
std::vector<std::string> read_lines(const std::string& path);

}  // namespace ssm::test
