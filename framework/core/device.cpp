#include "framework/core/device.h"

#include "framework/core/error.h"

#if defined(SSM_WITH_CUDA)
#include <cuda_runtime.h>
#endif

namespace ssm {

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    std::string idx = s.substr(5);
    bool digits = !idx.empty() && idx.find_first_not_of("0123456789") == std::string::npos;
    SSM_CHECK(digits && idx.size() < 4, "invalid device '{}': expected cpu, cuda or cuda:N", s);
    return cuda(std::stoi(idx));
  }
  SSM_FAIL("invalid device '{}': expected cpu, cuda or cuda:N", s);
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

bool cuda_compiled() {
#if defined(SSM_WITH_CUDA)
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#if defined(SSM_WITH_CUDA)
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
#else
  return 0;
#endif
}

}  // namespace ssm
