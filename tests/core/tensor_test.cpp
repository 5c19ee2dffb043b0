#include <gtest/gtest.h>

#include "framework/core/rng.h"
#include "framework/core/tensor.h"

namespace ssm {
namespace {

Tensor iota(const Dims& shape, DType dt = DType::f32) {
  std::vector<double> v(static_cast<size_t>(shape.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = double(i);
  return Tensor::from_vector(v, shape, dt);
}

TEST(Tensor, FactoriesAndMetadata) {
  Tensor t = Tensor::zeros({2, 3, 4}, DType::f64);
  EXPECT_EQ(t.dim(), 3);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.strides(), (Dims{12, 4, 1}));
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.nbytes(), 24u * 8u);
  EXPECT_EQ(t.size(-1), 4);
  EXPECT_EQ(t.describe(), "f64[2, 3, 4] cpu");
  for (double v : t.to_vector()) EXPECT_EQ(v, 0.0);
  Tensor s = Tensor::scalar(3.5);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item(), 3.5);
}

TEST(Tensor, AllDtypesRoundTrip) {
  for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::i32, DType::i64}) {
    Tensor t = Tensor::from_vector({1, -2, 3, 128}, {4}, dt);
    EXPECT_EQ(t.to_vector(), (std::vector<double>{1, -2, 3, 128})) << dtype_name(dt);
    EXPECT_EQ(t.element_size(), size_t(dtype_size(dt)));
  }
  // bf16 rounds to nearest even with 8 bits of mantissa.
  Tensor b = Tensor::from_vector({1.00390625, 257.0}, {2}, DType::bf16);
  EXPECT_EQ(b.to_vector(), (std::vector<double>{1.0, 256.0}));
}

TEST(Tensor, ViewsShareStorageAndAlias) {
  Tensor t = iota({3, 4});
  Tensor tt = t.transpose(0, 1);
  EXPECT_TRUE(tt.shares_storage(t));
  EXPECT_FALSE(tt.is_contiguous());
  EXPECT_EQ(tt.shape(), (Dims{4, 3}));
  EXPECT_EQ(tt.to_vector()[1], 4.0);  // tt[0][1] == t[1][0]
  // Writing through a view is visible in the base.
  Tensor row = t.narrow(0, 1, 1);
  row.data<float>()[2] = 100.f;
  EXPECT_EQ(t.to_vector()[6], 100.0);
  EXPECT_EQ(tt.to_vector()[2 * 3 + 1], 100.0);

  Tensor v = t.view({2, 6});
  EXPECT_TRUE(v.shares_storage(t));
  EXPECT_EQ(v.to_vector(), t.to_vector());
  EXPECT_EQ(t.view({-1}).shape(), (Dims{12}));
  EXPECT_THROW(tt.view({12}), Error);  // transposed memory cannot be flattened without a copy

  Tensor p = iota({2, 3, 4}).permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Dims{4, 2, 3}));
  EXPECT_EQ(p.to_vector()[1], 4.0);  // p[0][0][1] = x[0][1][0]

  Tensor e = iota({3}).unsqueeze(0).expand({4, 3});
  EXPECT_EQ(e.strides()[0], 0);
  EXPECT_EQ(e.to_vector()[10], 1.0);
  EXPECT_EQ(iota({2, 1, 3}).squeeze(1).shape(), (Dims{2, 3}));
  Tensor sel = iota({3, 4}).select(1, 2);
  EXPECT_EQ(sel.to_vector(), (std::vector<double>{2, 6, 10}));
}

TEST(Tensor, ViewOfNarrowedMemory) {
  Tensor t = iota({4, 6});
  Tensor n = t.narrow(1, 2, 3);  // (4, 3) with row stride 6
  EXPECT_EQ(n.view({4, 3, 1}).shape(), (Dims{4, 3, 1}));
  EXPECT_THROW(n.view({12}), Error);
  Tensor rows = t.narrow(0, 1, 2);  // contiguous rows
  EXPECT_EQ(rows.view({3, 4}).to_vector()[0], 6.0);
}

TEST(Tensor, ErrorsAreClear) {
  Tensor t = iota({3, 4});
  try {
    t.narrow(1, 2, 5);
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("narrow"), std::string::npos) << m;
    EXPECT_NE(m.find("f32[3, 4] cpu"), std::string::npos) << m;
    EXPECT_NE(m.find("framework/core/tensor.cpp:"), std::string::npos) << m;
  }
  EXPECT_THROW(t.data<double>(), Error);
  EXPECT_THROW(t.permute({0, 0}), Error);
  EXPECT_THROW(t.expand({5, 4}), Error);
  EXPECT_THROW(Device::parse("gpu:0"), Error);
  EXPECT_EQ(Device::parse("cuda:1").str(), "cuda:1");
  if (!cuda_compiled()) {
    try {
      Tensor::empty({2}, DType::f32, Device::cuda(0));
      FAIL();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("without CUDA support"), std::string::npos) << e.what();
    }
  }
}

TEST(Tensor, RawViewOfGradTensorIsRefused) {
  Tensor t = iota({2, 2});
  t.set_requires_grad(true);
  EXPECT_THROW(t.transpose(0, 1), Error);
  NoGradGuard ng;
  EXPECT_NO_THROW(t.transpose(0, 1));
}

TEST(Rng, StateAndForks) {
  Rng a(5);
  EXPECT_EQ(a.reserve(10), 0u);
  EXPECT_EQ(a.reserve(3), 10u);
  RngState s = a.state();
  Rng b(0);
  b.set_state(s);
  EXPECT_EQ(b.reserve(1), 13u);
  EXPECT_EQ(a.fork(2).stream(), 2u);
}

}  // namespace
}  // namespace ssm
