// CUDA fused cross-entropy over (N, V) logits without a host sync. The forward writes each
// row's logsumexp (acc_t<T>: f32 for f32/bf16) and, in a second single-block pass, the totals
// {Σ loss, count, correct} (f64, device) and the mean loss into a 0-d device scalar; the
// backward reads dloss and count from the device, so the training step never waits for the
// host. Only the optional stats (count, correct) need one copy to the host.
//
//   XentParams p; p.rows = B * L; p.vocab = V; p.logits = logits; p.targets = t; p.lse = lse;
//   Status s = xent_fwd(DType::bf16, p, row_ws, totals, loss, stream);   // totals: 3 doubles
//   XentBwdCuda b{p, dloss, totals};  b.p.dlogits = dl;
//   s = xent_bwd(DType::bf16, b, stream);  // dl = dloss / count · (softmax - onehot)
//
// Per row: online (max, sum) per thread, merged along a fixed tree; the target logit and the
// first argmax in the same pass (ties go to the smallest index, like the CPU).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/common/dtype.h"
#include "kernels/common/xent_params.h"
#include "kernels/cuda/common/status.h"

namespace ssm::kernels::cuda {

// Device bytes of per-row scratch the forward needs.
size_t xent_fwd_workspace(const XentParams& p);

// totals (3) f64 device: Σ loss, count, correct (exact integers). loss: 0-d, dtype t.
Status xent_fwd(DType t, const XentParams& p, void* workspace, double* totals, void* loss, cudaStream_t stream);

struct XentBwdCuda {
  XentParams p;                   // p.grad_scale is ignored: dloss / count comes from the device
  const void* dloss = nullptr;    // 0-d, dtype t (device)
  const double* totals = nullptr; // from xent_fwd (device)
};
Status xent_bwd(DType t, const XentBwdCuda& b, cudaStream_t stream);

}  // namespace ssm::kernels::cuda
