#include "kernels/cpu/embedding.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/common/macros.h"

namespace ssm::kernels::cpu {
namespace {

constexpr int64_t kGrain = 1 << 14;  // elements below which a call stays single-threaded
constexpr int64_t kInnerChunk = 256;  // gather tasks split the blocked dim into fixed chunks

int64_t id_at(const void* ids, bool i64, int64_t n) {
  return i64 ? static_cast<const int64_t*>(ids)[n] : int64_t(static_cast<const int32_t*>(ids)[n]);
}

// Lines along `dim` are walked in blocks of the last dim (when that is not `dim`), which is
// then the innermost loop: for a row-major x that reads whole rows instead of columns.
struct Lines {
  int inner_dim = -1;      // the blocked dim, or -1
  int64_t blocks = 0;      // product of the other dims (not dim, not inner_dim)
  int64_t inner = 1;       // size of inner_dim
  int64_t xi = 0, yi = 0, ii = 0;  // strides along inner_dim
};
Lines make_lines(const GatherParams& p) {
  Lines L;
  if (p.ndim - 1 != p.dim) {
    L.inner_dim = p.ndim - 1;
    L.inner = p.shape[L.inner_dim];
    L.xi = p.x_strides[L.inner_dim];
    L.yi = p.y_strides[L.inner_dim];
    L.ii = p.index_strides[L.inner_dim];
  }
  L.blocks = 1;
  for (int d = 0; d < p.ndim; ++d)
    if (d != p.dim && d != L.inner_dim) L.blocks *= p.shape[d];
  return L;
}

// Element offsets of block b (its coordinates on the dims other than dim and inner_dim).
struct Offsets {
  int64_t x = 0, y = 0, index = 0;
};
Offsets block_offsets(const GatherParams& p, const Lines& L, int64_t b) {
  Offsets o;
  for (int d = p.ndim - 1; d >= 0; --d) {
    if (d == p.dim || d == L.inner_dim) continue;
    const int64_t i = b % p.shape[d];
    b /= p.shape[d];
    o.x += i * p.x_strides[d];
    o.y += i * p.y_strides[d];
    o.index += i * p.index_strides[d];
  }
  return o;
}

}  // namespace

template <class T>
void embedding_fwd(const EmbeddingParams& p) {
  const int64_t N = p.num_ids, D = p.dim;
  const T* w = static_cast<const T*>(p.weight);
  T* out = static_cast<T*>(p.out);
#pragma omp parallel for schedule(static) if (N * D > kGrain)
  for (int64_t n = 0; n < N; ++n) {
    const T* src = w + id_at(p.ids, p.ids_i64, n) * p.weight_row_stride;
    std::copy(src, src + D, out + n * p.out_row_stride);
  }
}

template <class T>
void embedding_bwd(const EmbeddingBwdParams& p) {
  const int64_t N = p.num_ids, V = p.vocab, D = p.dim;
  const T* dout = static_cast<const T*>(p.dout);
  T* dw = static_cast<T*>(p.dweight);
  // Counting sort of positions by id: start[v] .. start[v + 1] lists the n with ids[n] == v,
  // ascending (a stable fill), so each row's sum has a fixed order.
  std::vector<int64_t> start(size_t(V + 1), 0), pos(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) ++start[size_t(id_at(p.ids, p.ids_i64, n) + 1)];
  for (int64_t v = 0; v < V; ++v) start[size_t(v + 1)] += start[size_t(v)];
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t n = 0; n < N; ++n) pos[size_t(fill[size_t(id_at(p.ids, p.ids_i64, n))]++)] = n;
  }
#pragma omp parallel for schedule(dynamic, 64) if ((N + V) * D > kGrain)
  for (int64_t v = 0; v < V; ++v) {
    T* row = dw + v * D;
    std::fill(row, row + D, T(0));
    for (int64_t k = start[size_t(v)]; k < start[size_t(v + 1)]; ++k) {
      const T* g = dout + pos[size_t(k)] * p.dout_row_stride;
      for (int64_t d = 0; d < D; ++d) row[d] += g[d];
    }
  }
}

// A gather task is (block, chunk of the inner dim): tasks touch disjoint lines of x in the
// backward, so no two threads write the same dx element.
template <class T>
void gather_fwd(const GatherParams& p) {
  const Lines L = make_lines(p);
  const int64_t M = p.shape[p.dim], chunks = CEIL_DIV(L.inner, kInnerChunk);
  const int64_t xs = p.x_strides[p.dim], ys = p.y_strides[p.dim], is = p.index_strides[p.dim];
  const T* x = static_cast<const T*>(p.x);
  T* y = static_cast<T*>(p.y);
#pragma omp parallel for schedule(static) if (L.blocks * L.inner * M > kGrain)
  for (int64_t task = 0; task < L.blocks * chunks; ++task) {
    const Offsets o = block_offsets(p, L, task / chunks);
    const int64_t i0 = (task % chunks) * kInnerChunk, i1 = std::min(L.inner, i0 + kInnerChunk);
    for (int64_t k = 0; k < M; ++k)
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t src = id_at(p.index, p.index_i64, o.index + k * is + i * L.ii);
        y[o.y + k * ys + i * L.yi] = x[o.x + src * xs + i * L.xi];
      }
  }
}

// Within a task the index order is fixed, so the sums are the same for any thread count.
template <class T>
void gather_bwd(const GatherParams& p) {
  const Lines L = make_lines(p);
  const int64_t M = p.shape[p.dim], chunks = CEIL_DIV(L.inner, kInnerChunk);
  const int64_t xs = p.x_strides[p.dim], ys = p.y_strides[p.dim], is = p.index_strides[p.dim];
  T* dx = static_cast<T*>(p.x);
  const T* dy = static_cast<const T*>(p.y);
#pragma omp parallel for schedule(static) if (L.blocks * L.inner * M > kGrain)
  for (int64_t task = 0; task < L.blocks * chunks; ++task) {
    const Offsets o = block_offsets(p, L, task / chunks);
    const int64_t i0 = (task % chunks) * kInnerChunk, i1 = std::min(L.inner, i0 + kInnerChunk);
    for (int64_t k = 0; k < M; ++k)
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t dst = id_at(p.index, p.index_i64, o.index + k * is + i * L.ii);
        dx[o.x + dst * xs + i * L.xi] += dy[o.y + k * ys + i * L.yi];
      }
  }
}

template void embedding_fwd<float>(const EmbeddingParams&);
template void embedding_fwd<double>(const EmbeddingParams&);
template void embedding_bwd<float>(const EmbeddingBwdParams&);
template void embedding_bwd<double>(const EmbeddingBwdParams&);
template void gather_fwd<float>(const GatherParams&);
template void gather_fwd<double>(const GatherParams&);
template void gather_bwd<float>(const GatherParams&);
template void gather_bwd<double>(const GatherParams&);

}  // namespace ssm::kernels::cpu
