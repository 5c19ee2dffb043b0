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

using test::gpu::check_parity;
using test::gpu::Fn;

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
