// causal_conv1d: forward against a naive loop, gradients against central differences,
// packed documents against separate runs, the step function against the parallel forward,
// and bitwise determinism across thread counts.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/conv1d.h"
#include "tests/kernels/lti_fd.h"

namespace ssm::kernels::cpu {
namespace {

using test::lti::cast;
using test::lti::dot;
using test::lti::fd_grad;
using test::lti::grad_err;
using test::lti::max_rel;
using test::lti::randn;

struct Problem {
  int64_t B = 2, D = 3, L = 13, K = 4;
  bool silu = false, channels_last = false;
  bool use_bias = true, use_init = false, use_final = true;
  std::vector<double> x, w, bias, init;  // x (B, D, L) or (B, L, D); init (B, D, K-1)
  std::vector<int32_t> seq;              // (B, L), empty = no seq_idx

  void fill(uint32_t seed) {
    x = randn(B * D * L, seed);
    w = randn(D * K, seed + 1, 0.5);
    bias = randn(D, seed + 2);
    init = randn(B * D * (K - 1), seed + 3);
  }
  // Element offset of x[b, d, t] in either layout (out and dx share x's layout).
  int64_t at(int64_t b, int64_t d, int64_t t) const {
    return channels_last ? (b * L + t) * D + d : (b * D + d) * L + t;
  }
};

struct Outputs {
  std::vector<double> out, final;                // (B, D, L) in x's layout, (B, D, K-1)
  std::vector<double> dx, dw, dbias, dinit;      // gradients
};

template <class T>
Conv1dParams make_params(const Problem& pb, const std::vector<T>& x, const std::vector<T>& w,
                         const std::vector<T>& bias, const std::vector<T>& init) {
  Conv1dParams p;
  p.batch = pb.B;
  p.dim = pb.D;
  p.seqlen = pb.L;
  p.width = pb.K;
  p.silu = pb.silu;
  p.x = x.data();
  p.x_batch_stride = pb.D * pb.L;
  p.x_d_stride = pb.channels_last ? 1 : pb.L;
  p.x_l_stride = pb.channels_last ? pb.D : 1;
  p.weight = w.data();
  p.weight_d_stride = pb.K;
  p.weight_k_stride = 1;
  p.bias = pb.use_bias ? bias.data() : nullptr;
  if (!pb.seq.empty()) {
    p.seq_idx = pb.seq.data();
    p.seq_idx_batch_stride = pb.L;
    p.seq_idx_l_stride = 1;
  }
  if (pb.use_init) {
    p.initial_states = init.data();
    p.initial_states_batch_stride = pb.D * (pb.K - 1);
    p.initial_states_d_stride = pb.K - 1;
    p.initial_states_k_stride = 1;
  }
  p.out_batch_stride = p.x_batch_stride;
  p.out_d_stride = p.x_d_stride;
  p.out_l_stride = p.x_l_stride;
  p.final_states_batch_stride = pb.D * (pb.K - 1);
  p.final_states_d_stride = pb.K - 1;
  p.final_states_k_stride = 1;
  return p;
}

template <class T>
Outputs run(const Problem& pb, const std::vector<double>* dout = nullptr,
            const std::vector<double>* dfinal = nullptr) {
  const int64_t nx = pb.B * pb.D * pb.L, ns = pb.B * pb.D * (pb.K - 1);
  std::vector<T> x = cast<T>(pb.x), w = cast<T>(pb.w), bias = cast<T>(pb.bias),
                 init = cast<T>(pb.init);
  std::vector<T> out(nx), fin(ns);
  Conv1dParams p = make_params(pb, x, w, bias, init);
  p.out = out.data();
  p.final_states = pb.use_final ? fin.data() : nullptr;
  causal_conv1d_fwd<T>(p);
  Outputs o;
  o.out.assign(out.begin(), out.end());
  o.final.assign(fin.begin(), fin.end());
  if (!dout) return o;

  Conv1dBwdParams q;
  static_cast<Conv1dParams&>(q) = p;
  std::vector<T> g = cast<T>(*dout), gf = cast<T>(dfinal ? *dfinal : std::vector<double>(ns));
  std::vector<T> dx(nx, T(7)), dw(pb.D * pb.K, T(7)), db(pb.D, T(7)), dinit(ns, T(7));
  q.dout = g.data();
  q.dout_batch_stride = p.x_batch_stride;
  q.dout_d_stride = p.x_d_stride;
  q.dout_l_stride = p.x_l_stride;
  if (dfinal) {
    q.dfinal_states = gf.data();
    q.dfinal_states_batch_stride = pb.D * (pb.K - 1);
    q.dfinal_states_d_stride = pb.K - 1;
    q.dfinal_states_k_stride = 1;
  }
  q.dx = dx.data();
  q.dx_batch_stride = p.x_batch_stride;
  q.dx_d_stride = p.x_d_stride;
  q.dx_l_stride = p.x_l_stride;
  q.dweight = dw.data();
  q.dweight_d_stride = pb.K;
  q.dweight_k_stride = 1;
  q.dbias = db.data();
  if (pb.use_init) {
    q.dinitial_states = dinit.data();
    q.dinitial_states_batch_stride = pb.D * (pb.K - 1);
    q.dinitial_states_d_stride = pb.K - 1;
    q.dinitial_states_k_stride = 1;
  }
  causal_conv1d_bwd<T>(q);
  o.dx.assign(dx.begin(), dx.end());
  o.dw.assign(dw.begin(), dw.end());
  o.dbias.assign(db.begin(), db.end());
  o.dinit.assign(dinit.begin(), dinit.end());
  return o;
}

// The definition, written out: tap k of output t reads input s = t - (K-1) + k, from x when
// s >= 0 and from the initial state otherwise; with seq_idx it only counts when the input's
// document (the first document for initial-state entries) equals the output's.
Outputs naive(const Problem& pb) {
  const int64_t B = pb.B, D = pb.D, L = pb.L, K = pb.K;
  auto doc = [&](int64_t b, int64_t s) { return pb.seq[b * L + (s < 0 ? 0 : s)]; };
  auto input = [&](int64_t b, int64_t d, int64_t s) {
    if (s >= 0) return pb.x[pb.at(b, d, s)];
    return pb.use_init ? pb.init[(b * D + d) * (K - 1) + (K - 1 + s)] : 0.0;
  };
  Outputs o;
  o.out.assign(B * D * L, 0.0);
  o.final.assign(B * D * (K - 1), 0.0);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t d = 0; d < D; ++d) {
      for (int64_t t = 0; t < L; ++t) {
        double acc = pb.use_bias ? pb.bias[d] : 0.0;
        for (int64_t k = 0; k < K; ++k) {
          const int64_t s = t - (K - 1) + k;
          if (!pb.seq.empty() && doc(b, s) != doc(b, t)) continue;
          acc += pb.w[d * K + k] * input(b, d, s);
        }
        o.out[pb.at(b, d, t)] = pb.silu ? acc / (1.0 + std::exp(-acc)) : acc;
      }
      for (int64_t j = 0; j < K - 1; ++j) {
        const int64_t s = L - (K - 1) + j;
        const bool keep = pb.seq.empty() || doc(b, s) == doc(b, L - 1);
        o.final[(b * D + d) * (K - 1) + j] = keep ? input(b, d, s) : 0.0;
      }
    }
  }
  return o;
}

// Two documents per row, the first long, the second short, with different boundaries.
std::vector<int32_t> two_docs(int64_t B, int64_t L) {
  std::vector<int32_t> seq(B * L);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t cut = L / 2 + b;
    for (int64_t t = 0; t < L; ++t) seq[b * L + t] = t < cut ? int32_t(3 * b) : int32_t(3 * b + 1);
  }
  return seq;
}

void check_case(Problem pb, uint32_t seed) {
  pb.fill(seed);
  SCOPED_TRACE(testing::Message() << "K=" << pb.K << " silu=" << pb.silu << " seq="
                                  << !pb.seq.empty() << " init=" << pb.use_init
                                  << " channels_last=" << pb.channels_last << " L=" << pb.L);
  // Forward against the definition.
  Outputs ref = naive(pb);
  Outputs got = run<double>(pb);
  EXPECT_LT(max_rel(got.out, ref.out), 1e-13);
  if (pb.K > 1) {
    EXPECT_LT(max_rel(got.final, ref.final), 1e-13);
  }

  // Gradients of sum(out * R) + sum(final * R2) against central differences.
  const std::vector<double> R = randn(got.out.size(), seed + 10);
  const std::vector<double> R2 = randn(got.final.size(), seed + 11);
  Outputs an = run<double>(pb, &R, &R2);
  auto loss = [&] {
    Outputs o = run<double>(pb);
    return dot(o.out, R) + dot(o.final, R2);
  };
  EXPECT_LT(grad_err(an.dx, fd_grad(pb.x, loss)), 1e-6) << "dx";
  EXPECT_LT(grad_err(an.dw, fd_grad(pb.w, loss)), 1e-6) << "dweight";
  if (pb.use_bias) {
    EXPECT_LT(grad_err(an.dbias, fd_grad(pb.bias, loss)), 1e-6) << "dbias";
  }
  if (pb.use_init && pb.K > 1) {
    EXPECT_LT(grad_err(an.dinit, fd_grad(pb.init, loss)), 1e-6) << "dinitial_states";
  }
}

TEST(CausalConv1d, ForwardAndGradientsAllWidths) {
  uint32_t seed = 100;
  for (int64_t K : {1, 2, 3, 4, 8}) {
    for (bool silu : {false, true}) {
      for (bool seq : {false, true}) {
        for (bool init : {false, true}) {
          Problem pb;
          pb.K = K;
          pb.silu = silu;
          pb.use_init = init;
          pb.channels_last = (seed % 2) == 1;
          if (seq) pb.seq = two_docs(pb.B, pb.L);
          check_case(pb, seed++);
        }
      }
    }
  }
}

TEST(CausalConv1d, ShortSequenceFinalStateUsesInitialState) {
  // L < K-1: the final state is part initial state, part x.
  for (bool seq : {false, true}) {
    Problem pb;
    pb.L = 2;
    pb.K = 4;
    pb.D = 5;
    pb.use_init = true;
    if (seq) pb.seq = {4, 4, 1, 2};  // row 1 changes document at t = 1
    check_case(pb, 7 + seq);
  }
}

TEST(CausalConv1d, SingleTokenDocumentsAndNoBias) {
  Problem pb;
  pb.L = 9;
  pb.use_bias = false;
  pb.use_init = true;
  pb.silu = true;
  pb.seq = {0, 1, 2, 2, 3, 3, 3, 4, 5, 9, 9, 9, 9, 9, 9, 9, 9, 10};
  check_case(pb, 21);
}

TEST(CausalConv1d, PackedDocumentsEqualSeparateRuns) {
  for (int64_t L2 : {6, 2}) {
    const int64_t B = 2, D = 3, K = 4, L1 = 9, L = L1 + L2;
    Problem packed, a, b;
    for (Problem* pb : {&packed, &a, &b}) {
      pb->B = B;
      pb->D = D;
      pb->K = K;
      pb->silu = true;
    }
    packed.L = L;
    a.L = L1;
    b.L = L2;
    packed.fill(31);
    a.fill(0);
    b.fill(0);
    a.w = b.w = packed.w;
    a.bias = b.bias = packed.bias;
    packed.use_init = a.use_init = true;
    a.init = packed.init;
    for (int64_t bb = 0; bb < B; ++bb) {
      for (int64_t d = 0; d < D; ++d) {
        for (int64_t t = 0; t < L; ++t) {
          double v = packed.x[packed.at(bb, d, t)];
          if (t < L1) a.x[a.at(bb, d, t)] = v;
          else b.x[b.at(bb, d, t - L1)] = v;
        }
      }
    }
    packed.seq.resize(B * L);
    for (int64_t bb = 0; bb < B; ++bb) {
      for (int64_t t = 0; t < L; ++t) packed.seq[bb * L + t] = t < L1 ? 5 : 6;
    }
    const std::vector<double> R = randn(B * D * L, 40), R2 = randn(B * D * (K - 1), 41);
    std::vector<double> Ra(B * D * L1), Rb(B * D * L2);
    for (int64_t bb = 0; bb < B; ++bb) {
      for (int64_t d = 0; d < D; ++d) {
        for (int64_t t = 0; t < L; ++t) {
          if (t < L1) Ra[a.at(bb, d, t)] = R[packed.at(bb, d, t)];
          else Rb[b.at(bb, d, t - L1)] = R[packed.at(bb, d, t)];
        }
      }
    }
    const std::vector<double> zero(B * D * (K - 1), 0.0);
    Outputs op = run<double>(packed, &R, &R2);
    Outputs oa = run<double>(a, &Ra, &zero);
    Outputs ob = run<double>(b, &Rb, &R2);
    for (int64_t bb = 0; bb < B; ++bb) {
      for (int64_t d = 0; d < D; ++d) {
        for (int64_t t = 0; t < L; ++t) {
          const Outputs& o = t < L1 ? oa : ob;
          const int64_t i = t < L1 ? a.at(bb, d, t) : b.at(bb, d, t - L1);
          EXPECT_NEAR(op.out[packed.at(bb, d, t)], o.out[i], 1e-14);
          EXPECT_NEAR(op.dx[packed.at(bb, d, t)], o.dx[i], 1e-14);
        }
      }
    }
    for (size_t i = 0; i < op.final.size(); ++i) {
      EXPECT_NEAR(op.final[i], ob.final[i], 1e-14) << "final state = second document's";
      EXPECT_NEAR(op.dinit[i], oa.dinit[i], 1e-14) << "initial state belongs to the first";
    }
    for (size_t i = 0; i < op.dw.size(); ++i) EXPECT_NEAR(op.dw[i], oa.dw[i] + ob.dw[i], 1e-12);
    for (size_t i = 0; i < op.dbias.size(); ++i) {
      EXPECT_NEAR(op.dbias[i], oa.dbias[i] + ob.dbias[i], 1e-12);
    }
  }
}

TEST(CausalConv1d, StepMatchesParallelForward) {
  for (bool silu : {false, true}) {
    Problem pb;
    pb.B = 2;
    pb.D = 5;
    pb.L = 70;
    pb.K = 4;
    pb.silu = silu;
    pb.use_init = true;
    pb.fill(50);
    Outputs par = run<double>(pb);

    // conv_state (B, D, K) stored channel-last to exercise the strides: (B, K, D).
    const int64_t B = pb.B, D = pb.D, K = pb.K;
    std::vector<double> state(B * K * D, 123.0);  // entry k = 0 is shifted out unread
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t d = 0; d < D; ++d) {
        for (int64_t k = 1; k < K; ++k) {
          state[(b * K + k) * D + d] = pb.init[(b * D + d) * (K - 1) + k - 1];
        }
      }
    }
    std::vector<double> xt(B * D), out(B * D);
    Conv1dStepParams s;
    s.batch = B;
    s.dim = D;
    s.width = K;
    s.silu = silu;
    s.x = xt.data();
    s.x_batch_stride = D;
    s.x_d_stride = 1;
    s.conv_state = state.data();
    s.conv_state_batch_stride = K * D;
    s.conv_state_d_stride = 1;
    s.conv_state_k_stride = D;
    s.weight = pb.w.data();
    s.weight_d_stride = K;
    s.weight_k_stride = 1;
    s.bias = pb.bias.data();
    s.out = out.data();
    s.out_batch_stride = D;
    s.out_d_stride = 1;
    double err = 0.0;
    for (int64_t t = 0; t < pb.L; ++t) {
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t d = 0; d < D; ++d) xt[b * D + d] = pb.x[pb.at(b, d, t)];
      }
      causal_conv1d_step<double>(s);
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t d = 0; d < D; ++d) {
          err = std::max(err, std::abs(out[b * D + d] - par.out[pb.at(b, d, t)]));
        }
      }
    }
    EXPECT_LT(err, 1e-14);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t d = 0; d < D; ++d) {
        for (int64_t k = 1; k < K; ++k) {
          EXPECT_EQ(state[(b * K + k) * D + d], par.final[(b * D + d) * (K - 1) + k - 1]);
        }
      }
    }
  }
}

TEST(CausalConv1d, FloatMatchesDoubleAndIsThreadCountInvariant) {
  Problem pb;
  pb.B = 3;
  pb.D = 37;
  pb.L = 301;
  pb.K = 4;
  pb.silu = true;
  pb.use_init = true;
  pb.channels_last = true;
  pb.seq = two_docs(pb.B, pb.L);
  pb.fill(60);
  const std::vector<double> R = randn(pb.B * pb.D * pb.L, 61), R2 = randn(pb.B * pb.D * 3, 62);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  Outputs one = run<float>(pb, &R, &R2);
  omp_set_num_threads(2);
  Outputs two = run<float>(pb, &R, &R2);
  omp_set_num_threads(saved);
  for (auto [a, b] : {std::pair{&one.out, &two.out}, {&one.final, &two.final}, {&one.dx, &two.dx},
                      {&one.dw, &two.dw}, {&one.dbias, &two.dbias}, {&one.dinit, &two.dinit}}) {
    ASSERT_EQ(a->size(), b->size());
    EXPECT_EQ(0, std::memcmp(a->data(), b->data(), a->size() * sizeof(double)));
  }
  Outputs ref = run<double>(pb, &R, &R2);
  EXPECT_LT(max_rel(one.out, ref.out), 1e-6);
  EXPECT_LT(max_rel(one.dx, ref.dx), 1e-6);
  EXPECT_LT(max_rel(one.dw, ref.dw), 1e-6);
  EXPECT_LT(max_rel(one.dinit, ref.dinit), 1e-6);
}

}  // namespace
}  // namespace ssm::kernels::cpu
