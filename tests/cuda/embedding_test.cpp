// CUDA embedding vs the CPU reference: gathered rows and dweight (many repeated ids, ids that
// never occur: their rows must be written as 0), int32 and int64 ids, f32 and bf16, a
// dimension that is not a multiple of the 256-thread tile; bitwise-identical reruns; outputs
// start as NaN (poisoned allocator).
#include <functional>

#include "tests/cuda/cuda_test_util.h"

namespace ssm {
namespace {

using test::gpu::as;
using test::gpu::gpu;
using test::gpu::norm_err;
using test::gpu::random;
using test::gpu::same_values;

class CudaEmbedding : public test::gpu::CudaTest {};

using test::gpu::check_parity;
using test::gpu::Fn;

Tensor ids(const Dims& shape, int64_t hi, uint64_t seed, DType t) {
  std::mt19937_64 rng(seed);
  std::vector<double> v(size_t(shape.numel()));
  for (double& x : v) x = double(rng() % uint64_t(hi));
  return Tensor::from_vector(v, shape, t);
}

TEST_F(CudaEmbedding, ForwardAndBackwardMatchCpu) {
  struct Case {
    int64_t V, D, hi;
    Dims id_shape;
  };
  const Case cases[] = {{10, 3, 10, {7}}, {1000, 67, 20, {3, 50}}, {301, 300, 301, {4, 129}}, {50, 8, 3, {2000}}};
  uint64_t seed = 1;
  for (const Case& c : cases)
    for (DType it : {DType::i32, DType::i64}) {
      Tensor w = random({c.V, c.D}, ++seed, DType::bf16), id = ids(c.id_shape, c.hi, ++seed, it);
      check_parity("embedding",
                   [](const std::vector<Tensor>& v) { return std::vector<Tensor>{ssm::embedding(v[0], v[1])}; },
                   {w, id}, {true, false});
    }
}

TEST_F(CudaEmbedding, GatherIsExact) {
  Tensor w = random({100, 33}, 3, DType::bf16), id = ids({5, 7}, 100, 4, DType::i64);
  for (DType t : {DType::f32, DType::bf16}) {
    Tensor ours = ssm::embedding(as(w, t, gpu()), as(id, DType::i64, gpu()));
    Tensor cpu = ssm::embedding(as(w, DType::f32), id);
    EXPECT_TRUE(same_values(as(ours, DType::f32), cpu));
  }
}

}  // namespace
}  // namespace ssm
