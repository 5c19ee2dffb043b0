#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace ssm::kernels::cpu {
namespace {

template <class T>
T dot(const T* a, const T* b, int64_t n) {
  T s = T(0);
  for (int64_t d = 0; d < n; ++d) s += a[d] * b[d];
  return s;
}

// Which keys query row i of batch b may see: j in [0, key_end(i)) with a matching document id.
struct Mask {
  const AttentionParams& p;
  const int32_t* sq = nullptr;  // (Lq) document ids of this batch row, or null
  const int32_t* sk = nullptr;  // (Lk)

  Mask(const AttentionParams& params, int64_t b) : p(params) {
    if (p.seq_idx_q && p.seq_idx_k) {
      sq = p.seq_idx_q + b * p.seq_idx_q_batch_stride;
      sk = p.seq_idx_k + b * p.seq_idx_k_batch_stride;
    }
  }
  int64_t key_end(int64_t i) const { return std::clamp<int64_t>(p.q_offset + i + 1, 0, p.len_k); }
  bool same_doc(int64_t i, int64_t j) const { return !sq || sq[i] == sk[j]; }
};

}  // namespace

template <class T>
void attention_fwd(const AttentionParams& p) {
  const int64_t P = p.head_dim, Lq = p.len_q, Hq = p.heads_q;
  const int64_t group = p.heads_q / p.heads_kv;  // query heads per kv head
  const T scale = T(attention_softmax_scale(p));
  const T* q = static_cast<const T*>(p.q);
  const T* k = static_cast<const T*>(p.k);
  const T* v = static_cast<const T*>(p.v);
  T* out = static_cast<T*>(p.out);
  T* lse = static_cast<T*>(p.lse);
  const int64_t rows = p.batch * Hq * Lq;

#pragma omp parallel
  {
    std::vector<T> acc(P);  // (P) unnormalised sum_j exp(s_j - m) v_j
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = r % Lq, h = (r / Lq) % Hq, b = r / (Lq * Hq);
      const int64_t hk = h / group;
      const Mask mask(p, b);
      const T* qi = q + b * p.q_batch_stride + i * p.q_row_stride + h * p.q_head_stride;
      const T* kb = k + b * p.k_batch_stride + hk * p.k_head_stride;
      const T* vb = v + b * p.v_batch_stride + hk * p.v_head_stride;

      // Online softmax: m is the running max of the scores seen so far, l = sum exp(s - m).
      T m = -std::numeric_limits<T>::infinity(), l = T(0);
      std::fill(acc.begin(), acc.end(), T(0));
      const int64_t jend = mask.key_end(i);
      for (int64_t j = 0; j < jend; ++j) {
        if (!mask.same_doc(i, j)) continue;
        const T s = scale * dot(qi, kb + j * p.k_row_stride, P);
        if (s > m) {  // rescale what was summed against the old max (exp(-inf) = 0 at first)
          const T c = std::exp(m - s);
          l *= c;
          for (int64_t d = 0; d < P; ++d) acc[d] *= c;
          m = s;
        }
        const T e = std::exp(s - m);
        l += e;
        const T* vj = vb + j * p.v_row_stride;
        for (int64_t d = 0; d < P; ++d) acc[d] += e * vj[d];
      }

      T* oi = out + b * p.o_batch_stride + i * p.o_row_stride + h * p.o_head_stride;
      T& lse_i = lse[(b * Hq + h) * Lq + i];
      if (l > T(0)) {
        const T inv = T(1) / l;
        for (int64_t d = 0; d < P; ++d) oi[d] = acc[d] * inv;
        lse_i = m + std::log(l);
      } else {  // no visible key: a zero row, and +inf so that exp(s - lse) = 0 downstream
        std::fill(oi, oi + P, T(0));
        lse_i = std::numeric_limits<T>::infinity();
      }
    }
  }
}

// With s_ij = scale q_i·k_j, P_ij = exp(s_ij - lse_i), O_i = sum_j P_ij v_j:
//   dv_j += P_ij dO_i
//   dP_ij = dO_i·v_j,  dS_ij = P_ij (dP_ij - D_i),  D_i = sum_j P_ij dP_ij = dO_i·O_i
//   dq_i = scale sum_j dS_ij k_j,  dk_j += scale dS_ij q_i
template <class T>
void attention_bwd(const AttentionBwdParams& p) {
  const int64_t P = p.head_dim, Lq = p.len_q, Lk = p.len_k, Hq = p.heads_q, Hkv = p.heads_kv;
  const int64_t group = Hq / Hkv;
  const T scale = T(attention_softmax_scale(p));
  const T* q = static_cast<const T*>(p.q);
  const T* k = static_cast<const T*>(p.k);
  const T* v = static_cast<const T*>(p.v);
  const T* out = static_cast<const T*>(p.out);
  const T* lse = static_cast<const T*>(p.lse);
  const T* dout = static_cast<const T*>(p.dout);
  T* dq = static_cast<T*>(p.dq);
  T* dk = static_cast<T*>(p.dk);
  T* dv = static_cast<T*>(p.dv);
  const int64_t items = p.batch * Hkv;

#pragma omp parallel
  {
    std::vector<T> dq_acc(P);  // (P) sum_j dS_ij k_j for the current row
#pragma omp for schedule(static)
    for (int64_t w = 0; w < items; ++w) {
      const int64_t hk = w % Hkv, b = w / Hkv;
      const Mask mask(p, b);
      const T* kb = k + b * p.k_batch_stride + hk * p.k_head_stride;
      const T* vb = v + b * p.v_batch_stride + hk * p.v_head_stride;
      T* dkb = dk + b * p.dk_batch_stride + hk * p.dk_head_stride;
      T* dvb = dv + b * p.dv_batch_stride + hk * p.dv_head_stride;
      for (int64_t j = 0; j < Lk; ++j) {
        std::fill(dkb + j * p.dk_row_stride, dkb + j * p.dk_row_stride + P, T(0));
        std::fill(dvb + j * p.dv_row_stride, dvb + j * p.dv_row_stride + P, T(0));
      }

      for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
        for (int64_t i = 0; i < Lq; ++i) {
          const T* qi = q + b * p.q_batch_stride + i * p.q_row_stride + h * p.q_head_stride;
          const T* oi = out + b * p.o_batch_stride + i * p.o_row_stride + h * p.o_head_stride;
          const T* doi = dout + b * p.do_batch_stride + i * p.do_row_stride + h * p.do_head_stride;
          T* dqi = dq + b * p.dq_batch_stride + i * p.dq_row_stride + h * p.dq_head_stride;
          const T lse_i = lse[(b * Hq + h) * Lq + i];
          std::fill(dq_acc.begin(), dq_acc.end(), T(0));
          if (std::isfinite(lse_i)) {  // a fully masked row (lse = +inf) has no gradient
            const T d_i = dot(doi, oi, P);
            const int64_t jend = mask.key_end(i);
            for (int64_t j = 0; j < jend; ++j) {
              if (!mask.same_doc(i, j)) continue;
              const T* kj = kb + j * p.k_row_stride;
              const T* vj = vb + j * p.v_row_stride;
              const T pij = std::exp(scale * dot(qi, kj, P) - lse_i);
              const T ds = pij * (dot(doi, vj, P) - d_i);
              T* dkj = dkb + j * p.dk_row_stride;
              T* dvj = dvb + j * p.dv_row_stride;
              const T ds_scaled = scale * ds;
              for (int64_t d = 0; d < P; ++d) {
                dq_acc[d] += ds * kj[d];
                dkj[d] += ds_scaled * qi[d];
                dvj[d] += pij * doi[d];
              }
            }
          }
          for (int64_t d = 0; d < P; ++d) dqi[d] = scale * dq_acc[d];
        }
      }
    }
  }
}

template void attention_fwd<float>(const AttentionParams&);
template void attention_fwd<double>(const AttentionParams&);
template void attention_bwd<float>(const AttentionBwdParams&);
template void attention_bwd<double>(const AttentionBwdParams&);

}  // namespace ssm::kernels::cpu
