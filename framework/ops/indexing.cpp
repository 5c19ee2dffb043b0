#include "framework/ops/indexing.h"

#include "framework/autograd/tape.h"
#include "framework/ops/dispatch.h"
#include "framework/ops/view.h"
#include "kernels/cpu/embedding.h"
#if defined(SSM_WITH_CUDA)
#include "kernels/cuda/embedding/embedding.h"
#endif

namespace ssm {
namespace {

using ops_detail::contiguous_raw;

void check_index_dtype(const char* op, const char* what, const Tensor& idx) {
  SSM_CHECK(idx.dtype() == DType::i32 || idx.dtype() == DType::i64, "{}: {} {} must be int32 or int64", op, what,
            idx.describe());
}

// The first flat position of a contiguous index tensor whose value is outside [0, bound),
// or -1; its value goes to *bad.
int64_t first_out_of_range(const Tensor& idx, int64_t bound, int64_t* bad) {
  auto scan = [&](const auto* v) -> int64_t {
    for (int64_t i = 0; i < idx.numel(); ++i)
      if (v[i] < 0 || int64_t(v[i]) >= bound) {
        *bad = int64_t(v[i]);
        return i;
      }
    return -1;
  };
  return idx.dtype() == DType::i64 ? scan(idx.data<int64_t>()) : scan(idx.data<int32_t>());
}

void set_dims(int64_t* dst, const Dims& src) {
  for (int i = 0; i < src.size(); ++i) dst[i] = src[i];
}

// Gather along `dim` of x by an index of y's shape (index strides given: 0 = broadcast),
// recording the scatter-add backward. Shared by index_select and gather.
Tensor gather_impl(const char* op, const Tensor& x, int dim, const Tensor& idx, const Dims& out_shape,
                   const Dims& idx_strides) {
  Tensor y = Tensor::empty(out_shape, x.dtype(), x.device());
  kernels::GatherParams p;
  p.ndim = x.dim();
  p.dim = dim;
  set_dims(p.shape, out_shape);
  p.x_dim_size = x.shape()[dim];
  set_dims(p.x_strides, x.strides());
  set_dims(p.y_strides, y.strides());
  set_dims(p.index_strides, idx_strides);
  p.index_i64 = idx.dtype() == DType::i64;
  p.index = idx.raw_data();
  p.x = x.raw_data();
  p.y = y.raw_data();
  ops_detail::dispatch_float(op, x.dtype(), [&]<class T>() { kernels::cpu::gather_fwd<T>(p); });
  if (autograd::needs_grad({&x})) {
    const Dims in_shape = x.shape();
    autograd::record(op, {&x}, {&y}, [op, p, idx, in_shape](autograd::BackwardCtx& g) {
      const Tensor& dy = g.grad_out();
      Tensor dx = Tensor::zeros(in_shape, dy.dtype(), dy.device());
      kernels::GatherParams b = p;
      set_dims(b.x_strides, dx.strides());
      set_dims(b.y_strides, dy.strides());
      b.x = dx.raw_data();
      b.y = dy.raw_data();
      ops_detail::dispatch_float(op, dy.dtype(), [&]<class T>() { kernels::cpu::gather_bwd<T>(b); });
      g.set(0, dx);
    });
  }
  return y;
}

}  // namespace

// ---- embedding ----------------------------------------------------------------------------

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  const char* op = "embedding";
  ops_detail::check_float(op, weight);
  ops_detail::check_same_device(op, {&weight, &ids});
  SSM_CHECK(weight.dim() == 2, "{}: weight {} must be (V, D)", op, weight.describe());
  check_index_dtype(op, "ids", ids);
  SSM_CHECK(ids.dim() < Dims::kMax, "{}: ids {} have too many dims", op, ids.describe());
  const int64_t V = weight.shape()[0], D = weight.shape()[1], N = ids.numel();
  const Tensor id = contiguous_raw(ids);
  int64_t bad = 0;
  // On CUDA the ids stay on the device (no sync): an out-of-range id gives a NaN row there.
  const int64_t at = weight.device().is_cpu() ? first_out_of_range(id, V, &bad) : -1;
  SSM_CHECK(at < 0, "{}: id {} at flat position {} of ids {} is out of range for vocab size V = {} (weight {})", op,
            bad, at, ids.describe(), V, weight.describe());

  const Tensor w = weight.strides()[1] == 1 || D == 1 ? weight : contiguous_raw(weight);
  Dims out_shape = ids.shape();
  out_shape.push_back(D);
  Tensor out = Tensor::empty(out_shape, weight.dtype(), weight.device());
  kernels::EmbeddingParams p;
  p.num_ids = N;
  p.vocab = V;
  p.dim = D;
  p.ids_i64 = id.dtype() == DType::i64;
  p.ids = id.raw_data();
  p.weight = w.raw_data();
  p.weight_row_stride = w.strides()[0];
  p.out = out.raw_data();
  p.out_row_stride = D;
  if (weight.device().is_cuda())
    SSM_CUDA_LAUNCH(op, weight.device(), kernels::cuda::embedding_fwd(weight.dtype(), p, stream));
  else
    ops_detail::dispatch_float(op, weight.dtype(), [&]<class T>() { kernels::cpu::embedding_fwd<T>(p); });

  if (autograd::needs_grad({&weight})) {
    autograd::record(op, {&weight}, {&out}, [op, id, N, V, D](autograd::BackwardCtx& g) {
      const Tensor dout = contiguous(g.grad_out());
      Tensor dw = Tensor::empty(Dims{V, D}, dout.dtype(), dout.device());
      kernels::EmbeddingBwdParams b;
      b.num_ids = N;
      b.vocab = V;
      b.dim = D;
      b.ids_i64 = id.dtype() == DType::i64;
      b.ids = id.raw_data();
      b.dout = dout.raw_data();
      b.dout_row_stride = D;
      b.dweight = dw.raw_data();
      if (dout.device().is_cuda()) {
#if defined(SSM_WITH_CUDA)
        cuda::DeviceGuard guard(dout.device().index);
        const size_t ws = kernels::cuda::embedding_bwd_workspace(b);
        Tensor scratch = Tensor::empty(Dims{int64_t(ws / 8 + 1)}, DType::i64, dout.device());
        SSM_CUDA_LAUNCH(op, dout.device(),
                        kernels::cuda::embedding_bwd(dout.dtype(), b, scratch.raw_data(), ws, stream));
#else
        SSM_CUDA_LAUNCH(op, dout.device(), 0);
#endif
      } else {
        ops_detail::dispatch_float(op, dout.dtype(), [&]<class T>() { kernels::cpu::embedding_bwd<T>(b); });
      }
      g.set(0, dw);
    });
  }
  return out;
}

// ---- concat / split -----------------------------------------------------------------------

Tensor concat(const std::vector<Tensor>& tensors, int dim) {
  const char* op = "concat";
  SSM_CHECK(!tensors.empty(), "{}: no tensors", op);
  const Tensor& ref = tensors[0];
  SSM_CHECK(ref.dim() >= 1, "{}: cannot concatenate 0-d tensors ({})", op, ref.describe());
  const int d = wrap_dim(dim, ref.dim());
  Dims shape = ref.shape();
  std::vector<int64_t> sizes;
  int64_t total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    SSM_CHECK(t.defined(), "{}: tensor {} is undefined", op, i);
    SSM_CHECK(t.dtype() == ref.dtype() && t.device() == ref.device(),
              "{}: tensor {} {} does not match the dtype/device of tensor 0 {}", op, i, t.describe(), ref.describe());
    bool same = t.dim() == ref.dim();
    for (int k = 0; same && k < t.dim(); ++k) same = k == d || t.shape()[k] == ref.shape()[k];
    SSM_CHECK(same, "{}: tensor {} {} does not match tensor 0 {} off dim {}", op, i, t.describe(), ref.describe(), d);
    sizes.push_back(t.shape()[d]);
    total += t.shape()[d];
  }
  shape[d] = total;
  Tensor y = Tensor::empty(shape, ref.dtype(), ref.device());
  int64_t off = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    copy_(y.narrow(d, off, sizes[i]), tensors[i]);
    off += sizes[i];
  }
  if (autograd::needs_grad(tensors)) {
    std::vector<Tensor> outs{y};
    autograd::record(op, tensors, outs, [d, sizes](autograd::BackwardCtx& g) {
      int64_t o = 0;
      for (size_t i = 0; i < sizes.size(); ++i) {
        if (g.needs(int(i))) g.set(int(i), g.grad_out().narrow(d, o, sizes[i]));
        o += sizes[i];
      }
    });
    return outs[0];
  }
  return y;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int dim) {
  const char* op = "split";
  SSM_CHECK(x.dim() >= 1, "{}: cannot split a 0-d tensor ({})", op, x.describe());
  const int d = wrap_dim(dim, x.dim());
  int64_t total = 0;
  for (int64_t s : sizes) {
    SSM_CHECK(s >= 0, "{}: negative size {} splitting {}", op, s, x.describe());
    total += s;
  }
  SSM_CHECK(total == x.shape()[d], "{}: sizes sum to {} but dim {} of {} has size {}", op, total, d, x.describe(),
            x.shape()[d]);
  std::vector<Tensor> outs;
  {
    NoGradGuard raw;  // core's raw views refuse tensors that require grad while recording
    int64_t off = 0;
    for (int64_t s : sizes) {
      outs.push_back(x.narrow(d, off, s));
      off += s;
    }
  }
  if (autograd::needs_grad({&x})) {
    const Dims shape = x.shape();
    // One node for all pieces: the gradient is the pieces' gradients side by side (zeros
    // for a piece that received none), one copy instead of one zero-filled tensor per piece.
    autograd::record(op, std::vector<Tensor>{x}, outs, [d, sizes, shape](autograd::BackwardCtx& g) {
      Tensor dx = Tensor::empty(shape, g.grad_out(0).dtype(), g.grad_out(0).device());
      int64_t off = 0;
      for (size_t i = 0; i < sizes.size(); ++i) {
        copy_(dx.narrow(d, off, sizes[i]), g.grad_out(int(i)));
        off += sizes[i];
      }
      g.set(0, dx);
    });
  }
  return outs;
}

// ---- index_select / gather ------------------------------------------------------------------

Tensor index_select(const Tensor& x, int dim, const Tensor& index) {
  const char* op = "index_select";
  ops_detail::check_float(op, x);
  ops_detail::check_same_device(op, {&x, &index});
  check_index_dtype(op, "index", index);
  SSM_CHECK(x.dim() >= 1, "{}: x {} must have at least one dim", op, x.describe());
  SSM_CHECK(index.dim() == 1, "{}: index {} must be 1-D", op, index.describe());
  if (!x.device().is_cpu()) ops_detail::no_cuda_kernel(op, x);
  const int d = wrap_dim(dim, x.dim());
  const Tensor idx = contiguous_raw(index);
  int64_t bad = 0;
  const int64_t at = first_out_of_range(idx, x.shape()[d], &bad);
  SSM_CHECK(at < 0, "{}: index {} at position {} of {} is out of range [0, {}) for dim {} of x {}", op, bad, at,
            index.describe(), x.shape()[d], d, x.describe());
  Dims out_shape = x.shape();
  out_shape[d] = idx.numel();
  Dims idx_strides = Dims::filled(x.dim(), 0);  // the same index for every other coordinate
  idx_strides[d] = 1;
  return gather_impl(op, x, d, idx, out_shape, idx_strides);
}

Tensor gather(const Tensor& x, int dim, const Tensor& index) {
  const char* op = "gather";
  ops_detail::check_float(op, x);
  ops_detail::check_same_device(op, {&x, &index});
  check_index_dtype(op, "index", index);
  SSM_CHECK(x.dim() >= 1 && index.dim() == x.dim(), "{}: index {} must have the rank of x {}", op,
            index.describe(), x.describe());
  if (!x.device().is_cpu()) ops_detail::no_cuda_kernel(op, x);
  const int d = wrap_dim(dim, x.dim());
  for (int k = 0; k < x.dim(); ++k)
    SSM_CHECK(k == d || index.shape()[k] <= x.shape()[k], "{}: index {} is larger than x {} in dim {}", op,
              index.describe(), x.describe(), k);
  const Tensor idx = contiguous_raw(index);
  int64_t bad = 0;
  const int64_t at = first_out_of_range(idx, x.shape()[d], &bad);
  SSM_CHECK(at < 0, "{}: index {} at flat position {} of {} is out of range [0, {}) for dim {} of x {}", op, bad, at,
            index.describe(), x.shape()[d], d, x.describe());
  return gather_impl(op, x, d, idx, idx.shape(), idx.strides());
}

}  // namespace ssm
