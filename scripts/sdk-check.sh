#!/usr/bin/env bash
# The plugin SDK end to end, as an outside developer meets it: install randyGPT-C into a temporary
# prefix, build examples/backend-template out of tree against it, then check and benchmark the result.
# Usage: scripts/sdk-check.sh [BUILD_DIR]   (BUILD_DIR: a configured and built tree, default build)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
[ -d "$build_dir" ] || { echo "sdk-check: no build directory '$build_dir' (run scripts/setup.sh)" >&2; exit 2; }

prefix=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$prefix" "$work"' EXIT

cmake --install "$build_dir" --prefix "$prefix" >/dev/null
cp -r examples/backend-template "$work/src"
cmake -S "$work/src" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/build"
plugin="$work/build/template.so"

"$prefix/bin/randygpt" backends --backend-dir "$work/build"
"$prefix/bin/randygpt" check "$plugin" --preset tiny --threads 1
"$prefix/bin/randygpt" bench --backends "single,$plugin" --threads 1 --preset tiny \
  --steps 2 --warmup 1 --repeat 1 --out "$work/results"
# The same plugin built with the pkg-config file instead of CMake.
mkdir -p "$work/pc"
cc -O2 -shared -fPIC $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags randygpt) \
  examples/backend-template/template.c -o "$work/pc/template.so" -lm
"$prefix/bin/randygpt" check "$work/pc/template.so" --preset tiny --threads 1 | tail -n 1
json=$(find "$work/results" -name bench.json | head -n 1)
[ -n "$json" ] || { echo "sdk-check: bench wrote no bench.json" >&2; exit 1; }
grep -q '"template"' "$json" || { echo "sdk-check: the template backend is missing from $json" >&2; exit 1; }
echo "sdk-check: the template backend builds against the installed SDK, passes check and benchmarks"
