// CPU fused cross-entropy (float, double): one pass per row computes the logsumexp, the
// loss and the argmax; the backward recomputes softmax from the logits and the saved lse, so
// no (N, V) probability tensor is ever stored.
//
//   cpu::xent_fwd<double>(p, &totals);  // lse (N); totals.loss_sum / count / correct
//   cpu::xent_bwd<double>(p);           // dlogits (N, V)
//
// Rows are split across threads; totals are reduced over fixed row chunks combined in
// order, so results are identical for any thread count.
#pragma once
#include "kernels/common/xent_params.h"

namespace ssm::kernels::cpu {

template <class T>
void xent_fwd(const XentParams& p, XentTotals* totals);
template <class T>
void xent_bwd(const XentParams& p);

}  // namespace ssm::kernels::cpu
