// Params for the causal depthwise conv1d used in front of the Mamba scans (the op of the
// `causal-conv1d` package). One filter of width K per channel, applied along L:
//
//   out[b,d,t] = act(bias[d] + sum_{k<K} weight[d,k] * xpad[b,d,t-(K-1)+k])
//
// where xpad is x with the K-1 inputs of `initial_states` (or zeros) in front. Axes: B batch,
// D channels (d_inner, or the x|B|C conv width of Mamba-2), L length, K conv width.
// Every tensor is addressed by element strides, so a (B, L, D) activation viewed as
// (B, D, L) costs nothing: pass x_l_stride = D, x_d_stride = 1.
//
// Packed documents: with seq_idx, out[t] only mixes inputs x[t'] whose seq_idx[t'] equals
// seq_idx[t]; the initial state counts as part of the first document (seq_idx[b, 0]).
#pragma once
#include <cstdint>

namespace ssm::kernels {

constexpr int kConv1dMaxWidth = 8;  // K in 1..8; callers (framework/ops) check it

struct Conv1dParams {
  int64_t batch = 0, dim = 0, seqlen = 0, width = 0;  // B, D, L, K
  bool silu = false;                                  // out = SiLU(pre-activation)

  const void* x = nullptr;  // (B, D, L)
  int64_t x_batch_stride = 0, x_d_stride = 0, x_l_stride = 0;
  const void* weight = nullptr;  // (D, K)
  int64_t weight_d_stride = 0, weight_k_stride = 0;
  const void* bias = nullptr;  // (D) contiguous, optional

  const int32_t* seq_idx = nullptr;  // (B, L) document ids, optional
  int64_t seq_idx_batch_stride = 0, seq_idx_l_stride = 0;

  // The K-1 inputs that precede x[:, :, 0] (TBPTT carry); optional, zeros when null.
  const void* initial_states = nullptr;  // (B, D, K-1)
  int64_t initial_states_batch_stride = 0, initial_states_d_stride = 0, initial_states_k_stride = 0;
  // The last K-1 entries of xpad, i.e. what the next chunk takes as initial_states. With seq_idx,
  // entries of a document other than the one at t = L-1 are written as zero so that they
  // cannot leak into the continuation of the last document. Optional output.
  void* final_states = nullptr;  // (B, D, K-1)
  int64_t final_states_batch_stride = 0, final_states_d_stride = 0, final_states_k_stride = 0;

  void* out = nullptr;  // (B, D, L)
  int64_t out_batch_stride = 0, out_d_stride = 0, out_l_stride = 0;
};

// Backward: the forward fields (x, weight, bias, seq_idx, initial_states, silu) are read again;
// out and final_states are ignored. Each gradient pointer is optional (null = not wanted) and
// is overwritten, never accumulated into.
struct Conv1dBwdParams : Conv1dParams {
  const void* dout = nullptr;  // (B, D, L)
  int64_t dout_batch_stride = 0, dout_d_stride = 0, dout_l_stride = 0;
  const void* dfinal_states = nullptr;  // (B, D, K-1), optional upstream gradient
  int64_t dfinal_states_batch_stride = 0, dfinal_states_d_stride = 0, dfinal_states_k_stride = 0;

  void* dx = nullptr;  // (B, D, L)
  int64_t dx_batch_stride = 0, dx_d_stride = 0, dx_l_stride = 0;
  void* dweight = nullptr;  // (D, K)
  int64_t dweight_d_stride = 0, dweight_k_stride = 0;
  void* dbias = nullptr;  // (D) contiguous
  void* dinitial_states = nullptr;  // (B, D, K-1)
  int64_t dinitial_states_batch_stride = 0, dinitial_states_d_stride = 0,
          dinitial_states_k_stride = 0;
};

// One generation step. conv_state holds the last K inputs (oldest first); the step shifts it
// left by one, appends x and convolves, so K steps from a state whose entries 1..K-1 are
// initial_states reproduce the parallel forward token by token.
struct Conv1dStepParams {
  int64_t batch = 0, dim = 0, width = 0;  // B, D, K
  bool silu = false;

  const void* x = nullptr;  // (B, D)
  int64_t x_batch_stride = 0, x_d_stride = 0;
  void* conv_state = nullptr;  // (B, D, K), updated in place
  int64_t conv_state_batch_stride = 0, conv_state_d_stride = 0, conv_state_k_stride = 0;
  const void* weight = nullptr;  // (D, K)
  int64_t weight_d_stride = 0, weight_k_stride = 0;
  const void* bias = nullptr;  // (D) contiguous, optional
  void* out = nullptr;  // (B, D)
  int64_t out_batch_stride = 0, out_d_stride = 0;
};

}  // namespace ssm::kernels
