#!/usr/bin/env bash
# kill_rank.sh MPIEXEC SSM_BIN
#
# `mpirun -np 2 ssm train` on a tiny recipe that would run for minutes; once training has
# started, rank 1 is SIGKILLed (a crashed process, an OOM kill). Passes when the job ends
# non-zero within 60 s and its output names rank 1 (mpirun's report of the dead process, or
# the survivor's collective watchdog: "No answer from rank 1").
set -u
MPIEXEC=$1
BIN=$2
LIMIT=60
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/r.yaml" <<EOF
name: kill-rank
model: {family: mamba2, d_model: 16, n_layers: 2, headdim: 8, d_state: 8, n_groups: 2, chunk_size: 16}
data: {kind: synthetic, task: induction, synthetic_vocab: 16}
train: {steps: 1000000, batch_size: 4, seq_len: 32, eval_every: 0, log_every: 1, threads: 1}
logging: {run_dir: $work/run, console: plain, tensorboard: false}
EOF
# A tag in the environment finds this job's rank 1 among the machine's processes.
tag="ssm-kill-rank-$$-$RANDOM"
SSM_TEST_TAG=$tag "$MPIEXEC" -np 2 --oversubscribe "$BIN" train "$work/r.yaml" --quiet parallel.tp=2 \
  > "$work/out.log" 2>&1 &
job=$!
for _ in $(seq 1 600); do
  [ -s "$work/run/metrics.jsonl" ] && break
  kill -0 "$job" 2>/dev/null || break
  sleep 0.1
done
if [ ! -s "$work/run/metrics.jsonl" ]; then
  echo "FAIL: training never started"; cat "$work/out.log"; kill -9 "$job" 2>/dev/null; exit 1
fi
victim=""
for env in /proc/[0-9]*/environ; do
  vars=$( { tr '\0' '\n' < "$env"; } 2>/dev/null ) || continue
  if grep -qx "SSM_TEST_TAG=$tag" <<< "$vars" && grep -qx "OMPI_COMM_WORLD_RANK=1" <<< "$vars"; then
    victim=$(basename "$(dirname "$env")")
  fi
done
if [ -z "$victim" ]; then
  echo "FAIL: cannot find rank 1 of the job"; kill -9 "$job" 2>/dev/null; exit 1
fi
t0=$(date +%s)
echo "killing rank 1 (pid $victim)"
kill -9 "$victim"
while kill -0 "$job" 2>/dev/null; do
  if [ $(( $(date +%s) - t0 )) -gt $LIMIT ]; then
    echo "FAIL: the job was still running $LIMIT s after rank 1 died"; cat "$work/out.log"
    kill -TERM "$job" 2>/dev/null; sleep 2; kill -9 "$job" 2>/dev/null; exit 1
  fi
  sleep 0.2
done
wait "$job"
rc=$?
dt=$(( $(date +%s) - t0 ))
echo "---- output (exit $rc after $dt s) ----"; tail -n 20 "$work/out.log"; echo "----"
if [ "$rc" -eq 0 ]; then echo "FAIL: the job exited 0 although rank 1 died"; exit 1; fi
if ! grep -Eq "process rank 1 .*exited on signal|No answer from rank 1" "$work/out.log"; then
  echo "FAIL: the output does not name rank 1"; exit 1
fi
echo "ok: exit $rc after $dt s"
