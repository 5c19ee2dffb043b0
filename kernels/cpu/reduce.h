// CPU row reductions (float, double). Sums accumulate in double and combine fixed-size
// chunk partials in order, so the result is identical for any thread count.
#pragma once
#include "kernels/common/reduce_params.h"

namespace ssm::kernels::cpu {

template <class T> void reduce_rows(ReduceOp op, const ReduceParams& p);

}  // namespace ssm::kernels::cpu
