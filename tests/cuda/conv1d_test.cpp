// CUDA causal_conv1d / causal_conv1d_step vs the CPU reference: outputs, final_state and every
// gradient (dx, dweight, dbias, dinitial_state, through the final state) in f32 and bf16, at
// widths K = 1..8 (compile-time K = 2, 3, 4 and the generic path), odd B / C / L spanning
// several 128-wide tiles, packed documents (seq_idx) with boundaries at tile edges, strided
// (B, L, C) inputs, L = 0, bitwise-identical reruns, and the step kernel token by token.
// Outputs start as NaN (poisoned allocator), so an unwritten element fails the comparison.
#include <functional>

#include "tests/cuda/cuda_test_util.h"

namespace ssm {
namespace {

using test::gpu::as;
using test::gpu::check_parity;
using test::gpu::close_to_reference;
using test::gpu::Fn;
using test::gpu::gpu;
using test::gpu::random;
using test::gpu::same_values;

class CudaConv1d : public test::gpu::CudaTest {};

// Document ids (B, L): a new document starts at every position listed in `starts`, per row
// shifted by b so rows differ.
Tensor doc_ids(int64_t B, int64_t L, const std::vector<int64_t>& starts) {
  std::vector<double> v(size_t(B * L));
  for (int64_t b = 0; b < B; ++b) {
    int id = 3;  // ids need not start at 0
    for (int64_t t = 0; t < L; ++t) {
      for (int64_t s : starts)
        if (t == s + b) ++id;
      v[size_t(b * L + t)] = id;
    }
  }
  return Tensor::from_vector(v, Dims{B, L}, DType::i32);
}

// in = {x (B,C,L), w (C,K), bias (C), init (B,C,K-1)[, seq (B,L)]}; outputs y and final_state.
Fn conv_fn(bool silu, bool with_seq) {
  return [silu, with_seq](const std::vector<Tensor>& v) {
    Conv1dArgs a;
    a.bias = v[2];
    a.silu = silu;
    a.initial_state = v[3];
    if (with_seq) a.seq_idx = v[4];
    a.return_final_state = true;
    ConvResult r = ssm::causal_conv1d(v[0], v[1], a);
    return std::vector<Tensor>{r.y, r.final_state};
  };
}

TEST_F(CudaConv1d, MatchesCpuAllWidths) {
  uint64_t seed = 10;
  const std::vector<Dims> shapes = {{3, 5, 37}, {2, 3, 300}, {1, 7, 128}};
  for (int64_t K : {1, 2, 3, 4, 5, 8})
    for (const Dims& s : shapes)
      for (bool silu : {false, true}) {
        const int64_t B = s[0], C = s[1], L = s[2];
        Tensor x = random(s, ++seed, DType::bf16, -2, 2), w = random({C, K}, ++seed, DType::bf16),
               b = random({C}, ++seed, DType::bf16), init = random({B, C, K - 1}, ++seed, DType::bf16);
        SCOPED_TRACE("K=" + std::to_string(K) + " L=" + std::to_string(L) + (silu ? " silu" : ""));
        check_parity("causal_conv1d", conv_fn(silu, false), {x, w, b, init}, {true, true, true, true});
      }
}

TEST_F(CudaConv1d, SeqIdxMatchesCpu) {
  uint64_t seed = 50;
  const int64_t B = 3, C = 5, L = 261;
  // Boundaries inside the first K-1 positions, at and around the 128 tile edge, and at the end.
  const std::vector<int64_t> starts = {1, 40, 126, 128, 129, 200, 258};
  for (int64_t K : {2, 3, 4, 5})
    for (bool silu : {false, true}) {
      Tensor x = random({B, C, L}, ++seed, DType::bf16, -2, 2), w = random({C, K}, ++seed, DType::bf16),
             b = random({C}, ++seed, DType::bf16), init = random({B, C, K - 1}, ++seed, DType::bf16);
      SCOPED_TRACE("K=" + std::to_string(K) + (silu ? " silu" : ""));
      check_parity("causal_conv1d seq_idx", conv_fn(silu, true), {x, w, b, init, doc_ids(B, L, starts)},
                   {true, true, true, true, false});
    }
}

TEST_F(CudaConv1d, StridedInputsMatchCpu) {
  // x stored (B, L, C) and seen as (B, C, L): L stride C, C stride 1; weight stored (K, C).
  const int64_t B = 2, C = 9, L = 150, K = 4;
  Tensor x = random({B, L, C}, 3, DType::bf16, -2, 2), w = random({K, C}, 4, DType::bf16),
         b = random({C}, 5, DType::bf16), init = random({B, K - 1, C}, 6, DType::bf16);
  check_parity("causal_conv1d strided",
               [](const std::vector<Tensor>& v) {
                 Conv1dArgs a;
                 a.bias = v[2];
                 a.silu = true;
                 a.initial_state = ssm::transpose(v[3], 1, 2);
                 a.return_final_state = true;
                 ConvResult r = ssm::causal_conv1d(ssm::transpose(v[0], 1, 2), ssm::transpose(v[1], 0, 1), a);
                 return std::vector<Tensor>{r.y, r.final_state};
               },
               {x, w, b, init}, {true, true, true, true});
}

TEST_F(CudaConv1d, NoBiasNoStateAndEmptyLength) {
  const int64_t B = 3, C = 4, K = 3;
  Tensor x = random({B, C, 45}, 7, DType::bf16), w = random({C, K}, 8, DType::bf16);
  check_parity("causal_conv1d plain",
               [](const std::vector<Tensor>& v) {
                 Conv1dArgs a;
                 a.return_final_state = true;
                 ConvResult r = ssm::causal_conv1d(v[0], v[1], a);
                 return std::vector<Tensor>{r.y, r.final_state};
               },
               {x, w}, {true, true});
  // L = 0: the initial state passes through to the final state (and its gradient back).
  Tensor x0 = random({B, C, 0}, 9, DType::bf16), b = random({C}, 10, DType::bf16),
         init = random({B, C, K - 1}, 11, DType::bf16);
  check_parity("causal_conv1d L=0", conv_fn(true, false), {x0, w, b, init}, {true, true, true, true});
}

TEST_F(CudaConv1d, StepMatchesCpuAndParallelForward) {
  const int64_t B = 3, C = 7, T = 6;
  for (int64_t K : {2, 4, 5})
    for (DType dt : {DType::f32, DType::bf16}) {
      SCOPED_TRACE("K=" + std::to_string(K) + " " + std::string(test::gpu::name(dt)));
      Tensor xs = random({B, C, T}, 20 + K, DType::bf16, -2, 2), w = random({C, K}, 30 + K, DType::bf16),
             b = random({C}, 40 + K, DType::bf16), init = random({B, C, K - 1}, 50 + K, DType::bf16);
      NoGradGuard ng;
      // The parallel forward over the T tokens, in f64 (ref) and f32 (naive) on the CPU.
      Conv1dArgs a;
      a.silu = true;
      a.bias = as(b, DType::f64);
      a.initial_state = as(init, DType::f64);
      Tensor ref = ssm::causal_conv1d(as(xs, DType::f64), as(w, DType::f64), a).y;
      a.bias = as(b, DType::f32);
      a.initial_state = as(init, DType::f32);
      Tensor naive = test::gpu::round_to(ssm::causal_conv1d(as(xs, DType::f32), as(w, DType::f32), a).y, dt);
      // Window (B, C, K): entry 0 is dropped by the first step, entries 1..K-1 are init.
      Tensor win0 = Tensor::zeros({B, C, K}, DType::f64);
      std::vector<double> wv = win0.to_vector(), iv = init.to_vector();
      for (int64_t r = 0; r < B * C; ++r)
        for (int64_t k = 0; k + 1 < K; ++k) wv[size_t(r * K + k + 1)] = iv[size_t(r * (K - 1) + k)];
      Tensor win = as(Tensor::from_vector(wv, {B, C, K}, DType::f64), dt, gpu());
      Tensor win_cpu = as(Tensor::from_vector(wv, {B, C, K}, DType::f64), DType::f64);
      Tensor wg = as(w, dt, gpu()), bg = as(b, dt, gpu());
      for (int64_t t = 0; t < T; ++t) {
        Tensor xt = as(ssm::select(xs, 2, t), dt, gpu());
        Tensor y = ssm::causal_conv1d_step(win, xt, wg, bg, true);
        ssm::causal_conv1d_step(win_cpu, as(ssm::select(xs, 2, t), DType::f64), as(w, DType::f64), as(b, DType::f64),
                                true);
        EXPECT_TRUE(close_to_reference(as(y, DType::f64), as(ssm::select(naive, 2, t), DType::f64),
                                       as(ssm::select(ref, 2, t), DType::f64), dt))
            << "token " << t;
        // The window holds stored values, shifted exactly: same as the CPU window.
        EXPECT_TRUE(same_values(as(win, DType::f64), as(as(win_cpu, dt), DType::f64))) << "window after token " << t;
      }
    }
}

TEST_F(CudaConv1d, WideBatchRerunsBitwise) {
  // Many (b, d) rows and tiles: dweight sums 4·3 partials per channel; two runs identical.
  const int64_t B = 4, C = 130, L = 333, K = 4;
  Tensor x = random({B, C, L}, 60, DType::bf16, -2, 2), w = random({C, K}, 61, DType::bf16),
         b = random({C}, 62, DType::bf16), init = random({B, C, K - 1}, 63, DType::bf16);
  check_parity("causal_conv1d wide", conv_fn(true, false), {x, w, b, init}, {true, true, true, true});
}

}  // namespace
}  // namespace ssm
