#!/usr/bin/env bash
# Times `randygpt check` on every bundled backend: --quick, the default level at 1, 2, 3 and 5
# threads, and --thorough (the one-thread `single` at 1 thread throughout), one run after another.
# Writes a Markdown table (backend, level, threads, exit status, seconds, check's summary line) to
# OUT (default: results/<cpu>-<n>c/check-<UTC timestamp>.md) and prints it.
# Usage: scripts/check-times.sh [--build-dir DIR] [--out FILE]
set -uo pipefail
cd "$(dirname "$0")/.."

build_dir=build
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --help | -h) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check-times.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
bin=$build_dir/bin/randygpt
[ -x "$bin" ] || { echo "check-times.sh: no $bin (build first: scripts/setup.sh)" >&2; exit 2; }

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
machine=$(printf '%s' "$cpu" | tr 'A-Z' 'a-z' | sed 's/([^)]*)//g; s/[^a-z0-9]\+/-/g; s/^-//; s/-$//')
[ -n "$out" ] || out=results/${machine}-$(nproc)c/check-$(date -u +%Y%m%dT%H%M%SZ).md
mkdir -p "$(dirname "$out")"

backends=$("$bin" backends 2>/dev/null | awk 'NR > 1 && $2 ~ /^[0-9]+$/ && ($3 == "yes" || $3 == "no") {print $1}')
[ -n "$backends" ] || { echo "check-times.sh: '$bin backends' lists no backend" >&2; exit 2; }

{
  echo "# randygpt check: run times"
  echo
  echo "CPU: $cpu, $(nproc) CPUs; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown);"
  echo "command: scripts/check-times.sh; $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "| backend | level | threads | exit | seconds | summary |"
  echo "|---|---|--:|--:|--:|---|"
} | tee "$out"

status=0
run() { # backend level threads
  local opt=()
  [ "$2" = default ] || opt=(--"$2")
  local start end summary rc
  start=$(date +%s.%N)
  summary=$("$bin" check "$1" "${opt[@]}" --threads "$3" 2>&1 | tail -1)
  rc=${PIPESTATUS[0]}
  end=$(date +%s.%N)
  [ "$rc" = 0 ] || status=1
  printf '| %s | %s | %s | %s | %.1f | %s |\n' "$1" "$2" "$3" "$rc" \
    "$(echo "$end - $start" | bc)" "$summary" | tee -a "$out"
}
for b in $backends; do
  if [ "$b" = single ]; then counts=1; else counts="1 2 3 5"; fi
  top=${counts##* }
  [ "$top" = 5 ] && top=2
  run "$b" quick "$top"
  for t in $counts; do run "$b" default "$t"; done
  run "$b" thorough "$top"
done
echo "written: $out"
exit $status
