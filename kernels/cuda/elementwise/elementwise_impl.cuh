// Machinery behind kernels/cuda/elementwise.h: axis merging, the flat and N-d kernels, and
// the per-op functors. Included by the .cu files of this folder only (elementwise_<dtype>.cu
// instantiate the float families, elementwise.cu the dtype-agnostic fill/copy/cast).
//
// A functor describes one element in two steps so that a thread can issue all of its
// loads before its first store (outputs may alias inputs, which would otherwise force
// load→store→load order and one memory latency per element):
//
//   struct Fn { using Loaded = ...;
//     __device__ Loaded load(const Ptrs&, const int64_t* off) const;              // off: element
//     __device__ void store(const Ptrs&, const int64_t* off, const Loaded&) const; // offsets of out,a,b,c
//   };
//
// The naive loop every kernel here replaces:  for i in shape: out[i·so] = f(a[i·sa], b[i·sb], c[i·sc])
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/common/elementwise_params.h"
#include "kernels/cuda/common/launch.cuh"
#include "kernels/cuda/common/math.cuh"
#include "kernels/cuda/common/status.h"

namespace ssm::kernels::cuda {

constexpr int kEwThreads = 256;
constexpr int kEwUnroll = 4;  // elements per thread, loaded before any is stored

struct Ptrs {
  char* p[4];  // out, a, b, c (element 0 of each view)
};

// Element strides of a single merged axis.
struct FlatStrides {
  int64_t s[4];
};

// N-d layout with axis 0 the innermost; 32-bit sizes (the launcher keeps numel < 2^31).
struct NdLayout {
  int ndim;
  uint32_t shape[kMaxDims];
  int64_t strides[4][kMaxDims];
};

template <class F>
__global__ void __launch_bounds__(kEwThreads) ew_flat_kernel(F f, Ptrs ptr, FlatStrides st, int64_t n) {
  const int64_t base = int64_t(blockIdx.x) * (kEwThreads * kEwUnroll) + threadIdx.x;
  // Offsets of the thread's first element, then one fixed step per unrolled element: four
  // 64-bit multiplies per thread instead of four per element (they cost as much as a bf16 op).
  int64_t off[kEwUnroll][4];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    off[0][k] = base * st.s[k];
    const int64_t step = int64_t(kEwThreads) * st.s[k];
#pragma unroll
    for (int u = 1; u < kEwUnroll; ++u) off[u][k] = off[u - 1][k] + step;
  }
  typename F::Loaded v[kEwUnroll];
#pragma unroll
  for (int u = 0; u < kEwUnroll; ++u)
    if (base + int64_t(u) * kEwThreads < n) v[u] = f.load(ptr, off[u]);
#pragma unroll
  for (int u = 0; u < kEwUnroll; ++u)
    if (base + int64_t(u) * kEwThreads < n) f.store(ptr, off[u], v[u]);
}

__device__ __forceinline__ void nd_offsets(const NdLayout& L, uint32_t i, int64_t* off) {
  off[0] = off[1] = off[2] = off[3] = 0;
#pragma unroll
  for (int d = 0; d < kMaxDims; ++d) {
    if (d == L.ndim) break;
    uint32_t q = i / L.shape[d], r = i - q * L.shape[d];
    i = q;
#pragma unroll
    for (int k = 0; k < 4; ++k) off[k] += int64_t(r) * L.strides[k][d];
  }
}

template <class F>
__global__ void __launch_bounds__(kEwThreads) ew_nd_kernel(F f, Ptrs ptr, NdLayout L, uint32_t n) {
  const uint32_t base = blockIdx.x * uint32_t(kEwThreads * kEwUnroll) + threadIdx.x;
  typename F::Loaded v[kEwUnroll];
  int64_t off[kEwUnroll][4];
#pragma unroll
  for (int u = 0; u < kEwUnroll; ++u) {
    uint32_t i = base + uint32_t(u) * kEwThreads;
    if (i < n) {
      nd_offsets(L, i, off[u]);
      v[u] = f.load(ptr, off[u]);
    }
  }
#pragma unroll
  for (int u = 0; u < kEwUnroll; ++u) {
    uint32_t i = base + uint32_t(u) * kEwThreads;
    if (i < n) f.store(ptr, off[u], v[u]);
  }
}

// ---- host side: merge axes, pick a kernel, split huge N-d launches ----------------------------

struct Geometry {
  int ndim = 0;                        // axis 0 innermost
  int64_t shape[kMaxDims] = {};
  int64_t strides[4][kMaxDims] = {};
  int64_t numel = 1;
};

// Drops size-1 axes and merges neighbours that every operand steps through contiguously.
inline Geometry merge_axes(const ElementwiseParams& p, int nops) {
  const Operand* ops[4] = {&p.out, &p.a, &p.b, &p.c};
  Geometry g;
  for (int d = p.ndim - 1; d >= 0; --d) {  // innermost first
    int64_t n = p.shape[d];
    g.numel *= n;
    if (n == 1) continue;
    if (g.ndim > 0) {
      int j = g.ndim - 1;
      bool mergeable = true;
      for (int k = 0; k < nops; ++k)
        mergeable = mergeable && ops[k]->strides[d] == g.strides[k][j] * g.shape[j];
      if (mergeable) {
        g.shape[j] *= n;
        continue;
      }
    }
    g.shape[g.ndim] = n;
    for (int k = 0; k < nops; ++k) g.strides[k][g.ndim] = ops[k]->strides[d];
    ++g.ndim;
  }
  if (g.ndim == 0) {  // a single element
    g.ndim = 1;
    g.shape[0] = 1;
  }
  return g;
}

template <class F>
Status launch_nd(const F& f, Ptrs ptr, const Geometry& g, const int* esize, int nops, cudaStream_t stream) {
  constexpr int64_t kMaxN = int64_t(1) << 31;
  if (g.numel < kMaxN) {
    NdLayout L;
    L.ndim = g.ndim;
    for (int d = 0; d < g.ndim; ++d) {
      L.shape[d] = uint32_t(g.shape[d]);
      for (int k = 0; k < 4; ++k) L.strides[k][d] = g.strides[k][d];
    }
    unsigned blocks = grid_for(g.numel, kEwThreads * kEwUnroll);
    ew_nd_kernel<<<blocks, kEwThreads, 0, stream>>>(f, ptr, L, uint32_t(g.numel));
    return Status::last_launch();
  }
  // Too many elements for 32-bit indices: launch slabs of the outermost axis.
  const int outer = g.ndim - 1;
  Geometry sub = g;
  sub.numel = g.numel / g.shape[outer];
  int64_t step = sub.numel < kMaxN ? std::max<int64_t>(1, (kMaxN - 1) / sub.numel) : 1;
  for (int64_t i0 = 0; i0 < g.shape[outer]; i0 += step) {
    int64_t len = std::min(step, g.shape[outer] - i0);
    Geometry slab = g;
    slab.shape[outer] = len;
    slab.numel = sub.numel * len;
    if (len == 1) {
      slab.ndim = outer;  // drop the axis; a 0-axis slab is a single element
      if (slab.ndim == 0) {
        slab.ndim = 1;
        slab.shape[0] = 1;
      }
    }
    Ptrs q = ptr;
    for (int k = 0; k < nops; ++k) q.p[k] += i0 * g.strides[k][outer] * esize[k];
    Status s = launch_nd(f, q, slab, esize, nops, stream);
    if (!s.ok()) return s;
  }
  return Status::success();
}

// Runs functor f over p: nops operands (out first), esize their element sizes in bytes.
template <class F>
Status launch_elementwise(const F& f, const ElementwiseParams& p, int nops, const int* esize, cudaStream_t stream) {
  for (int d = 0; d < p.ndim; ++d)
    if (p.shape[d] == 0) return Status::success();
  Geometry g = merge_axes(p, nops);
  const Operand* ops[4] = {&p.out, &p.a, &p.b, &p.c};
  Ptrs ptr{};
  for (int k = 0; k < nops; ++k) ptr.p[k] = static_cast<char*>(ops[k]->data);
  if (g.ndim == 1) {
    FlatStrides st{};
    for (int k = 0; k < nops; ++k) st.s[k] = g.strides[k][0];
    unsigned blocks = grid_for(g.numel, kEwThreads * kEwUnroll);
    ew_flat_kernel<<<blocks, kEwThreads, 0, stream>>>(f, ptr, st, g.numel);
    return Status::last_launch();
  }
  return launch_nd(f, ptr, g, esize, nops, stream);
}

// ---- the ops --------------------------------------------------------------------------------

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

template <class A>
__device__ __forceinline__ A apply_unary(UnaryOp op, A x) {
  switch (op) {
    case UnaryOp::identity: return x;
    case UnaryOp::neg: return -x;
    case UnaryOp::exp: return dmath::exp(x);
    case UnaryOp::log: return dmath::log(x);
    case UnaryOp::sqrt: return dmath::sqrt(x);
    case UnaryOp::rsqrt: return dmath::rcp(dmath::sqrt(x));
    case UnaryOp::tanh: return dmath::tanh(x);
    case UnaryOp::sigmoid: return dmath::sigmoid(x);
    case UnaryOp::silu: return x * dmath::sigmoid(x);
    case UnaryOp::softplus: return dmath::softplus(x);
    case UnaryOp::gelu: return A(0.5) * x * (A(1) + dmath::erf(x * A(kInvSqrt2)));
    case UnaryOp::abs: return x < A(0) ? -x : x;
    case UnaryOp::square: return x * x;
    case UnaryOp::reciprocal: return dmath::rcp(x);
    case UnaryOp::relu: return x > A(0) ? x : A(0);
  }
  return x;
}

// d op(x) / dx, as kernels/cpu/elementwise.cpp defines it
template <class A>
__device__ __forceinline__ A derivative(UnaryOp op, A x) {
  switch (op) {
    case UnaryOp::identity: return A(1);
    case UnaryOp::neg: return A(-1);
    case UnaryOp::exp: return dmath::exp(x);
    case UnaryOp::log: return dmath::rcp(x);
    case UnaryOp::sqrt: return dmath::div(A(0.5), dmath::sqrt(x));
    case UnaryOp::rsqrt: return dmath::div(A(-0.5), x * dmath::sqrt(x));
    case UnaryOp::tanh: {
      A t = dmath::tanh(x);
      return A(1) - t * t;
    }
    case UnaryOp::sigmoid: {
      A s = dmath::sigmoid(x);
      return s * (A(1) - s);
    }
    case UnaryOp::silu: {
      A s = dmath::sigmoid(x);
      return s * (A(1) + x * (A(1) - s));
    }
    case UnaryOp::softplus: return dmath::sigmoid(x);
    case UnaryOp::gelu: {
      A cdf = A(0.5) * (A(1) + dmath::erf(x * A(kInvSqrt2)));
      return cdf + x * A(kInvSqrt2Pi) * dmath::exp(A(-0.5) * x * x);
    }
    case UnaryOp::abs: return x > A(0) ? A(1) : x < A(0) ? A(-1) : A(0);
    case UnaryOp::square: return A(2) * x;
    case UnaryOp::reciprocal: return dmath::div(A(-1), x * x);
    case UnaryOp::relu: return x > A(0) ? A(1) : A(0);
  }
  return A(0);
}

template <class A>
__device__ __forceinline__ A apply_binary(BinaryOp op, A a, A b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return dmath::div(a, b);
    case BinaryOp::maximum: return a > b ? a : b;
    case BinaryOp::minimum: return a < b ? a : b;
    case BinaryOp::pow: return dmath::pow(a, b);
  }
  return a;
}

template <class T>
__device__ __forceinline__ const T* in_ptr(const Ptrs& P, int k, int64_t off) {
  return reinterpret_cast<const T*>(P.p[k]) + off;
}
template <class T>
__device__ __forceinline__ T* out_ptr(const Ptrs& P, int64_t off) {
  return reinterpret_cast<T*>(P.p[0]) + off;
}

template <class A>
struct Two {
  A x, y;
};
template <class A>
struct Three {
  A x, y, z;
};

template <class T>
struct UnaryFn {
  using A = acc_t<T>;
  using Loaded = A;
  UnaryOp op;
  A alpha, beta;
  __device__ Loaded load(const Ptrs& P, const int64_t* off) const { return load_acc(in_ptr<T>(P, 1, off[1])); }
  __device__ void store(const Ptrs& P, const int64_t* off, Loaded x) const {
    store_acc(out_ptr<T>(P, off[0]), alpha * apply_unary(op, x) + beta);
  }
};

template <class T>
struct BinaryFn {
  using A = acc_t<T>;
  using Loaded = Two<A>;
  BinaryOp op;
  __device__ Loaded load(const Ptrs& P, const int64_t* off) const {
    return {load_acc(in_ptr<T>(P, 1, off[1])), load_acc(in_ptr<T>(P, 2, off[2]))};
  }
  __device__ void store(const Ptrs& P, const int64_t* off, const Loaded& v) const {
    store_acc(out_ptr<T>(P, off[0]), apply_binary(op, v.x, v.y));
  }
};

template <class T>
struct UnaryBwdFn {
  using A = acc_t<T>;
  using Loaded = Two<A>;  // x, dy
  UnaryOp op;
  __device__ Loaded load(const Ptrs& P, const int64_t* off) const {
    return {load_acc(in_ptr<T>(P, 1, off[1])), load_acc(in_ptr<T>(P, 2, off[2]))};
  }
  __device__ void store(const Ptrs& P, const int64_t* off, const Loaded& v) const {
    store_acc(out_ptr<T>(P, off[0]), v.y * derivative(op, v.x));
  }
};

template <class T>
struct WhereFn {
  using A = acc_t<T>;
  using Loaded = Three<A>;  // a, b, cond
  __device__ Loaded load(const Ptrs& P, const int64_t* off) const {
    return {load_acc(in_ptr<T>(P, 1, off[1])), load_acc(in_ptr<T>(P, 2, off[2])), load_acc(in_ptr<T>(P, 3, off[3]))};
  }
  __device__ void store(const Ptrs& P, const int64_t* off, const Loaded& v) const {
    store_acc(out_ptr<T>(P, off[0]), v.z != A(0) ? v.x : v.y);
  }
};

template <class T>
struct AxpyFn {
  using A = acc_t<T>;
  using Loaded = Two<A>;  // out, a
  A alpha;
  __device__ Loaded load(const Ptrs& P, const int64_t* off) const {
    return {load_acc(in_ptr<T>(P, 0, off[0])), load_acc(in_ptr<T>(P, 1, off[1]))};
  }
  __device__ void store(const Ptrs& P, const int64_t* off, const Loaded& v) const {
    store_acc(out_ptr<T>(P, off[0]), v.x + alpha * v.y);
  }
};

// The float-dtype families, explicitly instantiated once per dtype in elementwise_<dtype>.cu.
template <class T>
Status unary_typed(UnaryOp op, const ElementwiseParams& p, cudaStream_t s) {
  const int es[4] = {sizeof(T), sizeof(T), 0, 0};
  return launch_elementwise(UnaryFn<T>{op, acc_t<T>(p.alpha), acc_t<T>(p.beta)}, p, 2, es, s);
}
template <class T>
Status binary_typed(BinaryOp op, const ElementwiseParams& p, cudaStream_t s) {
  const int es[4] = {sizeof(T), sizeof(T), sizeof(T), 0};
  return launch_elementwise(BinaryFn<T>{op}, p, 3, es, s);
}
template <class T>
Status unary_bwd_typed(UnaryOp op, const ElementwiseParams& p, cudaStream_t s) {
  const int es[4] = {sizeof(T), sizeof(T), sizeof(T), 0};
  return launch_elementwise(UnaryBwdFn<T>{op}, p, 3, es, s);
}
template <class T>
Status where_typed(const ElementwiseParams& p, cudaStream_t s) {
  const int es[4] = {sizeof(T), sizeof(T), sizeof(T), sizeof(T)};
  return launch_elementwise(WhereFn<T>{}, p, 4, es, s);
}
template <class T>
Status axpy_typed(const ElementwiseParams& p, cudaStream_t s) {
  const int es[4] = {sizeof(T), sizeof(T), 0, 0};
  return launch_elementwise(AxpyFn<T>{acc_t<T>(p.alpha)}, p, 2, es, s);
}

// SSM_CUDA_ELEMENTWISE_INSTANTIATE(, float) defines the float family for one dtype;
// SSM_CUDA_ELEMENTWISE_INSTANTIATE(extern, float) only declares it (no second compile).
#define SSM_CUDA_ELEMENTWISE_INSTANTIATE(EXTERN, T)                                         \
  EXTERN template Status unary_typed<T>(UnaryOp, const ElementwiseParams&, cudaStream_t);     \
  EXTERN template Status binary_typed<T>(BinaryOp, const ElementwiseParams&, cudaStream_t);   \
  EXTERN template Status unary_bwd_typed<T>(UnaryOp, const ElementwiseParams&, cudaStream_t); \
  EXTERN template Status where_typed<T>(const ElementwiseParams&, cudaStream_t);              \
  EXTERN template Status axpy_typed<T>(const ElementwiseParams&, cudaStream_t);

}  // namespace ssm::kernels::cuda
