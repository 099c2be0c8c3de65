#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/: the checkpoint reader, the corpus readers, the command-line
# parser) with clang, ASan and UBSan into build-fuzz, and runs each for SECONDS (default 20) from its
# committed seed corpus. A crash, leak, overflow or hang fails the run; its input is kept in
# build-fuzz/artifacts/ and the end of the fuzzer's log is printed.
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
build=build-fuzz

CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRANDYGPT_FUZZ=ON \
  -DRANDYGPT_TESTS=OFF >/dev/null
cmake --build "$build" --target fuzz -j "$(nproc)" >/dev/null

mkdir -p "$build/artifacts"
status=0
for target in fuzz_checkpoint fuzz_data fuzz_cmdline; do
  work="$build/corpus/$target"  # new inputs go here; the committed seeds stay as they are
  mkdir -p "$work"
  log="$build/$target.log"
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
     "$build/fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
     -artifact_prefix="$build/artifacts/$target-" "$work" "fuzz/corpus/$target" >"$log" 2>&1; then
    echo "$target: $(grep -E '^Done [0-9]+ runs' "$log" || echo done), no failure in ${seconds} s"
  else
    echo "$target: FAILED (input in $build/artifacts/, log $log):"
    grep -v -E '^(randygpt|fuzz): ' "$log" | tail -40
    status=1
  fi
done
exit "$status"
