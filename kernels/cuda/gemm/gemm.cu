// cuBLASLt GEMM with a cached plan per problem, plus the tiled fallback kernel (see gemm.h).
#include <cublasLt.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "kernels/cuda/common/math.cuh"
#include "kernels/cuda/gemm/gemm.h"

namespace ssm::kernels::cuda {
namespace {

// ---- fallback: a 16x16 shared-memory tiled GEMM -------------------------------------------
//   for b, i, j:  C[b][i][j] = alpha * sum_k op(A)[i][k] * op(B)[k][j] + beta * C[b][i][j] + bias[j]
constexpr int kTile = 16;
constexpr int64_t kMaxGridZ = 65535;

template <class T>
__global__ void __launch_bounds__(kTile* kTile)
    gemm_tiled_kernel(GemmParams p, const T* bias, int64_t batch0) {
  using A = acc_t<T>;
  __shared__ A as[kTile][kTile + 1];
  __shared__ A bs[kTile][kTile + 1];
  const int64_t bi = batch0 + blockIdx.z;
  const T* a = static_cast<const T*>(p.a) + bi * p.stride_a;
  const T* b = static_cast<const T*>(p.b) + bi * p.stride_b;
  T* c = static_cast<T*>(p.c) + bi * p.stride_c;
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t i = int64_t(blockIdx.y) * kTile + ty, j = int64_t(blockIdx.x) * kTile + tx;
  A acc = 0;
  for (int64_t k0 = 0; k0 < p.K; k0 += kTile) {
    int64_t ai = int64_t(blockIdx.y) * kTile + ty, ak = k0 + tx;  // as[ty][tx] = op(A)[ai][ak]
    int64_t bk = k0 + ty, bj = int64_t(blockIdx.x) * kTile + tx;  // bs[ty][tx] = op(B)[bk][bj]
    as[ty][tx] = (ai < p.M && ak < p.K) ? load_acc(a + (p.trans_a ? ak * p.lda + ai : ai * p.lda + ak)) : A(0);
    bs[ty][tx] = (bk < p.K && bj < p.N) ? load_acc(b + (p.trans_b ? bj * p.ldb + bk : bk * p.ldb + bj)) : A(0);
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kTile; ++k) acc += as[ty][k] * bs[k][tx];
    __syncthreads();
  }
  if (i >= p.M || j >= p.N) return;
  T* out = c + i * p.ldc + j;
  A v = A(p.alpha) * acc;
  if (p.beta != 0.0) v += A(p.beta) * load_acc(out);
  if (bias) v += load_acc(bias + j);
  store_acc(out, v);
}

// C[b][i][j] += bias[j], for a cuBLASLt product whose bias could not go in the epilogue.
template <class T>
__global__ void bias_add_kernel(GemmParams p, const T* bias) {
  const int64_t n = p.batch * p.M * p.N;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < n; t += int64_t(gridDim.x) * blockDim.x) {
    int64_t j = t % p.N, r = t / p.N, i = r % p.M, bi = r / p.M;
    T* out = static_cast<T*>(p.c) + bi * p.stride_c + i * p.ldc + j;
    store_acc(out, load_acc(out) + load_acc(bias + j));
  }
}

template <class T>
Status run_tiled(const GemmParams& p, const void* bias, cudaStream_t s) {
  dim3 block(kTile, kTile);
  for (int64_t b0 = 0; b0 < p.batch; b0 += kMaxGridZ) {
    dim3 grid(unsigned((p.N + kTile - 1) / kTile), unsigned((p.M + kTile - 1) / kTile),
              unsigned(std::min(kMaxGridZ, p.batch - b0)));
    gemm_tiled_kernel<T><<<grid, block, 0, s>>>(p, static_cast<const T*>(bias), b0);
    Status st = Status::last_launch("gemm fallback kernel launch");
    if (!st.ok()) return st;
  }
  return Status::success();
}

template <class T>
Status run_bias_add(const GemmParams& p, const void* bias, cudaStream_t s) {
  int64_t n = p.batch * p.M * p.N;
  unsigned blocks = unsigned(std::min<int64_t>((n + 255) / 256, 65536));
  bias_add_kernel<T><<<blocks, 256, 0, s>>>(p, static_cast<const T*>(bias));
  return Status::last_launch("gemm bias kernel launch");
}

template <class F>
Status dispatch(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::bf16: return f(bf16{});
    case DType::f64: return f(double{});
    default: return {"dtype dispatch", "unsupported dtype for a CUDA GEMM (expected f32, bf16 or f64)", -1};
  }
}

// ---- cuBLASLt plans ---------------------------------------------------------------------------

Status lt_status(cublasStatus_t st, const char* call) {
  if (st == CUBLAS_STATUS_SUCCESS) return {};
  return {call, cublasLtGetStatusString(st), int(st)};
}
#define SSM_LT_TRY(expr)                                        \
  do {                                                          \
    cublasStatus_t ssm_lt_st_ = (expr);                         \
    if (ssm_lt_st_ != CUBLAS_STATUS_SUCCESS) return lt_status(ssm_lt_st_, #expr); \
  } while (0)

// Largest power of two (<= 256) dividing the pointer and every stride in bytes: what
// cuBLASLt calls the alignment of a matrix.
int64_t alignment(const void* ptr, int64_t ld, int64_t batch_stride, int64_t batch, int64_t esize) {
  uint64_t bits = uint64_t(reinterpret_cast<uintptr_t>(ptr)) | uint64_t(ld * esize) | 256u;
  if (batch > 1) bits |= uint64_t(batch_stride * esize);
  return int64_t(bits & (~bits + 1));
}

using Key = std::array<int64_t, 19>;
struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = 1469598103934665603ull;
    for (int64_t v : k) h = (h ^ uint64_t(v)) * 1099511628211ull;
    return size_t(h);
  }
};

struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;  // cuBLASLt's A (= our B), B (= our A), C = D
  cublasLtMatmulAlgo_t algo{};
  bool found = false;      // false: use the tiled fallback
  bool epilogue_bias = false;
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

cudaDataType_t cuda_type(DType t) {
  return t == DType::f64 ? CUDA_R_64F : t == DType::bf16 ? CUDA_R_16BF : CUDA_R_32F;
}

Status make_layout(cublasLtMatrixLayout_t* l, cudaDataType_t dt, int64_t rows, int64_t cols, int64_t ld,
                   int64_t batch, int64_t stride) {
  SSM_LT_TRY(cublasLtMatrixLayoutCreate(l, dt, uint64_t(rows), uint64_t(cols), ld));
  if (batch > 1) {
    int32_t count = int32_t(batch);
    SSM_LT_TRY(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
    SSM_LT_TRY(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                sizeof(stride)));
  }
  return {};
}

// Builds descriptors and asks the heuristic for one algorithm. A non-success status means
// cuBLASLt cannot run this problem as described (unsupported type/epilogue combination,
// layout it rejects, no algorithm): the caller then uses the tiled fallback, which is
// always correct, only slower.
Status make_plan(cublasLtHandle_t h, DType t, const GemmParams& p, bool bias, bool tf32, const int64_t* align,
                 size_t ws_bytes, Plan* plan) {
  const cudaDataType_t dt = cuda_type(t);
  const bool f64 = t == DType::f64;
  cublasComputeType_t ct = f64 ? CUBLAS_COMPUTE_64F
                           : (t == DType::f32 && tf32) ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                       : CUBLAS_COMPUTE_32F;
  SSM_LT_TRY(cublasLtMatmulDescCreate(&plan->op, ct, f64 ? CUDA_R_64F : CUDA_R_32F));
  cublasOperation_t opa = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt's A is our B
  cublasOperation_t opb = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  SSM_LT_TRY(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
  SSM_LT_TRY(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
  if (bias) {
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    SSM_LT_TRY(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    SSM_LT_TRY(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &dt, sizeof(dt)));
    plan->epilogue_bias = true;
  }
  // Column-major view: D (N x M) = opA(B) (N x K) · opB(A) (K x M).
  Status s = make_layout(&plan->la, dt, p.trans_b ? p.K : p.N, p.trans_b ? p.N : p.K, p.ldb, p.batch, p.stride_b);
  if (s.ok()) s = make_layout(&plan->lb, dt, p.trans_a ? p.M : p.K, p.trans_a ? p.K : p.M, p.lda, p.batch, p.stride_a);
  if (s.ok()) s = make_layout(&plan->lc, dt, p.N, p.M, p.ldc, p.batch, p.stride_c);
  if (!s.ok()) return s;

  cublasLtMatmulPreference_t pref = nullptr;
  SSM_LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
  uint64_t ws = ws_bytes;
  uint32_t al_a = uint32_t(align[1]), al_b = uint32_t(align[0]), al_c = uint32_t(align[2]);
  cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c));
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulAlgoGetHeuristic(h, plan->op, plan->la, plan->lb, plan->lc, plan->lc, pref, 1, &result,
                                        &returned);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS) return lt_status(st, "cublasLtMatmulAlgoGetHeuristic");
  plan->found = returned > 0;
  if (plan->found) plan->algo = result.algo;
  return {};
}

}  // namespace

struct CublasLtGemm::Impl {
  std::mutex mu;
  cublasLtHandle_t handle = nullptr;
  std::unordered_map<Key, std::unique_ptr<Plan>, KeyHash> plans;
};

CublasLtGemm::CublasLtGemm() : impl_(std::make_unique<Impl>()) {}

CublasLtGemm::~CublasLtGemm() {
  impl_->plans.clear();
  if (impl_->handle) cublasLtDestroy(impl_->handle);
}

Status CublasLtGemm::run(DType t, const GemmParams& p, const GemmOptions& o, void* workspace, size_t workspace_bytes,
                         cudaStream_t stream) {
  if (p.M == 0 || p.N == 0 || p.batch == 0) return {};
  const int64_t es = dtype_size(t);
  auto fallback = [&]() {
    return dispatch(t, [&](auto tag) { return run_tiled<decltype(tag)>(p, o.bias, stream); });
  };
  if (p.K == 0) return fallback();  // C = beta·C (+ bias): no product to compute
  // The bias goes in the epilogue when it is 16-byte aligned; otherwise a second small kernel adds it.
  const bool bias_epilogue = o.bias && alignment(o.bias, 0, 0, 1, es) >= 16;
  const int64_t align[3] = {alignment(p.a, p.lda, p.stride_a, p.batch, es),
                            alignment(p.b, p.ldb, p.stride_b, p.batch, es),
                            alignment(p.c, p.ldc, p.stride_c, p.batch, es)};
  const bool tf32 = o.allow_tf32 && t == DType::f32;
  Key key = {int64_t(t), p.trans_a, p.trans_b, bias_epilogue, tf32, p.batch, p.M, p.N, p.K, p.lda, p.ldb, p.ldc,
             p.batch > 1 ? p.stride_a : 0, p.batch > 1 ? p.stride_b : 0, p.batch > 1 ? p.stride_c : 0,
             align[0], align[1], align[2], int64_t(workspace_bytes)};

  std::lock_guard<std::mutex> lock(impl_->mu);
  if (!impl_->handle) SSM_LT_TRY(cublasLtCreate(&impl_->handle));
  auto it = impl_->plans.find(key);
  if (it == impl_->plans.end()) {
    auto plan = std::make_unique<Plan>();
    if (!make_plan(impl_->handle, t, p, bias_epilogue, tf32, align, workspace_bytes, plan.get()).ok())
      plan->found = false;  // see make_plan: fall back
    it = impl_->plans.emplace(key, std::move(plan)).first;
  }
  Plan& plan = *it->second;
  if (!plan.found) return fallback();
  if (plan.epilogue_bias)
    SSM_LT_TRY(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &o.bias, sizeof(o.bias)));
  double alpha64 = p.alpha, beta64 = p.beta;
  float alpha32 = float(p.alpha), beta32 = float(p.beta);
  const void* alpha = t == DType::f64 ? static_cast<const void*>(&alpha64) : &alpha32;
  const void* beta = t == DType::f64 ? static_cast<const void*>(&beta64) : &beta32;
  cublasStatus_t st = cublasLtMatmul(impl_->handle, plan.op, alpha, p.b, plan.la, p.a, plan.lb, beta, p.c, plan.lc,
                                     p.c, plan.lc, &plan.algo, workspace, workspace_bytes, stream);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED) {  // the heuristic's pick declined at run time: remember, fall back
    plan.found = false;
    return fallback();
  }
  if (st != CUBLAS_STATUS_SUCCESS) return lt_status(st, "cublasLtMatmul");
  if (o.bias && !bias_epilogue) return dispatch(t, [&](auto tag) { return run_bias_add<decltype(tag)>(p, o.bias, stream); });
  return {};
}

}  // namespace ssm::kernels::cuda
