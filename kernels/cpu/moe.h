// CPU mixture-of-experts top-k routing (float, double): softmax router, top-k choice, dispatch
// plan, load-balancing and z losses, and the gradient back to the router logits.
//
//   MoeRouteParams p = ...;                 // see moe_params.h for the worked example
//   cpu::moe_route_fwd<float>(p);           // weights, expert_index, plan, aux_loss, z_loss
//   MoeRouteBwdParams g = ...;              // logits, expert_index, expert_offsets from p
//   g.dweights = dw; g.d_aux_loss = &a; g.d_z_loss = &b; g.dlogits = dl;
//   cpu::moe_route_bwd<float>(g);           // dl = d(sum dw·w + a·aux + b·z) / d logits
//
// Per-token work runs in parallel; the sums over tokens (P_x, z_loss) are taken over fixed
// token chunks combined in chunk order, so results do not depend on the thread count.
#pragma once
#include "kernels/common/moe_params.h"

namespace ssm::kernels::cpu {

template <class T>
void moe_route_fwd(const MoeRouteParams& p);

template <class T>
void moe_route_bwd(const MoeRouteBwdParams& p);

}  // namespace ssm::kernels::cpu
