#!/usr/bin/env bash
# Logit parity between ssm and Hugging Face transformers, both directions, for Mamba, Mamba-2
# and Jamba (plus a variant of Mamba and Mamba-2 with biases, untied embeddings, a grouped
# norm and a dt clamp):
#   ssm -> HF: ssm trains a tiny model a few steps (weights off their init), `ssm export`,
#              transformers from_pretrained + forward vs `ssm eval-logits`
#   HF -> ssm: transformers makes a random tiny model and save_pretrained, `ssm import`,
#              `ssm eval-logits` vs transformers forward
#
#   tools/hf-parity.sh BUILD_DIR [WORK_DIR]
#   PYTHON=/path/to/venv/bin/python tools/hf-parity.sh build     # python with torch + transformers
#
# Prints a table and exits non-zero if any check fails (fp32 tolerance 1e-4 relative to the
# largest logit; see tools/hf_parity.py).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?usage: tools/hf-parity.sh BUILD_DIR [WORK_DIR]}"
work="${2:-$(mktemp -d -t ssm-hf-parity.XXXXXX)}"
ssm="$(cd "$build" && pwd)/tools/ssm"
py="${PYTHON:-python3}"
tol="${TOL:-1e-4}"
[ -x "$ssm" ] || { echo "hf-parity: no ssm binary at $ssm (build the 'ssm' target)" >&2; exit 2; }
"$py" -c 'import torch, transformers' 2>/dev/null || {
  echo "hf-parity: $py cannot import torch and transformers (set PYTHON=...)" >&2; exit 2; }
mkdir -p "$work"
cd "$work"

# The ssm side of each variant: the model section of a recipe (same shapes as hf_parity.py's).
model_yaml() {
  case "$1" in
    mamba) echo "{family: mamba, vocab_size: 64, d_model: 32, n_layers: 2, d_state: 8}" ;;
    mamba-bias-untied) echo "{family: mamba, vocab_size: 64, d_model: 32, n_layers: 2, d_state: 8, d_conv: 3,
        dt_rank: 3, proj_bias: true, tie_embeddings: false}" ;;
    mamba2) echo "{family: mamba2, vocab_size: 64, d_model: 32, n_layers: 2, d_state: 16, headdim: 8, n_groups: 1,
        chunk_size: 8}" ;;
    mamba2-g2) echo "{family: mamba2, vocab_size: 64, d_model: 32, n_layers: 2, d_state: 16, headdim: 8,
        n_groups: 2, chunk_size: 8, proj_bias: true, tie_embeddings: false, dt_limit: [0.0, 0.5]}" ;;
    jamba) echo "{family: jamba, vocab_size: 64, d_model: 32, n_layers: 4, d_state: 8, n_heads: 4, n_kv_heads: 2,
        intermediate_size: 48, attn_layer_period: 4, attn_layer_offset: 1, expert_layer_period: 2,
        expert_layer_offset: 1, num_experts: 4, num_experts_per_tok: 2, tie_embeddings: false}" ;;
  esac
}
family_of() { echo "${1%%-*}"; }

rows=()
fails=0
record() {  # variant direction logfile rc
  local line
  line="$(grep -E '^(PASS|FAIL)' "$3" | tail -1)"
  [ -n "$line" ] || line="FAIL (no result; see $work/$3)"
  [ "$4" -eq 0 ] || fails=$((fails + 1))
  rows+=("$(printf '%-18s %-10s %s' "$1" "$2" "$line")")
}

"$py" "$here/hf_parity.py" ids --vocab 64 --batch 2 --len 21 --seed 7 --out ids.txt || exit 2
for v in mamba mamba-bias-untied mamba2 mamba2-g2 jamba; do
  fam="$(family_of "$v")"
  # ssm -> HF
  cat > "$v.yaml" <<EOF
name: $v
model: $(model_yaml "$v")
data: {kind: synthetic, task: induction, synthetic_vocab: 16}
train: {steps: 3, batch_size: 2, seq_len: 32, eval_every: 0, log_every: 1}
optim: {lr: 1.0e-2, schedule: constant}
checkpoint: {every: 3}
logging: {run_dir: $work/run-$v, console: plain, tensorboard: false, jsonl: false}
EOF
  rm -rf "run-$v" "hf-$v"
  log="ssm2hf-$v.log"
  { "$ssm" train "$v.yaml" --quiet && "$ssm" export "run-$v" --out "hf-$v" &&
    "$ssm" eval-logits "run-$v" --ids ids.txt --out "ssm-$v.npy" &&
    "$py" "$here/hf_parity.py" check --hf-dir "hf-$v" --ids ids.txt --logits "ssm-$v.npy" --tol "$tol"; } > "$log" 2>&1
  record "$v" "ssm->HF" "$log" $?
  # HF -> ssm
  rm -rf "hfsrc-$v" "imp-$v"
  log="hf2ssm-$v.log"
  { "$py" "$here/hf_parity.py" make --family "$fam" --variant "$v" --seed 3 --out "hfsrc-$v" &&
    "$ssm" import "hfsrc-$v" --out "imp-$v" &&
    "$ssm" eval-logits "imp-$v" --ids ids.txt --out "imp-$v.npy" &&
    "$py" "$here/hf_parity.py" check --hf-dir "hfsrc-$v" --ids ids.txt --logits "imp-$v.npy" --tol "$tol"; } > "$log" 2>&1
  record "$v" "HF->ssm" "$log" $?
done

echo "hf-parity (work dir $work)"
printf '%s\n' "${rows[@]}"
total=${#rows[@]}
echo "$((total - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
