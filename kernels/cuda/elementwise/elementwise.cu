// DType dispatch for kernels/cuda/elementwise.h, plus the dtype-agnostic kernels: fill and
// same-dtype copies move raw 2/4/8-byte words; casts between different dtypes go through
// double (exact for every pair except int64 beyond 2^53), so one kernel covers all 20 pairs.
#include <cstring>

#include "kernels/cuda/elementwise/elementwise.h"
#include "kernels/cuda/elementwise/elementwise_impl.cuh"

namespace ssm::kernels::cuda {

SSM_CUDA_ELEMENTWISE_INSTANTIATE(extern, float)
SSM_CUDA_ELEMENTWISE_INSTANTIATE(extern, bf16)
SSM_CUDA_ELEMENTWISE_INSTANTIATE(extern, double)

namespace {

Status unsupported() {
  return {"dtype dispatch", "unsupported dtype for this CUDA elementwise kernel (expected f32, bf16 or f64)", -1};
}

template <class F>
Status dispatch_float(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::bf16: return f(bf16{});
    case DType::f64: return f(double{});
    default: return unsupported();
  }
}

template <class Bits>
struct FillFn {
  using Loaded = char;
  Bits v;
  __device__ Loaded load(const Ptrs&, const int64_t*) const { return 0; }
  __device__ void store(const Ptrs& P, const int64_t* off, Loaded) const { *out_ptr<Bits>(P, off[0]) = v; }
};

template <class Bits>
struct CopyFn {
  using Loaded = Bits;
  __device__ Loaded load(const Ptrs& P, const int64_t* off) const { return *in_ptr<Bits>(P, 1, off[1]); }
  __device__ void store(const Ptrs& P, const int64_t* off, Loaded v) const { *out_ptr<Bits>(P, off[0]) = v; }
};

struct CastFn {
  using Loaded = double;
  DType dst, src;
  __device__ Loaded load(const Ptrs& P, const int64_t* off) const {
    switch (src) {
      case DType::f32: return *in_ptr<float>(P, 1, off[1]);
      case DType::f64: return *in_ptr<double>(P, 1, off[1]);
      case DType::bf16: return bf16::to_float(in_ptr<bf16>(P, 1, off[1])->bits);
      case DType::i32: return *in_ptr<int32_t>(P, 1, off[1]);
      case DType::i64: return double(*in_ptr<int64_t>(P, 1, off[1]));
    }
    return 0;
  }
  __device__ void store(const Ptrs& P, const int64_t* off, Loaded v) const {
    switch (dst) {
      case DType::f32: *out_ptr<float>(P, off[0]) = float(v); break;
      case DType::f64: *out_ptr<double>(P, off[0]) = v; break;
      case DType::bf16: out_ptr<bf16>(P, off[0])->bits = bf16::from_float(float(v)); break;
      case DType::i32: *out_ptr<int32_t>(P, off[0]) = int32_t(v); break;
      case DType::i64: *out_ptr<int64_t>(P, off[0]) = int64_t(v); break;
    }
  }
};

template <class Bits, class T>
Bits bits_of(T v) {
  static_assert(sizeof(Bits) == sizeof(T));
  Bits b;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}

}  // namespace

Status unary(DType t, UnaryOp op, const ElementwiseParams& p, cudaStream_t s) {
  return dispatch_float(t, [&](auto tag) { return unary_typed<decltype(tag)>(op, p, s); });
}

Status binary(DType t, BinaryOp op, const ElementwiseParams& p, cudaStream_t s) {
  return dispatch_float(t, [&](auto tag) { return binary_typed<decltype(tag)>(op, p, s); });
}

Status unary_bwd(DType t, UnaryOp op, const ElementwiseParams& p, cudaStream_t s) {
  return dispatch_float(t, [&](auto tag) { return unary_bwd_typed<decltype(tag)>(op, p, s); });
}

Status where(DType t, const ElementwiseParams& p, cudaStream_t s) {
  return dispatch_float(t, [&](auto tag) { return where_typed<decltype(tag)>(p, s); });
}

Status axpy(DType t, const ElementwiseParams& p, cudaStream_t s) {
  return dispatch_float(t, [&](auto tag) { return axpy_typed<decltype(tag)>(p, s); });
}

Status fill(DType t, const ElementwiseParams& p, cudaStream_t s) {
  const int es[4] = {dtype_size(t), 0, 0, 0};
  switch (t) {
    case DType::f32: return launch_elementwise(FillFn<uint32_t>{bits_of<uint32_t>(float(p.alpha))}, p, 1, es, s);
    case DType::i32: return launch_elementwise(FillFn<uint32_t>{bits_of<uint32_t>(int32_t(p.alpha))}, p, 1, es, s);
    case DType::f64: return launch_elementwise(FillFn<uint64_t>{bits_of<uint64_t>(p.alpha)}, p, 1, es, s);
    case DType::i64: return launch_elementwise(FillFn<uint64_t>{bits_of<uint64_t>(int64_t(p.alpha))}, p, 1, es, s);
    case DType::bf16: return launch_elementwise(FillFn<uint16_t>{bf16(float(p.alpha)).bits}, p, 1, es, s);
  }
  return unsupported();
}

Status cast(DType dst, DType src, const ElementwiseParams& p, cudaStream_t s) {
  const int es[4] = {dtype_size(dst), dtype_size(src), 0, 0};
  if (dst == src) {
    switch (dtype_size(dst)) {
      case 2: return launch_elementwise(CopyFn<uint16_t>{}, p, 2, es, s);
      case 4: return launch_elementwise(CopyFn<uint32_t>{}, p, 2, es, s);
      default: return launch_elementwise(CopyFn<uint64_t>{}, p, 2, es, s);
    }
  }
  return launch_elementwise(CastFn{dst, src}, p, 2, es, s);
}

}  // namespace ssm::kernels::cuda
