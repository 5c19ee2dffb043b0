#include "framework/ops/attention.h"

#include "framework/autograd/tape.h"
#include "framework/ops/dispatch.h"
#include "framework/ops/view.h"
#include "kernels/cpu/attention.h"

namespace ssm {
namespace {

// The kernel reads any (batch, row, head) strides but wants the head dim unit-stride.
Tensor unit_last_stride(const Tensor& x) {
  if (x.numel() == 0 || x.stride(-1) == 1) return x;
  NoGradGuard raw;
  return contiguous(x);
}

// The (batch, row, head) element strides of a (B, L, H, P) tensor, into a Params' fields.
void set_strides(const Tensor& t, int64_t& batch, int64_t& row, int64_t& head) {
  batch = t.stride(0);
  row = t.stride(1);
  head = t.stride(2);
}

void check_args(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  const char* name = "attention";
  ops_detail::check_same_device(name, {&q, &k, &v, &o.seq_idx_q, &o.seq_idx_k});
  ops_detail::check_same_dtype(name, {&q, &k, &v});
  ops_detail::check_float(name, q);
  SSM_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
            "attention: q, k, v must be (B, L, H, P), got q {}, k {}, v {}", q.describe(), k.describe(), v.describe());
  SSM_CHECK(k.shape() == v.shape(), "attention: k {} and v {} must have the same shape (B, Lk, Hkv, P)", k.describe(),
            v.describe());
  SSM_CHECK(q.size(0) == k.size(0), "attention: batch of q {} differs from k {}", q.describe(), k.describe());
  SSM_CHECK(q.size(3) == k.size(3), "attention: head dim of q {} differs from k {}", q.describe(), k.describe());
  SSM_CHECK(k.size(2) > 0 && q.size(2) % k.size(2) == 0,
            "attention: query heads of q {} must be a multiple of the kv heads of k {}", q.describe(), k.describe());
  SSM_CHECK(o.seq_idx_q.defined() == o.seq_idx_k.defined(),
            "attention: seq_idx_q and seq_idx_k must be given together (got only {})",
            o.seq_idx_q.defined() ? "seq_idx_q" : "seq_idx_k");
  if (o.seq_idx_q.defined()) {
    const Dims want_q{q.size(0), q.size(1)}, want_k{k.size(0), k.size(1)};
    SSM_CHECK(o.seq_idx_q.dtype() == DType::i32 && o.seq_idx_q.shape() == want_q,
              "attention: seq_idx_q {} must be i32 {} (B, Lq) for q {}", o.seq_idx_q.describe(), want_q.str(),
              q.describe());
    SSM_CHECK(o.seq_idx_k.dtype() == DType::i32 && o.seq_idx_k.shape() == want_k,
              "attention: seq_idx_k {} must be i32 {} (B, Lk) for k {}", o.seq_idx_k.describe(), want_k.str(),
              k.describe());
  }
}

}  // namespace

Tensor attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const AttentionOptions& opts) {
  const char* name = "attention";
  check_args(q_in, k_in, v_in, opts);
  if (!q_in.device().is_cpu()) ops_detail::no_cuda_kernel(name, q_in);
  const Tensor q = unit_last_stride(q_in), k = unit_last_stride(k_in), v = unit_last_stride(v_in);
  Tensor sq, sk;  // (B, Lq), (B, Lk) i32, unit stride along L
  if (opts.seq_idx_q.defined()) {
    sq = unit_last_stride(opts.seq_idx_q);
    sk = unit_last_stride(opts.seq_idx_k);
  }
  const int64_t B = q.size(0), Lq = q.size(1), Hq = q.size(2), P = q.size(3);
  const int64_t Lk = k.size(1), Hkv = k.size(2);
  Tensor out = Tensor::empty({B, Lq, Hq, P}, q.dtype(), q.device());
  Tensor lse = Tensor::empty({B, Hq, Lq}, q.dtype(), q.device());  // saved for backward

  kernels::AttentionParams p;
  p.batch = B;
  p.len_q = Lq;
  p.len_k = Lk;
  p.heads_q = Hq;
  p.heads_kv = Hkv;
  p.head_dim = P;
  p.q_offset = opts.q_offset.value_or(Lk - Lq);
  p.softmax_scale = opts.scale;
  set_strides(q, p.q_batch_stride, p.q_row_stride, p.q_head_stride);
  set_strides(k, p.k_batch_stride, p.k_row_stride, p.k_head_stride);
  set_strides(v, p.v_batch_stride, p.v_row_stride, p.v_head_stride);
  set_strides(out, p.o_batch_stride, p.o_row_stride, p.o_head_stride);
  p.q = q.raw_data();
  p.k = k.raw_data();
  p.v = v.raw_data();
  p.out = out.raw_data();
  p.lse = lse.raw_data();
  if (sq.defined()) {
    p.seq_idx_q = sq.data<int32_t>();
    p.seq_idx_k = sk.data<int32_t>();
    p.seq_idx_q_batch_stride = sq.stride(0);
    p.seq_idx_k_batch_stride = sk.stride(0);
  }
  if (out.numel() > 0)
    ops_detail::dispatch_float(name, q.dtype(), [&]<class T>() { kernels::cpu::attention_fwd<T>(p); });

  if (autograd::needs_grad({&q_in, &k_in, &v_in})) {
    // p's pointers refer to the captured tensors (q, k, v, out, lse, sq, sk), which keep
    // their storage alive until the backward ran.
    autograd::record(name, {&q_in, &k_in, &v_in}, {&out}, [p, q, k, v, out, lse, sq, sk](autograd::BackwardCtx& g) {
      const Tensor dout = unit_last_stride(g.grad_out(0));          // (B, Lq, Hq, P)
      Tensor dq = Tensor::empty(q.shape(), q.dtype(), q.device());  // (B, Lq, Hq, P)
      Tensor dk = Tensor::empty(k.shape(), k.dtype(), k.device());  // (B, Lk, Hkv, P)
      Tensor dv = Tensor::empty(v.shape(), v.dtype(), v.device());  // (B, Lk, Hkv, P)
      kernels::AttentionBwdParams b;
      static_cast<kernels::AttentionParams&>(b) = p;
      set_strides(dout, b.do_batch_stride, b.do_row_stride, b.do_head_stride);
      set_strides(dq, b.dq_batch_stride, b.dq_row_stride, b.dq_head_stride);
      set_strides(dk, b.dk_batch_stride, b.dk_row_stride, b.dk_head_stride);
      set_strides(dv, b.dv_batch_stride, b.dv_row_stride, b.dv_head_stride);
      b.dout = dout.raw_data();
      b.dq = dq.raw_data();
      b.dk = dk.raw_data();
      b.dv = dv.raw_data();
      // The kernel overwrites every element of dq, dk and dv (zeros where nothing is seen).
      if (dq.numel() > 0 || dk.numel() > 0)
        ops_detail::dispatch_float("attention_bwd", q.dtype(), [&]<class T>() { kernels::cpu::attention_bwd<T>(b); });
      g.set(0, dq);
      g.set(1, dk);
      g.set(2, dv);
    });
  }
  return out;
}

// ---- KvCache ------------------------------------------------------------------------

KvCache KvCache::make(int64_t batch, int64_t capacity, int64_t heads_kv, int64_t head_dim, DType dtype, Device device) {
  SSM_CHECK(batch >= 0 && capacity >= 0 && heads_kv > 0 && head_dim > 0,
            "KvCache::make: invalid sizes B={} capacity={} Hkv={} P={}", batch, capacity, heads_kv, head_dim);
  KvCache c;
  c.k = Tensor::zeros({batch, capacity, heads_kv, head_dim}, dtype, device);
  c.v = Tensor::zeros({batch, capacity, heads_kv, head_dim}, dtype, device);
  return c;
}

void KvCache::append(const Tensor& k_new, const Tensor& v_new) {
  SSM_CHECK(k.defined(), "KvCache::append: the cache was not created (use KvCache::make)");
  SSM_CHECK(!autograd::needs_grad({&k_new, &v_new}),
            "KvCache::append: k_new {} / v_new {} require grad; the cache is not differentiable, decode "
            "under NoGradGuard",
            k_new.describe(), v_new.describe());
  SSM_CHECK(k_new.dim() == 4 && k_new.shape() == v_new.shape() && k_new.size(0) == k.size(0) &&
                k_new.size(2) == k.size(2) && k_new.size(3) == k.size(3),
            "KvCache::append: k_new {} and v_new {} must both be (B, Ln, Hkv, P) matching the cache {}",
            k_new.describe(), v_new.describe(), k.describe());
  const int64_t n = k_new.size(1);
  SSM_CHECK(length + n <= capacity(), "KvCache::append: {} positions + {} new exceed the capacity {} of {}", length, n,
            capacity(), k.describe());
  copy_(k.narrow(1, length, n), k_new);
  copy_(v.narrow(1, length, n), v_new);
  length += n;
}

Tensor KvCache::attend(const Tensor& q, double scale) const {
  SSM_CHECK(k.defined(), "KvCache::attend: the cache was not created (use KvCache::make)");
  SSM_CHECK(q.dim() == 4 && q.size(1) <= length,
            "KvCache::attend: q {} must be (B, Lq, Hq, P) with Lq <= the {} cached positions", q.describe(), length);
  AttentionOptions o;
  o.scale = scale;
  o.q_offset = length - q.size(1);
  return attention(q, k.narrow(1, 0, length), v.narrow(1, 0, length), o);
}

}  // namespace ssm
