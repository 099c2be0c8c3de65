#!/usr/bin/env bash
# Installs everything randyGPT-C needs from Debian's packages, then configures and builds it.
# Usage: scripts/setup.sh [--with-torch] [--build-dir DIR] [cmake options...]
set -euo pipefail
cd "$(dirname "$0")/.."

with_torch=0
build_dir=build
cmake_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --with-torch) with_torch=1 ;;
    --build-dir) build_dir="$2"; shift ;;
    *) cmake_args+=("$1") ;;
  esac
  shift
done

packages=(build-essential cmake pkg-config
          libopenblas-dev libblis-dev libblis-openmp-dev
          libbenchmark-dev libcmocka-dev libjansson-dev
          libopenmpi-dev openmpi-bin clang libclang-rt-14-dev
          fortunes python3-matplotlib)
[ "$with_torch" = 1 ] && packages+=(python3-torch)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "${cmake_args[@]}"
cmake --build "$build_dir" -j "$(nproc)"
