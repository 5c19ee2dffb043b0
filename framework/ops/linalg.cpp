#include "framework/ops/linalg.h"

#include <atomic>

#include "framework/autograd/tape.h"
#include "framework/ops/dispatch.h"
#include "framework/ops/elementwise.h"
#include "framework/ops/reduce.h"
#include "framework/ops/view.h"
#include "kernels/cpu/gemm.h"

#if defined(SSM_WITH_CUDA)
#include <array>
#include <mutex>
#include <unordered_map>

#include "kernels/cuda/gemm/gemm.h"
#endif

namespace ssm {
namespace {

std::atomic<bool> g_allow_tf32{false};

#if defined(SSM_WITH_CUDA)
// Per device: the cuBLASLt runner (plan cache) and one workspace per stream, kept for
// reuse. Never destroyed: cuBLASLt must not be torn down after the CUDA runtime at exit.
struct CudaGemmState {
  kernels::cuda::CublasLtGemm gemm;
  std::mutex mu;
  std::unordered_map<cudaStream_t, Tensor> workspaces;
};

CudaGemmState& cuda_gemm_state(int device) {
  static std::mutex mu;
  static std::array<CudaGemmState*, 64> states{};
  SSM_CHECK(device >= 0 && device < int(states.size()), "matmul: CUDA device index {} out of range", device);
  std::lock_guard<std::mutex> lock(mu);
  if (!states[size_t(device)]) states[size_t(device)] = new CudaGemmState();
  return *states[size_t(device)];
}

kernels::cuda::Status cuda_gemm(DType t, const kernels::GemmParams& p, const Tensor* bias, Device d,
                                cudaStream_t stream) {
  CudaGemmState& st = cuda_gemm_state(d.index);
  void* ws = nullptr;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    Tensor& w = st.workspaces[stream];
    if (!w.defined())
      w = Tensor::empty(Dims{int64_t(kernels::cuda::CublasLtGemm::kWorkspaceBytes / 8)}, DType::i64, d);
    ws = w.raw_data();
  }
  kernels::cuda::GemmOptions o;
  o.bias = bias ? bias->raw_data() : nullptr;
  o.allow_tf32 = g_allow_tf32.load(std::memory_order_relaxed);
  return st.gemm.run(t, p, o, ws, kernels::cuda::CublasLtGemm::kWorkspaceBytes, stream);
}
#endif

// A matrix operand as the GEMM kernel wants it: unit stride along one of the last two
// axes (else copied), and batch axes collapsible to a single stride.
struct MatOperand {
  Tensor t;
  bool trans = false;
  int64_t ld = 0, batch_stride = 0;
};

// The batch axes (all but the last two) address memory as one strided axis when each
// non-trivial axis steps exactly over the next inner one. Returns that stride, or -1.
int64_t collapsed_batch_stride(const Tensor& t) {
  int64_t stride = 0, expect = -1;
  for (int i = t.dim() - 3; i >= 0; --i) {
    if (t.shape()[i] == 1) continue;
    if (expect >= 0 && t.strides()[i] != expect) return -1;
    if (expect < 0) stride = t.strides()[i];
    expect = t.strides()[i] * t.shape()[i];
  }
  return stride;
}

MatOperand prepare(const Tensor& x, bool trans) {
  MatOperand m{x, trans};
  int r = x.dim();
  int64_t rows = x.shape()[r - 2], cols = x.shape()[r - 1];
  bool row_major = x.strides()[r - 1] == 1 && x.strides()[r - 2] >= std::max<int64_t>(cols, 1);
  bool col_major = x.strides()[r - 2] == 1 && x.strides()[r - 1] >= std::max<int64_t>(rows, 1);
  if (!(row_major || col_major) || collapsed_batch_stride(x) < 0) {
    NoGradGuard raw;
    m.t = contiguous(x);
    row_major = true;
  }
  if (row_major) {
    m.ld = m.t.strides()[r - 2];
  } else {
    m.trans = !trans;  // a column-major (rows, cols) matrix is a row-major (cols, rows) one
    m.ld = m.t.strides()[r - 1];
  }
  m.batch_stride = collapsed_batch_stride(m.t);
  return m;
}

// `bias` (N), optional and CUDA only: added to every row of the result by the GEMM epilogue.
Tensor matmul_raw(const Tensor& a, const Tensor& b, bool ta, bool tb, const Tensor* bias = nullptr) {
  const char* name = "matmul";
  ops_detail::check_same_device(name, {&a, &b});
  ops_detail::check_same_dtype(name, {&a, &b});
  ops_detail::check_float(name, a);
  SSM_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: operands must be at least 2-D, got {} and {}", a.describe(),
            b.describe());
  int ra = a.dim(), rb = b.dim();
  int64_t M = ta ? a.shape()[ra - 1] : a.shape()[ra - 2];
  int64_t K = ta ? a.shape()[ra - 2] : a.shape()[ra - 1];
  int64_t Kb = tb ? b.shape()[rb - 1] : b.shape()[rb - 2];
  int64_t N = tb ? b.shape()[rb - 2] : b.shape()[rb - 1];
  SSM_CHECK(K == Kb, "matmul: inner dimensions differ: {}{} vs {}{}", a.describe(), ta ? " (transposed)" : "",
            b.describe(), tb ? " (transposed)" : "");
  SSM_CHECK(rb == 2 || rb == ra, "matmul: b must be 2-D or have a's batch dims: {} vs {}", a.describe(),
            b.describe());
  int64_t batch = 1;
  Dims out_shape;
  for (int i = 0; i < ra - 2; ++i) {
    if (rb > 2)
      SSM_CHECK(a.shape()[i] == b.shape()[i], "matmul: batch dims differ: {} vs {}", a.describe(), b.describe());
    batch *= a.shape()[i];
    out_shape.push_back(a.shape()[i]);
  }
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor c = Tensor::empty(out_shape, a.dtype(), a.device());
  MatOperand A = prepare(a, ta), B = prepare(b, tb);
  kernels::GemmParams p;
  p.batch = batch;
  p.M = M;
  p.N = N;
  p.K = K;
  p.trans_a = A.trans;
  p.trans_b = B.trans;
  p.lda = A.ld;
  p.ldb = B.ld;
  p.ldc = N;
  p.stride_a = A.batch_stride;
  p.stride_b = rb > 2 ? B.batch_stride : 0;
  p.stride_c = M * N;
  p.a = A.t.raw_data();
  p.b = B.t.raw_data();
  p.c = c.raw_data();
  if (a.device().is_cuda()) {
    SSM_CUDA_LAUNCH(name, a.device(), cuda_gemm(a.dtype(), p, bias, a.device(), stream));
    return c;
  }
  SSM_CHECK(bias == nullptr, "matmul: the fused bias is a CUDA path");
  ops_detail::dispatch_float(name, a.dtype(), [&]<class T>() { kernels::cpu::gemm<T>(p); });
  return c;
}

// linear() on CUDA with a bias: one GEMM whose epilogue adds the bias (saves a pass over
// the output), with its own backward.
Tensor linear_fused_bias(const Tensor& x, const Tensor& w, const Tensor& bias) {
  ops_detail::check_same_device("linear", {&x, &w, &bias});
  ops_detail::check_same_dtype("linear", {&x, &w, &bias});
  SSM_CHECK(bias.dim() == 1 && bias.size(0) == w.size(0), "linear: bias {} does not match weight {} (out, in)",
            bias.describe(), w.describe());
  const int64_t in = w.size(1), out = w.size(0);
  Tensor x2 = reshape(x, Dims{-1, in});  // x (..., in) -> (R, in)
  Tensor b = contiguous(bias);          // (out)
  Tensor y2 = matmul_raw(x2, w, false, true, &b);
  if (autograd::needs_grad({&x2, &w, &b}))
    autograd::record("linear", {&x2, &w, &b}, {&y2}, [x2, w](autograd::BackwardCtx& g) {
      const Tensor& dy = g.grad_out();  // (R, out)
      if (g.needs(0)) g.set(0, matmul(dy, w));                // (R, in)
      if (g.needs(1)) g.set(1, matmul(dy, x2, true, false));  // (out, in)
      if (g.needs(2)) g.set(2, sum(dy, {0}));                 // (out)
    });
  Dims out_shape = x.shape();
  out_shape[out_shape.size() - 1] = out;
  return reshape(y2, out_shape);
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  // A batched a times a shared 2-D b: fold the batch into M so dB needs no batch reduction.
  if (a.dim() > 2 && b.dim() == 2 && !ta) {
    Dims out = a.shape();
    Tensor y = matmul(reshape(a, Dims{-1, a.shape()[a.dim() - 1]}), b, false, tb);
    out[out.size() - 1] = y.shape()[1];
    return reshape(y, out);
  }
  if (a.dim() > 2 && b.dim() == 2) return matmul(a, expand(b, [&] {
                                                   Dims s = a.shape();
                                                   s[s.size() - 2] = b.shape()[0];
                                                   s[s.size() - 1] = b.shape()[1];
                                                   return s;
                                                 }()),
                                                 ta, tb);
  Tensor c = matmul_raw(a, b, ta, tb);
  if (autograd::needs_grad({&a, &b}))
    autograd::record("matmul", {&a, &b}, {&c}, [a, b, ta, tb](autograd::BackwardCtx& g) {
      const Tensor& dc = g.grad_out();
      if (g.needs(0)) g.set(0, ta ? matmul(b, dc, tb, true) : matmul(dc, b, false, !tb));
      if (g.needs(1)) g.set(1, tb ? matmul(dc, a, true, ta) : matmul(a, dc, !ta, false));
    });
  return c;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  SSM_CHECK(w.dim() == 2 && x.dim() >= 1 && x.shape()[x.dim() - 1] == w.shape()[1],
            "linear: input {} does not match weight {} (out, in)", x.describe(), w.describe());
  if (bias.defined() && x.device().is_cuda()) return linear_fused_bias(x, w, bias);
  Tensor x2 = x.dim() == 1 ? unsqueeze(x, 0) : x;
  Tensor y = matmul(x2, w, false, true);
  if (x.dim() == 1) y = squeeze(y, 0);
  if (bias.defined()) y = add(y, bias);
  return y;
}

void set_matmul_allow_tf32(bool on) { g_allow_tf32.store(on); }
bool matmul_allow_tf32() { return g_allow_tf32.load(); }

}  // namespace ssm
