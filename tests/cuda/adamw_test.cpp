// CUDA multi-tensor AdamW and global sum of squares (grad-norm clipping) vs the CPU kernels:
// several tensors of sizes around the 4096-element chunk in one launch, with and without
// weight decay, over a few steps, f32 and f64 master weights; f32/bf16/f64 gradients for the
// sum of squares; bitwise-identical reruns.
// (ssm_test_cuda links the ops layer only, so these call the kernel launchers directly; the
// optim::AdamW / clip_grad_norm CUDA branches are thin wrappers around the same calls.)
#include "kernels/cpu/adamw.h"
#include "tests/cuda/cuda_test_util.h"
#if defined(SSM_WITH_CUDA)
#include "kernels/cuda/adamw/adamw.h"
#endif

namespace ssm {
namespace {

using test::gpu::as;
using test::gpu::gpu;
using test::gpu::norm_err;
using test::gpu::random;
using test::gpu::same_values;

class CudaAdamw : public test::gpu::CudaTest {};

const std::vector<Dims> kShapes = {{5}, {64, 64}, {4097}, {3, 3001}, {1}, {8192}};

struct State {
  std::vector<Tensor> w, m, v, g;
};

State make_state(DType t, Device d) {
  State s;
  for (size_t i = 0; i < kShapes.size(); ++i) {
    s.w.push_back(as(random(kShapes[i], 10 + i, DType::f32), t, d));
    s.m.push_back(as(random(kShapes[i], 20 + i, DType::f32, -0.1, 0.1), t, d));
    s.v.push_back(as(random(kShapes[i], 30 + i, DType::f32, 0, 0.1), t, d));
    s.g.push_back(Tensor());
  }
  return s;
}

std::vector<kernels::AdamwTensor> list(const State& s) {
  std::vector<kernels::AdamwTensor> l;
  for (size_t i = 0; i < s.w.size(); ++i) {
    kernels::AdamwTensor a;
    a.numel = s.w[i].numel();
    a.param = s.w[i].raw_data();
    a.grad = s.g[i].raw_data();
    a.exp_avg = s.m[i].raw_data();
    a.exp_avg_sq = s.v[i].raw_data();
    a.weight_decay = i % 2 ? 0.0 : 0.1;
    l.push_back(a);
  }
  return l;
}

// Params after `steps` steps; the step-s gradients are seeded by s.
std::vector<Tensor> train(DType t, Device d, int steps) {
  State s = make_state(t, d);
  for (int k = 0; k < steps; ++k) {
    for (size_t i = 0; i < s.g.size(); ++i) s.g[i] = as(random(kShapes[i], 1000 * k + i, DType::f32, -2, 2), t, d);
    std::vector<kernels::AdamwTensor> l = list(s);
    kernels::AdamwParams p;
    p.lr = 1e-2;
    p.step = k + 1;
    p.num_tensors = int64_t(l.size());
    p.tensors = l.data();
    if (d.is_cpu()) {
      if (t == DType::f32) kernels::cpu::adamw_step<float>(p);
      else kernels::cpu::adamw_step<double>(p);
    } else {
#if defined(SSM_WITH_CUDA)
      const size_t ws = kernels::cuda::multi_tensor_workspace(p.num_tensors, p.tensors);
      Tensor scratch = Tensor::empty(Dims{int64_t(ws / 8 + 1)}, DType::i64, d);
      EXPECT_TRUE(kernels::cuda::adamw_step(t, p, scratch.raw_data(), ws, cuda::current_stream(0)).ok());
#endif
    }
  }
  std::vector<Tensor> out;
  for (const Tensor& w : s.w) out.push_back(as(w, DType::f64));
  for (const Tensor& m : s.m) out.push_back(as(m, DType::f64));
  for (const Tensor& v : s.v) out.push_back(as(v, DType::f64));
  return out;
}

TEST_F(CudaAdamw, MultiTensorStepMatchesCpu) {
  auto ref = train(DType::f64, Device::cpu(), 3);
  auto naive = train(DType::f32, Device::cpu(), 3);
  auto ours = train(DType::f32, gpu(), 3);
  auto again = train(DType::f32, gpu(), 3);
  auto ours64 = train(DType::f64, gpu(), 3);
  for (size_t k = 0; k < ref.size(); ++k) {
    std::vector<double> r = ref[k].to_vector();
    const double en = norm_err(naive[k].to_vector(), r), eo = norm_err(ours[k].to_vector(), r);
    EXPECT_LE(eo, 2 * en + 1e-6) << "tensor " << k << " " << ref[k].describe();
    EXPECT_LE(norm_err(ours64[k].to_vector(), r), 1e-13) << "f64 tensor " << k;
    EXPECT_TRUE(same_values(ours[k], again[k])) << "tensor " << k;
  }
}

TEST_F(CudaAdamw, SumOfSquaresMatchesCpu) {
#if defined(SSM_WITH_CUDA)
  for (DType t : {DType::f32, DType::bf16, DType::f64}) {
    std::vector<Tensor> gs;
    std::vector<kernels::AdamwTensor> l;
    double expect = 0;
    for (size_t i = 0; i < kShapes.size(); ++i) {
      Tensor g = random(kShapes[i], 50 + i, DType::bf16, -3, 3);
      for (double x : g.to_vector()) expect += x * x;
      gs.push_back(as(g, t, gpu()));
      kernels::AdamwTensor a;
      a.numel = g.numel();
      a.grad = gs.back().raw_data();
      l.push_back(a);
    }
    double got[2];
    for (double& out : got) {
      Tensor res = Tensor::empty(Dims{1}, DType::f64, gpu());
      const size_t ws = kernels::cuda::multi_tensor_workspace(int64_t(l.size()), l.data());
      Tensor scratch = Tensor::empty(Dims{int64_t(ws / 8 + 1)}, DType::i64, gpu());
      ASSERT_TRUE(kernels::cuda::sum_squares(t, int64_t(l.size()), l.data(), scratch.raw_data(), ws,
                                             static_cast<double*>(res.raw_data()), cuda::current_stream(0))
                      .ok());
      out = res.item();
    }
    EXPECT_NEAR(got[0], expect, 1e-12 * expect) << test::gpu::name(t);
    EXPECT_EQ(got[0], got[1]) << test::gpu::name(t);
  }
#endif
}

}  // namespace
}  // namespace ssm
