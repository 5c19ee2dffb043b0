#include "kernels/cpu/conv1d.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace ssm::kernels::cpu {
namespace {

template <class T>
T sigmoid(T v) {
  return T(1) / (T(1) + std::exp(-v));
}

// One (b, d) row laid out as xpad: K-1 entries of initial state (or zeros) then the L inputs,
// with the document id of every xpad position (positions before x[0] belong to the first
// document). `same(i, j)` says whether xpad entries i and j may interact.
template <class T>
struct Row {
  int64_t K = 0, L = 0;
  std::vector<T> xpad;         // (K-1+L)
  std::vector<int32_t> doc;    // (K-1+L), empty without seq_idx
  bool same(int64_t i, int64_t j) const { return doc.empty() || doc[i] == doc[j]; }
};

template <class T>
void load_row(const Conv1dParams& p, int64_t b, int64_t d, Row<T>& r) {
  const int64_t K = p.width, L = p.seqlen, pad = K - 1;
  r.K = K;
  r.L = L;
  r.xpad.assign(pad + L, T(0));
  const T* init = static_cast<const T*>(p.initial_states);
  if (init) {
    const T* ip = init + b * p.initial_states_batch_stride + d * p.initial_states_d_stride;
    for (int64_t i = 0; i < pad; ++i) r.xpad[i] = ip[i * p.initial_states_k_stride];
  }
  const T* xp = static_cast<const T*>(p.x) + b * p.x_batch_stride + d * p.x_d_stride;
  for (int64_t t = 0; t < L; ++t) r.xpad[pad + t] = xp[t * p.x_l_stride];
  if (p.seq_idx) {
    const int32_t* sp = p.seq_idx + b * p.seq_idx_batch_stride;
    r.doc.resize(pad + L);
    for (int64_t i = 0; i < pad; ++i) r.doc[i] = sp[0];
    for (int64_t t = 0; t < L; ++t) r.doc[pad + t] = sp[t * p.seq_idx_l_stride];
  }
}

// Pre-activation of output t (xpad index pad + t); taps k read xpad[t + k].
template <class T>
T pre_activation(const Row<T>& r, const T* w, T bias, int64_t t) {
  const int64_t pad = r.K - 1;
  T acc = bias;
  for (int64_t k = 0; k < r.K; ++k) {
    if (r.same(t + k, pad + t)) acc += w[k] * r.xpad[t + k];
  }
  return acc;
}

template <class T>
void load_weights(const T* weight, int64_t sd, int64_t sk, const T* bias, int64_t d, int64_t K,
                  T* w, T* bias_out) {
  for (int64_t k = 0; k < K; ++k) w[k] = weight[d * sd + k * sk];
  *bias_out = bias ? bias[d] : T(0);
}

}  // namespace

template <class T>
void causal_conv1d_fwd(const Conv1dParams& p) {
  const int64_t B = p.batch, D = p.dim, L = p.seqlen, K = p.width, pad = K - 1;
  const T* weight = static_cast<const T*>(p.weight);
  const T* bias = static_cast<const T*>(p.bias);
  T* out = static_cast<T*>(p.out);
  T* fin = static_cast<T*>(p.final_states);
#pragma omp parallel
  {
    Row<T> r;
#pragma omp for schedule(static)
    for (int64_t bd = 0; bd < B * D; ++bd) {
      const int64_t b = bd / D, d = bd % D;
      T w[kConv1dMaxWidth], bias_d;
      load_weights(weight, p.weight_d_stride, p.weight_k_stride, bias, d, K, w, &bias_d);
      load_row(p, b, d, r);
      T* op = out + b * p.out_batch_stride + d * p.out_d_stride;
      for (int64_t t = 0; t < L; ++t) {
        T v = pre_activation(r, w, bias_d, t);
        op[t * p.out_l_stride] = p.silu ? v * sigmoid(v) : v;
      }
      if (fin) {
        // Entry j is xpad position L + j (xpad index), the (K-1-j)-th newest input.
        T* fp = fin + b * p.final_states_batch_stride + d * p.final_states_d_stride;
        const int64_t last = pad + L - 1;
        for (int64_t j = 0; j < pad; ++j) {
          const int64_t i = L + j;
          fp[j * p.final_states_k_stride] = r.same(i, last) ? r.xpad[i] : T(0);
        }
      }
    }
  }
}

template <class T>
void causal_conv1d_bwd(const Conv1dBwdParams& p) {
  const int64_t B = p.batch, D = p.dim, L = p.seqlen, K = p.width, pad = K - 1;
  const T* weight = static_cast<const T*>(p.weight);
  const T* bias = static_cast<const T*>(p.bias);
  const T* dout = static_cast<const T*>(p.dout);
  const T* dfin = static_cast<const T*>(p.dfinal_states);
  T* dx = static_cast<T*>(p.dx);
  T* dweight = static_cast<T*>(p.dweight);
  T* dbias = static_cast<T*>(p.dbias);
  T* dinit = static_cast<T*>(p.dinitial_states);
  // One channel per task: dweight[d] and dbias[d] sum over (b, t) in a fixed order, in double.
#pragma omp parallel
  {
    Row<T> r;
    std::vector<T> dpre(L), dxpad(pad + L);
#pragma omp for schedule(static)
    for (int64_t d = 0; d < D; ++d) {
      T w[kConv1dMaxWidth], bias_d;
      load_weights(weight, p.weight_d_stride, p.weight_k_stride, bias, d, K, w, &bias_d);
      double dw_acc[kConv1dMaxWidth] = {};
      double db_acc = 0.0;
      for (int64_t b = 0; b < B; ++b) {
        load_row(static_cast<const Conv1dParams&>(p), b, d, r);
        const T* gp = dout + b * p.dout_batch_stride + d * p.dout_d_stride;
        for (int64_t t = 0; t < L; ++t) {
          T g = gp[t * p.dout_l_stride];
          if (p.silu) {
            // d/dv [v * s(v)] = s(v) * (1 + v * (1 - s(v)))
            T v = pre_activation(r, w, bias_d, t);
            T s = sigmoid(v);
            g *= s * (T(1) + v * (T(1) - s));
          }
          dpre[t] = g;
        }
        std::fill(dxpad.begin(), dxpad.end(), T(0));
        for (int64_t t = 0; t < L; ++t) {
          const T g = dpre[t];
          db_acc += double(g);
          for (int64_t k = 0; k < K; ++k) {
            if (!r.same(t + k, pad + t)) continue;
            dw_acc[k] += double(g) * double(r.xpad[t + k]);
            dxpad[t + k] += w[k] * g;
          }
        }
        if (dfin) {
          const T* fp = dfin + b * p.dfinal_states_batch_stride + d * p.dfinal_states_d_stride;
          const int64_t last = pad + L - 1;
          for (int64_t j = 0; j < pad; ++j) {
            const int64_t i = L + j;
            if (r.same(i, last)) dxpad[i] += fp[j * p.dfinal_states_k_stride];
          }
        }
        if (dx) {
          T* xp = dx + b * p.dx_batch_stride + d * p.dx_d_stride;
          for (int64_t t = 0; t < L; ++t) xp[t * p.dx_l_stride] = dxpad[pad + t];
        }
        if (dinit) {
          T* ip = dinit + b * p.dinitial_states_batch_stride + d * p.dinitial_states_d_stride;
          for (int64_t j = 0; j < pad; ++j) ip[j * p.dinitial_states_k_stride] = dxpad[j];
        }
      }
      if (dweight) {
        for (int64_t k = 0; k < K; ++k) {
          dweight[d * p.dweight_d_stride + k * p.dweight_k_stride] = T(dw_acc[k]);
        }
      }
      if (dbias) dbias[d] = T(db_acc);
    }
  }
}

template <class T>
void causal_conv1d_step(const Conv1dStepParams& p) {
  const int64_t B = p.batch, D = p.dim, K = p.width;
  const T* weight = static_cast<const T*>(p.weight);
  const T* bias = static_cast<const T*>(p.bias);
  const T* x = static_cast<const T*>(p.x);
  T* state = static_cast<T*>(p.conv_state);
  T* out = static_cast<T*>(p.out);
#pragma omp parallel for schedule(static)
  for (int64_t bd = 0; bd < B * D; ++bd) {
    const int64_t b = bd / D, d = bd % D;
    T w[kConv1dMaxWidth], bias_d;
    load_weights(weight, p.weight_d_stride, p.weight_k_stride, bias, d, K, w, &bias_d);
    T* sp = state + b * p.conv_state_batch_stride + d * p.conv_state_d_stride;
    const int64_t sk = p.conv_state_k_stride;
    for (int64_t k = 0; k + 1 < K; ++k) sp[k * sk] = sp[(k + 1) * sk];
    sp[(K - 1) * sk] = x[b * p.x_batch_stride + d * p.x_d_stride];
    T acc = bias_d;
    for (int64_t k = 0; k < K; ++k) acc += w[k] * sp[k * sk];
    out[b * p.out_batch_stride + d * p.out_d_stride] = p.silu ? acc * sigmoid(acc) : acc;
  }
}

template void causal_conv1d_fwd<float>(const Conv1dParams&);
template void causal_conv1d_fwd<double>(const Conv1dParams&);
template void causal_conv1d_bwd<float>(const Conv1dBwdParams&);
template void causal_conv1d_bwd<double>(const Conv1dBwdParams&);
template void causal_conv1d_step<float>(const Conv1dStepParams&);
template void causal_conv1d_step<double>(const Conv1dStepParams&);

}  // namespace ssm::kernels::cpu
