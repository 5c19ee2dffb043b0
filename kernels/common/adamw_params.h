// Parameters of the fused multi-tensor AdamW step (decoupled weight decay, bias correction).
//
//   AdamwTensor t[2] = {{n0, w0, g0, m0, v0, 0.1}, {n1, b1, gb1, mb1, vb1, 0.0}};  // bias: no decay
//   AdamwParams p;
//   p.lr = 3e-4; p.beta1 = 0.9; p.beta2 = 0.95; p.eps = 1e-8; p.step = 1;  // 1 = first step
//   p.tensors = t; p.num_tensors = 2;
//   cpu::adamw_step<float>(p);   // updates every param, m and v in one pass
//
// Params are the fp32 (or f64) master weights; grad, m and v have the param's dtype and
// are all contiguous.
#pragma once
#include <cstdint>

namespace ssm::kernels {

struct AdamwTensor {
  int64_t numel = 0;
  void* param = nullptr;        // (numel) master weights, updated in place
  const void* grad = nullptr;   // (numel)
  void* exp_avg = nullptr;      // (numel) m, updated in place
  void* exp_avg_sq = nullptr;   // (numel) v, updated in place
  double weight_decay = 0.0;    // 0 for parameters excluded from decay
};

struct AdamwParams {
  double lr = 0.0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  int64_t step = 1;  // the step being taken, counting from 1 (bias correction 1 - beta^step)
  int64_t num_tensors = 0;
  const AdamwTensor* tensors = nullptr;  // (num_tensors)
};

}  // namespace ssm::kernels
