// CPU elementwise kernels over strided operands (float and double compute).
//
//   ElementwiseParams p;  p.ndim = 2; p.shape = {4, 3};
//   p.out = {y, {3, 1}}; p.a = {x, {3, 1}}; p.b = {bias, {0, 1}};   // bias broadcast over rows
//   binary<float>(BinaryOp::add, p);                                 // y = x + bias
#pragma once
#include "kernels/common/elementwise_params.h"

namespace ssm::kernels::cpu {

// out = alpha * op(a) + beta          (alpha/beta default 1/0)
template <class T> void unary(UnaryOp op, const ElementwiseParams& p);
// out = op(a, b)
template <class T> void binary(BinaryOp op, const ElementwiseParams& p);
// out = b * op'(a): the gradient of a unary op at `a` times the incoming gradient `b`
template <class T> void unary_bwd(UnaryOp op, const ElementwiseParams& p);
// out = c != 0 ? a : b   (c: the condition, any float/int dtype given as T; use float/double)
template <class T> void where(const ElementwiseParams& p);
// out = alpha
template <class T> void fill(const ElementwiseParams& p);
// out (dtype `dst`) = a (dtype `src`), any pair of dtypes, any strides
void cast(DType dst, DType src, const ElementwiseParams& p);
// out += alpha * a   (in place, used for gradient accumulation and optimizers)
template <class T> void axpy(const ElementwiseParams& p);

}  // namespace ssm::kernels::cpu
