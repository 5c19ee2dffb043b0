// Parameters of softmax / log-softmax along one axis of a tensor seen as (O, N, I):
// O = the dims before the axis (collapsed), N = the axis, I = the dims after it (collapsed).
//
//   SoftmaxParams p;                       // softmax over dim 1 of a contiguous (B, N, D)
//   p.outer = B; p.n = N; p.inner = D;
//   p.x = x; p.x_strides = {N * D, D, 1};  // (outer, axis, inner) element strides
//   p.y = y; p.y_strides = {N * D, D, 1};
//   cpu::softmax_fwd<float>(p);
//
// Each (o, i) pair is one independent line of N elements, so any dim is handled without
// moving it last, and a view whose outer/inner dims collapse is read without a copy.
#pragma once
#include <cstdint>

namespace ssm::kernels {

struct SoftmaxStrides {
  int64_t outer = 0, axis = 0, inner = 0;  // element strides
};

struct SoftmaxParams {
  int64_t outer = 0, n = 0, inner = 0;  // O, N, I
  bool log = false;                     // log_softmax instead of softmax
  SoftmaxStrides x_strides, y_strides, dy_strides, dx_strides;
  const void* x = nullptr;   // (O, N, I) forward input
  void* y = nullptr;         // (O, N, I) forward output; the backward reads it
  const void* dy = nullptr;  // (O, N, I) backward input
  void* dx = nullptr;        // (O, N, I) backward output
};

}  // namespace ssm::kernels
