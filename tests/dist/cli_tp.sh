#!/usr/bin/env bash
# cli_tp.sh MPIEXEC SSM_BIN
#
# The CLI end to end under mpirun: `mpirun -np 2 ssm train RECIPE parallel.tp=2` trains,
# prints the recipe once (rank 0), checkpoints with one shard per rank; `ssm resume` in one
# process (parallel.tp=1) continues from that checkpoint; a layout the model cannot split
# fails on every rank with a one-line error naming the recipe key, exit non-zero; ranks
# started with different overrides are stopped at start-up.
set -u
MPIEXEC=$1
BIN=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; echo "---- output ----"; cat "$work/out.log"; exit 1; }
cat > "$work/r.yaml" <<EOF
name: cli-tp
model: {family: mamba2, d_model: 16, n_layers: 2, headdim: 8, d_state: 8, n_groups: 2, chunk_size: 16}
data: {kind: synthetic, task: induction, synthetic_vocab: 16}
train: {steps: 10, batch_size: 4, seq_len: 32, eval_every: 5, eval_batches: 2, log_every: 1, threads: 1}
checkpoint: {every: 5}
logging: {run_dir: $work/run, console: plain, tensorboard: false}
EOF

"$MPIEXEC" -np 2 --oversubscribe "$BIN" train "$work/r.yaml" parallel.tp=2 > "$work/out.log" 2>&1 \
  || fail "mpirun -np 2 ssm train ... parallel.tp=2 exited non-zero"
grep -q "layout: dp 1 × tp 2" "$work/out.log" || fail "no layout line"
grep -q "done: 10 steps" "$work/out.log" || fail "no summary line"
[ "$(grep -c '# resolved recipe' "$work/out.log")" -eq 1 ] || fail "the recipe must be printed once (rank 0)"
[ "$(grep -c '"loss"' "$work/run/metrics.jsonl")" -eq 10 ] || fail "metrics.jsonl must hold 10 training steps"
[ "$(cat "$work/run/checkpoints/latest")" = "step_00000010" ] || fail "latest must name step_00000010"
for r in 0 1; do
  [ -f "$work/run/checkpoints/step_00000010/rank_0000$r.h5" ] || fail "no shard of rank $r"
done

"$BIN" resume "$work/run" train.steps=14 parallel.tp=1 > "$work/out.log" 2>&1 \
  || fail "ssm resume in one process exited non-zero"
grep -q "resumed from .*step_00000010 at step 10" "$work/out.log" || fail "not resumed from step 10"
grep -q "done: 4 more steps" "$work/out.log" || fail "the resumed run did not train 4 steps"

if "$MPIEXEC" -np 2 --oversubscribe "$BIN" train "$work/r.yaml" --quiet parallel.tp=2 model.n_groups=1 \
    logging.run_dir="$work/bad" > "$work/out.log" 2>&1; then
  fail "an indivisible layout must fail"
fi
grep -q "ssm: error (rank [01] of 2): .*n_groups" "$work/out.log" \
  || fail "the error must name model.n_groups"
# MPMD launch: rank 1 gets an extra override.
if "$MPIEXEC" --oversubscribe -np 1 "$BIN" train "$work/r.yaml" --quiet logging.run_dir="$work/mixed" \
    : -np 1 "$BIN" train "$work/r.yaml" --quiet logging.run_dir="$work/mixed" optim.lr=1e-3 > "$work/out.log" 2>&1; then
  fail "ranks with different recipes must fail"
fi
grep -q "the recipe differs across ranks: rank 1 has hash" "$work/out.log" || fail "the mismatch must be reported"
echo "ok"
