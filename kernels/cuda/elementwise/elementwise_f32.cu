// The float-dtype elementwise family (unary, binary, unary_bwd, where, axpy) for float:
// one instantiation file per dtype, so the three compile in parallel.
#include "kernels/cuda/elementwise/elementwise_impl.cuh"

namespace ssm::kernels::cuda {
SSM_CUDA_ELEMENTWISE_INSTANTIATE(, float)
}  // namespace ssm::kernels::cuda
