// Fills, ranges and random tensors. Random values come from an explicit Rng (counter based:
// identical on any thread count or device).
//
//   Rng rng(7);
//   Tensor w = ssm::randn({64, 32}, rng) * 0.02;
//   Tensor y = ssm::dropout(x, 0.1, rng, /*training=*/true);
#pragma once
#include "framework/core/rng.h"
#include "framework/core/tensor.h"

namespace ssm {

Tensor full(const Dims& shape, double value, DType dtype = DType::f32, Device device = Device::cpu());
Tensor ones(const Dims& shape, DType dtype = DType::f32, Device device = Device::cpu());
Tensor zeros_like(const Tensor& x);
Tensor ones_like(const Tensor& x);
Tensor arange(int64_t n, DType dtype = DType::i64, Device device = Device::cpu());

Tensor randn(const Dims& shape, Rng& rng, DType dtype = DType::f32, Device device = Device::cpu());
Tensor rand(const Dims& shape, Rng& rng, DType dtype = DType::f32, Device device = Device::cpu());  // U(0,1]
Tensor uniform(const Dims& shape, double lo, double hi, Rng& rng, DType dtype = DType::f32,
               Device device = Device::cpu());

// Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1-p).
// Identity when !training or p == 0. The mask is regenerated from the Rng counters in
// backward, so nothing mask-sized is stored.
Tensor dropout(const Tensor& x, double p, Rng& rng, bool training = true);

}  // namespace ssm
