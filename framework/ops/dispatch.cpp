#include "framework/ops/dispatch.h"

#include "framework/ops/view.h"

#if defined(SSM_WITH_CUDA)
#include <cuda_runtime.h>
#endif

namespace ssm::ops_detail {

void check_same_device(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor* first = nullptr;
  for (const Tensor* t : ts) {
    if (!t || !t->defined()) continue;
    if (!first) {
      first = t;
      continue;
    }
    if (t->device() != first->device()) {
      std::string all;
      for (const Tensor* u : ts)
        if (u && u->defined()) all += (all.empty() ? "" : ", ") + u->describe();
      SSM_FAIL("{}: tensors on different devices ({})", op, all);
    }
  }
}

Tensor contiguous_raw(const Tensor& t) {
  if (!t.defined() || t.is_contiguous()) return t;
  NoGradGuard raw;
  return contiguous(t);
}

void check_shape(const char* op, const char* what, const Tensor& t, const Dims& want, const Tensor& ref,
                 const char* ref_name, const char* axes) {
  SSM_CHECK(t.shape() == want, "{}: {} {} does not match {} {} (expected {} = {})", op, what, t.describe(), ref_name,
            ref.describe(), axes, want.str());
}

void check_float(const char* op, const Tensor& t) {
  SSM_CHECK(dtype_is_float(t.dtype()), "{}: expected a floating-point tensor, got {}", op, t.describe());
}

void check_same_dtype(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor* first = nullptr;
  for (const Tensor* t : ts) {
    if (!t || !t->defined()) continue;
    if (!first) first = t;
    SSM_CHECK(t->dtype() == first->dtype(), "{}: dtype mismatch ({} vs {})", op, first->describe(), t->describe());
  }
}

void no_cuda_kernel(const char* op, const Tensor& t) {
  SSM_FAIL("{}: no CUDA kernel for {} in this build", op, t.describe());
}

kernels::ElementwiseParams make_params(const Tensor& out, std::initializer_list<const Tensor*> ins) {
  kernels::ElementwiseParams p;
  const Dims& s = out.shape();
  p.ndim = s.size();
  for (int i = 0; i < p.ndim; ++i) {
    p.shape[i] = s[i];
    p.out.strides[i] = out.strides()[i];
  }
  p.out.data = out.raw_data();
  kernels::Operand* slots[3] = {&p.a, &p.b, &p.c};
  int k = 0;
  for (const Tensor* t : ins) {
    kernels::Operand& o = *slots[k++];
    if (!t) continue;
    o.data = t->raw_data();
    int lead = p.ndim - t->dim();
    SSM_CHECK(lead >= 0, "cannot broadcast {} to {}", t->describe(), s.str());
    for (int i = 0; i < p.ndim; ++i) {
      if (i < lead) {
        o.strides[i] = 0;
        continue;
      }
      int64_t n = t->shape()[i - lead];
      SSM_CHECK(n == s[i] || n == 1, "cannot broadcast {} to {}", t->describe(), s.str());
      o.strides[i] = n == s[i] ? t->strides()[i - lead] : 0;
    }
  }
  return p;
}

#if defined(SSM_WITH_CUDA)
void check_cuda_launch(const char* op, const kernels::cuda::Status& s, Device d, cudaStream_t stream) {
  if (!s.ok()) {
    cudaGetLastError();  // clear a non-sticky launch error so the process can carry on
    SSM_FAIL("{}: CUDA kernel failed to launch on {}: {} returned \"{}\" (code {})", op, d.str(), s.call, s.error,
             s.code);
  }
  if (!cuda::launch_sync()) return;
  cudaError_t e = cudaStreamSynchronize(stream);
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e != cudaSuccess)
    SSM_FAIL("{}: CUDA kernel failed on {} (caught by SSM_CUDA_SYNC=1 right after its launch): {} ({})", op, d.str(),
             cudaGetErrorString(e), cudaGetErrorName(e));
}
#endif

}  // namespace ssm::ops_detail
