// Gradient check against central finite differences in float64.
//
//   Tensor x = test::rand_f64({3, 4}, 1);
//   EXPECT_TRUE(test::gradcheck([](const std::vector<Tensor>& in) { return ssm::silu(in[0]); }, {x}));
//
// The analytic vector-Jacobian product Rᵀ·J (R random, from ssm::backward with seed R) is
// compared, element by element of every input that requires grad, with
// (⟨R, f(x + εe_i)⟩ - ⟨R, f(x - εe_i)⟩) / 2ε.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "framework/core/tensor.h"

namespace ssm::test {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-7;
  double rtol = 1e-5;
  uint64_t seed = 12345;
};

using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Inputs must be contiguous f64 cpu tensors; those with requires_grad are checked (the
// function sees fresh leaves with the same values). Others (indices, masks) pass through.
::testing::AssertionResult gradcheck(const TensorFn& f, const std::vector<Tensor>& inputs,
                                     const GradcheckOptions& opts = {});

// Random f64 leaf requiring grad with values uniform in [lo, hi).
Tensor rand_f64(const Dims& shape, uint64_t seed, double lo = -1.0, double hi = 1.0, bool requires_grad = true);

// max |a - b| / max(1, |b|) over elements (shapes must match).
double max_rel_diff(const Tensor& a, const Tensor& b);

}  // namespace ssm::test

namespace ssm::test {

// Gradient check of a closure over leaves it closes over (module parameters, inputs): the
// analytic gradient of ⟨R, f()⟩ for every leaf in `leaves` (f64 cpu, requires grad,
// contiguous) against central differences obtained by perturbing the leaves in place.
// Checks at most `max_per_leaf` elements per leaf (spread evenly) to bound the cost.
::testing::AssertionResult gradcheck_leaves(const std::function<Tensor()>& f, const std::vector<Tensor>& leaves,
                                            const GradcheckOptions& opts = {}, int64_t max_per_leaf = 24);

}  // namespace ssm::test
