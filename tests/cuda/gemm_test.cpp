// CUDA matmul/linear (cuBLASLt) vs the CPU reference: odd shapes that are not multiples of
// any tile, all transpose combinations, strided batches, broadcast operands, strided and
// misaligned views, the fused bias epilogue, and gradients.
#include "tests/cuda/cuda_test_util.h"

namespace ssm {
namespace {

using test::gpu::as;
using test::gpu::close_to_reference;
using test::gpu::gpu;
using test::gpu::naive_dtype;
using test::gpu::random;
using test::gpu::round_to;
using test::gpu::same_values;

class CudaGemm : public test::gpu::CudaTest {};

// The plain loop in the test dtype's compute precision: fp32 accumulation over k in order
// (double for f64), one rounding of the output to the dtype. a, b: 2-D or 3-D (batched).
Tensor naive_matmul(const Tensor& a, const Tensor& b, bool ta, bool tb, DType t) {
  Tensor ref = ssm::matmul(as(a, DType::f64), as(b, DType::f64), ta, tb);  // for the output shape
  int ra = a.dim(), rb = b.dim();
  int64_t batch = ra == 3 ? a.size(0) : 1;
  int64_t M = ta ? a.size(ra - 1) : a.size(ra - 2), K = ta ? a.size(ra - 2) : a.size(ra - 1);
  int64_t N = tb ? b.size(rb - 2) : b.size(rb - 1);
  std::vector<double> av = ssm::contiguous(a).to_vector(), bv = ssm::contiguous(b).to_vector();
  std::vector<double> out(size_t(batch * M * N));
  for (int64_t z = 0; z < batch; ++z) {
    const double* A = av.data() + z * M * K;
    const double* B = bv.data() + (rb == 3 ? z * K * N : 0);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double aik, bkj, acc64 = 0;
        float acc = 0;
        for (int64_t k = 0; k < K; ++k) {
          aik = ta ? A[k * M + i] : A[i * K + k];
          bkj = tb ? B[j * K + k] : B[k * N + j];
          if (t == DType::f64) acc64 += aik * bkj;
          else acc += float(aik) * float(bkj);
        }
        out[size_t((z * M + i) * N + j)] = t == DType::f64 ? acc64 : double(acc);
      }
  }
  return round_to(Tensor::from_vector(out, ref.shape(), naive_dtype(t)), t);
}

const DType kFloatTypes[] = {DType::f32, DType::bf16, DType::f64};

struct Mnk {
  int64_t m, n, k;
};

TEST_F(CudaGemm, ShapesAndTransposesMatchCpu) {
  const Mnk shapes[] = {{1, 1, 1}, {17, 33, 65}, {64, 64, 64}, {129, 257, 31}, {3, 5, 1000}, {250, 130, 300}};
  uint64_t seed = 1;
  for (DType t : kFloatTypes)
    for (const Mnk& s : shapes)
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          Tensor a = random(ta ? Dims{s.k, s.m} : Dims{s.m, s.k}, ++seed, t);
          Tensor b = random(tb ? Dims{s.n, s.k} : Dims{s.k, s.n}, ++seed, t);
          Tensor ref = ssm::matmul(as(a, DType::f64), as(b, DType::f64), ta, tb);
          Tensor ours = ssm::matmul(as(a, t, gpu()), as(b, t, gpu()), ta, tb);
          EXPECT_TRUE(close_to_reference(ours, naive_matmul(a, b, ta, tb, t), ref, t))
              << dtype_name(t) << " M=" << s.m << " N=" << s.n << " K=" << s.k << " ta=" << ta << " tb=" << tb;
        }
}

TEST_F(CudaGemm, StridedBatchesAndSharedOperand) {
  uint64_t seed = 100;
  for (DType t : kFloatTypes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        Tensor a = random(ta ? Dims{3, 33, 17} : Dims{3, 17, 33}, ++seed, t);
        Tensor b = random(tb ? Dims{3, 9, 33} : Dims{3, 33, 9}, ++seed, t);
        Tensor ref = ssm::matmul(as(a, DType::f64), as(b, DType::f64), ta, tb);
        EXPECT_TRUE(close_to_reference(ssm::matmul(as(a, t, gpu()), as(b, t, gpu()), ta, tb),
                                       naive_matmul(a, b, ta, tb, t), ref, t))
            << "batched " << dtype_name(t) << " ta=" << ta << " tb=" << tb;
        // A 2-D b shared by every batch (folded into M, or a stride-0 batch when ta).
        Tensor b2 = random(tb ? Dims{9, 33} : Dims{33, 9}, ++seed, t);
        Tensor ref2 = ssm::matmul(as(a, DType::f64), as(b2, DType::f64), ta, tb);
        EXPECT_TRUE(close_to_reference(ssm::matmul(as(a, t, gpu()), as(b2, t, gpu()), ta, tb),
                                       round_to(ssm::matmul(as(a, naive_dtype(t)), as(b2, naive_dtype(t)), ta, tb), t),
                                       ref2, t, t == DType::f32 ? 1e-6 : 0.0))
            << "shared b " << dtype_name(t) << " ta=" << ta << " tb=" << tb;
      }
}

// Views the GEMM reads in place: rows with a leading dimension larger than the row,
// column-major (transposed) operands, and bf16/f32 data starting one element off alignment.
TEST_F(CudaGemm, StridedAndMisalignedViews) {
  for (DType t : kFloatTypes) {
    Tensor abase = random({40, 21}, 1, t), bbase = random({9, 16}, 2, t);
    auto views = [](const Tensor& ab, const Tensor& bb) {
      return std::pair<Tensor, Tensor>{ab.narrow(1, 1, 15),                  // (40, 15), ld 21, offset 1
                                        bb.narrow(1, 1, 15).transpose(0, 1)};  // (15, 9) column-major, offset 1
    };
    auto [a64, b64] = views(as(abase, DType::f64), as(bbase, DType::f64));
    auto [an, bn] = views(as(abase, naive_dtype(t)), as(bbase, naive_dtype(t)));
    auto [ag, bg] = views(as(abase, t, gpu()), as(bbase, t, gpu()));
    EXPECT_TRUE(close_to_reference(ssm::matmul(ag, bg), round_to(ssm::matmul(an, bn), t), ssm::matmul(a64, b64), t,
                                   t == DType::f32 ? 1e-6 : 0.0))
        << dtype_name(t);
  }
}

TEST_F(CudaGemm, LinearWithFusedBiasForwardBackward) {
  uint64_t seed = 300;
  for (DType t : kFloatTypes)
    for (bool misaligned_bias : {false, true}) {
      Tensor x0 = random({2, 5, 33}, ++seed, t), w0 = random({17, 33}, ++seed, t);
      Tensor bbase = random({18}, ++seed, t), r = random({2, 5, 17}, ++seed, t);
      auto run = [&](DType dt, Device d) {
        Tensor x = as(x0, dt, d).set_requires_grad(true), w = as(w0, dt, d).set_requires_grad(true);
        Tensor bb = as(bbase, dt, d).set_requires_grad(true);
        // An offset view of the bias is not 16-byte aligned: the bias is added by a second kernel.
        Tensor b = misaligned_bias ? ssm::narrow(bb, 0, 1, 17) : ssm::narrow(bb, 0, 0, 17);
        Tensor y = ssm::linear(x, w, b);
        Tensor yv = as(y, dt);
        ssm::backward(y, as(r, dt, d));
        return std::vector<Tensor>{yv, x.grad(), w.grad(), bb.grad()};
      };
      auto ref = run(DType::f64, Device::cpu()), naive = run(naive_dtype(t), Device::cpu()), ours = run(t, gpu());
      const char* what[] = {"y", "dx", "dw", "db"};
      for (int k = 0; k < 4; ++k)
        EXPECT_TRUE(close_to_reference(ours[k], round_to(naive[k], t), ref[k], t, t == DType::f32 ? 1e-6 : 0.0))
            << "linear " << what[k] << " " << dtype_name(t) << (misaligned_bias ? " misaligned bias" : "");
    }
}

TEST_F(CudaGemm, EmptyInnerDimensionGivesZeros) {
  for (DType t : kFloatTypes) {
    Tensor a = Tensor::zeros({4, 0}, t, gpu()), b = Tensor::zeros({0, 3}, t, gpu());
    Tensor c = ssm::matmul(a, b);  // poisoned output must be overwritten with zeros
    EXPECT_EQ(c.to_vector(), std::vector<double>(12, 0.0)) << dtype_name(t);
  }
}

// TF32 is opt-in: the default f32 path stays within fp32 accuracy (checked above); with
// TF32 allowed the result is still close (about 1e-3 relative) and the switch restores.
TEST_F(CudaGemm, Tf32IsOptIn) {
  EXPECT_FALSE(matmul_allow_tf32());
  Tensor a = random({256, 192}, 1, DType::f32), b = random({192, 160}, 2, DType::f32);
  Tensor ref = ssm::matmul(as(a, DType::f64), as(b, DType::f64));
  set_matmul_allow_tf32(true);
  Tensor fast = ssm::matmul(as(a, DType::f32, gpu()), as(b, DType::f32, gpu()));
  set_matmul_allow_tf32(false);
  Tensor exact = ssm::matmul(as(a, DType::f32, gpu()), as(b, DType::f32, gpu()));
  double e_fast = test::gpu::norm_err(fast.to_vector(), ref.to_vector());
  double e_exact = test::gpu::norm_err(exact.to_vector(), ref.to_vector());
  std::printf("[ info ] f32 GEMM 256x160x192 normwise error: tf32 %.3g, fp32 %.3g\n", e_fast, e_exact);
  EXPECT_LT(e_fast, 1e-2);
  EXPECT_LT(e_exact, 1e-6);
}

TEST_F(CudaGemm, ShapeErrorsNameBothOperands) {
  Tensor a = Tensor::zeros({4, 5}, DType::f32, gpu()), b = Tensor::zeros({6, 3}, DType::f32, gpu());
  try {
    ssm::matmul(a, b);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("[4, 5]"), std::string::npos) << m;
    EXPECT_NE(m.find("[6, 3]"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace ssm
