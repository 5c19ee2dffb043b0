// The float-dtype elementwise family (unary, binary, unary_bwd, where, axpy) for double:
// one instantiation file per dtype, so the three compile in parallel.
#include "kernels/cuda/elementwise/elementwise_impl.cuh"

namespace ssm::kernels::cuda {
SSM_CUDA_ELEMENTWISE_INSTANTIATE(, double)
}  // namespace ssm::kernels::cuda
