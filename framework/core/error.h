// One error type for the whole framework.
//
//   SSM_CHECK(x.dim() == 2, "matmul: expected a 2-D tensor, got {}", x.describe());
//
// throws ssm::Error("framework/ops/linalg.cpp:42: matmul: expected ...") plus, when an
// OpContext is active on this thread, the op name and the tensors involved. Only
// `main` decides to exit; library code never calls exit() or abort() on bad input.
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace ssm {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
// Builds "file:line: [op(ctx)]: message" and throws. `file` is trimmed to the repo root.
[[noreturn]] void throw_error(const char* file, int line, const std::string& msg);
}  // namespace detail

}  // namespace ssm

#define SSM_FAIL(...) ::ssm::detail::throw_error(__FILE__, __LINE__, ::fmt::format(__VA_ARGS__))
#define SSM_CHECK(cond, ...)         \
  do {                               \
    if (!(cond)) [[unlikely]] {      \
      SSM_FAIL(__VA_ARGS__);         \
    }                                \
  } while (0)
