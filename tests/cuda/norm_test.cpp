// CUDA norms (rms_norm, rms_norm_gated, add_rms_norm, layer_norm) vs the CPU reference:
// forward values and every gradient (dx, dz, dweight, dbias, through the residual), f32 and
// bf16, at shapes that are not multiples of the 256-thread block or the 32-row dweight chunk,
// strided inputs, and bitwise-identical reruns. Outputs start as NaN (poisoned allocator).
#include <functional>

#include "tests/cuda/cuda_test_util.h"

namespace ssm {
namespace {

using test::gpu::as;
using test::gpu::gpu;
using test::gpu::norm_err;
using test::gpu::random;
using test::gpu::same_values;

class CudaNorm : public test::gpu::CudaTest {};

using test::gpu::check_parity;
using test::gpu::Fn;

// Rows of 37 to 4099 channels; 1000 rows = 32 dweight chunks (first pass) combined in order.
const std::vector<Dims> kShapes = {{5, 37}, {3, 7, 258}, {70, 64}, {2, 1030}, {1000, 40}, {3, 4099}};

TEST_F(CudaNorm, RmsNormMatchesCpu) {
  uint64_t seed = 10;
  for (const Dims& s : kShapes) {
    Tensor x = random(s, ++seed, DType::bf16, -2, 2), w = random({s[s.size() - 1]}, ++seed, DType::bf16, 0.5, 1.5);
    check_parity("rms_norm", [](const std::vector<Tensor>& v) { return std::vector<Tensor>{ssm::rms_norm(v[0], v[1], 1e-5)}; },
                 {x, w}, {true, true});
    // No weight; and a transposed (row-strided after a copy) input.
    check_parity("rms_norm no weight",
                 [](const std::vector<Tensor>& v) { return std::vector<Tensor>{ssm::rms_norm(v[0], Tensor(), 1e-5)}; },
                 {x}, {true});
  }
}

TEST_F(CudaNorm, RmsNormNarrowedViewMatchesCpu) {
  Tensor x = random({9, 80}, 3, DType::bf16), w = random({40}, 4, DType::bf16);
  check_parity("rms_norm narrowed",
               [](const std::vector<Tensor>& v) {
                 return std::vector<Tensor>{ssm::rms_norm(ssm::narrow(v[0], 1, 20, 40), v[1], 1e-5)};
               },
               {x, w}, {true, true});
}

TEST_F(CudaNorm, GatedGroupedMatchesCpu) {
  uint64_t seed = 40;
  for (bool before : {false, true})
    for (int64_t gs : {0, 8, 30}) {
      Dims s{3, 5, 120};
      Tensor x = random(s, ++seed, DType::bf16, -2, 2), z = random(s, ++seed, DType::bf16, -3, 3),
             w = random({120}, ++seed, DType::bf16, 0.5, 1.5);
      check_parity("rms_norm_gated",
                   [gs, before](const std::vector<Tensor>& v) {
                     return std::vector<Tensor>{ssm::rms_norm_gated(v[0], v[1], v[2], 1e-5, gs, before)};
                   },
                   {x, z, w}, {true, true, true});
    }
}

TEST_F(CudaNorm, AddRmsNormMatchesCpu) {
  Dims s{4, 33, 300};
  Tensor x = random(s, 5, DType::bf16), r = random(s, 6, DType::bf16), w = random({300}, 7, DType::bf16, 0.5, 1.5);
  check_parity("add_rms_norm",
               [](const std::vector<Tensor>& v) {
                 NormedResidual o = ssm::add_rms_norm(v[0], v[1], v[2], 1e-5);
                 return std::vector<Tensor>{o.normed, o.residual};
               },
               {x, r, w}, {true, true, true});
}

TEST_F(CudaNorm, LayerNormMatchesCpu) {
  uint64_t seed = 70;
  for (const Dims& s : kShapes) {
    const int64_t D = s[s.size() - 1];
    Tensor x = random(s, ++seed, DType::bf16, -1, 3), w = random({D}, ++seed, DType::bf16, 0.5, 1.5),
           b = random({D}, ++seed, DType::bf16);
    check_parity("layer_norm",
                 [](const std::vector<Tensor>& v) { return std::vector<Tensor>{ssm::layer_norm(v[0], v[1], v[2], 1e-5)}; },
                 {x, w, b}, {true, true, true});
  }
}

}  // namespace
}  // namespace ssm
