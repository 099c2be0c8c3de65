#!/usr/bin/env bash
# docs/writing-a-backend.md followed word for word, as an outside developer meets the plugin SDK:
# every shell block that the page marks with `<!-- sdk-check -->` runs, in order, in one shell,
# with a fresh HOME (so a fresh install prefix, $HOME/randygpt), from a checkout whose build/ is
# BUILD_DIR. Then the bench results that the page's last block writes must hold the page's backend,
# `mybackend`, run successfully at 1 and 2 threads, and their report a speedup row for it. The page
# and this test cannot drift apart.
# Usage: scripts/sdk-check.sh [BUILD_DIR]   (BUILD_DIR: a configured and built tree, default build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build_dir=${1:-build}
doc=docs/writing-a-backend.md
python=/usr/bin/python3
[ -f "$build_dir/CMakeCache.txt" ] || { echo "sdk-check: no built tree '$build_dir' (run scripts/setup.sh)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The page's commands run in a checkout: here, one whose build/ and examples/ are the real ones.
mkdir "$tmp/checkout" "$tmp/home"
ln -s "$(cd "$build_dir" && pwd)" "$tmp/checkout/build"
ln -s "$root/examples" "$tmp/checkout/examples"

# The ```sh block right after each marker line; a marker followed by anything else is an error.
awk -v doc="$doc" '
  want && $0 != "```sh" { printf "sdk-check: %s:%d: a <!-- sdk-check --> marker not followed by a ```sh block\n", doc, NR > "/dev/stderr"; bad = 1; exit }
  want { want = 0; inside = 1; next }
  inside && $0 == "```" { inside = 0; print ""; next }
  inside { print; next }
  $0 == "<!-- sdk-check -->" { want = 1; blocks++ }
  END { if (bad) exit 1; if (blocks == 0) { printf "sdk-check: %s marks no shell block\n", doc > "/dev/stderr"; exit 1 } }
' "$doc" >"$tmp/walkthrough.sh"
echo "sdk-check: running the marked blocks of $doc" >&2
(cd "$tmp/checkout" && HOME="$tmp/home" bash -euxo pipefail "$tmp/walkthrough.sh")

json=$(find "$tmp/home/mybackend/results" -name bench.json | head -n 1)
[ -n "$json" ] || { echo "sdk-check: the walkthrough's bench wrote no bench.json" >&2; exit 1; }
"$python" - "$json" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
ok = sorted(r["threads"] for r in runs if r["backend"] == "mybackend" and r["status"] == "ok")
if ok != [1, 2]:
    sys.exit("sdk-check: mybackend ran successfully at %s threads in %s, not at 1 and 2"
             % (ok or "no", sys.argv[1]))
PY
# the bench report names every backend that ran, this one too, in its speedup table
report="$(dirname "$json")/report.md"
grep -q '^| 2 cores with mybackend | mybackend | 2 |' "$report" ||
  { echo "sdk-check: $report has no speedup row for mybackend at 2 threads" >&2; exit 1; }
echo "sdk-check: $doc works as written: mybackend builds against the installed SDK (CMake and pkg-config), passes check and benchmarks at 1 and 2 threads"
