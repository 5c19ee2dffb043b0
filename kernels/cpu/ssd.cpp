#include "kernels/cpu/ssd.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace ssm::kernels::cpu {
namespace {

// Heads of one group per backward work item. Fixed (never from the thread count); an item
// shares its Bm/Cm tiles between its heads and keeps one (C, N) partial of dBm and dCm.
constexpr int64_t kHeadBlock = 4;

// Below this many state updates a parallel region costs more than it saves (generation steps,
// tiny tests), and on a loaded machine every barrier can wait for a descheduled thread.
// Running on one thread never changes results: the work split does not depend on it.
constexpr int64_t kMinParallelWork = int64_t(1) << 14;

void check(bool ok, const char* msg) {
  if (!ok) throw std::invalid_argument(std::string("ssd: ") + msg);
}

// No step to run (tensors may then be null): only h0 -> hT / dhT -> dh0 pass through.
bool empty(const SsdParams& p) { return p.batch * p.seqlen * p.nheads == 0; }

void check_params(const SsdParams& p) {
  check(p.batch >= 0 && p.seqlen >= 0 && p.nheads >= 0 && p.headdim >= 0 && p.dstate >= 0,
        "sizes must be >= 0");
  check(p.n_groups >= 1 && p.nheads % p.n_groups == 0, "n_groups (G) must divide nheads (H)");
  check(p.chunk_size >= 1, "chunk_size must be >= 1");
  check(p.dt_min <= p.dt_max, "dt_min must be <= dt_max");
  check(empty(p) || (p.x && p.dt && p.A && p.Bm && p.Cm), "x, dt, A, Bm and Cm are required");
}

bool worth_threads(const SsdParams& p) {
  return p.batch * p.seqlen * p.nheads * p.headdim * p.dstate >= kMinParallelWork;
}

template <class T>
T ld(const void* base, int64_t off) {
  return static_cast<const T*>(base)[off];
}
template <class T>
void st(void* base, int64_t off, T v) {
  static_cast<T*>(base)[off] = v;
}
int64_t at(const int64_t* s, int64_t i, int64_t j, int64_t k) {
  return i * s[0] + j * s[1] + k * s[2];
}
int64_t at(const int64_t* s, int64_t i, int64_t j, int64_t k, int64_t l) {
  return i * s[0] + j * s[1] + k * s[2] + l * s[3];
}

// A new document starts at t: the state entering t is dropped.
bool is_reset(const SsdParams& p, int64_t b, int64_t t) {
  if (!p.seq_idx || t == 0) return false;
  const int32_t* s = p.seq_idx + b * p.seq_idx_stride[0];
  return s[t * p.seq_idx_stride[1]] != s[(t - 1) * p.seq_idx_stride[1]];
}

// dt as the recurrence sees it, with what its gradient needs.
template <class Acc>
struct Dt {
  Acc raw;       // dt + dt_bias
  Acc value;     // clamp(softplus?(raw), dt_min, dt_max)
  bool clamped;  // strictly outside [dt_min, dt_max]: zero gradient
};
template <class T, class Acc>
Dt<Acc> load_dt(const SsdParams& p, int64_t b, int64_t t, int64_t h) {
  Dt<Acc> d;
  d.raw = Acc(ld<T>(p.dt, at(p.dt_stride, b, t, h)));
  if (p.dt_bias) d.raw += Acc(ld<T>(p.dt_bias, h * p.dt_bias_stride));
  const Acc v = p.dt_softplus ? scan_softplus(d.raw) : d.raw;
  const Acc lo = Acc(p.dt_min), hi = Acc(p.dt_max);
  d.clamped = v < lo || v > hi;
  d.value = std::min(std::max(v, lo), hi);
  return d;
}

template <class T, class Acc>
Acc load_D(const SsdParams& p, int64_t h, int64_t pi) {
  if (!p.D) return Acc(0);
  return Acc(ld<T>(p.D, h * p.D_stride[0] + (p.D_has_hdim ? pi * p.D_stride[1] : 0)));
}

// tile[i, k] = M[b, t0 + i, j, k] for i < cl, k < K: one chunk of x (j = head, K = P) or of
// Bm/Cm (j = group, K = N), contiguous in k.
template <class T, class Acc>
void load_tile(const void* m, const int64_t* s, int64_t b, int64_t j, int64_t t0, int64_t cl,
               int64_t K, Acc* tile) {
  const T* base = static_cast<const T*>(m) + b * s[0] + j * s[2];
  for (int64_t i = 0; i < cl; ++i)
    for (int64_t k = 0; k < K; ++k) tile[i * K + k] = Acc(base[(t0 + i) * s[1] + k * s[3]]);
}

// out[b, t, h, :] = (y + D x) * silu(z), y holding the scan part of one row (P).
template <class T, class Acc>
void store_out(const SsdParams& p, int64_t b, int64_t t, int64_t h, const Acc* y, const Acc* x) {
  for (int64_t pi = 0; pi < p.headdim; ++pi) {
    Acc v = y[pi] + load_D<T, Acc>(p, h, pi) * x[pi];
    if (p.z) v *= scan_silu(Acc(ld<T>(p.z, at(p.z_stride, b, t, h, pi))));
    st<T>(p.out, at(p.out_stride, b, t, h, pi), T(v));
  }
}

template <class T, class Acc>
void load_h0(const SsdParams& p, int64_t b, int64_t h, Acc* state) {
  const int64_t P = p.headdim, N = p.dstate;
  for (int64_t pi = 0; pi < P; ++pi)
    for (int64_t n = 0; n < N; ++n)
      state[pi * N + n] = p.h0 ? Acc(ld<T>(p.h0, at(p.h0_stride, b, h, pi, n))) : Acc(0);
}
template <class T, class Acc>
void store_state(void* dst, const int64_t* s, int64_t b, int64_t h, int64_t P, int64_t N,
                 const Acc* state) {
  for (int64_t pi = 0; pi < P; ++pi)
    for (int64_t n = 0; n < N; ++n) st<T>(dst, at(s, b, h, pi, n), T(state[pi * N + n]));
}

}  // namespace

template <class T>
void ssd_fwd(const SsdParams& p) {
  using Acc = scan_acc_t<T>;
  check_params(p);
  check(empty(p) || p.out, "out is required");
  const int64_t Bsz = p.batch, L = p.seqlen, H = p.nheads, P = p.headdim, G = p.n_groups;
  const int64_t N = p.dstate, C = p.chunk_size, nc = p.n_chunks(), Hg = H / G, PN = P * N;
  const int64_t Ct = std::min(C, L);  // longest chunk present: sizes the per-chunk buffers

  std::vector<Acc> dtv(Bsz * L * H);             // (B, L, H) dt after bias/softplus/clamp
  std::vector<Acc> cb(Bsz * nc * G * Ct * Ct);   // (B, nc, G, C, C) Cm_i · Bm_j, j <= i
  std::vector<Acc> decay(Bsz * nc * H);          // (B, nc, H) exp(sum dt A) over the chunk
  std::vector<Acc> own_states(p.chunk_states ? 0 : Bsz * nc * H * PN);
  Acc* states = p.chunk_states ? static_cast<Acc*>(p.chunk_states) : own_states.data();
  auto state_at = [&](int64_t b, int64_t c, int64_t h) {
    return states + ((b * nc + c) * H + h) * PN;
  };

#pragma omp parallel if (worth_threads(p))
  {
    std::vector<Acc> xt(Ct * P), bt(Ct * N), ct(Ct * N), y(P), prev(PN);

    // 1. dt for every (b, t, h).
#pragma omp for schedule(static)
    for (int64_t bt_row = 0; bt_row < Bsz * L; ++bt_row)
      for (int64_t h = 0; h < H; ++h)
        dtv[bt_row * H + h] = load_dt<T, Acc>(p, bt_row / L, bt_row % L, h).value;

    // 2. CB[i, j] = Cm_i · Bm_j inside each chunk, shared by the heads of a group.
#pragma omp for schedule(static)
    for (int64_t item = 0; item < Bsz * nc * G; ++item) {
      const int64_t b = item / (nc * G), c = (item / G) % nc, g = item % G;
      const int64_t t0 = c * C, cl = std::min(C, L - t0);
      load_tile<T>(p.Bm, p.Bm_stride, b, g, t0, cl, N, bt.data());
      load_tile<T>(p.Cm, p.Cm_stride, b, g, t0, cl, N, ct.data());
      Acc* m = &cb[item * Ct * Ct];
      for (int64_t i = 0; i < cl; ++i)
        for (int64_t j = 0; j <= i; ++j) {
          Acc s = 0;
#pragma omp simd reduction(+ : s)
          for (int64_t n = 0; n < N; ++n) s += ct[i * N + n] * bt[j * N + n];
          m[i * Ct + j] = s;
        }
    }

    // 3. End state of every chunk as if it started from zero:
    //    S = sum_j exp(segsum[j+1 .. end]) dt_j x_j Bm_jᵀ, over the chunk's last document only.
#pragma omp for schedule(static)
    for (int64_t item = 0; item < Bsz * nc * H; ++item) {
      const int64_t b = item / (nc * H), c = (item / H) % nc, h = item % H;
      const int64_t t0 = c * C, cl = std::min(C, L - t0);
      const Acc a_h = Acc(ld<T>(p.A, h * p.A_stride));
      load_tile<T>(p.Bm, p.Bm_stride, b, h / Hg, t0, cl, N, bt.data());
      load_tile<T>(p.x, p.x_stride, b, h, t0, cl, P, xt.data());
      int64_t first = 0;  // first step of the chunk's last document
      bool reset_in_chunk = false;
      for (int64_t i = 0; i < cl; ++i)
        if (is_reset(p, b, t0 + i)) first = i, reset_in_chunk = true;
      Acc* S = state_at(b, c, h);
      std::fill(S, S + PN, Acc(0));
      // The recurrence clamps each step's exponent (exp(min(dt A, 0))), so the segment sums
      // add clamped terms: clamping the sum instead differs once dt may be negative (dt_min < 0).
      Acc seg = 0;  // sum of min(dt A, 0) over (i, end]
      for (int64_t i = cl - 1; i >= first; --i) {
        const Acc dt = dtv[(b * L + t0 + i) * H + h];
        const Acc w = std::exp(seg) * dt;
        seg += std::min(dt * a_h, Acc(0));
        for (int64_t pi = 0; pi < P; ++pi) {
          const Acc wx = w * xt[i * P + pi];
          for (int64_t n = 0; n < N; ++n) S[pi * N + n] += wx * bt[i * N + n];
        }
      }
      decay[item] = reset_in_chunk ? Acc(0) : std::exp(seg);
    }

    // 4. Pass states along the chunks: S_c becomes the state entering chunk c.
#pragma omp for schedule(static)
    for (int64_t item = 0; item < Bsz * H; ++item) {
      const int64_t b = item / H, h = item % H;
      load_h0<T>(p, b, h, prev.data());
      for (int64_t c = 0; c < nc; ++c) {
        Acc* S = state_at(b, c, h);
        const Acc d = decay[(b * nc + c) * H + h];
        for (int64_t k = 0; k < PN; ++k) {
          const Acc s = S[k];
          S[k] = prev[k];
          prev[k] = d * prev[k] + s;
        }
      }
      if (p.hT) store_state<T>(p.hT, p.hT_stride, b, h, P, N, prev.data());
    }

    // 5. Outputs: causal quadratic form inside the chunk + Cm_i · decayed incoming state.
#pragma omp for schedule(static)
    for (int64_t item = 0; item < Bsz * nc * H; ++item) {
      const int64_t b = item / (nc * H), c = (item / H) % nc, h = item % H, g = h / Hg;
      const int64_t t0 = c * C, cl = std::min(C, L - t0);
      const Acc a_h = Acc(ld<T>(p.A, h * p.A_stride));
      load_tile<T>(p.Cm, p.Cm_stride, b, g, t0, cl, N, ct.data());
      load_tile<T>(p.x, p.x_stride, b, h, t0, cl, P, xt.data());
      const Acc* hin = state_at(b, c, h);
      const Acc* m = &cb[((b * nc + c) * G + g) * Ct * Ct];
      const Acc* dt = &dtv[(b * L + t0) * H + h];  // dt[i * H] is step t0 + i
      int64_t first = 0;       // first step of the document that step i belongs to
      bool has_incoming = true;  // no document start in [t0, t0 + i]
      Acc cum = 0;             // sum of min(dt A, 0) over [t0, t0 + i]
      for (int64_t i = 0; i < cl; ++i) {
        if (is_reset(p, b, t0 + i)) first = i, has_incoming = false;
        cum += std::min(dt[i * H] * a_h, Acc(0));
        std::fill(y.begin(), y.end(), Acc(0));
        if (has_incoming) {
          const Acc e = std::exp(cum);
          for (int64_t pi = 0; pi < P; ++pi) {
            Acc s = 0;
#pragma omp simd reduction(+ : s)
            for (int64_t n = 0; n < N; ++n) s += hin[pi * N + n] * ct[i * N + n];
            y[pi] = e * s;
          }
        }
        Acc seg = 0;  // sum of min(dt A, 0) over (j, i]
        for (int64_t j = i; j >= first; --j) {
          const Acc w = m[i * Ct + j] * std::exp(seg) * dt[j * H];
          seg += std::min(dt[j * H] * a_h, Acc(0));
          for (int64_t pi = 0; pi < P; ++pi) y[pi] += w * xt[j * P + pi];
        }
        store_out<T>(p, b, t0 + i, h, y.data(), &xt[i * P]);
      }
    }
  }
}

template <class T>
void ssd_fwd_sequential(const SsdParams& p) {
  using Acc = scan_acc_t<T>;
  check_params(p);
  check(empty(p) || p.out, "out is required");
  const int64_t Bsz = p.batch, L = p.seqlen, H = p.nheads, P = p.headdim, N = p.dstate;
  const int64_t C = p.chunk_size, nc = p.n_chunks(), Hg = H / p.n_groups, PN = P * N;
  Acc* saved = static_cast<Acc*>(p.chunk_states);

#pragma omp parallel if (worth_threads(p))
  {
    std::vector<Acc> hs(PN), x(P), bv(N), cv(N), y(P);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < Bsz * H; ++item) {
      const int64_t b = item / H, h = item % H;
      const Acc a_h = Acc(ld<T>(p.A, h * p.A_stride));
      load_h0<T>(p, b, h, hs.data());
      for (int64_t t = 0; t < L; ++t) {
        if (saved && t % C == 0)
          std::copy(hs.begin(), hs.end(), saved + ((b * nc + t / C) * H + h) * PN);
        if (is_reset(p, b, t)) std::fill(hs.begin(), hs.end(), Acc(0));
        const Acc dt = load_dt<T, Acc>(p, b, t, h).value;
        const Acc decay = std::exp(std::min(dt * a_h, Acc(0)));
        load_tile<T>(p.x, p.x_stride, b, h, t, 1, P, x.data());
        load_tile<T>(p.Bm, p.Bm_stride, b, h / Hg, t, 1, N, bv.data());
        load_tile<T>(p.Cm, p.Cm_stride, b, h / Hg, t, 1, N, cv.data());
        for (int64_t pi = 0; pi < P; ++pi) {
          Acc* row = &hs[pi * N];
          const Acc dtx = dt * x[pi];
          Acc s = 0;
#pragma omp simd reduction(+ : s)
          for (int64_t n = 0; n < N; ++n) {
            row[n] = decay * row[n] + dtx * bv[n];
            s += row[n] * cv[n];
          }
          y[pi] = s;
        }
        store_out<T>(p, b, t, h, y.data(), x.data());
      }
      if (p.hT) store_state<T>(p.hT, p.hT_stride, b, h, P, N, hs.data());
    }
  }
}

// Backward, chunk by chunk from the last, all items in lock step so that the partial dBm/dCm
// of one chunk can be summed over head blocks in a fixed order before the scratch is reused.
// Per head the adjoint g_t = dL/dh_t (P x N) follows
//   g_t = dy_t Cm_tᵀ + exp(dt_{t+1} A) g_{t+1}     (zero across a document start),
// and its carry between chunks lives in a (B, H, P, N) buffer.
template <class T>
void ssd_bwd(const SsdBwdParams& p) {
  using Acc = scan_acc_t<T>;
  check_params(p);
  check(empty(p) || p.dout, "dout is required");
  check(empty(p) || p.chunk_states, "chunk_states from the forward are required");
  const int64_t Bsz = p.batch, L = p.seqlen, H = p.nheads, P = p.headdim, G = p.n_groups;
  const int64_t N = p.dstate, C = p.chunk_size, nc = p.n_chunks(), Hg = H / G, PN = P * N;
  const int64_t Ct = std::min(C, L);  // longest chunk present: sizes the per-chunk buffers
  const int64_t nblk = CEIL_DIV(Hg, kHeadBlock), n_items = Bsz * G * nblk;
  const Acc* saved = static_cast<const Acc*>(p.chunk_states);

  std::vector<Acc> carry(Bsz * H * PN, Acc(0));  // (B, H, P, N) adjoint entering a chunk's end
  if (p.dhT) {
    for (int64_t b = 0; b < Bsz; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t k = 0; k < PN; ++k)
          carry[(b * H + h) * PN + k] = Acc(ld<T>(p.dhT, at(p.dhT_stride, b, h, k / N, k % N)));
  }
  std::vector<Acc> dA_part(Bsz * H, Acc(0));       // (B, H)
  std::vector<Acc> dbias_part(Bsz * H, Acc(0));    // (B, H)
  std::vector<Acc> dD_part(Bsz * H * P, Acc(0));   // (B, H, P)
  std::vector<Acc> part_b(p.dBm ? n_items * Ct * N : 0);  // (B, G, nblk, C, N)
  std::vector<Acc> part_c(p.dCm ? n_items * Ct * N : 0);  // (B, G, nblk, C, N)

#pragma omp parallel if (worth_threads(p))
  {
    std::vector<Acc> bt(Ct * N), ct(Ct * N), xt(Ct * P);  // tiles of one chunk
    std::vector<Acc> hs((Ct + 1) * PN);                 // row i: state entering step t0 + i
    std::vector<Dt<Acc>> dts(Ct);
    std::vector<Acc> dy(P), dx(P), dz(P), row_b(N), row_c(N);
    for (int64_t c = nc - 1; c >= 0; --c) {
      const int64_t t0 = c * C, cl = std::min(C, L - t0);
#pragma omp for schedule(static)
      for (int64_t item = 0; item < n_items; ++item) {
        const int64_t b = item / (G * nblk), g = (item / nblk) % G;
        const int64_t h0 = g * Hg + (item % nblk) * kHeadBlock;
        const int64_t h1 = std::min(h0 + kHeadBlock, (g + 1) * Hg);
        load_tile<T>(p.Bm, p.Bm_stride, b, g, t0, cl, N, bt.data());
        load_tile<T>(p.Cm, p.Cm_stride, b, g, t0, cl, N, ct.data());
        Acc* pb = p.dBm ? &part_b[item * Ct * N] : nullptr;
        Acc* pc = p.dCm ? &part_c[item * Ct * N] : nullptr;
        if (pb) std::fill(pb, pb + cl * N, Acc(0));
        if (pc) std::fill(pc, pc + cl * N, Acc(0));
        for (int64_t h = h0; h < h1; ++h) {
          const Acc a_h = Acc(ld<T>(p.A, h * p.A_stride));
          load_tile<T>(p.x, p.x_stride, b, h, t0, cl, P, xt.data());
          // Recompute h_{t0-1} .. h_{t0+cl-1} into rows 0 .. cl.
          std::copy_n(saved + ((b * nc + c) * H + h) * PN, PN, hs.begin());
          for (int64_t i = 0; i < cl; ++i) {
            dts[i] = load_dt<T, Acc>(p, b, t0 + i, h);
            const Acc dt = dts[i].value;
            const Acc decay =
                is_reset(p, b, t0 + i) ? Acc(0) : std::exp(std::min(dt * a_h, Acc(0)));
            const Acc* prev = &hs[i * PN];
            Acc* cur = &hs[(i + 1) * PN];
            for (int64_t pi = 0; pi < P; ++pi) {
              const Acc dtx = dt * xt[i * P + pi];
              for (int64_t n = 0; n < N; ++n)
                cur[pi * N + n] = decay * prev[pi * N + n] + dtx * bt[i * N + n];
            }
          }
          Acc* gs = &carry[(b * H + h) * PN];
          Acc* dD_h = &dD_part[(b * H + h) * P];
          Acc dA_acc = 0, dbias_acc = 0;
          for (int64_t i = cl - 1; i >= 0; --i) {
            const int64_t t = t0 + i;
            const bool reset = is_reset(p, b, t);
            const Acc dt = dts[i].value;
            const Acc x_a = dt * a_h;
            const Acc decay = std::exp(std::min(x_a, Acc(0)));
            const Acc carry_decay = reset ? Acc(0) : decay;
            const Acc* cur = &hs[(i + 1) * PN];
            const Acc* prev = &hs[i * PN];
            const Acc* bi = &bt[i * N];
            const Acc* ci = &ct[i * N];
            const Acc* xi = &xt[i * P];
            for (int64_t pi = 0; pi < P; ++pi) {
              const Acc dout = Acc(ld<T>(p.dout, at(p.dout_stride, b, t, h, pi)));
              const Acc d = load_D<T, Acc>(p, h, pi);
              dy[pi] = dout;
              if (p.z) {
                const Acc z = Acc(ld<T>(p.z, at(p.z_stride, b, t, h, pi)));
                dy[pi] = dout * scan_silu(z);
                Acc y = 0;
#pragma omp simd reduction(+ : y)
                for (int64_t n = 0; n < N; ++n) y += cur[pi * N + n] * ci[n];
                y += d * xi[pi];
                dz[pi] = dout * y * scan_silu_grad(z);
              }
              dD_h[pi] += dy[pi] * xi[pi];
              dx[pi] = dy[pi] * d;
            }
            // row_b = sum_p g[p, :] x[p], row_c = sum_p dy[p] h_t[p, :]: this head's dBm/dCm rows.
            std::fill(row_b.begin(), row_b.end(), Acc(0));
            std::fill(row_c.begin(), row_c.end(), Acc(0));
            Acc ddt = 0, hg = 0;  // hg = <g_t, h_{t-1}>
            for (int64_t pi = 0; pi < P; ++pi) {
              Acc* gp = &gs[pi * N];
              const Acc* cp = &cur[pi * N];
              const Acc* hp = &prev[pi * N];
              const Acc dyp = dy[pi], xp = xi[pi];
              Acc gb = 0, hgp = 0;
#pragma omp simd reduction(+ : gb, hgp)
              for (int64_t n = 0; n < N; ++n) {
                const Acc gn = gp[n] + dyp * ci[n];  // dL/dh_t[p, n]
                row_c[n] += dyp * cp[n];
                row_b[n] += gn * xp;
                gb += gn * bi[n];
                hgp += gn * hp[n];
                gp[n] = gn * carry_decay;
              }
              hg += hgp;
              dx[pi] += dt * gb;
              ddt += xp * gb;
            }
            if (pb)
              for (int64_t n = 0; n < N; ++n) pb[i * N + n] += dt * row_b[n];
            if (pc)
              for (int64_t n = 0; n < N; ++n) pc[i * N + n] += row_c[n];
            // The exponent clamp has zero slope where it is active (dt A > 0).
            if (!reset && x_a <= Acc(0)) {
              ddt += a_h * decay * hg;
              dA_acc += dt * decay * hg;
            }
            Acc ddt_raw = 0;
            if (!dts[i].clamped)
              ddt_raw = p.dt_softplus ? ddt * scan_softplus_grad(dts[i].raw) : ddt;
            dbias_acc += ddt_raw;
            if (p.ddt) st<T>(p.ddt, at(p.ddt_stride, b, t, h), T(ddt_raw));
            for (int64_t pi = 0; pi < P; ++pi) {
              if (p.dx) st<T>(p.dx, at(p.dx_stride, b, t, h, pi), T(dx[pi]));
              if (p.dz && p.z) st<T>(p.dz, at(p.dz_stride, b, t, h, pi), T(dz[pi]));
            }
          }
          dA_part[b * H + h] += dA_acc;
          dbias_part[b * H + h] += dbias_acc;
        }
      }
      // Sum the head blocks of each (b, g) in block order: rows (b, g, i) of this chunk.
      if (p.dBm || p.dCm) {
#pragma omp for schedule(static)
        for (int64_t r = 0; r < Bsz * G * cl; ++r) {
          const int64_t b = r / (G * cl), g = (r / cl) % G, i = r % cl;
          const int64_t first = (b * G + g) * nblk;
          for (int64_t n = 0; n < N; ++n) {
            if (p.dBm) {
              Acc s = 0;
              for (int64_t j = 0; j < nblk; ++j) s += part_b[(first + j) * Ct * N + i * N + n];
              st<T>(p.dBm, at(p.dBm_stride, b, t0 + i, g, n), T(s));
            }
            if (p.dCm) {
              Acc s = 0;
              for (int64_t j = 0; j < nblk; ++j) s += part_c[(first + j) * Ct * N + i * N + n];
              st<T>(p.dCm, at(p.dCm_stride, b, t0 + i, g, n), T(s));
            }
          }
        }
      }
    }

    // After chunk 0 the carry is dL/dh0. Reductions over batch (and head dim) in fixed order.
#pragma omp for schedule(static)
    for (int64_t h = 0; h < H; ++h) {
      if (p.dh0)
        for (int64_t b = 0; b < Bsz; ++b)
          store_state<T>(p.dh0, p.dh0_stride, b, h, P, N, &carry[(b * H + h) * PN]);
      Acc sa = 0, sb = 0;
      for (int64_t b = 0; b < Bsz; ++b) sa += dA_part[b * H + h], sb += dbias_part[b * H + h];
      if (p.dA) st<T>(p.dA, h * p.dA_stride, T(sa));
      if (p.ddt_bias) st<T>(p.ddt_bias, h * p.ddt_bias_stride, T(sb));
      if (p.dD) {
        Acc total = 0;
        for (int64_t pi = 0; pi < P; ++pi) {
          Acc s = 0;
          for (int64_t b = 0; b < Bsz; ++b) s += dD_part[(b * H + h) * P + pi];
          if (p.D_has_hdim) st<T>(p.dD, h * p.dD_stride[0] + pi * p.dD_stride[1], T(s));
          total += s;
        }
        if (!p.D_has_hdim) st<T>(p.dD, h * p.dD_stride[0], T(total));
      }
    }
  }
}

// A step is the sequential scan over L = 1 from and into `state`; each (b, h) reads its state
// before writing it and no item touches another's, so the aliasing is safe.
template <class T>
void ssd_step(const SsdStepParams& s) {
  check(s.state != nullptr, "step: state is required");
  SsdParams p;
  p.batch = s.batch;
  p.seqlen = 1;
  p.nheads = s.nheads;
  p.headdim = s.headdim;
  p.n_groups = s.n_groups;
  p.dstate = s.dstate;
  p.chunk_size = 1;
  p.dt_softplus = s.dt_softplus;
  p.dt_min = s.dt_min;
  p.dt_max = s.dt_max;
  p.D_has_hdim = s.D_has_hdim;
  // Insert a length axis of stride 0 after batch.
  auto with_l = [](const int64_t* src, int rank, int64_t* dst) {
    dst[0] = src[0], dst[1] = 0;
    for (int k = 1; k < rank; ++k) dst[k + 1] = src[k];
  };
  p.x = s.x;             with_l(s.x_stride, 3, p.x_stride);
  p.z = s.z;             with_l(s.z_stride, 3, p.z_stride);
  p.out = s.out;         with_l(s.out_stride, 3, p.out_stride);
  p.dt = s.dt;           with_l(s.dt_stride, 2, p.dt_stride);
  p.Bm = s.Bm;           with_l(s.Bm_stride, 3, p.Bm_stride);
  p.Cm = s.Cm;           with_l(s.Cm_stride, 3, p.Cm_stride);
  p.A = s.A;             p.A_stride = s.A_stride;
  p.D = s.D;             std::copy_n(s.D_stride, 2, p.D_stride);
  p.dt_bias = s.dt_bias; p.dt_bias_stride = s.dt_bias_stride;
  p.h0 = s.state;        std::copy_n(s.state_stride, 4, p.h0_stride);
  p.hT = s.state;        std::copy_n(s.state_stride, 4, p.hT_stride);
  ssd_fwd_sequential<T>(p);
}

template void ssd_fwd<float>(const SsdParams&);
template void ssd_fwd<double>(const SsdParams&);
template void ssd_fwd_sequential<float>(const SsdParams&);
template void ssd_fwd_sequential<double>(const SsdParams&);
template void ssd_bwd<float>(const SsdBwdParams&);
template void ssd_bwd<double>(const SsdBwdParams&);
template void ssd_step<float>(const SsdStepParams&);
template void ssd_step<double>(const SsdStepParams&);

}  // namespace ssm::kernels::cpu
