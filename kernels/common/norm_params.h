// Parameters of the row normalisations over the last dim: RMSNorm (plain, gated and
// grouped, with an optional fused residual add) and LayerNorm.
//
//   NormParams p;                           // x (R, E) rows of a (B, L, E) activation
//   p.rows = B * L; p.cols = E; p.group_size = E / G; p.eps = 1e-5;
//   p.x = x; p.x_row_stride = E; p.z = z; p.z_row_stride = E;   // gate (Mamba-2)
//   p.weight = w; p.y = y; p.y_row_stride = E; p.rstd = rstd;  // rstd (R, G)
//   cpu::rms_norm_fwd<float>(p);   // y = rmsnorm_per_group(x * silu(z)) * w
//
// Every (R, D) operand has a contiguous last dim and its own row stride, so a narrowed or
// row-strided view is read without a copy. The saved statistics (`mean`, `rstd`) are
// contiguous and in the compute dtype (T on the CPU).
#pragma once
#include <cstdint>

namespace ssm::kernels {

struct NormParams {
  int64_t rows = 0;        // R: all leading dims flattened
  int64_t cols = 0;        // D: the normalised last dim
  int64_t group_size = 0;  // channels per RMSNorm group (D / G); D for one group. LayerNorm: D
  double eps = 1e-5;
  // Gated RMSNorm: false = normalise x * silu(z) (Mamba-2 default), true = norm(x) * silu(z).
  bool norm_before_gate = false;

  int64_t x_row_stride = 0, z_row_stride = 0, residual_row_stride = 0;
  int64_t y_row_stride = 0, residual_out_row_stride = 0;

  const void* x = nullptr;         // (R, D)
  const void* z = nullptr;         // (R, D) gate, or null
  const void* residual = nullptr;  // (R, D) or null: x + residual is normalised (add_rms_norm)
  const void* weight = nullptr;    // (D) or null (= ones)
  const void* bias = nullptr;      // (D) or null (LayerNorm only)
  void* y = nullptr;               // (R, D) output
  void* residual_out = nullptr;    // (R, D) x + residual; required when residual is set
  void* mean = nullptr;            // (R) LayerNorm mean, saved for the backward
  void* rstd = nullptr;            // (R, G) RMSNorm / (R) LayerNorm 1/sqrt(var + eps)
};

// The backward reads the forward's inputs and statistics (for add_rms_norm, `x` must point
// at the forward's residual_out = the normalised sum, and `residual` is null) plus dy, and
// overwrites dx, dz, dweight, dbias (each optional: null skips it).
struct NormBwdParams : NormParams {
  int64_t dy_row_stride = 0, dx_row_stride = 0, dz_row_stride = 0, dresidual_out_row_stride = 0;
  const void* dy = nullptr;             // (R, D)
  const void* dresidual_out = nullptr;  // (R, D) or null: gradient at residual_out, added into dx
  void* dx = nullptr;                   // (R, D)
  void* dz = nullptr;                   // (R, D)
  void* dweight = nullptr;              // (D)
  void* dbias = nullptr;                // (D)
};

}  // namespace ssm::kernels
