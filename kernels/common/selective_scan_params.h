// Params of the Mamba-1 selective scan (kernels/cpu/selective_scan.h; later kernels/cuda/
// selective_scan/), plus the scalar helpers every scan kernel must agree on bit for bit in
// meaning (softplus threshold, silu gate, accumulator type). ssd_params.h reuses them.
//
//   // u, delta, z, out: (B, E, L) contiguous; A: (E, N); Bm, Cm: (B, G, N, L)
//   SelectiveScanParams p;
//   p.batch = 2; p.dim = 64; p.seqlen = 100; p.dstate = 16; p.n_groups = 1;
//   p.u = u;         p.u_stride[0] = 64 * 100; p.u_stride[1] = 100; p.u_stride[2] = 1;
//   ...                                    // delta, A, Bm, Cm, out likewise
//   p.chunk_states = saved;                // (B, E, n_chunks(), N) floats, for the backward
//   cpu::selective_scan_fwd<float>(p);
//
// Every tensor is addressed through element strides (one per axis, in the order of its shape
// comment), so transposed or sliced views cost nothing. Optional tensors are nullptr.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/common/macros.h"

namespace ssm::kernels {

// Scan state and every reduction are kept in at least float32: double stays double.
template <class T>
using scan_acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

// softplus(x) = log(1 + e^x), returning x itself above 20 exactly like torch's default
// threshold, so a kernel and torch's reference agree on which branch a value takes.
template <class A>
SSM_HD A scan_softplus(A x) {
  return x > A(20) ? x : std::log1p(std::exp(x));
}
// d softplus / dx at the same branch point: sigmoid(x), or 1 on the linear branch.
template <class A>
SSM_HD A scan_softplus_grad(A x) {
  return x > A(20) ? A(1) : A(1) / (A(1) + std::exp(-x));
}
template <class A>
SSM_HD A scan_silu(A x) {
  return x / (A(1) + std::exp(-x));
}
// d silu / dx = sigmoid(x) * (1 + x * (1 - sigmoid(x))).
template <class A>
SSM_HD A scan_silu_grad(A x) {
  A s = A(1) / (A(1) + std::exp(-x));
  return s * (A(1) + x * (A(1) - s));
}

// Forward of  h_t = exp(dt_t * A) h_{t-1} + dt_t * Bm_t * u_t,  y_t = <h_t, Cm_t> + D u_t,
// out_t = y_t * silu(z_t), per (batch b, channel e), state of N values.
// Floating tensors have the element type T of the kernel instantiation, chunk_states has
// scan_acc_t<T>. Semantics follow mamba_ssm's selective_scan_ref.
struct SelectiveScanParams {
  int64_t batch = 0;       // B
  int64_t dim = 0;         // E (d_inner)
  int64_t seqlen = 0;      // L
  int64_t dstate = 0;      // N
  int64_t n_groups = 1;    // G: channel e reads Bm/Cm group e / (E / G); G divides E
  int64_t chunk_len = 64;  // steps between two saved states in chunk_states
  bool delta_softplus = false;  // dt = softplus(delta + delta_bias) when set

  const void* u = nullptr;               int64_t u_stride[3] = {};      // (B, E, L)
  const void* delta = nullptr;           int64_t delta_stride[3] = {};  // (B, E, L)
  const void* A = nullptr;               int64_t A_stride[2] = {};      // (E, N)
  const void* Bm = nullptr;              int64_t Bm_stride[4] = {};     // (B, G, N, L)
  const void* Cm = nullptr;              int64_t Cm_stride[4] = {};     // (B, G, N, L)
  const void* D = nullptr;               int64_t D_stride = 0;          // (E) optional
  const void* z = nullptr;               int64_t z_stride[3] = {};      // (B, E, L) optional
  const void* delta_bias = nullptr;      int64_t delta_bias_stride = 0; // (E) optional
  const void* h0 = nullptr;              int64_t h0_stride[3] = {};     // (B, E, N) optional
  // Packed documents: the state restarts from zero at t when seq_idx[b,t] != seq_idx[b,t-1];
  // h0 therefore only feeds the segment that starts at t = 0.
  const int32_t* seq_idx = nullptr;      int64_t seq_idx_stride[2] = {}; // (B, L) optional

  void* out = nullptr;                   int64_t out_stride[3] = {};    // (B, E, L)
  void* hT = nullptr;                    int64_t hT_stride[3] = {};     // (B, E, N) optional
  // State entering each chunk of chunk_len steps (chunk 0: h0 or zeros), contiguous, element
  // type scan_acc_t<T>. Optional in the forward; the backward recomputes from it.
  void* chunk_states = nullptr;  // (B, E, n_chunks(), N)

  SSM_HD int64_t n_chunks() const { return CEIL_DIV(seqlen, chunk_len); }
};

// Backward: the forward's fields describe the same inputs (out and hT are ignored) and
// chunk_states must hold what the forward saved with the same chunk_len. Every gradient is
// optional and is written, not accumulated into.
struct SelectiveScanBwdParams : SelectiveScanParams {
  const void* dout = nullptr;            int64_t dout_stride[3] = {};   // (B, E, L)
  const void* dhT = nullptr;             int64_t dhT_stride[3] = {};    // (B, E, N) optional

  void* du = nullptr;                    int64_t du_stride[3] = {};     // (B, E, L)
  void* ddelta = nullptr;                int64_t ddelta_stride[3] = {}; // (B, E, L)
  void* dA = nullptr;                    int64_t dA_stride[2] = {};     // (E, N)
  void* dBm = nullptr;                   int64_t dBm_stride[4] = {};    // (B, G, N, L)
  void* dCm = nullptr;                   int64_t dCm_stride[4] = {};    // (B, G, N, L)
  void* dD = nullptr;                    int64_t dD_stride = 0;         // (E)
  void* dz = nullptr;                    int64_t dz_stride[3] = {};     // (B, E, L)
  void* ddelta_bias = nullptr;           int64_t ddelta_bias_stride = 0; // (E)
  void* dh0 = nullptr;                   int64_t dh0_stride[3] = {};    // (B, E, N)
};

// One generation step (L = 1): state is read and updated in place.
struct SelectiveScanStepParams {
  int64_t batch = 0;     // B
  int64_t dim = 0;       // E
  int64_t dstate = 0;    // N
  int64_t n_groups = 1;  // G
  bool delta_softplus = false;

  void* state = nullptr;                 int64_t state_stride[3] = {};  // (B, E, N) in/out
  const void* u = nullptr;               int64_t u_stride[2] = {};      // (B, E)
  const void* delta = nullptr;           int64_t delta_stride[2] = {};  // (B, E)
  const void* A = nullptr;               int64_t A_stride[2] = {};      // (E, N)
  const void* Bm = nullptr;              int64_t Bm_stride[3] = {};     // (B, G, N)
  const void* Cm = nullptr;              int64_t Cm_stride[3] = {};     // (B, G, N)
  const void* D = nullptr;               int64_t D_stride = 0;          // (E) optional
  const void* z = nullptr;               int64_t z_stride[2] = {};      // (B, E) optional
  const void* delta_bias = nullptr;      int64_t delta_bias_stride = 0; // (E) optional
  void* out = nullptr;                   int64_t out_stride[2] = {};    // (B, E)
};

}  // namespace ssm::kernels
