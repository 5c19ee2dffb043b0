// CPU reference for S5 (float, double); the model is defined in kernels/common/s5_params.h.
//
// s5_fwd is the fused forward: input projection Bbar u_t, a chunked parallel scan over L and
// the output projection, without materialising the (B, L, N) states:
//   1. per (batch, chunk) task: scan the chunk from a zero state, keep its end state;
//   2. per batch: carry_c = abar^len(c-1) carry_(c-1) + end_(c-1), carry_0 = h0;
//   3. per (batch, chunk) task: rescan the chunk from its carry and write y.
// Chunks have fixed boundaries (p.chunk_size), so the rounding, and hence the result, is the
// same for every thread count. s5_bwd recomputes the chunk carries, runs the adjoint scan the
// same way in reverse, and sums parameter gradients into a fixed number of slots (task i goes
// to slot i % slots) that are added in slot order.
// s5_fwd_ref is the plain sequential recurrence, the oracle for the tests.
//
//   // H = 8, N = 16, u: (B=2, L=100, H=8) contiguous, y likewise
//   S5Params p;
//   p.batch = 2; p.seqlen = 100; p.dim = 8; p.dstate = 16;
//   p.w.Lambda_re = lr; p.w.Lambda_im = li; p.w.log_dt = log_dt;
//   p.w.B_re = br; p.w.B_im = bi; p.w.C_re = cr; p.w.C_im = ci; p.w.D = d;
//   p.u = u; p.u_batch_stride = 800; p.u_l_stride = 8; p.u_h_stride = 1;
//   p.y = y; p.y_batch_stride = 800; p.y_l_stride = 8; p.y_h_stride = 1;
//   s5_fwd<float>(p);
#pragma once
#include "kernels/common/s5_params.h"

namespace ssm::kernels::cpu {

// y (and hT when set), parallel chunked scan.
template <class T>
void s5_fwd(const S5Params& p);

// Same outputs by the sequential recurrence (chunk_size is ignored).
template <class T>
void s5_fwd_ref(const S5Params& p);

// du, weight gradients p.g and dh0 (each optional) from dy and dhT.
template <class T>
void s5_bwd(const S5BwdParams& p);

// One token: p.state advanced in place, y written.
template <class T>
void s5_step(const S5StepParams& p);

}  // namespace ssm::kernels::cpu
