#!/usr/bin/env bash
# GPU check: builds the CUDA backend for sm_90 (Release, Ninja) in build-gpu, runs the CUDA
# test binary (its CudaPerf tests print bandwidth and GEMM rates), runs it again in the
# SSM_CUDA_SYNC=1 debug mode, then under compute-sanitizer memcheck. Full logs go to $OUT
# (default ./gpu-check-logs); the perf lines and a short table are printed last.
#
#   bash tools/gpu-check.sh                   # from the repository root, on a machine with a GPU
#   GTEST_FILTER='CudaGemm.*' bash tools/gpu-check.sh
#
# Exit status: 0 when every step passed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check-logs}
mkdir -p "$OUT"
JOBS=${JOBS:-$(nproc)}
BUDGET_S=${BUDGET_S:-560}  # keep the whole check inside a 10-minute slot
FILTER=${GTEST_FILTER:-*}
BIN=build-gpu/tests/ssm_test_cuda
start=$SECONDS
rows=()
status=0

# step NAME LOG CMD...: runs CMD with output to $OUT/LOG and records the result.
step() {
  local name=$1 log=$2
  shift 2
  local t0=$SECONDS
  "$@" >"$OUT/$log" 2>&1
  local rc=$?
  rows+=("$name|$rc|$((SECONDS - t0))s|$log")
  [ $rc -eq 0 ] || status=1
  return $rc
}

gtest_summary() {  # "P passed, F failed, S skipped" from a gtest log
  local log=$OUT/$1
  local p f s
  p=$(grep -oP '^\[  PASSED  \] \K[0-9]+' "$log" | tail -1)
  f=$(grep -oP '^\[  FAILED  \] \K[0-9]+(?= tests?, listed)' "$log" | tail -1)
  s=$(grep -oP '^\[  SKIPPED \] \K[0-9]+(?= tests?, listed)' "$log" | tail -1)
  echo "${p:-0} passed, ${f:-0} failed, ${s:-0} skipped"
}

{
  nvidia-smi
  nvcc --version
  cmake --version
  compute-sanitizer --version
} >"$OUT/env.txt" 2>&1

# CMake before 3.26 does not know nvcc's C++20 flag; tell it.
extra=()
cmake_ver=$(cmake --version | head -1 | awk '{print $3}')
if [ "$(printf '%s\n' 3.26 "$cmake_ver" | sort -V | head -1)" != 3.26 ]; then
  extra+=(-DCMAKE_CUDA20_STANDARD_COMPILE_OPTION=-std=c++20 -DCMAKE_CUDA20_EXTENSION_COMPILE_OPTION=-std=c++20)
fi

if step configure configure.log cmake -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSSM_CUDA=ON \
  -DSSM_CUDA_ARCHS=90 "${extra[@]}" &&
  step build build.log ninja -C build-gpu -j"$JOBS" ssm_test_cuda; then
  step tests tests.log timeout 240 "$BIN" --gtest_filter="$FILTER" --gtest_output=xml:"$OUT/tests.xml"
  step sync_mode tests_sync.log env SSM_CUDA_SYNC=1 timeout 120 "$BIN" --gtest_filter="$FILTER:-*CudaPerf*"
  # Memcheck every test except those that make CUDA calls fail on purpose (they would be
  # reported as API errors): out-of-memory and the SSM_CUDA_CHECK message test; and the
  # perf smoke test, whose timings mean nothing under instrumentation.
  left=$((BUDGET_S - (SECONDS - start)))
  if [ $left -gt 30 ]; then
    step memcheck memcheck.log timeout $left compute-sanitizer --tool memcheck --error-exitcode 99 \
      "$BIN" --gtest_filter="$FILTER:-*OutOfMemory*:*CudaCheckNamesTheCallAndError*:*CudaPerf*"
  else
    rows+=("memcheck|skipped|0s|no time left")
    status=1
  fi
  # Shared-memory races in our own block reductions and the tiled GEMM fallback.
  left=$((BUDGET_S - (SECONDS - start)))
  if [ $left -gt 30 ]; then
    step racecheck racecheck.log timeout $left compute-sanitizer --tool racecheck --error-exitcode 99 \
      "$BIN" --gtest_filter="CudaReduce.*:CudaGemm.EmptyInner*:CudaGemm.StridedAndMisaligned*:CudaConv1d.*"
  fi
fi

echo
[ -f "$OUT/tests.log" ] && grep -h '^\[ perf \]' "$OUT/tests.log"
echo "== gpu-check: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1), logs in $OUT"
printf '%-10s %-8s %-7s %s\n' step rc time detail
for r in "${rows[@]}"; do
  IFS='|' read -r name rc t log <<<"$r"
  detail=$log
  case $name in
    configure | build) [ "$rc" = 0 ] || detail="$(grep -m3 -iE 'error|FAILED' "$OUT/$log" | cut -c1-150 | tr '\n' ' ')" ;;
    tests | sync_mode) detail="$(gtest_summary "$log")" ;;
    memcheck | racecheck) [ "$log" = "$name.log" ] && detail="$(grep -m1 -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/$log") | $(gtest_summary "$log")" ;;
  esac
  printf '%-10s %-8s %-7s %s\n' "$name" "$rc" "$t" "$detail"
done
for log in tests.log tests_sync.log memcheck.log racecheck.log; do
  [ -f "$OUT/$log" ] && grep -E '^\[  FAILED  \] [A-Za-z]' "$OUT/$log" | sort -u | sed "s/^/$log: /" | head -20
done
exit $status
