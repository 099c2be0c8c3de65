#!/usr/bin/env bash
# Installs what randyGPT-C needs, builds it and runs the test suite with ctest.
# Usage: scripts/test.sh [--sanitize address,undefined|thread] [ctest arguments...]
#   --sanitize builds into build-asan / build-tsan instead of build.
set -euo pipefail
cd "$(dirname "$0")/.."

sanitize=""
if [ "${1:-}" = "--sanitize" ]; then
  sanitize="$2"
  shift 2
fi

case "$sanitize" in
  "") build_dir=build ;;
  thread) build_dir=build-tsan ;;
  address,undefined|address|undefined) build_dir=build-asan ;;
  *) echo "test.sh: unknown sanitizer set '$sanitize' (address,undefined or thread)" >&2; exit 2 ;;
esac

# --with-torch: the tests run the PyTorch baseline script too.
if [ -n "$sanitize" ]; then
  scripts/setup.sh --with-torch --build-dir "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DRANDYGPT_SANITIZE="$sanitize"
else
  scripts/setup.sh --with-torch --build-dir "$build_dir"
fi
ctest --test-dir "$build_dir" --output-on-failure "$@"
