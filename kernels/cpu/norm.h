// CPU RMSNorm (plain, gated/grouped, fused residual add) and LayerNorm, forward and
// backward (float, double).
//
//   NormParams p = ...;                  // sizes, strides, pointers (norm_params.h)
//   cpu::rms_norm_fwd<double>(p);        // y, rstd (+ residual_out)
//   NormBwdParams g; static_cast<NormParams&>(g) = p; g.dy = dy; g.dx = dx; g.dweight = dw; ...
//   cpu::rms_norm_bwd<double>(g);        // dx (+ dz, dweight)
//
// Row statistics accumulate in double. Rows are split across threads; dweight/dbias are
// summed over fixed row chunks (boundaries depend only on R) whose partials are combined in
// chunk order, so every result is identical for any thread count.
#pragma once
#include "kernels/common/norm_params.h"

namespace ssm::kernels::cpu {

// y = w * h * rsqrt(mean_group(h²) + eps), h = x (+ residual) or x * silu(z); with
// norm_before_gate the gate multiplies after the norm. Writes y, rstd (R, G), residual_out.
template <class T>
void rms_norm_fwd(const NormParams& p);
template <class T>
void rms_norm_bwd(const NormBwdParams& p);

// y = (x - mean) * rstd * w + b. Writes y, mean (R), rstd (R).
template <class T>
void layer_norm_fwd(const NormParams& p);
template <class T>
void layer_norm_bwd(const NormBwdParams& p);

}  // namespace ssm::kernels::cpu
