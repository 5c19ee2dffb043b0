#!/usr/bin/env python3
"""Reads what `ssm export` wrote with the reference safetensors library (numpy backend).

  check_safetensors.py ARTIFACT_DIR

ARTIFACT_DIR holds one exported directory per family (written by the gtest HfArtifacts.Write)
and expected.json: {family: {tensor: {shape, dtype, sum}}}. For each directory: the
safetensors files load with safetensors.numpy.load_file (a sharded export through its
index), names, shapes and dtypes are exactly the expected ones, values agree (sum), every
file's __metadata__ has format "pt", and config.json is strict JSON (no Infinity or NaN).
Prints 'N passed, N failed'.
"""
import json
import os
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

DTYPES = {"F32": "float32", "F64": "float64", "I32": "int32", "I64": "int64", "BF16": None}


def strict_json(path):
    def bad(token):
        raise ValueError(f"{path}: non-standard JSON constant {token}")
    with open(path) as f:
        return json.load(f, parse_constant=bad)


def bf16_values(path, name):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        b, e = header[name]["data_offsets"]
        f.seek(8 + n + b)
        u16 = np.frombuffer(f.read(e - b), dtype="<u2")
    return (u16.astype(np.uint32) << 16).view(np.float32).reshape(header[name]["shape"])


def check_dir(d, want):
    errors = []
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(index):
        weight_map = strict_json(index)["weight_map"]
        files = sorted(set(weight_map.values()))
    else:
        weight_map, files = None, ["model.safetensors"]
    tensors = {}
    for name in files:
        path = os.path.join(d, name)
        with safe_open(path, framework="numpy") as f:
            if (f.metadata() or {}).get("format") != "pt":
                errors.append(f"{path}: __metadata__ format is {f.metadata()!r}, want 'pt'")
            kinds = {k: f.get_slice(k).get_dtype() for k in f.keys()}
            if "BF16" in kinds.values():
                # numpy has no bfloat16: shapes and dtypes from the library, values decoded here
                loaded = {k: (f.get_tensor(k) if kinds[k] != "BF16" else bf16_values(path, k)) for k in f.keys()}
                for k in loaded:
                    if kinds[k] == "BF16" and list(loaded[k].shape) != list(f.get_slice(k).get_shape()):
                        errors.append(f"{path}: {k} decodes to shape {loaded[k].shape}")
            else:
                loaded = load_file(path)
        for k, v in loaded.items():
            tensors[k] = (v, kinds[k])
        if weight_map is not None:
            for k in loaded:
                if weight_map.get(k) != name:
                    errors.append(f"{path}: tensor {k} is not mapped to this file by the index")
    if sorted(tensors) != sorted(want):
        errors.append(f"{d}: tensors {sorted(set(tensors) ^ set(want))} differ from the expected set")
    for k, (v, kind) in tensors.items():
        if k not in want:
            continue
        w = want[k]
        if list(v.shape) != w["shape"] or kind != w["dtype"]:
            errors.append(f"{d}: {k} is {kind}{list(v.shape)}, want {w['dtype']}{w['shape']}")
        if DTYPES.get(kind) and str(v.dtype) != DTYPES[kind]:
            errors.append(f"{d}: {k} loads as numpy {v.dtype}")
        s = float(np.asarray(v, dtype=np.float64).sum())
        if abs(s - w["sum"]) > 1e-6 * max(1.0, abs(w["sum"])):
            errors.append(f"{d}: {k} sums to {s}, ssm wrote {w['sum']}")
    cfg = strict_json(os.path.join(d, "config.json"))
    for key in ("tie_word_embeddings", "pad_token_id", "bos_token_id", "eos_token_id"):
        if key not in cfg:
            errors.append(f"{d}/config.json: '{key}' is not written explicitly")
    if cfg["model_type"] in ("mamba", "mamba2") and "use_bias" not in cfg:
        errors.append(f"{d}/config.json: 'use_bias' is not written explicitly")
    return errors


def main():
    art = sys.argv[1]
    expected = strict_json(os.path.join(art, "expected.json"))
    passed = failed = 0
    for family, want in sorted(expected.items()):
        try:
            errors = check_dir(os.path.join(art, family), want)
        except Exception as e:  # a loader exception is a failure, reported with its reason
            errors = [f"{family}: {type(e).__name__}: {e}"]
        for e in errors:
            print("FAIL", e)
        if errors:
            failed += 1
        else:
            passed += 1
            print(f"ok {family}: {len(want)} tensors")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
