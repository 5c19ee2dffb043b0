// Differentiable elementwise ops with numpy broadcasting (no implicit dtype promotion).
//
//   Tensor y = ssm::silu(ssm::add(x, bias));   // bias (D) broadcast over x (B, L, D)
//   Tensor z = x * 2.0 + y;                     // operators record gradients too
#pragma once
#include "framework/core/tensor.h"

namespace ssm {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);

Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor silu(const Tensor& x);
Tensor softplus(const Tensor& x);
Tensor gelu(const Tensor& x);  // exact (erf) GELU
Tensor square(const Tensor& x);
Tensor relu(const Tensor& x);

// cond != 0 ? a : b, all broadcast together; cond has a's dtype. No gradient to cond.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator*(double s, const Tensor& a) { return mul(a, s); }

// ---- in place, never recorded (optimizers, gradient accumulation) ----
void add_(const Tensor& dst, const Tensor& src, double alpha = 1.0);  // dst += alpha * src
void fill_(const Tensor& dst, double value);
void mul_(const Tensor& dst, double s);

}  // namespace ssm
