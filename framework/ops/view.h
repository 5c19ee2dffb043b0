// Differentiable views and copies. Views share storage (no copy); their backward maps the
// gradient back through the same geometry.
//
//   Tensor xt = ssm::transpose(x, 1, 2);     // (B, L, E) -> (B, E, L) view
//   Tensor h  = ssm::narrow(proj, -1, 0, E); // first E channels of a fused projection
//   Tensor hb = ssm::to(h, DType::bf16);     // cast; backward casts the gradient back
#pragma once
#include <string>
#include <vector>

#include "framework/core/tensor.h"

namespace ssm {

Tensor view(const Tensor& x, const Dims& shape);     // fails if a copy would be needed
Tensor reshape(const Tensor& x, const Dims& shape);  // view when possible, else a copy
Tensor transpose(const Tensor& x, int a, int b);
Tensor permute(const Tensor& x, const std::vector<int>& order);
Tensor narrow(const Tensor& x, int dim, int64_t start, int64_t length);
Tensor select(const Tensor& x, int dim, int64_t index);
Tensor expand(const Tensor& x, const Dims& shape);
Tensor unsqueeze(const Tensor& x, int dim);
Tensor squeeze(const Tensor& x, int dim);
Tensor flatten(const Tensor& x, int start_dim = 0, int end_dim = -1);

Tensor contiguous(const Tensor& x);  // x itself when already contiguous
Tensor clone(const Tensor& x);       // always a fresh contiguous copy
Tensor to(const Tensor& x, DType dtype);
Tensor to(const Tensor& x, Device device);

// dst <- src (src broadcast to dst, any dtypes, same device). Not recorded.
void copy_(const Tensor& dst, const Tensor& src);

// Values, for debugging: "tensor(f32[2, 2] cpu)\n[[1, 2],\n [3, 4]]" (elided when large).
std::string to_string(const Tensor& x, int max_per_dim = 6);

}  // namespace ssm
