// Where a tensor lives: cpu or cuda:N.
#pragma once
#include <cstdint>
#include <string>

namespace ssm {

struct Device {
  enum class Type : uint8_t { cpu, cuda };
  Type type = Type::cpu;
  int index = 0;

  static Device cpu() { return {}; }
  static Device cuda(int i = 0) { return {Type::cuda, i}; }
  // "cpu", "cuda", "cuda:1"; throws ssm::Error on anything else.
  static Device parse(const std::string& s);

  bool is_cpu() const { return type == Type::cpu; }
  bool is_cuda() const { return type == Type::cuda; }
  std::string str() const;
  bool operator==(const Device& o) const { return type == o.type && (is_cpu() || index == o.index); }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

// True when this binary was built with the CUDA backend.
bool cuda_compiled();
// Number of visible CUDA devices (0 in a CPU build or without a GPU).
int cuda_device_count();

}  // namespace ssm
