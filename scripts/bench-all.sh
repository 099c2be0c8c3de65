#!/usr/bin/env bash
# The full benchmark suite in one run directory, results/<machine>/<timestamp>/:
#   1. builds randygpt and randygpt-kbench if needed (cmake, Release);
#   2. `randygpt bench`: every backend at 1..nproc threads (bench.json, bench.csv, logs/);
#   3. randygpt-kbench: kernel micro-benchmarks of every backend that bench found, one process per
#      backend, merged into kbench.json;
#   4. scripts/torch_baseline.py: the PyTorch rows (torch.json), every setting at every thread
#      count, if /usr/bin/python3 has torch;
#   4b. scripts/versus_torch.py: at each thread count the fastest backend and PyTorch's fastest
#      setting again, in --versus-rounds interleaved rounds (versus.json);
#   5. `randygpt bench --contend 1` at 1 and the most threads, op-level and data-parallel: the
#      same backends with one busy process on the machine (contend.json);
#   5b. `randygpt bench --replicas 1,N --ranks 1,N` at 1 and N = the most threads, openmp and the
#      fastest other backend: op-level, data-parallel and MPI side by side (strategies.json);
#   6. `randygpt bench` at the larger presets (--big-presets, default medium,large) without the
#      reference `single`, with --big-steps steps and one repeat (preset-P.json);
#   7. scripts/report.py: report.md and the plots.
# Prints where the report is. Exit status: 0 when every step succeeded, 1 when a step failed (the
# others still ran and the report was written if bench.json exists), 2 on bad usage.
#
# Usage: scripts/bench-all.sh [--preset P] [--threads 1,2,...] [--backends all|A,B,...]
#          [--steps N] [--warmup W] [--repeat R] [--out DIR] [--build-dir DIR]
#          [--kbench-min-time SEC] [--no-kbench] [--no-torch] [--no-contend] [--no-strategies]
#          [--big-presets P,Q|none] [--big-steps N] [--versus-rounds N] [--logs TRAIN_LOG...]
set -uo pipefail
cd "$(dirname "$0")/.."

python=/usr/bin/python3 # Debian's, with matplotlib and torch
preset=small
threads=$(seq -s, 1 "$(nproc)")
backends=all
steps=20 warmup=3 repeat=3
out=results
build_dir=build
kbench_min_time=0.1
with_kbench=1 with_torch=1 with_contend=1 with_strategies=1
big_presets=medium,large big_steps=2
versus_rounds=5
logs=()

usage() {
  sed -n '/^# Usage:/,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'
}
die_usage() {
  echo "bench-all.sh: $1 (try --help)" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --help | -h) usage; exit 0 ;;
    --no-kbench) with_kbench=0 ;;
    --no-torch) with_torch=0 ;;
    --no-contend) with_contend=0 ;;
    --no-strategies) with_strategies=0 ;;
    --logs)
      shift
      while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do logs+=("$1"); shift; done
      continue ;;
    --preset | --threads | --backends | --steps | --warmup | --repeat | --out | --build-dir | \
      --kbench-min-time | --big-presets | --big-steps | --versus-rounds)
      [ $# -ge 2 ] || die_usage "$1 needs a value"
      case "$1" in
        --preset) preset=$2 ;;
        --threads) threads=$2 ;;
        --backends) backends=$2 ;;
        --steps) steps=$2 ;;
        --warmup) warmup=$2 ;;
        --repeat) repeat=$2 ;;
        --out) out=$2 ;;
        --build-dir) build_dir=$2 ;;
        --kbench-min-time) kbench_min_time=$2 ;;
        --big-presets) big_presets=$2 ;;
        --big-steps) big_steps=$2 ;;
        --versus-rounds) versus_rounds=$2 ;;
      esac
      shift ;;
    *) die_usage "unknown option '$1'" ;;
  esac
  shift
done
[[ "$threads" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die_usage "--threads needs a list like 1,2,4"
for n in "$steps" "$repeat" "$big_steps"; do [[ "$n" =~ ^[1-9][0-9]*$ ]] || die_usage "--steps, --repeat and --big-steps need positive integers"; done
[[ "$big_presets" =~ ^(none|[a-z]+(,[a-z]+)*)$ ]] || die_usage "--big-presets needs a list like medium,large, or none"
[[ "$warmup" =~ ^[0-9]+$ ]] || die_usage "--warmup needs a non-negative integer"
[[ "$versus_rounds" =~ ^[0-9]+$ ]] || die_usage "--versus-rounds needs a non-negative integer (0: none)"
[ -x "$python" ] || { echo "bench-all.sh: $python not found (Debian's python3 runs the report)" >&2; exit 1; }
for f in "${logs[@]}"; do [ -r "$f" ] || die_usage "cannot read train log '$f'"; done

status=0
step() { echo "bench-all.sh: $*" >&2; }

# 1. build (incremental: a no-op when nothing changed)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  step "configuring $build_dir"
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
fi
step "building $build_dir"
cmake --build "$build_dir" -j "$(nproc)" >/dev/null || { echo "bench-all.sh: build failed" >&2; exit 1; }
bin="$build_dir/bin"

# 2. whole training steps. bench names the run directory; the newest bench.json under $out that is
# younger than this marker is ours.
mkdir -p "$out"
marker=$(mktemp "$out/.bench-all.XXXXXX")
trap 'rm -f "$marker"' EXIT
step "randygpt bench --backends $backends --threads $threads --preset $preset"
"$bin/randygpt" bench --backends "$backends" --threads "$threads" --preset "$preset" \
  --steps "$steps" --warmup "$warmup" --repeat "$repeat" --out "$out" || status=1
run_dir=$(find "$out" -name bench.json -newer "$marker" -printf '%T@ %h\n' | sort -n | tail -1 | cut -d' ' -f2-)
if [ -z "$run_dir" ]; then
  echo "bench-all.sh: randygpt bench wrote no bench.json under $out" >&2
  exit 1
fi
mkdir -p "$run_dir/logs"

# 3. kernel micro-benchmarks: each backend in its own process, so that one crashing plugin or two
# thread runtimes never spoil the others; the JSON files are merged into one.
if [ "$with_kbench" = 1 ]; then
  names=$("$python" -c 'import json, sys
seen = []
for r in json.load(open(sys.argv[1]))["runs"]:
    if r["status"] == "ok" and r["backend"] not in seen:
        seen.append(r["backend"])
print(" ".join(seen))' "$run_dir/bench.json")
  parts=()
  for b in $names; do
    step "randygpt-kbench --backends $b --threads $threads"
    part="$run_dir/logs/kbench-$b.json"
    if "$bin/randygpt-kbench" --backends "$b" --threads "$threads" --preset "$preset" \
         --benchmark_min_time="$kbench_min_time" --benchmark_out="$part" \
         --benchmark_out_format=json >"$run_dir/logs/kbench-$b.log" 2>&1; then
      parts+=("$part")
    else
      echo "bench-all.sh: randygpt-kbench failed for $b (see $run_dir/logs/kbench-$b.log)" >&2
      status=1
    fi
  done
  if [ ${#parts[@]} -gt 0 ]; then
    "$python" - "$run_dir/kbench.json" "${parts[@]}" <<'EOF' || status=1
import json, sys
out, parts = sys.argv[1], sys.argv[2:]
docs = [json.load(open(p)) for p in parts]
merged = {"context": dict(docs[0]["context"]), "benchmarks": []}
for d in docs:
    merged["context"].update({k: v for k, v in d["context"].items()
                              if k.startswith(("describe:", "native_ops:"))})
    merged["benchmarks"] += d["benchmarks"]
with open(out, "w") as f:
    json.dump(merged, f, indent=2)
    f.write("\n")
EOF
  fi
fi

# 4. the PyTorch rows
if [ "$with_torch" = 1 ]; then
  if "$python" -c "import torch" 2>/dev/null; then
    step "torch_baseline.py --threads $threads --preset $preset (every setting)"
    "$python" scripts/torch_baseline.py --preset "$preset" --threads "$threads" --steps "$steps" \
      --warmup "$warmup" --repeat "$repeat" --out "$run_dir/torch.json" \
      2>"$run_dir/logs/torch.log" || {
      echo "bench-all.sh: the PyTorch baseline failed (see $run_dir/logs/torch.log)" >&2
      status=1
    }
  else
    step "no torch in $python: no PyTorch rows (install python3-torch)"
  fi
fi
# 4b. ours against PyTorch in interleaved rounds: the tables above were timed minutes apart
if [ -f "$run_dir/torch.json" ] && [ "$versus_rounds" -gt 0 ]; then
  step "versus_torch.py: the fastest backend against PyTorch's fastest setting, $versus_rounds interleaved rounds (versus.json)"
  "$python" scripts/versus_torch.py --bench "$run_dir/bench.json" --torch "$run_dir/torch.json" \
    --randygpt "$bin/randygpt" --rounds "$versus_rounds" --out "$run_dir/versus.json" \
    2>"$run_dir/logs/versus.log" || {
    echo "bench-all.sh: the interleaved PyTorch rounds failed (see $run_dir/logs/versus.log)" >&2
    status=1
  }
fi

# Another bench run, its bench.json copied into the run directory as $1.json; the rest of the
# arguments go to bench. Its own folder and logs stay under logs/$1.
side_bench() {
  local name=$1 dir="$run_dir/logs/$1"
  shift
  step "randygpt bench $* ($name.json)"
  if "$bin/randygpt" bench "$@" --out "$dir" --machine "$name" --report-script /nonexistent \
       >"$run_dir/logs/$name.log" 2>&1; then :; else
    echo "bench-all.sh: randygpt bench for $name.json failed (see $run_dir/logs/$name.log)" >&2
    status=1
  fi
  local f
  f=$(find "$dir" -name bench.json | head -1)
  [ -n "$f" ] && cp "$f" "$run_dir/$name.json"
}
# The backends that ran at the main preset, less the reference `single` (minutes per step at
# the larger presets), as a list for --backends.
ran=$("$python" -c 'import json, sys
seen = []
for r in json.load(open(sys.argv[1]))["runs"]:
    if r["status"] == "ok" and r["backend"] not in seen and r["backend"] != sys.argv[2]:
        seen.append(r["backend"])
print(",".join(seen))' "$run_dir/bench.json" single)
most=${threads##*,}

# 5. the same backends with one busy process on the machine, at 1 and the most threads
if [ "$with_contend" = 1 ] && [ -n "$ran" ] && [ "$most" != 1 ]; then
  side_bench contend --contend 1 --backends "$ran" --threads "1,$most" --replicas "1,$most" \
    --preset "$preset" --steps "$steps" --warmup "$warmup" --repeat "$repeat"
fi

# 5b. the parallel strategies (docs/data-parallel.md): op-level, data-parallel replicas and MPI
# ranks, at 1 and the most threads, for openmp and the fastest other backend at the most threads
if [ "$with_strategies" = 1 ] && [ "$most" != 1 ]; then
  best=$("$python" -c 'import json, sys
runs = [r for r in json.load(open(sys.argv[1]))["runs"] if r["status"] == "ok"
        and r["backend"] not in ("single", "openmp") and r["threads"] == int(sys.argv[2])]
print(min(runs, key=lambda r: r["step_ms"]["median"])["backend"] if runs else "")' \
    "$run_dir/bench.json" "$most")
  side_bench strategies --backends "openmp${best:+,$best}" --threads "1,$most" \
    --replicas "1,$most" --ranks "1,$most" --preset "$preset" --steps "$steps" \
    --warmup "$warmup" --repeat "$repeat"
fi

# 6. the larger presets: few steps, one repeat
if [ "$big_presets" != none ] && [ -n "$ran" ]; then
  for p in ${big_presets//,/ }; do
    side_bench "preset-$p" --backends "$ran" --threads "$threads" --preset "$p" \
      --steps "$big_steps" --warmup 1 --repeat 1
  done
fi

# 7. the report, over everything above
log_args=()
[ ${#logs[@]} -gt 0 ] && log_args=(--logs "${logs[@]}")
"$python" scripts/report.py "$run_dir" "${log_args[@]}" >/dev/null || status=1
echo "report: $run_dir/report.md"
exit $status
