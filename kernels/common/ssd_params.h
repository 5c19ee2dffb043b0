// Params of the Mamba-2 scan, state space duality form (kernels/cpu/ssd.h; later
// kernels/cuda/ssd/). Semantics follow mamba_ssm's mamba_chunk_scan_combined.
//
//   // x, z, out: (B, L, H, P); dt: (B, L, H); A: (H); Bm, Cm: (B, L, G, N); all contiguous
//   SsdParams p;
//   p.batch = 2; p.seqlen = 300; p.nheads = 8; p.headdim = 64; p.n_groups = 1; p.dstate = 128;
//   p.chunk_size = 256;
//   p.x = x;   p.x_stride[0] = 300 * 8 * 64; p.x_stride[1] = 8 * 64; p.x_stride[2] = 64;
//              p.x_stride[3] = 1;
//   ...                                   // dt, A, Bm, Cm, out likewise
//   p.chunk_states = saved;               // (B, n_chunks(), H, P, N) floats, for the backward
//   cpu::ssd_fwd<float>(p);
//
// Strides are in elements, one per axis in the order of the shape comment; optional tensors
// are nullptr. Floating tensors have the kernel's element type T, chunk_states scan_acc_t<T>.
#pragma once
#include <cstdint>
#include <limits>

#include "kernels/common/macros.h"
#include "kernels/common/selective_scan_params.h"  // scan_acc_t, scan_softplus, scan_silu

namespace ssm::kernels {

// Per (batch b, head h), with a state of P x N values:
//   dt_t = clamp(softplus?(dt_raw_t + dt_bias_h), dt_min, dt_max)
//   h_t  = exp(dt_t * A_h) h_{t-1} + dt_t * x_t Bm_tᵀ        (outer product, P x N)
//   y_t  = h_t Cm_t + D_h x_t,   out_t = y_t * silu(z_t)
// Head h reads group h / (H / G) of Bm and Cm.
struct SsdParams {
  int64_t batch = 0;         // B
  int64_t seqlen = 0;        // L
  int64_t nheads = 0;        // H
  int64_t headdim = 0;       // P
  int64_t n_groups = 1;      // G; G divides H
  int64_t dstate = 0;        // N
  int64_t chunk_size = 256;  // C: block of the chunked algorithm and spacing of chunk_states
  bool dt_softplus = false;
  // Applied after softplus, always, as mamba's kernels do: the defaults only clamp a negative
  // dt to 0. ddt is zero where dt lies strictly outside [dt_min, dt_max]; dA still counts the
  // clamped steps (the exact gradient; mamba's Triton backward drops them from dA).
  double dt_min = 0.0;
  double dt_max = std::numeric_limits<double>::infinity();
  bool D_has_hdim = false;   // D is (H, P) instead of (H)

  const void* x = nullptr;              int64_t x_stride[4] = {};      // (B, L, H, P)
  const void* dt = nullptr;             int64_t dt_stride[3] = {};     // (B, L, H)
  const void* A = nullptr;              int64_t A_stride = 0;          // (H)
  const void* Bm = nullptr;             int64_t Bm_stride[4] = {};     // (B, L, G, N)
  const void* Cm = nullptr;             int64_t Cm_stride[4] = {};     // (B, L, G, N)
  const void* D = nullptr;              int64_t D_stride[2] = {};      // (H) or (H, P) optional
  const void* z = nullptr;              int64_t z_stride[4] = {};      // (B, L, H, P) optional
  const void* dt_bias = nullptr;        int64_t dt_bias_stride = 0;    // (H) optional
  const void* h0 = nullptr;             int64_t h0_stride[4] = {};     // (B, H, P, N) optional
  // Packed documents: the state restarts from zero at t when seq_idx[b,t] != seq_idx[b,t-1];
  // h0 only feeds the segment that starts at t = 0.
  const int32_t* seq_idx = nullptr;     int64_t seq_idx_stride[2] = {}; // (B, L) optional

  void* out = nullptr;                  int64_t out_stride[4] = {};    // (B, L, H, P)
  void* hT = nullptr;                   int64_t hT_stride[4] = {};     // (B, H, P, N) optional
  // State entering each chunk of C steps (chunk 0: h0 or zeros), contiguous, element type
  // scan_acc_t<T>. Optional in the forward; the backward recomputes from it.
  void* chunk_states = nullptr;  // (B, n_chunks(), H, P, N)

  SSM_HD int64_t n_chunks() const { return CEIL_DIV(seqlen, chunk_size); }
};

// Backward: same inputs as the forward (out and hT ignored); chunk_states as the forward
// saved them with the same chunk_size. Gradients are optional and written, not accumulated.
struct SsdBwdParams : SsdParams {
  const void* dout = nullptr;           int64_t dout_stride[4] = {};   // (B, L, H, P)
  const void* dhT = nullptr;            int64_t dhT_stride[4] = {};    // (B, H, P, N) optional

  void* dx = nullptr;                   int64_t dx_stride[4] = {};     // (B, L, H, P)
  void* ddt = nullptr;                  int64_t ddt_stride[3] = {};    // (B, L, H) w.r.t. raw dt
  void* dA = nullptr;                   int64_t dA_stride = 0;         // (H)
  void* dBm = nullptr;                  int64_t dBm_stride[4] = {};    // (B, L, G, N)
  void* dCm = nullptr;                  int64_t dCm_stride[4] = {};    // (B, L, G, N)
  void* dD = nullptr;                   int64_t dD_stride[2] = {};     // (H) or (H, P)
  void* dz = nullptr;                   int64_t dz_stride[4] = {};     // (B, L, H, P)
  void* ddt_bias = nullptr;             int64_t ddt_bias_stride = 0;   // (H)
  void* dh0 = nullptr;                  int64_t dh0_stride[4] = {};    // (B, H, P, N)
};

// One generation step (L = 1): state is read and updated in place.
struct SsdStepParams {
  int64_t batch = 0;     // B
  int64_t nheads = 0;    // H
  int64_t headdim = 0;   // P
  int64_t n_groups = 1;  // G
  int64_t dstate = 0;    // N
  bool dt_softplus = false;
  double dt_min = 0.0;
  double dt_max = std::numeric_limits<double>::infinity();
  bool D_has_hdim = false;

  void* state = nullptr;                int64_t state_stride[4] = {};  // (B, H, P, N) in/out
  const void* x = nullptr;              int64_t x_stride[3] = {};      // (B, H, P)
  const void* dt = nullptr;             int64_t dt_stride[2] = {};     // (B, H)
  const void* A = nullptr;              int64_t A_stride = 0;          // (H)
  const void* Bm = nullptr;             int64_t Bm_stride[3] = {};     // (B, G, N)
  const void* Cm = nullptr;             int64_t Cm_stride[3] = {};     // (B, G, N)
  const void* D = nullptr;              int64_t D_stride[2] = {};      // (H) or (H, P) optional
  const void* z = nullptr;              int64_t z_stride[3] = {};      // (B, H, P) optional
  const void* dt_bias = nullptr;        int64_t dt_bias_stride = 0;    // (H) optional
  void* out = nullptr;                  int64_t out_stride[3] = {};    // (B, H, P)
};

}  // namespace ssm::kernels
