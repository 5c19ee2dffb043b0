#!/usr/bin/env bash
# Installs the Debian packages ssm needs (DESIGN.md, "System dependencies") and configures
# + builds it in ./build. Safe to re-run: apt-get skips what is installed, ccache and ninja
# skip what is built.
#   tools/setup.sh            # Release build, CUDA when nvcc is found
#   SSM_CMAKE_ARGS="-DSSM_CUDA=OFF" tools/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(cmake ninja-build g++ pkg-config ccache libgtest-dev libgmock-dev libbenchmark-dev libyaml-cpp-dev
      libhdf5-dev libopenmpi-dev openmpi-bin libopenblas-dev nlohmann-json3-dev libcli11-dev libfmt-dev
      python3 python3-venv)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "ssm setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# nvcc is usually not on PATH by default; CMake enables CUDA when it is found.
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="/usr/local/cuda/bin:$PATH"

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release ${SSM_CMAKE_ARGS:-} >/dev/null
cmake --build build -j "$(nproc)"
