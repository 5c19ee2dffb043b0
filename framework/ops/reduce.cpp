#include "framework/ops/reduce.h"

#include <algorithm>

#include "framework/autograd/tape.h"
#include "framework/ops/dispatch.h"
#include "framework/ops/elementwise.h"
#include "framework/ops/view.h"
#include "kernels/cpu/reduce.h"

#if defined(SSM_WITH_CUDA)
#include "kernels/cuda/reduce/reduce.h"
#endif

namespace ssm {
namespace {

#if defined(SSM_WITH_CUDA)
// Long rows are reduced in two passes through a scratch buffer. It goes back to the
// stream's cache when this returns; stream order keeps it valid until the kernels ran.
kernels::cuda::Status reduce_rows_cuda(DType t, kernels::ReduceOp op, const kernels::ReduceParams& rp, Device d,
                                       cudaStream_t stream) {
  size_t ws = kernels::cuda::reduce_rows_workspace(t, rp);
  Tensor scratch = ws ? Tensor::empty(Dims{int64_t((ws + 7) / 8)}, DType::i64, d) : Tensor();
  return kernels::cuda::reduce_rows(t, op, rp, ws ? scratch.raw_data() : nullptr, stream);
}
#endif

struct Plan {
  std::vector<int> order;  // kept dims first, reduced dims last
  Dims kept_shape;         // output shape without keepdim
  Dims keep_shape;         // output shape with keepdim
  int64_t rows = 1, cols = 1;
};

Plan make_plan(const Tensor& x, const std::vector<int>& dims_in) {
  Plan p;
  std::vector<bool> red(size_t(x.dim()), dims_in.empty());
  for (int d : dims_in) {
    int w = wrap_dim(d, x.dim());
    SSM_CHECK(!red[size_t(w)] || dims_in.empty(), "reduction dimension {} repeated", d);
    red[size_t(w)] = true;
  }
  for (int i = 0; i < x.dim(); ++i) {
    if (red[size_t(i)]) {
      p.keep_shape.push_back(1);
      continue;
    }
    p.order.push_back(i);
    p.kept_shape.push_back(x.shape()[i]);
    p.keep_shape.push_back(x.shape()[i]);
    p.rows *= x.shape()[i];
  }
  for (int i = 0; i < x.dim(); ++i)
    if (red[size_t(i)]) {
      p.order.push_back(i);
      p.cols *= x.shape()[i];
    }
  return p;
}

// Raw reduction (no autograd): returns output in `keep_shape` or `kept_shape`.
Tensor reduce_raw(const char* name, kernels::ReduceOp op, const Tensor& x, const Plan& plan, double scale,
                  bool keepdim, Tensor* argmax) {
  ops_detail::check_float(name, x);
  Tensor xs;
  {
    NoGradGuard raw;
    xs = contiguous(x.permute(plan.order));
  }
  Tensor out = Tensor::empty(keepdim ? plan.keep_shape : plan.kept_shape, x.dtype(), x.device());
  SSM_CHECK(plan.cols > 0 || op == kernels::ReduceOp::sum, "{}: reduction over an empty dimension of {}", name,
            x.describe());
  kernels::ReduceParams rp;
  rp.rows = plan.rows;
  rp.cols = plan.cols;
  rp.in = xs.raw_data();
  rp.out = out.raw_data();
  rp.scale = scale;
  if (argmax) {
    *argmax = Tensor::empty(Dims{plan.rows}, DType::i64, x.device());
    rp.argmax = argmax->data<int64_t>();
  }
  if (x.device().is_cuda()) {
    SSM_CUDA_LAUNCH(name, x.device(), reduce_rows_cuda(x.dtype(), op, rp, x.device(), stream));
    return out;
  }
  ops_detail::dispatch_float(name, x.dtype(), [&]<class T>() { kernels::cpu::reduce_rows<T>(op, rp); });
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
  Plan plan = make_plan(x, dims);
  Tensor y = reduce_raw("sum", kernels::ReduceOp::sum, x, plan, 1.0, keepdim, nullptr);
  if (autograd::needs_grad({&x})) {
    Dims in = x.shape(), keep = plan.keep_shape;
    autograd::record("sum", {&x}, {&y}, [in, keep](autograd::BackwardCtx& g) {
      g.set(0, contiguous(expand(reshape(g.grad_out(), keep), in)));
    });
  }
  return y;
}

Tensor mean(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
  Plan plan = make_plan(x, dims);
  double scale = plan.cols > 0 ? 1.0 / double(plan.cols) : 0.0;
  Tensor y = reduce_raw("mean", kernels::ReduceOp::sum, x, plan, scale, keepdim, nullptr);
  if (autograd::needs_grad({&x})) {
    Dims in = x.shape(), keep = plan.keep_shape;
    autograd::record("mean", {&x}, {&y}, [in, keep, scale](autograd::BackwardCtx& g) {
      g.set(0, contiguous(expand(reshape(mul(g.grad_out(), scale), keep), in)));
    });
  }
  return y;
}

Tensor max(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
  Plan plan = make_plan(x, dims);
  Tensor argmax;
  Tensor y = reduce_raw("max", kernels::ReduceOp::max, x, plan, 1.0, keepdim, &argmax);
  if (autograd::needs_grad({&x})) {
    Dims in = x.shape();
    std::vector<int> order = plan.order;
    int64_t rows = plan.rows, cols = plan.cols;
    autograd::record("max", {&x}, {&y}, [in, order, rows, cols, argmax](autograd::BackwardCtx& g) {
      // Scatter each row's gradient to its argmax in the permuted layout, then un-permute.
      Tensor go = contiguous(g.grad_out());
      Dims perm_shape;
      for (int d : order) perm_shape.push_back(in[d]);
      Tensor gp;
      if (go.device().is_cuda()) {
        gp = Tensor::empty(Dims{rows, cols}, go.dtype(), go.device());
        SSM_CUDA_LAUNCH("max_bwd", go.device(),
                        kernels::cuda::argmax_scatter(
                            go.dtype(), {rows, cols, go.raw_data(), argmax.data<int64_t>(), gp.raw_data()}, stream));
      } else {
        gp = Tensor::zeros(Dims{rows, cols}, go.dtype(), go.device());
        std::vector<double> gv = go.to_vector();
        const int64_t* am = argmax.data<int64_t>();
        ops_detail::dispatch_float("max_bwd", go.dtype(), [&]<class T>() {
          T* dst = gp.data<T>();
          for (int64_t r = 0; r < rows; ++r) dst[r * cols + am[r]] = T(gv[size_t(r)]);
        });
      }
      std::vector<int> inverse(order.size());
      for (size_t i = 0; i < order.size(); ++i) inverse[size_t(order[i])] = int(i);
      g.set(0, contiguous(permute(reshape(gp, perm_shape), inverse)));
    });
  }
  return y;
}

Tensor sum_to_shape(const Tensor& x, const Dims& shape) {
  if (x.shape() == shape) return x;
  int lead = x.dim() - shape.size();
  SSM_CHECK(lead >= 0, "sum_to_shape: cannot reduce {} to {}", x.describe(), shape.str());
  std::vector<int> dims;
  for (int i = 0; i < x.dim(); ++i) {
    if (i < lead) {
      dims.push_back(i);
      continue;
    }
    int64_t want = shape[i - lead];
    SSM_CHECK(want == x.shape()[i] || want == 1, "sum_to_shape: cannot reduce {} to {}", x.describe(),
              shape.str());
    if (want == 1 && x.shape()[i] != 1) dims.push_back(i);
  }
  Tensor s = dims.empty() ? x : sum(x, dims, /*keepdim=*/true);
  return reshape(s, shape);
}

}  // namespace ssm
