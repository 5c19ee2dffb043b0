#include "framework/core/error.h"

#include <cstring>

namespace ssm::detail {

namespace {
// "/abs/path/to/repo/framework/ops/x.cpp" -> "framework/ops/x.cpp": messages stay short and
// identical across machines.
const char* trim_to_repo(const char* file) {
  static const char* roots[] = {"/framework/", "/kernels/", "/data/", "/tools/", "/tests/"};
  const char* best = nullptr;
  for (const char* r : roots) {
    const char* p = std::strstr(file, r);
    if (p && (!best || p < best)) best = p;
  }
  return best ? best + 1 : file;
}
}  // namespace

[[noreturn]] void throw_error(const char* file, int line, const std::string& msg) {
  throw Error(fmt::format("{}:{}: {}", trim_to_repo(file), line, msg));
}

}  // namespace ssm::detail
