#include "framework/ops/random.h"

#include <cmath>
#include <vector>

#include "framework/autograd/tape.h"
#include "framework/ops/dispatch.h"
#include "framework/ops/elementwise.h"
#include "framework/ops/view.h"
#include "kernels/common/philox.h"

namespace ssm {

Tensor full(const Dims& shape, double value, DType dtype, Device device) {
  Tensor t = Tensor::empty(shape, dtype, device);
  fill_(t, value);
  return t;
}

Tensor ones(const Dims& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor zeros_like(const Tensor& x) { return Tensor::zeros(x.shape(), x.dtype(), x.device()); }
Tensor ones_like(const Tensor& x) { return ones(x.shape(), x.dtype(), x.device()); }

Tensor arange(int64_t n, DType dtype, Device device) {
  std::vector<double> v(size_t(std::max<int64_t>(n, 0)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = double(i);
  return Tensor::from_vector(v, Dims{int64_t(v.size())}, dtype, device);
}

namespace {

// Values are generated on the host from counters and moved to the device: initialisation
// is not a hot path, and this keeps CPU and GPU inits bit-identical.
template <class Gen>
Tensor generate(const Dims& shape, Rng& rng, DType dtype, Device device, Gen&& gen) {
  int64_t n = shape.numel();
  uint64_t base = rng.reserve(uint64_t(n));
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    kernels::Philox4 r = kernels::philox4x32(base + uint64_t(i), rng.stream(), rng.seed());
    v[size_t(i)] = gen(r);
  }
  return Tensor::from_vector(v, shape, dtype, device);
}

double uniform01(const kernels::Philox4& r) { return kernels::philox_uniform_f64(r.v[0], r.v[1]); }

}  // namespace

Tensor randn(const Dims& shape, Rng& rng, DType dtype, Device device) {
  return generate(shape, rng, dtype, device, [](const kernels::Philox4& r) {
    double u1 = kernels::philox_uniform_f64(r.v[0], r.v[1]);
    double u2 = kernels::philox_uniform_f64(r.v[2], r.v[3]);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  });
}

Tensor rand(const Dims& shape, Rng& rng, DType dtype, Device device) {
  return generate(shape, rng, dtype, device, uniform01);
}

Tensor uniform(const Dims& shape, double lo, double hi, Rng& rng, DType dtype, Device device) {
  return generate(shape, rng, dtype, device, [lo, hi](const kernels::Philox4& r) { return lo + (hi - lo) * uniform01(r); });
}

Tensor dropout(const Tensor& x, double p, Rng& rng, bool training) {
  SSM_CHECK(p >= 0.0 && p < 1.0, "dropout: probability {} must be in [0, 1)", p);
  if (!training || p == 0.0) return x;
  // keep-mask scaled by 1/(1-p), as a tensor of x's dtype; regenerated identically in backward.
  RngState at = rng.state();
  Dims shape = x.shape();
  DType dt = x.dtype();
  Device dev = x.device();
  auto mask_of = [shape, dt, dev, p](RngState s) {
    Rng r(s.seed, s.stream);
    r.set_state(s);
    double scale = 1.0 / (1.0 - p);
    return generate(shape, r, dt, dev, [p, scale](const kernels::Philox4& v) { return uniform01(v) > p ? scale : 0.0; });
  };
  Tensor mask = mask_of(at);
  rng.reserve(uint64_t(shape.numel()));
  Tensor y;
  {
    NoGradGuard raw;
    y = mul(x, mask);
  }
  if (autograd::needs_grad({&x}))
    autograd::record("dropout", {&x}, {&y}, [mask_of, at](autograd::BackwardCtx& g) {
      g.set(0, mul(g.grad_out(), mask_of(at)));
    });
  return y;
}

}  // namespace ssm
