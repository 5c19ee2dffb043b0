// Strided N-d elementwise ops: out = f(a [, b [, c]]) over a common (broadcast) shape.
// Each operand brings its own element strides (0 = broadcast along that axis), so views,
// transposes and broadcasts never need a copy before an elementwise kernel.
#pragma once
#include <cstdint>

#include "kernels/common/dtype.h"
#include "kernels/common/macros.h"

namespace ssm::kernels {

enum class UnaryOp : uint8_t {
  identity, neg, exp, log, sqrt, rsqrt, tanh, sigmoid, silu, softplus, gelu, abs, square, reciprocal, relu,
};
enum class BinaryOp : uint8_t { add, sub, mul, div, maximum, minimum, pow };

struct Operand {
  void* data = nullptr;
  int64_t strides[kMaxDims] = {};
};

struct ElementwiseParams {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};  // common (broadcast) shape of all operands
  Operand out, a, b, c;
  double alpha = 1.0, beta = 0.0;  // scalars used by some ops (see each kernel)
};

}  // namespace ssm::kernels
