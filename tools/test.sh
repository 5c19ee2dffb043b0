#!/usr/bin/env bash
# Sets up (tools/setup.sh) and runs the whole test suite with CTest. Multi-rank tests run
# through mpirun on CPU ranks; GPU tests skip with a reason when no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 900 "$@"
