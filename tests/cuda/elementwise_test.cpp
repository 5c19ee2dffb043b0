// CUDA elementwise ops (unary, binary, where, fill, cast/copy, in-place) vs the CPU reference,
// forward and backward, on contiguous, transposed, narrowed and broadcast layouts.
#include <functional>

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

class CudaElementwise : public test::gpu::CudaTest {};

using Fn1 = std::function<Tensor(const Tensor&)>;
using View = std::function<Tensor(const Tensor&)>;

struct UnaryCase {
  const char* name;
  Fn1 f;
  double lo, hi;
};

std::vector<UnaryCase> unary_cases() {
  return {{"neg", [](const Tensor& t) { return ssm::neg(t); }, -3, 3},
          {"exp", [](const Tensor& t) { return ssm::exp(t); }, -12, 12},
          {"log", [](const Tensor& t) { return ssm::log(t); }, 0.05, 20},
          {"sqrt", [](const Tensor& t) { return ssm::sqrt(t); }, 0.01, 50},
          {"rsqrt", [](const Tensor& t) { return ssm::rsqrt(t); }, 0.01, 50},
          {"tanh", [](const Tensor& t) { return ssm::tanh(t); }, -6, 6},
          {"sigmoid", [](const Tensor& t) { return ssm::sigmoid(t); }, -20, 20},
          {"silu", [](const Tensor& t) { return ssm::silu(t); }, -20, 20},
          {"softplus", [](const Tensor& t) { return ssm::softplus(t); }, -30, 30},
          {"gelu", [](const Tensor& t) { return ssm::gelu(t); }, -6, 6},
          {"square", [](const Tensor& t) { return ssm::square(t); }, -3, 3},
          {"relu", [](const Tensor& t) { return ssm::relu(t); }, -3, 3},
          {"add_scalar", [](const Tensor& t) { return ssm::add(t, 1.75); }, -3, 3},
          {"mul_scalar", [](const Tensor& t) { return ssm::mul(t, -2.5); }, -3, 3}};
}

// Layouts the kernels must handle: contiguous (flat kernel), transposed (N-d kernel),
// narrowed (strided rows), and a 1-D stepped view (flat kernel with a stride).
struct Layout {
  const char* name;
  Dims base;
  View view;
};

std::vector<Layout> layouts() {
  return {{"scalar", {}, [](const Tensor& t) { return t; }},
          {"1", {1}, [](const Tensor& t) { return t; }},
          {"7", {7}, [](const Tensor& t) { return t; }},
          {"33x65", {33, 65}, [](const Tensor& t) { return t; }},
          {"3x129x5", {3, 129, 5}, [](const Tensor& t) { return t; }},
          {"flat 2^18+3", {(1 << 18) + 3}, [](const Tensor& t) { return t; }},
          {"transposed 65x33", {33, 65}, [](const Tensor& t) { return t.transpose(0, 1); }},
          {"narrowed 3x125x5", {3, 129, 5}, [](const Tensor& t) { return t.narrow(1, 2, 125); }},
          {"stepped 1-D", {31, 4}, [](const Tensor& t) { return t.select(1, 3); }},
          {"permuted 4-D", {4, 5, 6, 7}, [](const Tensor& t) { return t.permute({3, 1, 0, 2}); }}};
}

const DType kFloatTypes[] = {DType::f32, DType::bf16, DType::f64};

TEST_F(CudaElementwise, UnaryForwardMatchesCpu) {
  uint64_t seed = 100;
  for (const UnaryCase& c : unary_cases())
    for (DType t : kFloatTypes)
      for (const Layout& l : layouts()) {
        Tensor base = random(l.base, ++seed, t, c.lo, c.hi);
        Tensor ref = c.f(l.view(as(base, DType::f64)));
        Tensor naive = round_to(c.f(l.view(as(base, naive_dtype(t)))), t);
        Tensor ours = c.f(l.view(as(base, t, gpu())));
        EXPECT_EQ(ours.device(), gpu());
        EXPECT_TRUE(close_to_reference(ours, naive, ref, t)) << c.name << " on " << l.name;
      }
}

// Gradient of <R, op(x)> through autograd: exercises unary_bwd (and the scalar ops' backward).
TEST_F(CudaElementwise, UnaryBackwardMatchesCpu) {
  uint64_t seed = 500;
  for (const UnaryCase& c : unary_cases())
    for (DType t : kFloatTypes) {
      Tensor base = random({17, 31}, ++seed, t, c.lo, c.hi);
      Tensor r = random({31, 17}, ++seed, t);
      auto grad = [&](DType dt, Device d) {
        Tensor x = as(base, dt, d).set_requires_grad(true);
        Tensor y = c.f(ssm::transpose(x, 0, 1));  // non-contiguous input
        ssm::backward(y, as(r, dt, d));
        return x.grad();
      };
      Tensor ref = grad(DType::f64, Device::cpu());
      Tensor naive = round_to(grad(naive_dtype(t), Device::cpu()), t);
      Tensor ours = grad(t, gpu());
      EXPECT_TRUE(close_to_reference(ours, naive, ref, t)) << c.name << " backward";
    }
}

struct BinaryCase {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> f;
};

TEST_F(CudaElementwise, BinaryBroadcastForwardBackwardMatchesCpu) {
  std::vector<BinaryCase> ops = {{"add", [](const Tensor& a, const Tensor& b) { return a + b; }},
                                 {"sub", [](const Tensor& a, const Tensor& b) { return a - b; }},
                                 {"mul", [](const Tensor& a, const Tensor& b) { return a * b; }},
                                 {"div", [](const Tensor& a, const Tensor& b) { return a / b; }}};
  // (a shape, b shape): same shape, row/column broadcast, bias over (B, L, D), scalar.
  std::vector<std::pair<Dims, Dims>> shapes = {{{33, 65}, {33, 65}}, {{2, 3, 4}, {3, 1}}, {{4, 9, 37}, {37}},
                                               {{129, 3}, {129, 1}},  {{5, 7}, {}},        {{1, 1000}, {1000}}};
  uint64_t seed = 900;
  for (const BinaryCase& op : ops)
    for (DType t : kFloatTypes)
      for (auto& [sa, sb] : shapes) {
        Tensor a0 = random(sa, ++seed, t, -2, 2), b0 = random(sb, ++seed, t, 0.5, 2);
        Tensor y0 = op.f(as(a0, DType::f64), as(b0, DType::f64));
        Tensor r = random(y0.shape(), ++seed, t);
        auto run = [&](DType dt, Device d) {
          Tensor a = as(a0, dt, d).set_requires_grad(true), b = as(b0, dt, d).set_requires_grad(true);
          Tensor y = op.f(a, b);
          Tensor yv = as(y, y.dtype());
          ssm::backward(y, as(r, dt, d));
          return std::vector<Tensor>{yv, a.grad(), b.grad()};
        };
        auto ref = run(DType::f64, Device::cpu()), naive = run(naive_dtype(t), Device::cpu()), ours = run(t, gpu());
        const char* what[] = {"forward", "grad a", "grad b"};
        // Backward chains: div's grad b rounds g/b, y, their product and the sum.
        for (int k = 0; k < 3; ++k)
          EXPECT_TRUE(close_to_reference(ours[k], round_to(naive[k], t), ref[k], t,
                                         test::gpu::chain_eps(t, k == 0 ? 1 : 4)))
              << op.name << " " << what[k] << " " << sa.str() << " with " << sb.str();
      }
}

TEST_F(CudaElementwise, BinaryTransposedOperand) {
  for (DType t : kFloatTypes) {
    Tensor a0 = random({2, 65, 33}, 1, t), b0 = random({33, 65}, 2, t);
    auto run = [&](DType dt, Device d) { return ssm::mul(as(a0, dt, d), as(b0, dt, d).transpose(0, 1)); };
    EXPECT_TRUE(close_to_reference(run(t, gpu()), round_to(run(naive_dtype(t), Device::cpu()), t),
                                   run(DType::f64, Device::cpu()), t));
  }
}

TEST_F(CudaElementwise, WhereForwardBackward) {
  for (DType t : kFloatTypes) {
    // Condition values: about half exactly 0, the rest in (0, 1).
    Tensor cond0 = as(ssm::relu(ssm::add(random({6, 35}, 3, DType::f64, 0, 2), -1.0)), t);
    Tensor a0 = random({6, 35}, 4, t), b0 = random({35}, 5, t), r = random({6, 35}, 6, t);
    auto run = [&](DType dt, Device d) {
      Tensor a = as(a0, dt, d).set_requires_grad(true), b = as(b0, dt, d).set_requires_grad(true);
      Tensor y = ssm::where(as(cond0, dt, d), a, b);
      Tensor yv = as(y, dt);
      ssm::backward(y, as(r, dt, d));
      return std::vector<Tensor>{yv, a.grad(), b.grad()};
    };
    auto ref = run(DType::f64, Device::cpu()), naive = run(naive_dtype(t), Device::cpu()), ours = run(t, gpu());
    for (int k = 0; k < 3; ++k) EXPECT_TRUE(close_to_reference(ours[k], round_to(naive[k], t), ref[k], t)) << k;
  }
}

const DType kAllTypes[] = {DType::f32, DType::f64, DType::bf16, DType::i32, DType::i64};

// fill_ into a strided view of a base with known values: the view is written, nothing else.
TEST_F(CudaElementwise, FillStridedViewEveryDtype) {
  for (DType t : kAllTypes) {
    Tensor base = random({9, 13}, 7, t, -50, 50);
    Tensor cpu = as(base, t), dev = as(base, t, gpu());
    fill_(cpu.transpose(0, 1).narrow(0, 2, 7), -3.25);
    fill_(dev.transpose(0, 1).narrow(0, 2, 7), -3.25);
    EXPECT_TRUE(same_values(dev, cpu)) << dtype_name(t);
    Tensor full = ssm::full({5, 3}, 2.5, t, gpu());
    EXPECT_TRUE(same_values(full, ssm::full({5, 3}, 2.5, t))) << dtype_name(t);
  }
}

// copy_/to(dtype) between every pair of dtypes, strided source into a strided destination
// pre-filled with NaN-free sentinel values (cast is exact: bit-identical to the CPU).
TEST_F(CudaElementwise, CastEveryDtypePairStrided) {
  for (DType src : kAllTypes)
    for (DType dst : kAllTypes) {
      Tensor s0 = random({11, 6}, 8, src, -100, 100);
      Tensor d0 = random({7, 11}, 9, dst, -5, 5);
      Tensor sc = as(s0, src), sg = as(s0, src, gpu());
      Tensor dc = as(d0, dst), dg = as(d0, dst, gpu());
      copy_(dc.narrow(0, 1, 6).transpose(0, 1), sc);
      copy_(dg.narrow(0, 1, 6).transpose(0, 1), sg);
      EXPECT_TRUE(same_values(dg, dc)) << dtype_name(src) << " -> " << dtype_name(dst);
      EXPECT_TRUE(same_values(ssm::to(sg.transpose(0, 1), dst), ssm::to(sc.transpose(0, 1), dst)))
          << dtype_name(src) << " -> " << dtype_name(dst) << " (to)";
    }
  // Broadcast source.
  Tensor row = random({13}, 10, DType::f32);
  Tensor dc = Tensor::zeros({4, 13}), dg = Tensor::zeros({4, 13}, DType::f32, gpu());
  copy_(dc, row);
  copy_(dg, as(row, DType::f32, gpu()));
  EXPECT_TRUE(same_values(dg, dc));
}

TEST_F(CudaElementwise, DeviceRoundTripAndContiguousAreExact) {
  for (DType t : kAllTypes) {
    Tensor x = random({4, 5, 6, 7}, 11, t, -9, 9);
    Tensor g = ssm::to(x, gpu());
    EXPECT_EQ(g.device(), gpu());
    EXPECT_TRUE(same_values(ssm::to(g, Device::cpu()), x)) << dtype_name(t);
    Tensor p = ssm::contiguous(g.permute({2, 0, 3, 1}));
    EXPECT_TRUE(p.is_contiguous());
    EXPECT_TRUE(same_values(p, x.permute({2, 0, 3, 1}))) << dtype_name(t);
    // to(device) of a non-contiguous view.
    EXPECT_TRUE(same_values(ssm::to(g.transpose(1, 3), Device::cpu()), x.transpose(1, 3))) << dtype_name(t);
  }
}

TEST_F(CudaElementwise, InPlaceAxpyAndScale) {
  for (DType t : kFloatTypes) {
    Tensor d0 = random({33, 17}, 12, t), s0 = random({17}, 13, t);
    auto run = [&](DType dt, Device dev) {
      Tensor d = as(d0, dt, dev);
      add_(d, as(s0, dt, dev), -0.75);        // broadcast source
      add_(d.transpose(0, 1), as(d0, dt, dev).transpose(0, 1), 2.0);  // strided, in place
      mul_(d, 1.5);
      return d;
    };
    EXPECT_TRUE(close_to_reference(run(t, gpu()), round_to(run(naive_dtype(t), Device::cpu()), t),
                                   run(DType::f64, Device::cpu()), t, test::gpu::chain_eps(t, 3)));
  }
}

TEST_F(CudaElementwise, EmptyAndZeroDimTensors) {
  Tensor e = Tensor::empty({0, 5}, DType::f32, gpu());
  Tensor y = ssm::exp(e);
  EXPECT_EQ(y.shape(), (Dims{0, 5}));
  Tensor s = ssm::add(Tensor::scalar(2.0, DType::f32, gpu()), Tensor::scalar(0.5, DType::f32, gpu()));
  EXPECT_EQ(s.dim(), 0);
  EXPECT_DOUBLE_EQ(s.item(), 2.5);
}

// Every output element is written: a NaN-filled destination is fully overwritten.
TEST_F(CudaElementwise, PoisonedOutputsAreFullyWritten) {
  for (DType t : kFloatTypes) {
    Tensor x = as(random({1031, 7}, 14, t), t, gpu());
    Tensor dst = ssm::full({7, 1031}, std::nan(""), t, gpu());
    copy_(dst, x.transpose(0, 1));
    EXPECT_TRUE(test::gpu::all_finite(dst)) << dtype_name(t);
    EXPECT_TRUE(test::gpu::all_finite(ssm::silu(x.transpose(0, 1)))) << dtype_name(t);
    EXPECT_TRUE(test::gpu::all_finite(ssm::add(x, x))) << dtype_name(t);
  }
}

TEST_F(CudaElementwise, ErrorsNameOpAndDevices) {
  Tensor a = Tensor::zeros({2, 3}, DType::f32, gpu()), b = Tensor::zeros({2, 3});
  try {
    ssm::add(a, b);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("cuda:0"), std::string::npos) << m;
    EXPECT_NE(m.find("cpu"), std::string::npos) << m;
  }
  Tensor i = Tensor::zeros({3}, DType::i32, gpu());
  EXPECT_THROW(ssm::exp(i), Error);
}

}  // namespace
}  // namespace ssm
