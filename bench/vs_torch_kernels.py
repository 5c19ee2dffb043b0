#!/usr/bin/env python3
"""Peer timings for the CUDA backend benchmark (issue: CUDA backend): the same shapes as
tests/cuda/perf_test.cpp (CudaPerf.*), timed with torch in the same device call.

    build-gpu/tests/ssm_test_cuda --gtest_filter='CudaPerf*' && python3 bench/vs_torch_kernels.py

Timing: CUDA events around 20 repetitions after 5 warm-ups, median of 5 such rounds."""
import torch


def bench(fn, reps=20, rounds=5):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(rounds):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(reps):
            fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / reps / 1e3)
    return sorted(times)[len(times) // 2]


def main():
    dev = "cuda"
    print(f"[ torch ] {torch.__version__} on {torch.cuda.get_device_name()}")
    x = torch.randn(2**28, device=dev)
    y = torch.empty_like(x)
    t = bench(lambda: y.copy_(x))
    ceiling = 2 * x.numel() * 4 / t / 1e9
    print(f"[ torch ] copy f32 2^28                    {ceiling:8.1f} GB/s (read + write)")
    for dt, n, name in [(torch.bfloat16, 4096, "bf16"), (torch.float32, 4096, "f32 "), (torch.float64, 2048, "f64 ")]:
        a = torch.randn(n, n, device=dev, dtype=dt)
        b = torch.randn(n, n, device=dev, dtype=dt)
        torch.backends.cuda.matmul.allow_tf32 = False
        t = bench(lambda: torch.matmul(a, b.t()))
        print(f"[ torch ] GEMM {name} {n}^3 (a·bᵀ)               {2 * n**3 / t / 1e12:8.1f} TFLOP/s")
    a = torch.randn(4096, 4096, device=dev)
    b = torch.randn(4096, 4096, device=dev)
    torch.backends.cuda.matmul.allow_tf32 = True
    t = bench(lambda: torch.matmul(a, b.t()))
    print(f"[ torch ] GEMM f32 4096^3 with TF32 allowed     {2 * 4096**3 / t / 1e12:8.1f} TFLOP/s")
    # Memory-bound references for later ssm benchmarks: RMSNorm, cross-entropy, fused AdamW.
    h = torch.randn(16384, 4096, device=dev, dtype=torch.bfloat16)
    w = torch.ones(4096, device=dev, dtype=torch.bfloat16)
    t = bench(lambda: torch.nn.functional.rms_norm(h, (4096,), w, 1e-5))
    print(f"[ torch ] rms_norm bf16 16384x4096           {2 * h.numel() * 2 / t / 1e9:8.1f} GB/s")
    logits = torch.randn(8192, 50304, device=dev, dtype=torch.bfloat16)
    tgt = torch.randint(0, 50304, (8192,), device=dev)
    t = bench(lambda: torch.nn.functional.cross_entropy(logits, tgt))
    print(f"[ torch ] cross_entropy fwd bf16 8192x50304  {logits.numel() * 2 / t / 1e9:8.1f} GB/s (logits read once)")
    params = [torch.randn(4096, 4096, device=dev, requires_grad=True) for _ in range(8)]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = torch.optim.AdamW(params, lr=1e-3, fused=True)
    t = bench(opt.step)
    print(f"[ torch ] fused AdamW step, 134M fp32 params   {t * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()
