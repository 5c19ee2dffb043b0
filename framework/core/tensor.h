// Tensor: a strided view (shape, strides, offset, dtype, device) of shared Storage,
// plus the autograd metadata the engine in framework/autograd needs.
//
//   Tensor w = Tensor::zeros({4, 3});            // f32 on the cpu
//   Tensor wt = w.transpose(0, 1);                // a view: shares w's storage, no copy
//   wt.data<float>()[wt.strides()[0] * 2] = 1.f;  // writes w[0][2]
//
// Member functions here are raw: they never record gradients. Models use the free
// functions of framework/ops (ssm::transpose, ssm::matmul, ...), which do. Calling a
// member view on a tensor that requires grad while grad mode is on is an error rather
// than a silently detached result.
//
// Data-moving operations (contiguous, to(dtype), to(device), clone, printing values)
// need kernels and live in framework/ops as well.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "framework/core/allocator.h"
#include "framework/core/device.h"
#include "framework/core/dims.h"
#include "framework/core/error.h"
#include "kernels/common/dtype.h"

namespace ssm {

struct TensorImpl;

// What the autograd engine keeps per tensor. A leaf (parameter) has requires_grad and
// slot < 0; a recorded op output has slot >= 0 within recording `tape_id`.
struct AutogradMeta {
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf
  int64_t slot = -1;                 // gradient slot of a non-leaf in its tape
  uint64_t tape_id = 0;              // which recording the slot belongs to
  const char* producer = nullptr;    // name of the op that produced a non-leaf
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Dims shape;
  Dims strides;        // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;
  Device device;
  AutogradMeta autograd;
};

// Thread-local switch consulted by every op before recording. On by default.
class GradMode {
 public:
  static bool enabled();
  static void set_enabled(bool on);
};

// RAII: disables recording in its scope (evaluation, optimizer updates, init).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories (allocation only; fills and random live in framework/ops) ----
  static Tensor empty(const Dims& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(const Dims& shape, DType dtype = DType::f32, Device device = Device::cpu());
  // Copies host values (converted to `dtype`) into a new contiguous tensor.
  static Tensor from_vector(const std::vector<double>& values, const Dims& shape,
                            DType dtype = DType::f32, Device device = Device::cpu());
  template <class T>
  static Tensor from_data(const T* values, const Dims& shape, Device device = Device::cpu());
  static Tensor scalar(double v, DType dtype = DType::f32, Device device = Device::cpu());
  // A tensor sharing `storage` with the given geometry (bounds are checked).
  static Tensor from_storage(std::shared_ptr<Storage> storage, const Dims& shape, const Dims& strides,
                             int64_t offset, DType dtype);

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Dims& shape() const { return impl()->shape; }
  const Dims& strides() const { return impl()->strides; }
  int64_t size(int d) const;    // negative d counts from the end
  int64_t stride(int d) const;  // likewise
  int dim() const { return impl()->shape.size(); }
  int64_t numel() const { return impl()->shape.numel(); }
  int64_t offset() const { return impl()->offset; }
  DType dtype() const { return impl()->dtype; }
  Device device() const { return impl()->device; }
  size_t element_size() const { return size_t(dtype_size(dtype())); }
  size_t nbytes() const { return size_t(numel()) * element_size(); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return impl()->storage; }
  bool shares_storage(const Tensor& o) const { return defined() && o.defined() && storage() == o.storage(); }
  // "f32[2, 3] cpu" (+ strides when not contiguous).
  std::string describe() const;

  // ---- raw data ----
  void* raw_data() const;  // pointer to element 0 of this view
  template <class T>
  T* data() const {
    check_dtype(dtype_of<T>::value);
    return static_cast<T*>(raw_data());
  }
  // Host copy of the values as double (any dtype, cpu or cuda, any strides). For tests/tools.
  std::vector<double> to_vector() const;
  double item() const;  // single-element tensor → double

  // ---- raw views (no copy, no autograd) ----
  Tensor view(const Dims& shape) const;  // -1 infers one dim; needs compatible strides
  Tensor transpose(int a, int b) const;
  Tensor permute(const std::vector<int>& order) const;
  Tensor narrow(int dim, int64_t start, int64_t length) const;
  Tensor select(int dim, int64_t index) const;  // drops `dim`
  Tensor expand(const Dims& shape) const;       // broadcast with stride 0
  Tensor unsqueeze(int dim) const;
  Tensor squeeze(int dim) const;
  Tensor as_strided(const Dims& shape, const Dims& strides, int64_t offset) const;
  // True when view(shape) would succeed without a copy.
  bool viewable_as(const Dims& shape) const;
  Dims infer_shape(const Dims& shape) const;  // resolves a single -1

  // ---- autograd metadata (the engine lives in framework/autograd) ----
  bool requires_grad() const { return defined() && impl()->autograd.requires_grad; }
  bool is_leaf() const { return impl()->autograd.slot < 0; }
  // Only leaves may be marked; throws on a recorded op output.
  Tensor& set_requires_grad(bool on);
  Tensor grad() const;
  void set_grad(const Tensor& g);
  void zero_grad() { impl()->autograd.grad.reset(); }
  // Same data, no autograd history and no requires_grad.
  Tensor detach() const;

  TensorImpl* impl() const {
    SSM_CHECK(impl_ != nullptr, "use of an undefined tensor");
    return impl_.get();
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  void check_dtype(DType want) const;
  void check_raw_view_allowed(const char* what) const;
  Tensor with_geometry(const Dims& shape, const Dims& strides, int64_t offset) const;

  std::shared_ptr<TensorImpl> impl_;
};

template <class T>
Tensor Tensor::from_data(const T* values, const Dims& shape, Device device) {
  std::vector<double> v(size_t(shape.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = double(values[i]);
  return from_vector(v, shape, dtype_of<T>::value, device);
}

// Copies `nbytes` between host/device pointers of the given devices (cudaMemcpy or memcpy).
void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes);

}  // namespace ssm
