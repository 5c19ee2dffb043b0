// CUDA reductions (sum, mean, max with argmax) vs the CPU reference, over shapes that hit
// each kernel: warp per row, block per row, and long rows split into chunks (two passes).
// Sums are judged against a long-double loop (the f64 CPU sum is itself as inexact as the
// GPU's); max values and gradients must equal the CPU's exactly.
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

class CudaReduce : public test::gpu::CudaTest {};

struct Case {
  Dims shape;
  std::vector<int> dims;
  bool keepdim;
};

std::vector<Case> cases() {
  return {{{5}, {}, false},                   // one short row: warp per row
          {{3, 1000}, {-1}, false},           // warp per row, 1000 columns
          {{7, 2049}, {1}, true},             // block per row
          {{2, 40000}, {1}, false},           // few long rows: 3 chunks + combine pass
          {{3000001}, {}, false},             // one very long row: 184 chunks
          {{4000, 3}, {0}, false},            // reduce the outer axis (permuted copy first)
          {{4000, 3}, {1}, false},            // many tiny rows
          {{1100, 1500}, {1}, false},         // many long rows: block per row, no split
          {{6, 5, 4}, {0, 2}, true}};         // several axes at once
}

// Row sums of the op's (kept, reduced) layout, left to right with accumulator Acc, then
// scaled: Acc = float (double for f64) is the naive same-precision loop; Acc = long double
// is the reference (64-bit mantissa: far more accurate than the f64 result it judges).
template <class Acc>
Tensor loop_sum(const Tensor& x, const Case& c, const Dims& out_shape, bool mean, DType out_dtype) {
  std::vector<bool> red(size_t(x.dim()), c.dims.empty());
  for (int d : c.dims) red[size_t(wrap_dim(d, x.dim()))] = true;
  std::vector<int> order;
  int64_t cols = 1;
  for (int i = 0; i < x.dim(); ++i)
    if (!red[size_t(i)]) order.push_back(i);
  for (int i = 0; i < x.dim(); ++i)
    if (red[size_t(i)]) {
      order.push_back(i);
      cols *= x.shape()[i];
    }
  std::vector<double> v = ssm::contiguous(x.permute(order)).to_vector();
  int64_t rows = cols ? int64_t(v.size()) / cols : 0;
  std::vector<double> out(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    Acc acc = 0;
    for (int64_t j = 0; j < cols; ++j) acc += Acc(v[size_t(r * cols + j)]);
    if (mean) acc *= Acc(1) / Acc(cols);
    out[size_t(r)] = double(acc);
  }
  return Tensor::from_vector(out, out_shape, out_dtype);
}

Tensor naive_sum(const Tensor& x, const Case& c, const Dims& out_shape, bool mean, DType t) {
  if (t == DType::f64) return loop_sum<double>(x, c, out_shape, mean, DType::f64);
  return round_to(loop_sum<float>(x, c, out_shape, mean, DType::f32), t);
}

const DType kFloatTypes[] = {DType::f32, DType::bf16, DType::f64};

TEST_F(CudaReduce, SumAndMeanMatchCpu) {
  uint64_t seed = 1;
  for (const Case& c : cases())
    for (DType t : kFloatTypes) {
      Tensor x = random(c.shape, ++seed, t, -1, 1);
      Tensor x64 = as(x, DType::f64), xg = as(x, t, gpu());
      for (bool mean : {false, true}) {
        Tensor cpu = mean ? ssm::mean(x64, c.dims, c.keepdim) : ssm::sum(x64, c.dims, c.keepdim);
        Tensor ours = mean ? ssm::mean(xg, c.dims, c.keepdim) : ssm::sum(xg, c.dims, c.keepdim);
        Tensor ref = loop_sum<long double>(x64, c, cpu.shape(), mean, DType::f64);
        Tensor naive = naive_sum(x64, c, cpu.shape(), mean, t);
        EXPECT_TRUE(close_to_reference(ours, naive, ref, t))
            << (mean ? "mean " : "sum ") << c.shape.str() << " dims " << c.dims.size();
      }
    }
}

// Max is exact in any precision: values and the gradient (routed to the first maximum) must
// be identical to the CPU's, also with the many ties that bf16 rounding creates.
TEST_F(CudaReduce, MaxAndArgmaxGradientAreExact) {
  uint64_t seed = 100;
  for (const Case& c : cases())
    for (DType t : kFloatTypes) {
      Tensor x = random(c.shape, ++seed, t, -1, 1);
      auto run = [&](DType dt, Device d) {
        Tensor xl = as(x, dt, d).set_requires_grad(true);
        Tensor y = ssm::max(xl, c.dims, c.keepdim);
        Tensor yv = as(y, dt);
        ssm::backward(y, as(random(y.shape(), 7, t), dt, d));
        return std::vector<Tensor>{yv, xl.grad()};
      };
      auto ref = run(DType::f64, Device::cpu());
      auto ours = run(t, gpu());
      EXPECT_TRUE(same_values(ours[0], ref[0])) << "max " << c.shape.str() << " " << dtype_name(t);
      EXPECT_TRUE(same_values(ours[1], ref[1])) << "max grad " << c.shape.str() << " " << dtype_name(t);
    }
}

TEST_F(CudaReduce, NonContiguousInputAndBackward) {
  for (DType t : kFloatTypes) {
    Tensor x = random({33, 65}, 3, t), r = random({65}, 4, t);
    auto run = [&](DType dt, Device d) {
      Tensor xl = as(x, dt, d).set_requires_grad(true);
      Tensor y = ssm::mean(ssm::transpose(xl, 0, 1), {1});  // (65)
      Tensor yv = as(y, dt);
      ssm::backward(y, as(r, dt, d));
      return std::vector<Tensor>{yv, xl.grad()};
    };
    auto ref = run(DType::f64, Device::cpu()), naive = run(naive_dtype(t), Device::cpu()), ours = run(t, gpu());
    EXPECT_TRUE(close_to_reference(ours[0], round_to(naive[0], t), ref[0], t));
    EXPECT_TRUE(close_to_reference(ours[1], round_to(naive[1], t), ref[1], t));
  }
}

// Fixed reduction trees: the same input gives bit-identical sums, run after run.
TEST_F(CudaReduce, SumsAreDeterministic) {
  for (Dims shape : {Dims{2, 40000}, Dims{3000001}, Dims{1100, 1500}}) {
    Tensor x = as(random(shape, 9, DType::f32), DType::f32, gpu());
    std::vector<double> first = ssm::sum(x, {-1}).to_vector();
    for (int rep = 0; rep < 3; ++rep) EXPECT_EQ(ssm::sum(x, {-1}).to_vector(), first) << shape.str();
  }
}

TEST_F(CudaReduce, MaxOverEmptyAxisIsAnError) {
  Tensor x = Tensor::zeros({3, 0}, DType::f32, gpu());
  EXPECT_THROW(ssm::max(x, {1}), Error);
  Tensor s = ssm::sum(x, {1});  // a sum over nothing is 0
  EXPECT_EQ(s.to_vector(), (std::vector<double>{0, 0, 0}));
}

}  // namespace
}  // namespace ssm
