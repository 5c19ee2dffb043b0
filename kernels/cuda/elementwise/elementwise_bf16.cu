// The float-dtype elementwise family (unary, binary, unary_bwd, where, axpy) for bf16:
// one instantiation file per dtype, so the three compile in parallel.
#include "kernels/cuda/elementwise/elementwise_impl.cuh"

namespace ssm::kernels::cuda {
SSM_CUDA_ELEMENTWISE_INSTANTIATE(, bf16)
}  // namespace ssm::kernels::cuda
