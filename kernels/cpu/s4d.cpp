#include "kernels/cpu/s4d.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

namespace ssm::kernels::cpu {
namespace {

using cd = cplx<double>;

template <class T>
T ld(const void* p, int64_t i) {
  return static_cast<const T*>(p)[i];
}
template <class T>
void st(void* p, int64_t i, double v) {
  if (p) static_cast<T*>(p)[i] = T(v);
}

// One mode of one channel, in double: the continuous parameters and their discretisation.
struct Mode {
  cd a, abar, f, b, c;  // bbar = f * b
};

template <class T>
double load_channel(const S4dWeights& w, bool is_real, Discretization disc, int64_t h,
                    int64_t N, Mode* m) {
  const double dt = std::exp(double(ld<T>(w.log_dt, h)));
  for (int64_t n = 0; n < N; ++n) {
    const int64_t i = h * N + n;
    Mode& md = m[n];
    md.a = {double(ld<T>(w.A_re, i)), is_real ? 0.0 : double(ld<T>(w.A_im, i))};
    md.b = {double(ld<T>(w.B_re, i)), is_real ? 0.0 : double(ld<T>(w.B_im, i))};
    md.c = {double(ld<T>(w.C_re, i)), is_real ? 0.0 : double(ld<T>(w.C_im, i))};
    LtiMode<double> dm = lti_discretize(disc, dt, md.a);
    md.abar = dm.abar;
    md.f = dm.f;
  }
  return dt;
}

// The scan coefficients in T for one channel.
template <class T>
struct ChannelT {
  std::vector<cplx<T>> abar, bbar, c;  // (N)
  void set(const Mode* m, int64_t N) {
    abar.resize(N);
    bbar.resize(N);
    c.resize(N);
    for (int64_t n = 0; n < N; ++n) {
      abar[n] = cplx_cast<T>(m[n].abar);
      bbar[n] = cplx_cast<T>(m[n].f * m[n].b);
      c[n] = cplx_cast<T>(m[n].c);
    }
  }
};

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

// From accumulated gradients of abar, bbar and C of one channel to the weight gradients.
// Returns dL/d(dt) summed over the channel's modes.
template <class T>
double write_mode_grads(const S4dWeightGrads& g, bool is_real, Discretization disc, double dt,
                        int64_t h, int64_t N, const Mode* m, const cd* g_abar, const cd* g_bbar,
                        const cd* g_c) {
  double g_dt = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t i = h * N + n;
    cd g_b = conj(m[n].f) * g_bbar[n];
    cd g_f = conj(m[n].b) * g_bbar[n];
    cd g_a;
    double g_dt_n;
    lti_discretize_bwd(disc, dt, m[n].a, g_abar[n], g_f, &g_a, &g_dt_n);
    g_dt += g_dt_n;
    st<T>(g.dA_re, i, g_a.re);
    st<T>(g.dB_re, i, g_b.re);
    st<T>(g.dC_re, i, g_c[n].re);
    st<T>(g.dA_im, i, is_real ? 0.0 : g_a.im);
    st<T>(g.dB_im, i, is_real ? 0.0 : g_b.im);
    st<T>(g.dC_im, i, is_real ? 0.0 : g_c[n].im);
  }
  return g_dt;
}

}  // namespace

// ---- recurrent form ----------------------------------------------------------------------

template <class T>
void s4d_fwd(const S4dParams& p) {
  const int64_t B = p.batch, H = p.dim, L = p.seqlen, N = p.dstate;
  const T scale = p.is_real ? T(1) : T(2);
  const T* u = static_cast<const T*>(p.u);
  T* y = static_cast<T*>(p.y);
#pragma omp parallel
  {
    std::vector<Mode> modes(N);
    ChannelT<T> ch;
    std::vector<cplx<T>> s(N);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < B * H; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      load_channel<T>(p.w, p.is_real, p.disc, h, N, modes.data());
      ch.set(modes.data(), N);
      const T dskip = p.w.D ? ld<T>(p.w.D, h) : T(0);
      const int64_t h0_off = b * p.h0_batch_stride + h * p.h0_h_stride;
      for (int64_t n = 0; n < N; ++n) s[n] = ld_state<T>(p.h0, h0_off, n);
      const T* up = u + b * p.u_batch_stride + h * p.u_h_stride;
      T* yp = y + b * p.y_batch_stride + h * p.y_h_stride;
      for (int64_t t = 0; t < L; ++t) {
        const T ut = up[t * p.u_l_stride];
        T acc = T(0);
        for (int64_t n = 0; n < N; ++n) {
          s[n] = ch.abar[n] * s[n] + ch.bbar[n] * ut;
          acc += (ch.c[n] * s[n]).re;
        }
        yp[t * p.y_l_stride] = scale * acc + dskip * ut;
      }
      const int64_t hT_off = b * p.hT_batch_stride + h * p.hT_h_stride;
      for (int64_t n = 0; n < N; ++n) st_state<T>(p.hT, hT_off, n, s[n]);
    }
  }
}

template <class T>
void s4d_bwd(const S4dBwdParams& p) {
  const int64_t B = p.batch, H = p.dim, L = p.seqlen, N = p.dstate;
  const T scale = p.is_real ? T(1) : T(2);
  const T* u = static_cast<const T*>(p.u);
  const T* dy = static_cast<const T*>(p.dy);
  T* du = static_cast<T*>(p.du);
  // One channel per task: its weights' gradients sum over (b, t) in a fixed order.
#pragma omp parallel
  {
    std::vector<Mode> modes(N);
    ChannelT<T> ch;
    std::vector<cplx<T>> hs(L);   // states h_t of the current mode
    std::vector<T> du_row(L);
    std::vector<cd> g_abar(N), g_bbar(N), g_c(N);
#pragma omp for schedule(static)
    for (int64_t h = 0; h < H; ++h) {
      const double dt = load_channel<T>(p.w, p.is_real, p.disc, h, N, modes.data());
      ch.set(modes.data(), N);
      const T dskip = p.w.D ? ld<T>(p.w.D, h) : T(0);
      std::fill(g_abar.begin(), g_abar.end(), cd{});
      std::fill(g_bbar.begin(), g_bbar.end(), cd{});
      std::fill(g_c.begin(), g_c.end(), cd{});
      double g_d = 0.0;
      for (int64_t b = 0; b < B; ++b) {
        const T* up = u + b * p.u_batch_stride + h * p.u_h_stride;
        const T* gp = dy + b * p.dy_batch_stride + h * p.dy_h_stride;
        std::fill(du_row.begin(), du_row.end(), T(0));
        for (int64_t n = 0; n < N; ++n) {
          const cplx<T> abar = ch.abar[n], bbar = ch.bbar[n], cc = conj(ch.c[n]);
          const cplx<T> s0 = ld_state<T>(p.h0, b * p.h0_batch_stride + h * p.h0_h_stride, n);
          cplx<T> s = s0;
          for (int64_t t = 0; t < L; ++t) {
            s = abar * s + bbar * up[t * p.u_l_stride];
            hs[t] = s;
          }
          // lam = dL/dh_t, accumulated backwards: lam_t = scale dy_t conj(C) + conj(abar) lam_{t+1}
          cplx<T> lam = ld_state<T>(p.dhT, b * p.dhT_batch_stride + h * p.dhT_h_stride, n);
          for (int64_t t = L - 1; t >= 0; --t) {
            const T gt = gp[t * p.dy_l_stride];
            const T ut = up[t * p.u_l_stride];
            lam += cc * (scale * gt);
            const cplx<T> prev = t > 0 ? hs[t - 1] : s0;
            g_c[n] += conj(cplx_cast<double>(hs[t])) * (double(scale) * double(gt));
            g_abar[n] += conj(cplx_cast<double>(prev)) * cplx_cast<double>(lam);
            g_bbar[n] += cplx_cast<double>(lam) * double(ut);
            du_row[t] += (conj(bbar) * lam).re;
            lam = conj(abar) * lam;
          }
          st_state<T>(p.dh0, b * p.dh0_batch_stride + h * p.dh0_h_stride, n, lam);
        }
        for (int64_t t = 0; t < L; ++t) {
          const T gt = gp[t * p.dy_l_stride], ut = up[t * p.u_l_stride];
          g_d += double(ut) * double(gt);
          du_row[t] += dskip * gt;
        }
        if (du) {
          T* dp = du + b * p.du_batch_stride + h * p.du_h_stride;
          for (int64_t t = 0; t < L; ++t) dp[t * p.du_l_stride] = du_row[t];
        }
      }
      const double g_dt = write_mode_grads<T>(p.g, p.is_real, p.disc, dt, h, N, modes.data(),
                                              g_abar.data(), g_bbar.data(), g_c.data());
      st<T>(p.g.dlog_dt, h, g_dt * dt);  // dt = exp(log_dt)
      st<T>(p.g.dD, h, g_d);
    }
  }
}

template <class T>
void s4d_step(const S4dStepParams& p) {
  const int64_t B = p.batch, H = p.dim, N = p.dstate;
  const T scale = p.is_real ? T(1) : T(2);
#pragma omp parallel
  {
    std::vector<Mode> modes(N);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < B * H; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      load_channel<T>(p.w, p.is_real, p.disc, h, N, modes.data());
      const T ut = ld<T>(p.u, b * p.u_batch_stride + h * p.u_h_stride);
      const int64_t off = b * p.state_batch_stride + h * p.state_h_stride;
      T acc = T(0);
      for (int64_t n = 0; n < N; ++n) {
        // Same T arithmetic, in the same order, as s4d_fwd.
        const cplx<T> abar = cplx_cast<T>(modes[n].abar);
        const cplx<T> bbar = cplx_cast<T>(modes[n].f * modes[n].b);
        const cplx<T> s = abar * ld_state<T>(p.state, off, n) + bbar * ut;
        st_state<T>(p.state, off, n, s);
        acc += (cplx_cast<T>(modes[n].c) * s).re;
      }
      const T dskip = p.w.D ? ld<T>(p.w.D, h) : T(0);
      static_cast<T*>(p.y)[b * p.y_batch_stride + h * p.y_h_stride] = scale * acc + dskip * ut;
    }
  }
}

// ---- convolution-kernel form -------------------------------------------------------------

template <class T>
void s4d_kernel_fwd(const S4dParams& p) {
  const int64_t H = p.dim, L = p.seqlen, N = p.dstate;
  const T scale = p.is_real ? T(1) : T(2);
  T* kernel = static_cast<T*>(p.kernel);
#pragma omp parallel
  {
    std::vector<Mode> modes(N);
    ChannelT<T> ch;
    std::vector<cplx<T>> wgt(N), pw(N);  // C bbar, abar^l
#pragma omp for schedule(static)
    for (int64_t h = 0; h < H; ++h) {
      load_channel<T>(p.w, p.is_real, p.disc, h, N, modes.data());
      ch.set(modes.data(), N);
      for (int64_t n = 0; n < N; ++n) {
        wgt[n] = ch.c[n] * ch.bbar[n];
        pw[n] = {T(1), T(0)};
      }
      for (int64_t l = 0; l < L; ++l) {
        T acc = T(0);
        for (int64_t n = 0; n < N; ++n) {
          acc += (wgt[n] * pw[n]).re;
          pw[n] = pw[n] * ch.abar[n];
        }
        kernel[h * L + l] = scale * acc;
      }
    }
  }
}

template <class T>
void s4d_kernel_bwd(const S4dBwdParams& p) {
  const int64_t H = p.dim, L = p.seqlen, N = p.dstate;
  const double scale = p.is_real ? 1.0 : 2.0;
  const T* dkernel = static_cast<const T*>(p.dkernel);
#pragma omp parallel
  {
    std::vector<Mode> modes(N);
    ChannelT<T> ch;
    std::vector<cd> g_abar(N), g_bbar(N), g_c(N);
#pragma omp for schedule(static)
    for (int64_t h = 0; h < H; ++h) {
      const double dt = load_channel<T>(p.w, p.is_real, p.disc, h, N, modes.data());
      ch.set(modes.data(), N);
      const T* gk = dkernel + h * L;
      for (int64_t n = 0; n < N; ++n) {
        // K[l] = scale Re(wgt abar^l):  g_wgt = scale sum_l gk[l] conj(abar^l),
        // g_abar = scale sum_l gk[l] conj(wgt l abar^(l-1)).
        const cplx<T> wgt = ch.c[n] * ch.bbar[n];
        cplx<T> pw{T(1), T(0)};  // abar^l
        cd g_w{}, g_a{};
        for (int64_t l = 0; l < L; ++l) {
          const double gl = scale * double(gk[l]);
          if (l > 0) g_a += conj(cplx_cast<double>(wgt * pw)) * (gl * double(l));
          if (l > 0) pw = pw * ch.abar[n];
          g_w += conj(cplx_cast<double>(pw)) * gl;
        }
        g_abar[n] = g_a;
        // wgt = C bbar
        g_c[n] = conj(cplx_cast<double>(ch.bbar[n])) * g_w;
        g_bbar[n] = conj(cplx_cast<double>(ch.c[n])) * g_w;
      }
      const double g_dt = write_mode_grads<T>(p.g, p.is_real, p.disc, dt, h, N, modes.data(),
                                              g_abar.data(), g_bbar.data(), g_c.data());
      st<T>(p.g.dlog_dt, h, g_dt * dt);
    }
  }
}

template <class T>
void s4d_conv_fwd(const S4dParams& p) {
  const int64_t B = p.batch, H = p.dim, L = p.seqlen;
  const T* u = static_cast<const T*>(p.u);
  const T* kernel = static_cast<const T*>(p.kernel);
  T* y = static_cast<T*>(p.y);
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    const T* up = u + b * p.u_batch_stride + h * p.u_h_stride;
    const T* kp = kernel + h * L;
    const T dskip = p.w.D ? ld<T>(p.w.D, h) : T(0);
    T* yp = y + b * p.y_batch_stride + h * p.y_h_stride;
    for (int64_t t = 0; t < L; ++t) {
      T acc = T(0);
      for (int64_t s = 0; s <= t; ++s) acc += kp[t - s] * up[s * p.u_l_stride];
      yp[t * p.y_l_stride] = acc + dskip * up[t * p.u_l_stride];
    }
  }
}

template <class T>
void s4d_conv_bwd(const S4dBwdParams& p) {
  const int64_t B = p.batch, H = p.dim, L = p.seqlen;
  const T* u = static_cast<const T*>(p.u);
  const T* dy = static_cast<const T*>(p.dy);
  const T* kernel = static_cast<const T*>(p.kernel);
  T* du = static_cast<T*>(p.du);
  T* dkernel = static_cast<T*>(p.dkernel);
#pragma omp parallel
  {
    std::vector<double> g_k(L);
#pragma omp for schedule(static)
    for (int64_t h = 0; h < H; ++h) {
      const T* kp = kernel + h * L;
      const T dskip = p.w.D ? ld<T>(p.w.D, h) : T(0);
      std::fill(g_k.begin(), g_k.end(), 0.0);
      double g_d = 0.0;
      for (int64_t b = 0; b < B; ++b) {
        const T* up = u + b * p.u_batch_stride + h * p.u_h_stride;
        const T* gp = dy + b * p.dy_batch_stride + h * p.dy_h_stride;
        for (int64_t t = 0; t < L; ++t) {
          const double gt = double(gp[t * p.dy_l_stride]);
          g_d += gt * double(up[t * p.u_l_stride]);
          for (int64_t l = 0; l <= t; ++l) g_k[l] += gt * double(up[(t - l) * p.u_l_stride]);
        }
        if (du) {
          T* dp = du + b * p.du_batch_stride + h * p.du_h_stride;
          for (int64_t s = 0; s < L; ++s) {
            T acc = dskip * gp[s * p.dy_l_stride];
            for (int64_t t = s; t < L; ++t) acc += kp[t - s] * gp[t * p.dy_l_stride];
            dp[s * p.du_l_stride] = acc;
          }
        }
      }
      if (dkernel) {
        for (int64_t l = 0; l < L; ++l) dkernel[h * L + l] = T(g_k[l]);
      }
      st<T>(p.g.dD, h, g_d);
    }
  }
}

// ---- initialisation ----------------------------------------------------------------------

template <class T>
void s4d_init(const S4dInitParams& p) {
  const int64_t H = p.dim, N = p.dstate;
  const double pi = std::numbers::pi;
  const double log_min = std::log(p.dt_min), log_max = std::log(p.dt_max);
  for (int64_t h = 0; h < H; ++h) {
    st<T>(p.log_dt, h, log_min + p.uniforms[h] * (log_max - log_min));
    for (int64_t n = 0; n < N; ++n) {
      const int64_t i = h * N + n;
      const double z0 = p.normals[2 * i], z1 = p.normals[2 * i + 1];
      double a_re = -0.5, a_im = 0.0, c_re = z0 * std::sqrt(0.5), c_im = z1 * std::sqrt(0.5);
      switch (p.kind) {
        case S4dInit::lin: a_im = pi * double(n); break;
        case S4dInit::inv: a_im = (2.0 * N / pi) * (2.0 * N / (2.0 * n + 1.0) - 1.0); break;
        case S4dInit::real:
          a_re = -double(n + 1);
          c_re = z0;
          c_im = 0.0;
          break;
      }
      st<T>(p.A_re, i, a_re);
      st<T>(p.A_im, i, a_im);
      st<T>(p.B_re, i, 1.0);
      st<T>(p.B_im, i, 0.0);
      st<T>(p.C_re, i, c_re);
      st<T>(p.C_im, i, c_im);
    }
  }
}

#define SSM_S4D_INSTANTIATE(T)                             \
  template void s4d_fwd<T>(const S4dParams&);              \
  template void s4d_bwd<T>(const S4dBwdParams&);           \
  template void s4d_step<T>(const S4dStepParams&);         \
  template void s4d_kernel_fwd<T>(const S4dParams&);       \
  template void s4d_kernel_bwd<T>(const S4dBwdParams&);    \
  template void s4d_conv_fwd<T>(const S4dParams&);         \
  template void s4d_conv_bwd<T>(const S4dBwdParams&);      \
  template void s4d_init<T>(const S4dInitParams&);
SSM_S4D_INSTANTIATE(float)
SSM_S4D_INSTANTIATE(double)
#undef SSM_S4D_INSTANTIATE

}  // namespace ssm::kernels::cpu
