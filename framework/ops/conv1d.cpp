#include "framework/ops/conv1d.h"

#include "framework/autograd/tape.h"
#include "framework/ops/dispatch.h"
#include "framework/ops/view.h"
#include "kernels/common/conv1d_params.h"
#include "kernels/cpu/conv1d.h"
#if defined(SSM_WITH_CUDA)
#include "kernels/cuda/conv1d/conv1d.h"
#endif

namespace ssm {

using ops_detail::check_shape;
using ops_detail::contiguous_raw;

namespace {

// Runs the CUDA backward with its dweight/dbias partials in a scratch block (stream order
// keeps it valid after it goes back to the cache).
void conv1d_bwd_cuda(const char* op, const kernels::Conv1dBwdParams& b, DType t, Device d) {
#if defined(SSM_WITH_CUDA)
  const size_t ws = kernels::cuda::causal_conv1d_bwd_workspace(t, b);
  Tensor scratch = ws ? Tensor::empty(Dims{int64_t((ws + 7) / 8)}, DType::i64, d) : Tensor();
  void* wsp = ws ? scratch.raw_data() : nullptr;
  SSM_CUDA_LAUNCH(op, d, kernels::cuda::causal_conv1d_bwd(t, b, wsp, stream));
#else
  (void)b, (void)t;
  SSM_CUDA_LAUNCH(op, d, 0);
#endif
}

}  // namespace

// ---- causal_conv1d --------------------------------------------------------------------------

ConvResult causal_conv1d(const Tensor& x, const Tensor& weight, const Conv1dArgs& args) {
  const char* op = "causal_conv1d";
  SSM_CHECK(x.defined() && weight.defined(), "{}: x and weight must be defined", op);
  SSM_CHECK(x.dim() == 3, "{}: x {} must be (B, C, L)", op, x.describe());
  SSM_CHECK(weight.dim() == 2, "{}: weight {} must be (C, K)", op, weight.describe());
  const int64_t B = x.shape()[0], C = x.shape()[1], L = x.shape()[2], K = weight.shape()[1];
  SSM_CHECK(weight.shape()[0] == C, "{}: weight {} does not match the channels of x {} (expected (C={}, K))", op,
            weight.describe(), x.describe(), C);
  SSM_CHECK(K >= 1 && K <= kernels::kConv1dMaxWidth, "{}: kernel width K = {} of weight {} is not in 1..{}", op, K,
            weight.describe(), kernels::kConv1dMaxWidth);
  const Tensor& bias = args.bias;
  const Tensor& seq = args.seq_idx;
  const Tensor& init = args.initial_state;
  if (bias.defined()) check_shape(op, "bias", bias, Dims{C}, x, "x", "(C)");
  if (init.defined()) check_shape(op, "initial_state", init, Dims{B, C, K - 1}, x, "x", "(B, C, K-1)");
  if (seq.defined()) {
    SSM_CHECK(seq.dtype() == DType::i32, "{}: seq_idx {} must be i32", op, seq.describe());
    check_shape(op, "seq_idx", seq, Dims{B, L}, x, "x", "(B, L)");
  }
  ops_detail::check_float(op, x);
  ops_detail::check_same_dtype(op, {&x, &weight, &bias, &init});
  ops_detail::check_same_device(op, {&x, &weight, &bias, &init, &seq});

  const Tensor bias_c = contiguous_raw(bias);
  ConvResult out;
  out.y = Tensor::empty(Dims{B, C, L}, x.dtype(), x.device());
  if (args.return_final_state) out.final_state = Tensor::empty(Dims{B, C, K - 1}, x.dtype(), x.device());

  kernels::Conv1dParams p;
  p.batch = B;
  p.dim = C;
  p.seqlen = L;
  p.width = K;
  p.silu = args.silu;
  p.x = x.raw_data();
  p.x_batch_stride = x.stride(0);
  p.x_d_stride = x.stride(1);
  p.x_l_stride = x.stride(2);
  p.weight = weight.raw_data();
  p.weight_d_stride = weight.stride(0);
  p.weight_k_stride = weight.stride(1);
  if (bias_c.defined()) p.bias = bias_c.raw_data();
  // With L = 0 there is nothing to mix and the initial state passes through unchanged; the
  // kernel would read seq_idx[b, 0] for the document of the initial state.
  if (seq.defined() && L > 0) {
    p.seq_idx = seq.data<int32_t>();
    p.seq_idx_batch_stride = seq.stride(0);
    p.seq_idx_l_stride = seq.stride(1);
  }
  if (init.defined()) {
    p.initial_states = init.raw_data();
    p.initial_states_batch_stride = init.stride(0);
    p.initial_states_d_stride = init.stride(1);
    p.initial_states_k_stride = init.stride(2);
  }
  if (out.final_state.defined()) {
    p.final_states = out.final_state.raw_data();
    p.final_states_batch_stride = C * (K - 1);
    p.final_states_d_stride = K - 1;
    p.final_states_k_stride = 1;
  }
  p.out = out.y.raw_data();
  p.out_batch_stride = C * L;
  p.out_d_stride = L;
  p.out_l_stride = 1;
  if (x.device().is_cuda())
    SSM_CUDA_LAUNCH(op, x.device(), kernels::cuda::causal_conv1d_fwd(x.dtype(), p, stream));
  else
    ops_detail::dispatch_float(op, x.dtype(), [&]<class T>() { kernels::cpu::causal_conv1d_fwd<T>(p); });

  if (autograd::needs_grad({&x, &weight, &bias, &init})) {
    // The backward re-reads x, weight, bias, seq_idx and initial_state through the same
    // params (it recomputes the pre-activation); keeping the tensors keeps the pointers valid.
    const Tensor xs = x.detach(), ws = weight.detach(), is = init.defined() ? init.detach() : Tensor();
    const Tensor ss = seq;
    const Dims xshape = x.shape(), wshape = weight.shape();
    const Dims ishape{B, C, K - 1};
    kernels::Conv1dParams fp = p;
    fp.out = nullptr;
    fp.final_states = nullptr;
    autograd::record(op, {&x, &weight, &bias, &init}, {&out.y, &out.final_state},
                     [op, fp, xs, ws, bias_c, is, ss, xshape, wshape, ishape](autograd::BackwardCtx& g) {
                       kernels::Conv1dBwdParams b;
                       static_cast<kernels::Conv1dParams&>(b) = fp;
                       const Tensor& dy = g.grad_out(0);
                       b.dout = dy.raw_data();
                       b.dout_batch_stride = dy.stride(0);
                       b.dout_d_stride = dy.stride(1);
                       b.dout_l_stride = dy.stride(2);
                       const Tensor& dfin = g.grad_out(1);  // undefined unless final_state was returned
                       if (dfin.defined()) {
                         b.dfinal_states = dfin.raw_data();
                         b.dfinal_states_batch_stride = dfin.stride(0);
                         b.dfinal_states_d_stride = dfin.stride(1);
                         b.dfinal_states_k_stride = dfin.stride(2);
                       }
                       const DType dt = xs.dtype();
                       const Device dev = xs.device();
                       Tensor dx, dw, db, dinit;
                       if (g.needs(0)) {
                         dx = Tensor::empty(xshape, dt, dev);
                         b.dx = dx.raw_data();
                         b.dx_batch_stride = xshape[1] * xshape[2];
                         b.dx_d_stride = xshape[2];
                         b.dx_l_stride = 1;
                       }
                       if (g.needs(1)) {
                         dw = Tensor::empty(wshape, dt, dev);
                         b.dweight = dw.raw_data();
                         b.dweight_d_stride = wshape[1];
                         b.dweight_k_stride = 1;
                       }
                       if (g.needs(2)) {
                         db = Tensor::empty(Dims{wshape[0]}, dt, dev);
                         b.dbias = db.raw_data();
                       }
                       if (g.needs(3)) {
                         dinit = Tensor::empty(ishape, dt, dev);
                         b.dinitial_states = dinit.raw_data();
                         b.dinitial_states_batch_stride = ishape[1] * ishape[2];
                         b.dinitial_states_d_stride = ishape[2];
                         b.dinitial_states_k_stride = 1;
                       }
                       if (dev.is_cuda())
                         conv1d_bwd_cuda(op, b, dt, dev);
                       else
                         ops_detail::dispatch_float(op, dt, [&]<class T>() { kernels::cpu::causal_conv1d_bwd<T>(b); });
                       g.set(0, dx);
                       g.set(1, dw);
                       g.set(2, db);
                       g.set(3, dinit);
                     });
  }
  return out;
}

// ---- causal_conv1d_step ---------------------------------------------------------------------

Tensor causal_conv1d_step(const Tensor& conv_state, const Tensor& x, const Tensor& weight, const Tensor& bias,
                          bool silu) {
  const char* op = "causal_conv1d_step";
  SSM_CHECK(conv_state.defined() && x.defined() && weight.defined(),
            "{}: conv_state, x and weight must be defined", op);
  SSM_CHECK(x.dim() == 2, "{}: x {} must be (B, C)", op, x.describe());
  SSM_CHECK(weight.dim() == 2, "{}: weight {} must be (C, K)", op, weight.describe());
  const int64_t B = x.shape()[0], C = x.shape()[1], K = weight.shape()[1];
  SSM_CHECK(weight.shape()[0] == C, "{}: weight {} does not match the channels of x {} (expected (C={}, K))", op,
            weight.describe(), x.describe(), C);
  SSM_CHECK(K >= 1 && K <= kernels::kConv1dMaxWidth, "{}: kernel width K = {} of weight {} is not in 1..{}", op, K,
            weight.describe(), kernels::kConv1dMaxWidth);
  check_shape(op, "conv_state", conv_state, Dims{B, C, K}, x, "x", "(B, C, K)");
  if (bias.defined()) check_shape(op, "bias", bias, Dims{C}, x, "x", "(C)");
  ops_detail::check_float(op, x);
  ops_detail::check_same_dtype(op, {&x, &conv_state, &weight, &bias});
  ops_detail::check_same_device(op, {&x, &conv_state, &weight, &bias});
  // The state is updated in place, so this op cannot take part in a graph; refusing is
  // clearer than handing back a silently detached result.
  SSM_CHECK(!autograd::needs_grad({&conv_state, &x, &weight, &bias}),
            "{}: inputs require grad; the step is inference-only, call it under NoGradGuard", op);

  const Tensor bias_c = contiguous_raw(bias);
  Tensor y = Tensor::empty(Dims{B, C}, x.dtype(), x.device());
  kernels::Conv1dStepParams p;
  p.batch = B;
  p.dim = C;
  p.width = K;
  p.silu = silu;
  p.x = x.raw_data();
  p.x_batch_stride = x.stride(0);
  p.x_d_stride = x.stride(1);
  p.conv_state = conv_state.raw_data();
  p.conv_state_batch_stride = conv_state.stride(0);
  p.conv_state_d_stride = conv_state.stride(1);
  p.conv_state_k_stride = conv_state.stride(2);
  p.weight = weight.raw_data();
  p.weight_d_stride = weight.stride(0);
  p.weight_k_stride = weight.stride(1);
  if (bias_c.defined()) p.bias = bias_c.raw_data();
  p.out = y.raw_data();
  p.out_batch_stride = C;
  p.out_d_stride = 1;
  if (x.device().is_cuda())
    SSM_CUDA_LAUNCH(op, x.device(), kernels::cuda::causal_conv1d_step(x.dtype(), p, stream));
  else
    ops_detail::dispatch_float(op, x.dtype(), [&]<class T>() { kernels::cpu::causal_conv1d_step<T>(p); });
  return y;
}

}  // namespace ssm
