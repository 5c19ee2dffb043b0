#!/usr/bin/env python3
"""Logit parity between ssm and Hugging Face transformers (Mamba, Mamba-2, Jamba).

  hf_parity.py ids   --vocab V --batch B --len L --out ids.txt [--seed S]
      random token ids, one sequence per line (what `ssm eval-logits --ids` reads)
  hf_parity.py make  --family mamba|mamba2|jamba --out DIR [--seed S] [--variant NAME]
      a tiny randomly initialised transformers model, every parameter perturbed (so norms,
      D, biases... are not at their init values), saved with save_pretrained(DIR)
  hf_parity.py check --hf-dir DIR --ids ids.txt --logits ssm.npy [--tol 1e-4]
      loads DIR with AutoModelForCausalLM.from_pretrained (float32, CPU, eval; any missing,
      unexpected or mismatched tensor fails), computes logits on the ids and compares them
      with ssm's; prints one line and exits 1 when max|diff| / max|logit| > tol

tools/hf-parity.sh drives both directions for the three families. The relative error is
taken against the largest logit magnitude, not per element, so logits near zero do not
dominate.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the device machines have no internet
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np


def cmd_ids(a):
    rng = np.random.default_rng(a.seed)
    ids = rng.integers(0, a.vocab, size=(a.batch, a.len))
    with open(a.out, "w") as f:
        for row in ids:
            f.write(" ".join(str(int(x)) for x in row) + "\n")


def read_ids(path):
    with open(path) as f:
        rows = [[int(x) for x in line.split()] for line in f if line.strip()]
    return np.array(rows, dtype=np.int64)


# Small but not degenerate: several chunks for Mamba-2 (L > chunk_size, not a multiple),
# grouped-query attention, MoE on a Mamba and on an attention layer for Jamba.
CONFIGS = {
    "mamba": dict(vocab_size=64, hidden_size=32, state_size=8, num_hidden_layers=2, expand=2, conv_kernel=4,
                  use_bias=False, use_conv_bias=True, tie_word_embeddings=True),
    "mamba-bias-untied": dict(vocab_size=64, hidden_size=32, state_size=8, num_hidden_layers=2, expand=2,
                              conv_kernel=3, use_bias=True, use_conv_bias=True, tie_word_embeddings=False,
                              time_step_rank=3),
    "mamba2": dict(vocab_size=64, hidden_size=32, state_size=16, num_hidden_layers=2, expand=2, num_heads=8,
                   head_dim=8, n_groups=1, conv_kernel=4, chunk_size=8, use_bias=False, use_conv_bias=True,
                   tie_word_embeddings=True),
    "mamba2-g2": dict(vocab_size=64, hidden_size=32, state_size=16, num_hidden_layers=2, expand=2, num_heads=8,
                      head_dim=8, n_groups=2, conv_kernel=4, chunk_size=8, use_bias=True, use_conv_bias=True,
                      tie_word_embeddings=False, time_step_limit=[0.0, 0.5]),
    "jamba": dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, attn_layer_period=4, attn_layer_offset=1, expert_layer_period=2,
                  expert_layer_offset=1, num_experts=4, num_experts_per_tok=2, mamba_d_state=8, mamba_d_conv=4,
                  mamba_expand=2, use_mamba_kernels=False, tie_word_embeddings=False),
}


def cmd_make(a):
    import torch
    import transformers as tf

    variant = a.variant or a.family
    cfg_cls = {"mamba": tf.MambaConfig, "mamba2": tf.Mamba2Config, "jamba": tf.JambaConfig}[a.family]
    lm_cls = {"mamba": tf.MambaForCausalLM, "mamba2": tf.Mamba2ForCausalLM, "jamba": tf.JambaForCausalLM}[a.family]
    torch.manual_seed(a.seed)
    model = lm_cls(cfg_cls(**CONFIGS[variant])).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.05 * torch.randn_like(p))  # off the init values (ones, zeros, log(1..N))
    model.save_pretrained(a.out)
    print(f"saved a random {lm_cls.__name__} ({variant}) to {a.out}")


def fix_grouped_norm(model, tf):
    """transformers before ~5.2x normalised Mamba-2's gated RMSNorm over all of d_inner instead
    of per group, so outputs differ whenever n_groups > 1 (anchors.md section 2.11). Probes
    the installed version; if its norm is not per group, makes it so (in this process only)
    and returns a note, so that the rest of the model is still compared."""
    import types

    import torch
    import torch.nn.functional as F

    cfg = model.config
    if cfg.model_type != "mamba2" or cfg.n_groups == 1:
        return None
    norm = model.backbone.layers[0].mixer.norm
    E, G = norm.weight.shape[0], cfg.n_groups

    def grouped(self, hidden_states, gate=None):
        dtype = hidden_states.dtype
        h = hidden_states.float()
        if gate is not None:
            h = h * F.silu(gate.float())
        h = h.view(*h.shape[:-1], G, E // G)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * h.view(*h.shape[:-2], E).to(dtype)

    x, z = torch.randn(3, E), torch.randn(3, E)
    with torch.no_grad():
        if torch.allclose(norm(x, z), grouped(norm, x, z), rtol=1e-5, atol=1e-6):
            return None
    for layer in model.backbone.layers:
        layer.mixer.norm.forward = types.MethodType(grouped, layer.mixer.norm)
    return (f"note: transformers {tf.__version__} normalises over all of d_inner when n_groups > 1 "
            f"(anchors.md 2.11); compared with its gated norm made per group")


def cmd_check(a):
    import torch
    import transformers as tf

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    kw = {"dtype": torch.float32} if int(tf.__version__.split(".")[0]) >= 5 else {"torch_dtype": torch.float32}
    model, info = tf.AutoModelForCausalLM.from_pretrained(a.hf_dir, output_loading_info=True, **kw)
    problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys",
                                                               "error_msgs")}
    if problems:
        print(f"FAIL {a.hf_dir}: transformers reported loading problems: {problems}")
        return 1
    model = model.eval()
    ids = torch.from_numpy(read_ids(a.ids))
    ours = np.load(a.logits).astype(np.float32)
    note = fix_grouped_norm(model, tf)
    with torch.no_grad():
        hf = model(input_ids=ids).logits.float().numpy()
    if hf.shape != ours.shape:
        print(f"FAIL {a.hf_dir}: logits shape {ours.shape} (ssm) vs {hf.shape} (transformers)")
        return 1
    diff = np.abs(hf.astype(np.float64) - ours.astype(np.float64))
    scale = float(np.abs(hf).max())
    rel = float(diff.max()) / max(scale, 1e-30)
    ok = rel <= a.tol and np.isfinite(ours).all()
    arch = json.load(open(os.path.join(a.hf_dir, "config.json"))).get("architectures", ["?"])[0]
    print(f"{'PASS' if ok else 'FAIL'} {arch} {a.hf_dir}: max|diff| {diff.max():.3e}  max|logit| {scale:.3e}  "
          f"rel {rel:.3e} (tol {a.tol:g})  transformers {tf.__version__} torch {torch.__version__}"
          + (f"  [{note}]" if note else ""))
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("ids")
    s.add_argument("--vocab", type=int, required=True)
    s.add_argument("--batch", type=int, default=2)
    s.add_argument("--len", type=int, default=21)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    s = sub.add_parser("make")
    s.add_argument("--family", choices=["mamba", "mamba2", "jamba"], required=True)
    s.add_argument("--variant", choices=sorted(CONFIGS))
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    s = sub.add_parser("check")
    s.add_argument("--hf-dir", required=True)
    s.add_argument("--ids", required=True)
    s.add_argument("--logits", required=True)
    s.add_argument("--tol", type=float, default=1e-4)
    a = p.parse_args()
    return {"ids": cmd_ids, "make": cmd_make, "check": cmd_check}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
