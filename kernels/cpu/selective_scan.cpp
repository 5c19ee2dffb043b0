#include "kernels/cpu/selective_scan.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace ssm::kernels::cpu {
namespace {

// Channels of one group per work item. Fixed, so the split never depends on the thread
// count; an item shares its Bm/Cm tiles between its channels, and in the backward its
// partial dBm/dCm is one (chunk_len, N) tile, so the scratch stays small for any E.
constexpr int64_t kChanBlock = 16;

// Below this many state updates a parallel region costs more than it saves (generation steps,
// tiny tests), and on a loaded machine every barrier can wait for a descheduled thread.
// Running on one thread never changes results: the work split does not depend on it.
constexpr int64_t kMinParallelWork = int64_t(1) << 14;

void check(bool ok, const char* msg) {
  if (!ok) throw std::invalid_argument(std::string("selective_scan: ") + msg);
}

// No step to run (tensors may then be null): only h0 -> hT / dhT -> dh0 pass through.
bool empty(const SelectiveScanParams& p) { return p.batch * p.dim * p.seqlen == 0; }

void check_params(const SelectiveScanParams& p) {
  check(p.batch >= 0 && p.dim >= 0 && p.seqlen >= 0 && p.dstate >= 0, "sizes must be >= 0");
  check(p.n_groups >= 1 && p.dim % p.n_groups == 0, "n_groups (G) must divide dim (E)");
  check(p.chunk_len >= 1, "chunk_len must be >= 1");
  check(empty(p) || (p.u && p.delta && p.A && p.Bm && p.Cm), "u, delta, A, Bm and Cm are required");
}

bool worth_threads(const SelectiveScanParams& p) {
  return p.batch * p.dim * p.seqlen * p.dstate >= kMinParallelWork;
}

template <class T>
T ld(const void* base, int64_t off) {
  return static_cast<const T*>(base)[off];
}
template <class T>
void st(void* base, int64_t off, T v) {
  static_cast<T*>(base)[off] = v;
}
int64_t at(const int64_t* s, int64_t i, int64_t j) { return i * s[0] + j * s[1]; }
int64_t at(const int64_t* s, int64_t i, int64_t j, int64_t k) {
  return i * s[0] + j * s[1] + k * s[2];
}
int64_t at(const int64_t* s, int64_t i, int64_t j, int64_t k, int64_t l) {
  return i * s[0] + j * s[1] + k * s[2] + l * s[3];
}

// A new document starts at t: the state entering t is dropped.
bool is_reset(const SelectiveScanParams& p, int64_t b, int64_t t) {
  if (!p.seq_idx || t == 0) return false;
  const int32_t* s = p.seq_idx + b * p.seq_idx_stride[0];
  return s[t * p.seq_idx_stride[1]] != s[(t - 1) * p.seq_idx_stride[1]];
}

// Work item -> (batch, group, channel range); item order is (b, g, block), so the blocks of
// one (b, g) are consecutive.
struct ChannelBlocks {
  int64_t G, per_group, nblk;
  explicit ChannelBlocks(const SelectiveScanParams& p)
      : G(p.n_groups), per_group(p.dim / p.n_groups), nblk(CEIL_DIV(per_group, kChanBlock)) {}
  int64_t count(int64_t batch) const { return batch * G * nblk; }
  void decode(int64_t item, int64_t& b, int64_t& g, int64_t& e0, int64_t& e1) const {
    b = item / (G * nblk);
    g = (item / nblk) % G;
    e0 = g * per_group + (item % nblk) * kChanBlock;
    e1 = std::min(e0 + kChanBlock, (g + 1) * per_group);
  }
};

// tile[i, n] = M[b, g, n, t0 + i] for i < cl: Bm/Cm rows of one chunk, contiguous in n.
template <class T, class Acc>
void load_tile(const void* m, const int64_t* s, int64_t b, int64_t g, int64_t t0, int64_t cl,
               int64_t N, Acc* tile) {
  for (int64_t i = 0; i < cl; ++i)
    for (int64_t n = 0; n < N; ++n) tile[i * N + n] = Acc(ld<T>(m, at(s, b, g, n, t0 + i)));
}

// delta + delta_bias, before the optional softplus.
template <class T, class Acc>
Acc delta_raw(const SelectiveScanParams& p, int64_t b, int64_t e, int64_t t) {
  Acc raw = Acc(ld<T>(p.delta, at(p.delta_stride, b, e, t)));
  if (p.delta_bias) raw += Acc(ld<T>(p.delta_bias, e * p.delta_bias_stride));
  return raw;
}

}  // namespace

template <class T>
void selective_scan_fwd(const SelectiveScanParams& p) {
  using Acc = scan_acc_t<T>;
  check_params(p);
  check(empty(p) || p.out, "out is required");
  const int64_t E = p.dim, L = p.seqlen, N = p.dstate, Lc = p.chunk_len, nc = p.n_chunks();
  const int64_t Lt = std::min(Lc, L);  // longest chunk present: sizes the per-chunk buffers
  const ChannelBlocks blocks(p);
  const int64_t n_items = blocks.count(p.batch);
  Acc* saved = static_cast<Acc*>(p.chunk_states);

#pragma omp parallel if (worth_threads(p))
  {
    std::vector<Acc> bt(Lt * N), ct(Lt * N);                        // (C, N) tiles
    std::vector<Acc> h(kChanBlock * N), a(kChanBlock * N);          // per channel of the block
#pragma omp for schedule(static)
    for (int64_t item = 0; item < n_items; ++item) {
      int64_t b, g, e0, e1;
      blocks.decode(item, b, g, e0, e1);
      for (int64_t e = e0; e < e1; ++e) {
        Acc* hs = &h[(e - e0) * N];
        for (int64_t n = 0; n < N; ++n) {
          a[(e - e0) * N + n] = Acc(ld<T>(p.A, at(p.A_stride, e, n)));
          hs[n] = p.h0 ? Acc(ld<T>(p.h0, at(p.h0_stride, b, e, n))) : Acc(0);
        }
      }
      for (int64_t c = 0; c < nc; ++c) {
        const int64_t t0 = c * Lc, cl = std::min(Lc, L - t0);
        load_tile<T>(p.Bm, p.Bm_stride, b, g, t0, cl, N, bt.data());
        load_tile<T>(p.Cm, p.Cm_stride, b, g, t0, cl, N, ct.data());
        for (int64_t e = e0; e < e1; ++e) {
          Acc* hs = &h[(e - e0) * N];
          const Acc* ae = &a[(e - e0) * N];
          if (saved) std::copy(hs, hs + N, saved + ((b * E + e) * nc + c) * N);
          const Acc d = p.D ? Acc(ld<T>(p.D, e * p.D_stride)) : Acc(0);
          for (int64_t i = 0; i < cl; ++i) {
            const int64_t t = t0 + i;
            if (is_reset(p, b, t)) std::fill(hs, hs + N, Acc(0));
            const Acc raw = delta_raw<T, Acc>(p, b, e, t);
            const Acc dt = p.delta_softplus ? scan_softplus(raw) : raw;
            const Acc u = Acc(ld<T>(p.u, at(p.u_stride, b, e, t)));
            const Acc dtu = dt * u;
            const Acc* bi = &bt[i * N];
            const Acc* ci = &ct[i * N];
            Acc y = 0;
            for (int64_t n = 0; n < N; ++n) {
              hs[n] = std::exp(std::min(dt * ae[n], Acc(0))) * hs[n] + dtu * bi[n];
              y += hs[n] * ci[n];
            }
            y += d * u;
            if (p.z) y *= scan_silu(Acc(ld<T>(p.z, at(p.z_stride, b, e, t))));
            st<T>(p.out, at(p.out_stride, b, e, t), T(y));
          }
        }
      }
      if (p.hT) {
        for (int64_t e = e0; e < e1; ++e)
          for (int64_t n = 0; n < N; ++n)
            st<T>(p.hT, at(p.hT_stride, b, e, n), T(h[(e - e0) * N + n]));
      }
    }
  }
}

// Backward, chunk by chunk from the last: every item recomputes the states of its channels
// inside the chunk from chunk_states, then runs the adjoint recurrence
//   g_t = dL/dh_t = dy_t Cm_t + exp(dt_{t+1} A) g_{t+1}   (zero across a document start)
// whose carry between chunks lives in a (B, E, N) buffer. Chunks go in lock step over all
// items so partial dBm/dCm of one chunk can be summed over channel blocks in a fixed order
// before the next chunk reuses the scratch. Per-(b, e) partials of dA, dD and ddelta_bias are
// summed over batch at the end, again in a fixed order.
template <class T>
void selective_scan_bwd(const SelectiveScanBwdParams& p) {
  using Acc = scan_acc_t<T>;
  check_params(p);
  check(empty(p) || p.dout, "dout is required");
  check(empty(p) || p.chunk_states, "chunk_states from the forward are required");
  const int64_t Bsz = p.batch, E = p.dim, L = p.seqlen, N = p.dstate, G = p.n_groups;
  const int64_t Lc = p.chunk_len, nc = p.n_chunks();
  const int64_t Lt = std::min(Lc, L);  // longest chunk present: sizes the per-chunk buffers
  const ChannelBlocks blocks(p);
  const int64_t n_items = blocks.count(Bsz), nblk = blocks.nblk;
  const Acc* saved = static_cast<const Acc*>(p.chunk_states);

  std::vector<Acc> carry(Bsz * E * N, Acc(0));  // (B, E, N) adjoint entering the chunk's end
  if (p.dhT) {
    for (int64_t b = 0; b < Bsz; ++b)
      for (int64_t e = 0; e < E; ++e)
        for (int64_t n = 0; n < N; ++n)
          carry[(b * E + e) * N + n] = Acc(ld<T>(p.dhT, at(p.dhT_stride, b, e, n)));
  }
  // Partials are kept even for gradients nobody asked for: they are small, and an
  // unconditional inner loop vectorises.
  std::vector<Acc> dA_part(Bsz * E * N, Acc(0));     // (B, E, N)
  std::vector<Acc> dD_part(Bsz * E, Acc(0));         // (B, E)
  std::vector<Acc> dbias_part(Bsz * E, Acc(0));      // (B, E)
  std::vector<Acc> part_b(n_items * Lt * N);         // (B, G, nblk, C, N)
  std::vector<Acc> part_c(n_items * Lt * N);         // (B, G, nblk, C, N)

#pragma omp parallel if (worth_threads(p))
  {
    std::vector<Acc> bt(Lt * N), ct(Lt * N);      // (C, N) tiles of Bm, Cm
    std::vector<Acc> hs((Lt + 1) * N);            // row i: state entering step t0 + i
    std::vector<Acc> decays(Lt * N);              // row i: exp(min(dt A, 0)) of step t0 + i
    std::vector<Acc> a(N), dts(Lt), raws(Lt), us(Lt);
    for (int64_t c = nc - 1; c >= 0; --c) {
      const int64_t t0 = c * Lc, cl = std::min(Lc, L - t0);
#pragma omp for schedule(static)
      for (int64_t item = 0; item < n_items; ++item) {
        int64_t b, g, e0, e1;
        blocks.decode(item, b, g, e0, e1);
        load_tile<T>(p.Bm, p.Bm_stride, b, g, t0, cl, N, bt.data());
        load_tile<T>(p.Cm, p.Cm_stride, b, g, t0, cl, N, ct.data());
        Acc* pb = &part_b[item * Lt * N];
        Acc* pc = &part_c[item * Lt * N];
        std::fill(pb, pb + cl * N, Acc(0));
        std::fill(pc, pc + cl * N, Acc(0));
        for (int64_t e = e0; e < e1; ++e) {
          for (int64_t n = 0; n < N; ++n) a[n] = Acc(ld<T>(p.A, at(p.A_stride, e, n)));
          const Acc d = p.D ? Acc(ld<T>(p.D, e * p.D_stride)) : Acc(0);
          // Recompute h_{t0-1} .. h_{t0+cl-1} into rows 0 .. cl.
          std::copy_n(saved + ((b * E + e) * nc + c) * N, N, hs.begin());
          for (int64_t i = 0; i < cl; ++i) {
            const int64_t t = t0 + i;
            raws[i] = delta_raw<T, Acc>(p, b, e, t);
            dts[i] = p.delta_softplus ? scan_softplus(raws[i]) : raws[i];
            us[i] = Acc(ld<T>(p.u, at(p.u_stride, b, e, t)));
            const bool reset = is_reset(p, b, t);
            const Acc dtu = dts[i] * us[i];
            const Acc* prev = &hs[i * N];
            Acc* cur = &hs[(i + 1) * N];
            Acc* dec = &decays[i * N];
            for (int64_t n = 0; n < N; ++n) dec[n] = std::exp(std::min(dts[i] * a[n], Acc(0)));
            const Acc keep = reset ? Acc(0) : Acc(1);
            for (int64_t n = 0; n < N; ++n) cur[n] = keep * dec[n] * prev[n] + dtu * bt[i * N + n];
          }
          Acc* g_n = &carry[(b * E + e) * N];
          Acc* dA_e = &dA_part[(b * E + e) * N];
          Acc dD_acc = 0, dbias_acc = 0;
          for (int64_t i = cl - 1; i >= 0; --i) {
            const int64_t t = t0 + i;
            const bool reset = is_reset(p, b, t);
            const Acc dt = dts[i], u = us[i];
            const Acc* cur = &hs[(i + 1) * N];
            const Acc* prev = &hs[i * N];
            const Acc* bi = &bt[i * N];
            const Acc* ci = &ct[i * N];
            const Acc dout = Acc(ld<T>(p.dout, at(p.dout_stride, b, e, t)));
            Acc dy = dout;
            if (p.z) {
              const Acc z = Acc(ld<T>(p.z, at(p.z_stride, b, e, t)));
              dy = dout * scan_silu(z);
              if (p.dz) {
                Acc y = 0;
#pragma omp simd reduction(+ : y)
                for (int64_t n = 0; n < N; ++n) y += cur[n] * ci[n];
                y += d * u;
                st<T>(p.dz, at(p.dz_stride, b, e, t), T(dout * y * scan_silu_grad(z)));
              }
            }
            dD_acc += dy * u;
            const Acc keep = reset ? Acc(0) : Acc(1);  // a document start cuts h_{t-1} off
            const Acc* dec = &decays[i * N];
            Acc gb = 0, ddt = 0;
#pragma omp simd reduction(+ : gb, ddt)
            for (int64_t n = 0; n < N; ++n) {
              const Acc gn = g_n[n] + dy * ci[n];  // dL/dh_t[n]
              pc[i * N + n] += dy * cur[n];
              pb[i * N + n] += gn * dt * u;
              gb += gn * bi[n];
              // The exponent clamp has zero slope where it is active (dt A > 0).
              const Acc q = dt * a[n] <= Acc(0) ? keep * gn * dec[n] * prev[n] : Acc(0);
              ddt += q * a[n];
              dA_e[n] += q * dt;
              g_n[n] = keep * gn * dec[n];
            }
            const Acc du = dy * d + dt * gb;
            ddt += u * gb;
            const Acc ddelta = p.delta_softplus ? ddt * scan_softplus_grad(raws[i]) : ddt;
            dbias_acc += ddelta;
            if (p.du) st<T>(p.du, at(p.du_stride, b, e, t), T(du));
            if (p.ddelta) st<T>(p.ddelta, at(p.ddelta_stride, b, e, t), T(ddelta));
          }
          dD_part[b * E + e] += dD_acc;
          dbias_part[b * E + e] += dbias_acc;
        }
      }
      // Sum the channel blocks of each (b, g) in block order: rows (b, g, i) of this chunk.
      if (p.dBm || p.dCm) {
#pragma omp for schedule(static)
        for (int64_t r = 0; r < Bsz * G * cl; ++r) {
          const int64_t b = r / (G * cl), g = (r / cl) % G, i = r % cl;
          const int64_t first = (b * G + g) * nblk;
          for (int64_t n = 0; n < N; ++n) {
            if (p.dBm) {
              Acc s = 0;
              for (int64_t j = 0; j < nblk; ++j) s += part_b[(first + j) * Lt * N + i * N + n];
              st<T>(p.dBm, at(p.dBm_stride, b, g, n, t0 + i), T(s));
            }
            if (p.dCm) {
              Acc s = 0;
              for (int64_t j = 0; j < nblk; ++j) s += part_c[(first + j) * Lt * N + i * N + n];
              st<T>(p.dCm, at(p.dCm_stride, b, g, n, t0 + i), T(s));
            }
          }
        }
      }
    }

    // After chunk 0 the carry is dL/dh_{-1} = dL/dh0. Reductions over batch in batch order.
#pragma omp for schedule(static)
    for (int64_t e = 0; e < E; ++e) {
      if (p.dh0) {
        for (int64_t b = 0; b < Bsz; ++b)
          for (int64_t n = 0; n < N; ++n)
            st<T>(p.dh0, at(p.dh0_stride, b, e, n), T(carry[(b * E + e) * N + n]));
      }
      if (p.dA) {
        for (int64_t n = 0; n < N; ++n) {
          Acc s = 0;
          for (int64_t b = 0; b < Bsz; ++b) s += dA_part[(b * E + e) * N + n];
          st<T>(p.dA, at(p.dA_stride, e, n), T(s));
        }
      }
      if (p.dD) {
        Acc s = 0;
        for (int64_t b = 0; b < Bsz; ++b) s += dD_part[b * E + e];
        st<T>(p.dD, e * p.dD_stride, T(s));
      }
      if (p.ddelta_bias) {
        Acc s = 0;
        for (int64_t b = 0; b < Bsz; ++b) s += dbias_part[b * E + e];
        st<T>(p.ddelta_bias, e * p.ddelta_bias_stride, T(s));
      }
    }
  }
}

// A step is the scan over L = 1 starting from and ending in `state`; each (b, e) reads its
// state before writing it, and no item touches another's, so the aliasing is safe.
template <class T>
void selective_scan_step(const SelectiveScanStepParams& s) {
  check(s.state != nullptr, "step: state is required");
  SelectiveScanParams p;
  p.batch = s.batch;
  p.dim = s.dim;
  p.seqlen = 1;
  p.dstate = s.dstate;
  p.n_groups = s.n_groups;
  p.chunk_len = 1;
  p.delta_softplus = s.delta_softplus;
  auto bel = [](const int64_t* be, int64_t* out) { out[0] = be[0], out[1] = be[1], out[2] = 0; };
  auto bgnl = [](const int64_t* bgn, int64_t* out) {
    out[0] = bgn[0], out[1] = bgn[1], out[2] = bgn[2], out[3] = 0;
  };
  p.u = s.u;                   bel(s.u_stride, p.u_stride);
  p.delta = s.delta;           bel(s.delta_stride, p.delta_stride);
  p.z = s.z;                   bel(s.z_stride, p.z_stride);
  p.out = s.out;               bel(s.out_stride, p.out_stride);
  p.Bm = s.Bm;                 bgnl(s.Bm_stride, p.Bm_stride);
  p.Cm = s.Cm;                 bgnl(s.Cm_stride, p.Cm_stride);
  p.A = s.A;                   std::copy_n(s.A_stride, 2, p.A_stride);
  p.D = s.D;                   p.D_stride = s.D_stride;
  p.delta_bias = s.delta_bias; p.delta_bias_stride = s.delta_bias_stride;
  p.h0 = s.state;              std::copy_n(s.state_stride, 3, p.h0_stride);
  p.hT = s.state;              std::copy_n(s.state_stride, 3, p.hT_stride);
  selective_scan_fwd<T>(p);
}

template void selective_scan_fwd<float>(const SelectiveScanParams&);
template void selective_scan_fwd<double>(const SelectiveScanParams&);
template void selective_scan_bwd<float>(const SelectiveScanBwdParams&);
template void selective_scan_bwd<double>(const SelectiveScanBwdParams&);
template void selective_scan_step<float>(const SelectiveScanStepParams&);
template void selective_scan_step<double>(const SelectiveScanStepParams&);

}  // namespace ssm::kernels::cpu
