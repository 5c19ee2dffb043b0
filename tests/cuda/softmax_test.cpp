// CUDA softmax / log_softmax vs the CPU reference, forward and backward, f32 and bf16, over the
// last dim and over a middle / first dim (strided lines), at lengths around the 256-thread
// block; bitwise-identical reruns; outputs start as NaN (poisoned allocator).
#include <functional>

#include "tests/cuda/cuda_test_util.h"

namespace ssm {
namespace {

using test::gpu::as;
using test::gpu::gpu;
using test::gpu::norm_err;
using test::gpu::random;
using test::gpu::same_values;

class CudaSoftmax : public test::gpu::CudaTest {};

// Runs f on the inputs in dtype t on device d, then backward of Σ_k sum(out_k · c_k) with
// fixed random cotangents c_k: returns the outputs followed by the gradients of the inputs
// marked in `diff`, all as f64 cpu tensors. Integer inputs keep their dtype.
using Fn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
std::vector<Tensor> run(const Fn& f, const std::vector<Tensor>& in0, const std::vector<bool>& diff, DType t, Device d) {
  std::vector<Tensor> in;
  for (size_t i = 0; i < in0.size(); ++i) {
    const bool is_int = in0[i].dtype() == DType::i32 || in0[i].dtype() == DType::i64;
    Tensor x = as(in0[i], is_int ? in0[i].dtype() : t, d);
    if (diff[i]) x.set_requires_grad(true);
    in.push_back(x);
  }
  std::vector<Tensor> outs = f(in);
  Tensor loss;
  for (size_t k = 0; k < outs.size(); ++k) {
    Tensor c = as(random(outs[k].shape(), 100 + k, DType::bf16), t, d);
    Tensor term = ssm::sum(outs[k] * c);
    loss = loss.defined() ? loss + term : term;
  }
  ssm::backward(loss);
  std::vector<Tensor> r;
  for (const Tensor& o : outs) r.push_back(as(o, DType::f64));
  for (size_t i = 0; i < in.size(); ++i)
    if (diff[i]) r.push_back(as(in[i].grad(), DType::f64));
  return r;
}

// GPU f32 within 2·(CPU f32 error) + 1e-5 of the CPU f64 result (normwise), GPU bf16 within
// `bf16_tol`; both bitwise identical when run twice (deterministic).
void check_parity(const char* what, const Fn& f, const std::vector<Tensor>& in, const std::vector<bool>& diff,
                  double bf16_tol = 2e-2) {
  auto ref = run(f, in, diff, DType::f64, Device::cpu());
  auto naive = run(f, in, diff, DType::f32, Device::cpu());
  auto g32 = run(f, in, diff, DType::f32, gpu());
  auto g32b = run(f, in, diff, DType::f32, gpu());
  auto g16 = run(f, in, diff, DType::bf16, gpu());
  auto g16b = run(f, in, diff, DType::bf16, gpu());
  ASSERT_EQ(ref.size(), g32.size());
  for (size_t k = 0; k < ref.size(); ++k) {
    std::vector<double> r = ref[k].to_vector();
    const double en = norm_err(naive[k].to_vector(), r), e32 = norm_err(g32[k].to_vector(), r),
                 e16 = norm_err(g16[k].to_vector(), r);
    EXPECT_LE(e32, 2 * en + 1e-5) << what << " result " << k << " " << ref[k].describe() << " (cpu f32 " << en << ")";
    EXPECT_LE(e16, bf16_tol) << what << " result " << k << " " << ref[k].describe();
    EXPECT_TRUE(same_values(g32[k], g32b[k])) << what << " f32 rerun, result " << k;
    EXPECT_TRUE(same_values(g16[k], g16b[k])) << what << " bf16 rerun, result " << k;
  }
}

struct Case {
  Dims shape;
  int dim;
};

TEST_F(CudaSoftmax, SoftmaxAndLogSoftmaxMatchCpu) {
  const Case cases[] = {{{7, 5}, -1}, {{3, 4, 257}, -1}, {{2, 5000}, 1}, {{6, 33, 5}, 1}, {{300, 3}, 0}};
  uint64_t seed = 1;
  for (const Case& c : cases)
    for (bool log : {false, true}) {
      Tensor x = random(c.shape, ++seed, DType::bf16, -6, 6);
      const int dim = c.dim;
      check_parity(log ? "log_softmax" : "softmax",
                   [dim, log](const std::vector<Tensor>& v) {
                     return std::vector<Tensor>{log ? ssm::log_softmax(v[0], dim) : ssm::softmax(v[0], dim)};
                   },
                   {x}, {true});
    }
}

TEST_F(CudaSoftmax, LargeLogitsDoNotOverflow) {
  Tensor x = as(random({4, 1000}, 9, DType::f32, 80, 120), DType::f32, gpu());
  Tensor y = ssm::softmax(x, -1);
  EXPECT_TRUE(test::gpu::all_finite(y));
  std::vector<double> v = ssm::sum(y, {-1}).to_vector();
  for (double s : v) EXPECT_NEAR(s, 1.0, 1e-5);
}

}  // namespace
}  // namespace ssm
