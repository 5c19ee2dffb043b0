#include "framework/ops/view.h"

#include <fmt/format.h>

#include <functional>

#include "framework/autograd/tape.h"
#include "framework/ops/dispatch.h"
#include "framework/ops/reduce.h"
#include "kernels/cpu/elementwise.h"

#if defined(SSM_WITH_CUDA)
#include "kernels/cuda/elementwise/elementwise.h"
#endif

namespace ssm {
namespace {

// A view op: the forward builds the view with grad recording suspended (core's raw views
// refuse tensors that require grad), the backward is given.
template <class Fwd, class Bwd>
Tensor view_op(const char* name, const Tensor& x, Fwd&& fwd, Bwd&& bwd) {
  Tensor y;
  {
    NoGradGuard raw;
    y = fwd(x);
  }
  if (autograd::needs_grad({&x}))
    autograd::record(name, {&x}, {&y}, [bwd = std::forward<Bwd>(bwd)](autograd::BackwardCtx& g) {
      g.set(0, bwd(g.grad_out()));
    });
  return y;
}

// Gradient of a slice-like view: zeros of the input shape with `g` written into the slice.
template <class Slice>
Tensor scatter_into_zeros(const Tensor& g, const Dims& in_shape, Slice&& slice) {
  Tensor full = Tensor::zeros(in_shape, g.dtype(), g.device());
  copy_(slice(full), g);
  return full;
}

}  // namespace

Tensor view(const Tensor& x, const Dims& shape) {
  Dims in = x.shape();
  return view_op("view", x, [&](const Tensor& t) { return t.view(shape); },
                 [in](const Tensor& g) { return reshape(g, in); });
}

Tensor reshape(const Tensor& x, const Dims& shape) {
  if (x.viewable_as(shape)) return view(x, shape);
  return view(contiguous(x), shape);
}

Tensor transpose(const Tensor& x, int a, int b) {
  return view_op("transpose", x, [&](const Tensor& t) { return t.transpose(a, b); },
                 [a, b](const Tensor& g) { return transpose(g, a, b); });
}

Tensor permute(const Tensor& x, const std::vector<int>& order) {
  std::vector<int> inverse(order.size());
  for (size_t i = 0; i < order.size(); ++i) inverse[size_t(wrap_dim(order[i], x.dim()))] = int(i);
  return view_op("permute", x, [&](const Tensor& t) { return t.permute(order); },
                 [inverse](const Tensor& g) { return permute(g, inverse); });
}

Tensor narrow(const Tensor& x, int dim, int64_t start, int64_t length) {
  Dims in = x.shape();
  return view_op("narrow", x, [&](const Tensor& t) { return t.narrow(dim, start, length); },
                 [in, dim, start, length](const Tensor& g) {
                   return scatter_into_zeros(g, in, [&](const Tensor& f) { return f.narrow(dim, start, length); });
                 });
}

Tensor select(const Tensor& x, int dim, int64_t index) {
  Dims in = x.shape();
  return view_op("select", x, [&](const Tensor& t) { return t.select(dim, index); },
                 [in, dim, index](const Tensor& g) {
                   return scatter_into_zeros(g, in, [&](const Tensor& f) { return f.select(dim, index); });
                 });
}

Tensor expand(const Tensor& x, const Dims& shape) {
  Dims in = x.shape();
  return view_op("expand", x, [&](const Tensor& t) { return t.expand(shape); },
                 [in](const Tensor& g) { return sum_to_shape(g, in); });
}

Tensor unsqueeze(const Tensor& x, int dim) {
  int d = wrap_dim(dim, x.dim() + 1);
  return view_op("unsqueeze", x, [&](const Tensor& t) { return t.unsqueeze(d); },
                 [d](const Tensor& g) { return squeeze(g, d); });
}

Tensor squeeze(const Tensor& x, int dim) {
  int d = wrap_dim(dim, x.dim());
  return view_op("squeeze", x, [&](const Tensor& t) { return t.squeeze(d); },
                 [d](const Tensor& g) { return unsqueeze(g, d); });
}

Tensor flatten(const Tensor& x, int start_dim, int end_dim) {
  if (x.dim() == 0) return reshape(x, Dims{1});
  int s = wrap_dim(start_dim, x.dim()), e = wrap_dim(end_dim, x.dim());
  Dims shape;
  for (int i = 0; i < s; ++i) shape.push_back(x.shape()[i]);
  int64_t m = 1;
  for (int i = s; i <= e; ++i) m *= x.shape()[i];
  shape.push_back(m);
  for (int i = e + 1; i < x.dim(); ++i) shape.push_back(x.shape()[i]);
  return reshape(x, shape);
}

// ---- copies ---------------------------------------------------------------------------

void copy_(const Tensor& dst, const Tensor& src) {
  ops_detail::check_same_device("copy_", {&dst, &src});
  SSM_CHECK(broadcast_shapes(dst.shape(), src.shape()) == dst.shape(), "copy_: cannot copy {} into {}",
            src.describe(), dst.describe());
  auto p = ops_detail::make_params(dst, {&src});
  if (dst.device().is_cuda()) {
    SSM_CUDA_LAUNCH("copy_", dst.device(), kernels::cuda::cast(dst.dtype(), src.dtype(), p, stream));
    return;
  }
  kernels::cpu::cast(dst.dtype(), src.dtype(), p);
}

static Tensor copy_as(const Tensor& x, DType dtype, Device device) {
  Tensor y = Tensor::empty(x.shape(), dtype, device);
  if (x.device() == device) {
    copy_(y, x);
  } else {
    // Cross-device: make the source contiguous in its dtype on its device, move the bytes,
    // then cast on the destination.
    Tensor src = x.is_contiguous() ? x : clone(x);
    Tensor moved = Tensor::empty(x.shape(), x.dtype(), device);
    copy_bytes(moved.raw_data(), device, src.raw_data(), x.device(), src.nbytes());
    if (dtype == x.dtype()) return moved;
    copy_(y, moved);
  }
  return y;
}

Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  return clone(x);
}

Tensor clone(const Tensor& x) {
  Tensor y = copy_as(x, x.dtype(), x.device());
  if (autograd::needs_grad({&x}))
    autograd::record("clone", {&x}, {&y}, [](autograd::BackwardCtx& g) { g.set(0, g.grad_out()); });
  return y;
}

Tensor to(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Tensor y = copy_as(x, dtype, x.device());
  if (autograd::needs_grad({&x})) {
    DType from = x.dtype();
    autograd::record("to_dtype", {&x}, {&y}, [from](autograd::BackwardCtx& g) { g.set(0, to(g.grad_out(), from)); });
  }
  return y;
}

Tensor to(const Tensor& x, Device device) {
  if (x.device() == device) return x;
  Tensor y = copy_as(x, x.dtype(), device);
  if (autograd::needs_grad({&x})) {
    Device from = x.device();
    autograd::record("to_device", {&x}, {&y}, [from](autograd::BackwardCtx& g) { g.set(0, to(g.grad_out(), from)); });
  }
  return y;
}

// ---- printing ----------------------------------------------------------------------------

std::string to_string(const Tensor& x, int max_per_dim) {
  if (!x.defined()) return "tensor(undefined)";
  std::vector<double> v = x.to_vector();
  std::string s = "tensor(" + x.describe() + ")\n";
  if (x.dim() == 0) return s + fmt::format("{:.6g}", v[0]);
  Dims strides = contiguous_strides(x.shape());
  // Recursive print with elision: first/last max_per_dim/2 entries of each axis.
  std::function<void(int, int64_t)> rec = [&](int d, int64_t base) {
    s += "[";
    int64_t n = x.shape()[d], half = max_per_dim / 2;
    for (int64_t i = 0; i < n; ++i) {
      if (n > max_per_dim && i == half) {
        s += "..., ";
        i = n - half - 1;
        continue;
      }
      if (d + 1 == x.dim()) {
        s += fmt::format("{:.6g}", v[size_t(base + i * strides[d])]);
      } else {
        rec(d + 1, base + i * strides[d]);
      }
      if (i + 1 < n) s += d + 1 == x.dim() ? ", " : ",\n" + std::string(size_t(d + 1), ' ');
    }
    s += "]";
  };
  rec(0, 0);
  return s;
}

}  // namespace ssm
