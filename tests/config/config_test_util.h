// Helpers for the recipe tests: a scratch directory of YAML files and error capture.
//
//   TempDir t;
//   std::string path = t.write("bad.yaml", lines({"model:", "  d_model: abc"}));
//   std::string msg = error_of([&] { load_recipe(path); });   // "" (and a failure) if no throw
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>

#include "framework/core/error.h"

namespace ssm::config::testing {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = info ? std::string(info->test_suite_name()) + "_" + info->name() : "none";
    for (char& c : name)
      if (c == '/') c = '_';  // parameterised tests are named "Suite/Test/Case"
    dir_ = fs::temp_directory_path() / ("ssm_config_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Writes `text` to dir/rel (creating folders) and returns the full path as a string.
  std::string write(const std::string& rel, const std::string& text) const {
    fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  std::string path(const std::string& rel) const { return (dir_ / rel).string(); }

 private:
  fs::path dir_;
};

// Joins lines with '\n' (and a final newline) so that line numbers are easy to read off.
inline std::string lines(std::initializer_list<const char*> ls) {
  std::string out;
  for (const char* l : ls) out += std::string(l) + "\n";
  return out;
}

// The message of the ssm::Error that `f` throws; records a failure and returns "" otherwise.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const ssm::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-ssm exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected an ssm::Error, but nothing was thrown";
  return "";
}

// Finds the repository root: $SSM_SOURCE_DIR, the source dir the build was configured from, else walk up from the test binary, else from
// the working directory, to the first folder holding recipes/ and framework/config/.
inline fs::path repo_root() {
  auto is_root = [](const fs::path& p) {
    return fs::is_directory(p / "recipes") && fs::is_directory(p / "framework" / "config");
  };
  if (const char* env = std::getenv("SSM_SOURCE_DIR"); env && is_root(env)) return env;
#ifdef SSM_SOURCE_DIR
  if (is_root(SSM_SOURCE_DIR)) return SSM_SOURCE_DIR;  // set by tests/CMakeLists.txt
#endif
  std::error_code ec;
  for (fs::path start : {fs::read_symlink("/proc/self/exe", ec).parent_path(), fs::current_path()}) {
    for (fs::path p = start; !p.empty(); p = p.parent_path()) {
      if (is_root(p)) return p;
      if (p == p.parent_path()) break;
    }
  }
  return {};
}

}  // namespace ssm::config::testing
