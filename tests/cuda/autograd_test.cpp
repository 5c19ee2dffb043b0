// Gradients of a small composed function (linear with and without bias, gates, broadcasting,
// division, reductions) computed on the GPU vs the same function on the CPU: the ops dispatch to CUDA
// transparently, autograd included.
#include "tests/cuda/cuda_test_util.h"

namespace ssm {
namespace {

using test::gpu::as;
using test::gpu::gpu;
using test::gpu::norm_err;
using test::gpu::random;

class CudaAutograd : public test::gpu::CudaTest {};

struct Params {
  Tensor x, w, b, v;  // x (B, L, D), w (E, D), b (E), v (E)
};

// loss = mean_{B,L} sum_E( h / (1 + h^2) + 0.1 h^2 ),  h = silu(x·wᵀ + b) * sigmoid(v) - 0.5 tanh(x·wᵀ)
// (max is left out: in bf16 a near-tie can flip the argmax, which is not an error; its
// gradient is checked exactly in reduce_test.cpp)
Tensor loss_fn(const Params& p) {
  Tensor z = ssm::linear(p.x, p.w, p.b);
  Tensor h = ssm::silu(z) * ssm::sigmoid(p.v) - ssm::tanh(ssm::linear(p.x, p.w)) * 0.5;
  Tensor y = ssm::sum(h / (ssm::square(h) + 1.0) + ssm::square(h) * 0.1, {-1});
  return ssm::mean(y);
}

std::vector<Tensor> grads(const Params& p0, DType t, Device d) {
  Params p{as(p0.x, t, d).set_requires_grad(true), as(p0.w, t, d).set_requires_grad(true),
           as(p0.b, t, d).set_requires_grad(true), as(p0.v, t, d).set_requires_grad(true)};
  Tensor loss = loss_fn(p);
  ssm::backward(loss);
  return {as(loss, t), p.x.grad(), p.w.grad(), p.b.grad(), p.v.grad()};
}

TEST_F(CudaAutograd, ComposedFunctionGradientsMatchCpu) {
  // The inputs are drawn as bf16 values so every evaluation sees exactly the same inputs.
  Params p0{random({3, 7, 37}, 1, DType::bf16), random({29, 37}, 2, DType::bf16, -0.3, 0.3),
            random({29}, 3, DType::bf16), random({29}, 4, DType::bf16, -2, 2)};
  auto ref = grads(p0, DType::f64, Device::cpu());
  auto naive = grads(p0, DType::f32, Device::cpu());
  auto ours32 = grads(p0, DType::f32, gpu());
  auto ours16 = grads(p0, DType::bf16, gpu());
  const char* what[] = {"loss", "dx", "dw", "db", "dv"};
  for (int k = 0; k < 5; ++k) {
    std::vector<double> r = ref[size_t(k)].to_vector();
    double en = norm_err(naive[size_t(k)].to_vector(), r);
    double e32 = norm_err(ours32[size_t(k)].to_vector(), r);
    double e16 = norm_err(ours16[size_t(k)].to_vector(), r);
    std::printf("[ info ] %-4s normwise error vs f64: cpu f32 %.2e, gpu f32 %.2e, gpu bf16 %.2e\n", what[k], en, e32,
                e16);
    EXPECT_LE(e32, 2 * en + 1e-5) << what[k];
    EXPECT_LE(e16, 3e-2) << what[k];
  }
}

// The same, with the SSM_CUDA_SYNC debug mode on: identical results, every launch checked.
TEST_F(CudaAutograd, SyncDebugModeGivesIdenticalGradients) {
  Params p0{random({2, 5, 19}, 5, DType::f32), random({11, 19}, 6, DType::f32), random({11}, 7, DType::f32),
            random({11}, 8, DType::f32)};
  auto plain = grads(p0, DType::f32, gpu());
#if defined(SSM_WITH_CUDA)
  bool was = cuda::launch_sync();
  cuda::set_launch_sync(true);
  auto synced = grads(p0, DType::f32, gpu());
  cuda::set_launch_sync(was);
#else
  auto synced = plain;
#endif
  for (size_t k = 0; k < plain.size(); ++k) EXPECT_EQ(plain[k].to_vector(), synced[k].to_vector()) << k;
}

}  // namespace
}  // namespace ssm
