#include "kernels/cpu/s5.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/common/macros.h"

namespace ssm::kernels::cpu {
namespace {

using cd = cplx<double>;

// Parameter-gradient partial sums of the backward: fixed count, independent of the threads.
constexpr int64_t kGradSlots = 16;

template <class T>
T ld(const void* p, int64_t i) {
  return static_cast<const T*>(p)[i];
}
template <class T>
void st(void* p, int64_t i, double v) {
  if (p) static_cast<T*>(p)[i] = T(v);
}
template <class T>
cplx<T> ld_state(const void* s, int64_t off, int64_t n) {
  if (!s) return {};
  const T* sp = static_cast<const T*>(s) + off + 2 * n;
  return {sp[0], sp[1]};
}
template <class T>
void st_state(void* s, int64_t off, int64_t n, cplx<T> v) {
  if (!s) return;
  T* sp = static_cast<T*>(s) + off + 2 * n;
  sp[0] = v.re;
  sp[1] = v.im;
}

// The discretised system: double copies for the backward chain rule, T copies for the scans.
template <class T>
struct System {
  int64_t H = 0, N = 0;
  Discretization disc = Discretization::zoh;
  T scale = T(1);
  std::vector<cd> lambda, abar, f;  // (N)
  std::vector<double> dt;           // (N)
  std::vector<cd> btil;             // (N, H)
  std::vector<cplx<T>> abar_t;      // (N)
  std::vector<cplx<T>> bbar_t;      // (N, H)
  std::vector<cplx<T>> c_t;         // (H, N)
  std::vector<T> d_t;               // (H)

  System(const S5Weights& w, Discretization disc_, bool conj_sym, int64_t H_, int64_t N_)
      : H(H_), N(N_), disc(disc_), scale(conj_sym ? T(2) : T(1)), lambda(N), abar(N), f(N),
        dt(N), btil(N * H), abar_t(N), bbar_t(N * H), c_t(H * N), d_t(H) {
    for (int64_t n = 0; n < N; ++n) {
      lambda[n] = {double(ld<T>(w.Lambda_re, n)), double(ld<T>(w.Lambda_im, n))};
      dt[n] = std::exp(double(ld<T>(w.log_dt, n)));
      LtiMode<double> md = lti_discretize(disc, dt[n], lambda[n]);
      abar[n] = md.abar;
      f[n] = md.f;
      abar_t[n] = cplx_cast<T>(md.abar);
      for (int64_t h = 0; h < H; ++h) {
        const int64_t i = n * H + h;
        btil[i] = {double(ld<T>(w.B_re, i)), double(ld<T>(w.B_im, i))};
        bbar_t[i] = cplx_cast<T>(md.f * btil[i]);
      }
    }
    for (int64_t i = 0; i < H * N; ++i) c_t[i] = {ld<T>(w.C_re, i), ld<T>(w.C_im, i)};
    for (int64_t h = 0; h < H; ++h) d_t[h] = w.D ? ld<T>(w.D, h) : T(0);
  }

  // x <- abar x + Bbar u for one token; u is a row of H values with stride us.
  void advance(const T* u, int64_t us, cplx<T>* x) const {
    for (int64_t n = 0; n < N; ++n) {
      const cplx<T>* brow = &bbar_t[n * H];
      cplx<T> bu{};
      for (int64_t h = 0; h < H; ++h) bu += brow[h] * u[h * us];
      x[n] = abar_t[n] * x[n] + bu;
    }
  }
  // y = scale Re(C x) + D u for one token.
  void readout(const cplx<T>* x, const T* u, int64_t us, T* y, int64_t ys) const {
    for (int64_t h = 0; h < H; ++h) {
      const cplx<T>* crow = &c_t[h * N];
      T acc = T(0);
      for (int64_t n = 0; n < N; ++n) acc += (crow[n] * x[n]).re;
      y[h * ys] = scale * acc + d_t[h] * u[h * us];
    }
  }
  // abar^len, by repeated products like the scan itself.
  std::vector<cplx<T>> abar_pow(int64_t len) const {
    std::vector<cplx<T>> pw(N, cplx<T>{T(1), T(0)});
    for (int64_t k = 0; k < len; ++k) {
      for (int64_t n = 0; n < N; ++n) pw[n] = pw[n] * abar_t[n];
    }
    return pw;
  }
};

// Chunk geometry shared by the forward and the backward.
struct Chunks {
  int64_t B, L, size, count;  // count chunks of `size` per sequence, the last one may be short
  Chunks(int64_t B_, int64_t L_, int64_t size_)
      : B(B_), L(L_), size(std::max<int64_t>(size_, 1)), count(CEIL_DIV(L_, size)) {}
  int64_t tasks() const { return B * count; }
  int64_t begin(int64_t c) const { return c * size; }
  int64_t end(int64_t c) const { return std::min(L, (c + 1) * size); }
};

// Phase 1 + 2 of the forward: carry[b, c] = the state before chunk c (h0 for c = 0).
template <class T>
std::vector<cplx<T>> chunk_carries(const S5Params& p, const System<T>& sys, const Chunks& ck) {
  const int64_t N = p.dstate, nc = ck.count;
  const T* u = static_cast<const T*>(p.u);
  std::vector<cplx<T>> ends(ck.tasks() * N), carry(ck.tasks() * N);
#pragma omp parallel
  {
    std::vector<cplx<T>> x(N);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < ck.tasks(); ++task) {
      const int64_t b = task / nc, c = task % nc;
      std::fill(x.begin(), x.end(), cplx<T>{});
      for (int64_t t = ck.begin(c); t < ck.end(c); ++t) {
        sys.advance(u + b * p.u_batch_stride + t * p.u_l_stride, p.u_h_stride, x.data());
      }
      std::copy(x.begin(), x.end(), ends.begin() + task * N);
    }
  }
  const std::vector<cplx<T>> pw_full = sys.abar_pow(ck.size);
  const std::vector<cplx<T>> pw_last = sys.abar_pow(ck.end(nc - 1) - ck.begin(nc - 1));
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < p.batch; ++b) {
    std::vector<cplx<T>> x(N);
    for (int64_t n = 0; n < N; ++n) x[n] = ld_state<T>(p.h0, b * p.h0_batch_stride, n);
    for (int64_t c = 0; c < nc; ++c) {
      const int64_t task = b * nc + c;
      const std::vector<cplx<T>>& pw = c + 1 == nc ? pw_last : pw_full;
      for (int64_t n = 0; n < N; ++n) {
        carry[task * N + n] = x[n];
        x[n] = pw[n] * x[n] + ends[task * N + n];
      }
    }
  }
  return carry;
}

// Per-slot parameter-gradient partials, in double.
struct GradSlot {
  std::vector<cd> g_abar, g_bbar, g_c;  // (N), (N, H), (H, N)
  std::vector<double> g_d;              // (H)
  void reset(int64_t H, int64_t N) {
    g_abar.assign(N, cd{});
    g_bbar.assign(N * H, cd{});
    g_c.assign(H * N, cd{});
    g_d.assign(H, 0.0);
  }
  void add(const GradSlot& o) {
    for (size_t i = 0; i < g_abar.size(); ++i) g_abar[i] += o.g_abar[i];
    for (size_t i = 0; i < g_bbar.size(); ++i) g_bbar[i] += o.g_bbar[i];
    for (size_t i = 0; i < g_c.size(); ++i) g_c[i] += o.g_c[i];
    for (size_t i = 0; i < g_d.size(); ++i) g_d[i] += o.g_d[i];
  }
};

}  // namespace

template <class T>
void s5_fwd(const S5Params& p) {
  const int64_t N = p.dstate;
  const System<T> sys(p.w, p.disc, p.conj_sym, p.dim, N);
  const Chunks ck(p.batch, p.seqlen, p.chunk_size);
  if (ck.count == 0) {  // L = 0: the state passes through
    for (int64_t b = 0; b < p.batch; ++b) {
      for (int64_t n = 0; n < N; ++n) {
        st_state<T>(p.hT, b * p.hT_batch_stride, n, ld_state<T>(p.h0, b * p.h0_batch_stride, n));
      }
    }
    return;
  }
  const std::vector<cplx<T>> carry = chunk_carries(p, sys, ck);
  const T* u = static_cast<const T*>(p.u);
  T* y = static_cast<T*>(p.y);
#pragma omp parallel
  {
    std::vector<cplx<T>> x(N);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < ck.tasks(); ++task) {
      const int64_t b = task / ck.count, c = task % ck.count;
      std::copy(carry.begin() + task * N, carry.begin() + (task + 1) * N, x.begin());
      for (int64_t t = ck.begin(c); t < ck.end(c); ++t) {
        const T* ut = u + b * p.u_batch_stride + t * p.u_l_stride;
        sys.advance(ut, p.u_h_stride, x.data());
        sys.readout(x.data(), ut, p.u_h_stride, y + b * p.y_batch_stride + t * p.y_l_stride,
                    p.y_h_stride);
      }
      if (c + 1 == ck.count) {
        for (int64_t n = 0; n < N; ++n) st_state<T>(p.hT, b * p.hT_batch_stride, n, x[n]);
      }
    }
  }
}

template <class T>
void s5_fwd_ref(const S5Params& p) {
  const int64_t N = p.dstate;
  const System<T> sys(p.w, p.disc, p.conj_sym, p.dim, N);
  const T* u = static_cast<const T*>(p.u);
  T* y = static_cast<T*>(p.y);
  for (int64_t b = 0; b < p.batch; ++b) {
    std::vector<cplx<T>> x(N);
    for (int64_t n = 0; n < N; ++n) x[n] = ld_state<T>(p.h0, b * p.h0_batch_stride, n);
    for (int64_t t = 0; t < p.seqlen; ++t) {
      const T* ut = u + b * p.u_batch_stride + t * p.u_l_stride;
      sys.advance(ut, p.u_h_stride, x.data());
      sys.readout(x.data(), ut, p.u_h_stride, y + b * p.y_batch_stride + t * p.y_l_stride,
                  p.y_h_stride);
    }
    for (int64_t n = 0; n < N; ++n) st_state<T>(p.hT, b * p.hT_batch_stride, n, x[n]);
  }
}

namespace {

// The scans of the backward (L >= 1): writes du and dh0, sums the gradients of abar, Bbar,
// C and D into `total`.
template <class T>
void s5_bwd_scan(const S5BwdParams& p, const System<T>& sys, const Chunks& ck, GradSlot& total) {
  const int64_t H = p.dim, N = p.dstate;
  const int64_t nc = ck.count, ntasks = ck.tasks();
  const T* u = static_cast<const T*>(p.u);
  const T* dy = static_cast<const T*>(p.dy);
  T* du = static_cast<T*>(p.du);
  const T scale = sys.scale;

  // gx_t = dL/dx_t through y_t alone: scale * sum_h dy_t[h] conj(C[h, n]).
  auto project_dy = [&](int64_t b, int64_t t, cplx<T>* gx) {
    const T* gy = dy + b * p.dy_batch_stride + t * p.dy_l_stride;
    std::fill(gx, gx + N, cplx<T>{});
    for (int64_t h = 0; h < H; ++h) {
      const T g = scale * gy[h * p.dy_h_stride];
      const cplx<T>* crow = &sys.c_t[h * N];
      for (int64_t n = 0; n < N; ++n) gx[n] += conj(crow[n]) * g;
    }
  };

  // Forward carries (state before each chunk) and adjoint carries (dL/dx flowing into each
  // chunk's last token from the right: dhT for the last chunk).
  const std::vector<cplx<T>> carry = chunk_carries(static_cast<const S5Params&>(p), sys, ck);
  std::vector<cplx<T>> rends(ntasks * N), rcarry(ntasks * N);
#pragma omp parallel
  {
    std::vector<cplx<T>> lam(N), gx(N);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < ntasks; ++task) {
      const int64_t b = task / nc, c = task % nc;
      std::fill(lam.begin(), lam.end(), cplx<T>{});
      for (int64_t t = ck.end(c) - 1; t >= ck.begin(c); --t) {
        project_dy(b, t, gx.data());
        for (int64_t n = 0; n < N; ++n) lam[n] = conj(sys.abar_t[n]) * (lam[n] + gx[n]);
      }
      std::copy(lam.begin(), lam.end(), rends.begin() + task * N);
    }
  }
  {
    std::vector<cplx<T>> pw_full = sys.abar_pow(ck.size);
    std::vector<cplx<T>> pw_last = sys.abar_pow(ck.end(nc - 1) - ck.begin(nc - 1));
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < p.batch; ++b) {
      std::vector<cplx<T>> rho(N);
      for (int64_t n = 0; n < N; ++n) rho[n] = ld_state<T>(p.dhT, b * p.dhT_batch_stride, n);
      for (int64_t c = nc - 1; c >= 0; --c) {
        const int64_t task = b * nc + c;
        const std::vector<cplx<T>>& pw = c + 1 == nc ? pw_last : pw_full;
        for (int64_t n = 0; n < N; ++n) {
          rcarry[task * N + n] = rho[n];
          rho[n] = conj(pw[n]) * rho[n] + rends[task * N + n];
        }
      }
    }
  }

  // Per chunk: rescan the states, run the adjoint backwards through the chunk, write du and
  // add the parameter gradients into the task's slot.
  const int64_t nslots = std::min(ntasks, kGradSlots);
  std::vector<GradSlot> slots(nslots);
#pragma omp parallel
  {
    std::vector<cplx<T>> xs(std::min(ck.size, ck.L) * N), lam(N), gx(N);  // one chunk of states
#pragma omp for schedule(dynamic, 1)
    for (int64_t slot = 0; slot < nslots; ++slot) {
      GradSlot& acc = slots[slot];
      acc.reset(H, N);
      for (int64_t task = slot; task < ntasks; task += nslots) {
        const int64_t b = task / nc, c = task % nc, t0 = ck.begin(c), t1 = ck.end(c);
        const cplx<T>* x_in = &carry[task * N];
        std::copy(x_in, x_in + N, xs.begin());
        for (int64_t t = t0; t < t1; ++t) {
          cplx<T>* x = &xs[(t - t0) * N];
          if (t > t0) std::copy(x - N, x, x);
          sys.advance(u + b * p.u_batch_stride + t * p.u_l_stride, p.u_h_stride, x);
        }
        std::copy(&rcarry[task * N], &rcarry[task * N] + N, lam.begin());
        for (int64_t t = t1 - 1; t >= t0; --t) {
          const T* ut = u + b * p.u_batch_stride + t * p.u_l_stride;
          const T* gy = dy + b * p.dy_batch_stride + t * p.dy_l_stride;
          const cplx<T>* x = &xs[(t - t0) * N];
          const cplx<T>* xprev = t > t0 ? x - N : x_in;
          project_dy(b, t, gx.data());
          for (int64_t n = 0; n < N; ++n) {
            lam[n] += gx[n];  // now dL/dx_t
            acc.g_abar[n] += conj(cplx_cast<double>(xprev[n])) * cplx_cast<double>(lam[n]);
          }
          for (int64_t h = 0; h < H; ++h) {
            const double g = double(scale) * double(gy[h * p.dy_h_stride]);
            const double uh = double(ut[h * p.u_h_stride]);
            cd* gc = &acc.g_c[h * N];
            for (int64_t n = 0; n < N; ++n) gc[n] += conj(cplx_cast<double>(x[n])) * g;
            acc.g_d[h] += uh * double(gy[h * p.dy_h_stride]);
          }
          for (int64_t n = 0; n < N; ++n) {
            const cd ln = cplx_cast<double>(lam[n]);
            cd* gb = &acc.g_bbar[n * H];
            for (int64_t h = 0; h < H; ++h) gb[h] += ln * double(ut[h * p.u_h_stride]);
          }
          if (du) {
            T* dut = du + b * p.du_batch_stride + t * p.du_l_stride;
            for (int64_t h = 0; h < H; ++h) {
              T v = sys.d_t[h] * gy[h * p.dy_h_stride];
              for (int64_t n = 0; n < N; ++n) v += (conj(sys.bbar_t[n * H + h]) * lam[n]).re;
              dut[h * p.du_h_stride] = v;
            }
          }
          for (int64_t n = 0; n < N; ++n) lam[n] = conj(sys.abar_t[n]) * lam[n];
        }
        if (c == 0) {
          for (int64_t n = 0; n < N; ++n) st_state<T>(p.dh0, b * p.dh0_batch_stride, n, lam[n]);
        }
      }
    }
  }
  for (int64_t s = 0; s < nslots; ++s) total.add(slots[s]);
}

}  // namespace

template <class T>
void s5_bwd(const S5BwdParams& p) {
  const int64_t H = p.dim, N = p.dstate;
  const System<T> sys(p.w, p.disc, p.conj_sym, H, N);
  const Chunks ck(p.batch, p.seqlen, p.chunk_size);
  GradSlot g;
  g.reset(H, N);
  if (ck.count > 0) {
    s5_bwd_scan(p, sys, ck, g);
  } else {  // L = 0: the state gradient passes through, the weights get zeros
    for (int64_t b = 0; b < p.batch; ++b) {
      for (int64_t n = 0; n < N; ++n) {
        st_state<T>(p.dh0, b * p.dh0_batch_stride, n,
                    ld_state<T>(p.dhT, b * p.dhT_batch_stride, n));
      }
    }
  }

  // Bbar = f (.) Btilde row-wise, then (abar, f) -> (Lambda, dt) per state.
  for (int64_t n = 0; n < N; ++n) {
    cd g_f{};
    for (int64_t h = 0; h < H; ++h) {
      const int64_t i = n * H + h;
      const cd gb = conj(sys.f[n]) * g.g_bbar[i];
      st<T>(p.g.dB_re, i, gb.re);
      st<T>(p.g.dB_im, i, gb.im);
      g_f += conj(sys.btil[i]) * g.g_bbar[i];
    }
    cd g_lambda;
    double g_dt;
    lti_discretize_bwd(p.disc, sys.dt[n], sys.lambda[n], g.g_abar[n], g_f, &g_lambda, &g_dt);
    st<T>(p.g.dLambda_re, n, g_lambda.re);
    st<T>(p.g.dLambda_im, n, g_lambda.im);
    st<T>(p.g.dlog_dt, n, g_dt * sys.dt[n]);  // dt = exp(log_dt)
  }
  for (int64_t i = 0; i < H * N; ++i) {
    st<T>(p.g.dC_re, i, g.g_c[i].re);
    st<T>(p.g.dC_im, i, g.g_c[i].im);
  }
  for (int64_t h = 0; h < H; ++h) st<T>(p.g.dD, h, g.g_d[h]);
}

template <class T>
void s5_step(const S5StepParams& p) {
  const int64_t N = p.dstate;
  const System<T> sys(p.w, p.disc, p.conj_sym, p.dim, N);
  const T* u = static_cast<const T*>(p.u);
  T* y = static_cast<T*>(p.y);
#pragma omp parallel
  {
    std::vector<cplx<T>> x(N);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < p.batch; ++b) {
      const int64_t off = b * p.state_batch_stride;
      for (int64_t n = 0; n < N; ++n) x[n] = ld_state<T>(p.state, off, n);
      const T* ub = u + b * p.u_batch_stride;
      sys.advance(ub, p.u_h_stride, x.data());
      sys.readout(x.data(), ub, p.u_h_stride, y + b * p.y_batch_stride, p.y_h_stride);
      for (int64_t n = 0; n < N; ++n) st_state<T>(p.state, off, n, x[n]);
    }
  }
}

#define SSM_S5_INSTANTIATE(T)                        \
  template void s5_fwd<T>(const S5Params&);          \
  template void s5_fwd_ref<T>(const S5Params&);      \
  template void s5_bwd<T>(const S5BwdParams&);       \
  template void s5_step<T>(const S5StepParams&);
SSM_S5_INSTANTIATE(float)
SSM_S5_INSTANTIATE(double)
#undef SSM_S5_INSTANTIATE

}  // namespace ssm::kernels::cpu
