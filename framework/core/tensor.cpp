#include "framework/core/tensor.h"

#include <algorithm>
#include <cstring>

#if defined(SSM_WITH_CUDA)
#include <cuda_runtime.h>

#include "framework/core/cuda_stream.h"
#endif

namespace ssm {

namespace {
thread_local bool t_grad_enabled = true;

template <class T>
void convert_from_double(const std::vector<double>& src, void* dst) {
  T* d = static_cast<T*>(dst);
  for (size_t i = 0; i < src.size(); ++i) d[i] = T(src[i]);
}

double load_as_double(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::f64: return static_cast<const double*>(p)[i];
    case DType::bf16: return float(static_cast<const bf16*>(p)[i]);
    case DType::i32: return static_cast<const int32_t*>(p)[i];
    case DType::i64: return double(static_cast<const int64_t*>(p)[i]);
  }
  return 0;
}
}  // namespace

bool GradMode::enabled() { return t_grad_enabled; }
void GradMode::set_enabled(bool on) { t_grad_enabled = on; }

void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_dev.is_cpu() && src_dev.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
#if defined(SSM_WITH_CUDA)
  // Ordered on the current stream of the GPU involved (the destination's for GPU to GPU);
  // copies that touch host memory return only when complete, as memcpy does.
  const Device gpu = dst_dev.is_cuda() ? dst_dev : src_dev;
  if (dst_dev.is_cuda() && src_dev.is_cuda() && dst_dev != src_dev) cuda::synchronize(src_dev.index);
  cuda::DeviceGuard guard(gpu.index);
  cudaStream_t stream = cuda::current_stream(gpu.index);
  SSM_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, stream));
  if (dst_dev.is_cpu() || src_dev.is_cpu()) SSM_CUDA_CHECK(cudaStreamSynchronize(stream));
#else
  SSM_FAIL("copy between {} and {} needs CUDA support, which this binary was built without",
           src_dev.str(), dst_dev.str());
#endif
}

// ---- factories ---------------------------------------------------------------

Tensor Tensor::empty(const Dims& shape, DType dtype, Device device) {
  for (int64_t s : shape) SSM_CHECK(s >= 0, "negative dimension in shape {}", shape.str());
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(size_t(shape.numel()) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  impl->device = device;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Dims& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (device.is_cpu()) {
    std::memset(t.raw_data(), 0, t.nbytes());
  } else {
#if defined(SSM_WITH_CUDA)
    if (t.nbytes() > 0) {
      cuda::DeviceGuard guard(device.index);
      SSM_CUDA_CHECK(cudaMemsetAsync(t.raw_data(), 0, t.nbytes(), cuda::current_stream(device.index)));
    }
#endif
  }
  return t;
}

Tensor Tensor::from_vector(const std::vector<double>& values, const Dims& shape, DType dtype, Device device) {
  SSM_CHECK(int64_t(values.size()) == shape.numel(), "from_vector: {} values for shape {} ({} elements)",
            values.size(), shape.str(), shape.numel());
  Tensor host = empty(shape, dtype, Device::cpu());
  switch (dtype) {
    case DType::f32: convert_from_double<float>(values, host.raw_data()); break;
    case DType::f64: convert_from_double<double>(values, host.raw_data()); break;
    case DType::bf16: convert_from_double<bf16>(values, host.raw_data()); break;
    case DType::i32: convert_from_double<int32_t>(values, host.raw_data()); break;
    case DType::i64: convert_from_double<int64_t>(values, host.raw_data()); break;
  }
  if (device.is_cpu()) return host;
  Tensor dev = empty(shape, dtype, device);
  copy_bytes(dev.raw_data(), device, host.raw_data(), Device::cpu(), host.nbytes());
  return dev;
}

Tensor Tensor::scalar(double v, DType dtype, Device device) { return from_vector({v}, Dims{}, dtype, device); }

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, const Dims& shape, const Dims& strides,
                            int64_t offset, DType dtype) {
  SSM_CHECK(shape.size() == strides.size(), "from_storage: shape {} and strides {} differ in rank",
            shape.str(), strides.str());
  auto impl = std::make_shared<TensorImpl>();
  impl->device = storage->device();
  impl->storage = std::move(storage);
  impl->dtype = dtype;
  Tensor t(std::move(impl));
  return t.with_geometry(shape, strides, offset);
}

// ---- metadata -----------------------------------------------------------------

int64_t Tensor::size(int d) const { return shape()[wrap_dim(d, dim())]; }
int64_t Tensor::stride(int d) const { return strides()[wrap_dim(d, dim())]; }

bool Tensor::is_contiguous() const {
  int64_t expect = 1;
  for (int i = dim() - 1; i >= 0; --i) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != expect) return false;
    expect *= shape()[i];
  }
  return true;
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined";
  std::string s = fmt::format("{}{} {}", dtype_name(dtype()), shape().str(), device().str());
  if (!is_contiguous()) s += " strides " + strides().str();
  return s;
}

void* Tensor::raw_data() const {
  return static_cast<char*>(impl()->storage->data()) + impl()->offset * int64_t(element_size());
}

void Tensor::check_dtype(DType want) const {
  SSM_CHECK(dtype() == want, "tensor {} accessed as {}", describe(), dtype_name(want));
}

std::vector<double> Tensor::to_vector() const {
  // Copy the covered byte range to the host once, then gather with strides.
  int64_t lo = 0, hi = 0;
  for (int i = 0; i < dim(); ++i) {
    if (shape()[i] == 0) return {};
    int64_t ext = (shape()[i] - 1) * strides()[i];
    (ext < 0 ? lo : hi) += ext;
  }
  size_t es = element_size();
  std::vector<char> host(size_t(hi - lo + 1) * es);
  const char* base = static_cast<const char*>(raw_data()) + lo * int64_t(es);
  copy_bytes(host.data(), Device::cpu(), base, device(), host.size());
  std::vector<double> out(static_cast<size_t>(numel()));
  Dims idx = Dims::filled(dim(), 0);
  for (int64_t n = 0; n < numel(); ++n) {
    int64_t off = -lo;
    for (int i = 0; i < dim(); ++i) off += idx[i] * strides()[i];
    out[size_t(n)] = load_as_double(host.data(), dtype(), off);
    for (int i = dim() - 1; i >= 0; --i) {
      if (++idx[i] < shape()[i]) break;
      idx[i] = 0;
    }
  }
  return out;
}

double Tensor::item() const {
  SSM_CHECK(numel() == 1, "item() needs a single-element tensor, got {}", describe());
  return to_vector()[0];
}

// ---- raw views -------------------------------------------------------------------

void Tensor::check_raw_view_allowed(const char* what) const {
  SSM_CHECK(!(requires_grad() && GradMode::enabled()),
            "Tensor::{} does not record gradients but the tensor requires grad; use ssm::{} "
            "from framework/ops (or a NoGradGuard)", what, what);
}

Tensor Tensor::with_geometry(const Dims& shape, const Dims& strides, int64_t offset) const {
  // Bounds: every addressable element must lie inside the storage.
  int64_t lo = offset, hi = offset;
  bool empty = false;
  for (int i = 0; i < shape.size(); ++i) {
    SSM_CHECK(shape[i] >= 0, "negative dimension in shape {}", shape.str());
    if (shape[i] == 0) empty = true;
    int64_t ext = (shape[i] - 1) * strides[i];
    (ext < 0 ? lo : hi) += ext;
  }
  int64_t cap = int64_t(impl()->storage->nbytes() / element_size());
  SSM_CHECK(empty || (lo >= 0 && hi < cap), "view shape {} strides {} offset {} exceeds storage of {} elements",
            shape.str(), strides.str(), offset, cap);
  auto impl2 = std::make_shared<TensorImpl>();
  impl2->storage = impl()->storage;
  impl2->shape = shape;
  impl2->strides = strides;
  impl2->offset = offset;
  impl2->dtype = dtype();
  impl2->device = device();
  return Tensor(std::move(impl2));
}

Dims Tensor::infer_shape(const Dims& shape) const {
  Dims out = shape;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      SSM_CHECK(infer < 0, "view {}: only one dimension may be -1", shape.str());
      infer = i;
    } else {
      SSM_CHECK(out[i] >= 0, "view {}: invalid dimension {}", shape.str(), out[i]);
      known *= out[i];
    }
  }
  if (infer >= 0) {
    SSM_CHECK(known > 0 && numel() % known == 0, "cannot view {} as {}", describe(), shape.str());
    out[infer] = numel() / known;
  }
  SSM_CHECK(out.numel() == numel(), "cannot view {} ({} elements) as {} ({} elements)", describe(), numel(),
            out.str(), out.numel());
  return out;
}

// Computes strides for `shape` over this tensor's memory without copying, if possible:
// each run of merged input dims must map onto a run of output dims (as in torch.view).
static bool compute_view_strides(const Dims& old_shape, const Dims& old_strides, const Dims& shape, Dims& out) {
  out = Dims::filled(shape.size(), 1);
  if (old_shape.numel() == 0) {
    out = contiguous_strides(shape);
    return true;
  }
  int oi = old_shape.size() - 1, ni = shape.size() - 1;
  while (ni >= 0 || oi >= 0) {
    // Skip size-1 dims on both sides.
    if (ni >= 0 && shape[ni] == 1) {
      out[ni] = (ni + 1 < shape.size()) ? out[ni + 1] * shape[ni + 1] : 1;
      --ni;
      continue;
    }
    if (oi >= 0 && old_shape[oi] == 1) {
      --oi;
      continue;
    }
    if (ni < 0 || oi < 0) return false;
    // Take a chunk of old dims that is contiguous with respect to each other.
    int64_t chunk = old_shape[oi], base_stride = old_strides[oi];
    int oj = oi;
    int64_t newsz = 1;
    int nj = ni;
    while (true) {
      while (nj >= 0 && newsz * shape[nj] <= chunk && (newsz < chunk || shape[nj] == 1)) {
        out[nj] = base_stride * newsz;
        newsz *= shape[nj];
        --nj;
        if (newsz == chunk) break;
      }
      if (newsz == chunk) break;
      // Need to merge another old dim: must be contiguous with the chunk.
      if (oj - 1 < 0) return false;
      if (old_shape[oj - 1] == 1) {
        --oj;
        continue;
      }
      if (old_strides[oj - 1] != old_strides[oj] * old_shape[oj]) return false;
      --oj;
      chunk *= old_shape[oj];
    }
    oi = oj - 1;
    ni = nj;
  }
  return true;
}

bool Tensor::viewable_as(const Dims& shape) const {
  Dims target = infer_shape(shape), st;
  return compute_view_strides(this->shape(), strides(), target, st);
}

Tensor Tensor::view(const Dims& shape) const {
  check_raw_view_allowed("view");
  Dims target = infer_shape(shape), st;
  SSM_CHECK(compute_view_strides(this->shape(), strides(), target, st),
            "cannot view {} as {} without a copy (use ssm::reshape)", describe(), target.str());
  return with_geometry(target, st, offset());
}

Tensor Tensor::transpose(int a, int b) const {
  check_raw_view_allowed("transpose");
  a = wrap_dim(a, dim());
  b = wrap_dim(b, dim());
  Dims sh = shape(), st = strides();
  std::swap(sh[a], sh[b]);
  std::swap(st[a], st[b]);
  return with_geometry(sh, st, offset());
}

Tensor Tensor::permute(const std::vector<int>& order) const {
  check_raw_view_allowed("permute");
  SSM_CHECK(int(order.size()) == dim(), "permute: {} indices for a tensor of rank {}", order.size(), dim());
  Dims sh = shape(), st = strides();
  std::vector<bool> seen(size_t(dim()), false);
  for (int i = 0; i < dim(); ++i) {
    int d = wrap_dim(order[size_t(i)], dim());
    SSM_CHECK(!seen[size_t(d)], "permute: dimension {} repeated", d);
    seen[size_t(d)] = true;
    sh[i] = shape()[d];
    st[i] = strides()[d];
  }
  return with_geometry(sh, st, offset());
}

Tensor Tensor::narrow(int d, int64_t start, int64_t length) const {
  check_raw_view_allowed("narrow");
  d = wrap_dim(d, dim());
  SSM_CHECK(start >= 0 && length >= 0 && start + length <= shape()[d],
            "narrow: range [{}, {}) out of bounds for dimension {} of size {} in {}", start, start + length, d,
            shape()[d], describe());
  Dims sh = shape();
  sh[d] = length;
  return with_geometry(sh, strides(), offset() + start * strides()[d]);
}

Tensor Tensor::select(int d, int64_t index) const {
  check_raw_view_allowed("select");
  d = wrap_dim(d, dim());
  SSM_CHECK(index >= 0 && index < shape()[d], "select: index {} out of range for dimension {} of size {}", index,
            d, shape()[d]);
  Dims sh = shape(), st = strides();
  int64_t off = offset() + index * st[d];
  sh.erase(d);
  st.erase(d);
  return with_geometry(sh, st, off);
}

Tensor Tensor::expand(const Dims& shape) const {
  check_raw_view_allowed("expand");
  SSM_CHECK(shape.size() >= dim(), "expand: cannot expand {} to fewer dimensions {}", describe(), shape.str());
  int lead = shape.size() - dim();
  Dims st = Dims::filled(shape.size(), 0);
  for (int i = 0; i < shape.size(); ++i) {
    if (i < lead) continue;
    int64_t have = this->shape()[i - lead];
    SSM_CHECK(have == shape[i] || have == 1, "expand: cannot expand {} to {}", describe(), shape.str());
    st[i] = have == shape[i] ? strides()[i - lead] : 0;
  }
  return with_geometry(shape, st, offset());
}

Tensor Tensor::unsqueeze(int d) const {
  check_raw_view_allowed("unsqueeze");
  d = wrap_dim(d, dim() + 1);
  Dims sh = shape(), st = strides();
  int64_t s = d < dim() ? strides()[d] * shape()[d] : 1;
  sh.insert(d, 1);
  st.insert(d, s);
  return with_geometry(sh, st, offset());
}

Tensor Tensor::squeeze(int d) const {
  check_raw_view_allowed("squeeze");
  d = wrap_dim(d, dim());
  SSM_CHECK(shape()[d] == 1, "squeeze: dimension {} of {} has size {}, not 1", d, describe(), shape()[d]);
  Dims sh = shape(), st = strides();
  sh.erase(d);
  st.erase(d);
  return with_geometry(sh, st, offset());
}

Tensor Tensor::as_strided(const Dims& shape, const Dims& strides, int64_t offset) const {
  check_raw_view_allowed("as_strided");
  SSM_CHECK(shape.size() == strides.size(), "as_strided: shape {} and strides {} differ in rank", shape.str(),
            strides.str());
  return with_geometry(shape, strides, offset);
}

// ---- autograd metadata -------------------------------------------------------------

Tensor& Tensor::set_requires_grad(bool on) {
  SSM_CHECK(is_leaf(), "set_requires_grad on a tensor produced by '{}': only leaves can be marked",
            impl()->autograd.producer ? impl()->autograd.producer : "?");
  SSM_CHECK(!on || dtype_is_float(dtype()), "only floating-point tensors can require grad, got {}", describe());
  impl()->autograd.requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  const auto& g = impl()->autograd.grad;
  return g ? Tensor(g) : Tensor();
}

void Tensor::set_grad(const Tensor& g) {
  if (g.defined())
    SSM_CHECK(g.shape() == shape() && g.dtype() == dtype() && g.device() == device(),
              "set_grad: gradient {} does not match tensor {}", g.describe(), describe());
  impl()->autograd.grad = g.impl_ptr();
}

Tensor Tensor::detach() const {
  auto impl2 = std::make_shared<TensorImpl>(*impl());
  impl2->autograd = AutogradMeta{};
  return Tensor(std::move(impl2));
}

}  // namespace ssm
