#!/usr/bin/python3
"""Writes report.md and PNG plots for one `randygpt bench` run directory.

Usage: report.py RUN_DIR [--out DIR] [--logs FILE ...] [--no-plots]

Reads RUN_DIR/bench.json (docs/bench-format.md) and, when present, RUN_DIR/kbench.json (Google
Benchmark JSON from randygpt-kbench), RUN_DIR/torch.json (scripts/torch_baseline.py) and
RUN_DIR/contend.json (the bench.json of a `randygpt bench --contend N` run). --logs
takes `randygpt train --log` JSON-lines files for the loss-curve plot. Writes, into --out (default
RUN_DIR): report.md, which opens with the verdict (the fastest backend at each thread count, by how
much, and the op that decides it), speedup.png, ops.png and, with --logs, loss.png. The plots are
drawn by scripts/rgplot.py, which scripts/plot.py uses too.

The output depends only on the inputs: no clock, no host lookups, fixed ordering and number
formats, PNGs without a software stamp.
"""
import argparse
import json
import os
import sys
from statistics import median

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rgplot
import roofline  # noqa: E402

PROG = "report.py"
NOTE = "randyGPT's multi-core design note"
BASELINE = "single"
BENCH_SCHEMAS = ("randygpt-bench/1", "randygpt-bench/2")
# The op kinds of the current backend ABI, in rg_op_kind order. Results of an older ABI may list
# others (residual_backward, before version 2): op_kinds() adds them.
OP_KINDS = ["matmul_forward", "matmul_backward", "attention_forward", "attention_backward",
            "adamw_step", "rmsnorm_forward", "rmsnorm_backward", "sqrelu_forward",
            "sqrelu_backward", "residual_forward", "embedding_forward", "embedding_backward",
            "crossentropy_forward", "crossentropy_backward", "sum_squares"]
# The op kinds stacked in ops.png, in few enough groups that each gets a colour of its own; an op
# kind of no group (results of an older ABI) joins the memory-bound group.
OP_GROUPS = [("matmul forward", ["matmul_forward"]), ("matmul backward", ["matmul_backward"]),
             ("attention forward", ["attention_forward"]),
             ("attention backward", ["attention_backward"]), ("AdamW", ["adamw_step"]),
             ("rmsnorm, squared ReLU, residual", ["rmsnorm_forward", "rmsnorm_backward",
                                                  "sqrelu_forward", "sqrelu_backward",
                                                  "residual_forward"]),
             ("embedding, cross-entropy, grad norm, other",
              ["embedding_forward", "embedding_backward", "crossentropy_forward",
               "crossentropy_backward", "sum_squares"]),
             ("host glue between ops", [])]


class ReportError(Exception):
    """Bad or missing input: reported as one line, exit status 1."""


# ---- reading ----

def load_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise ReportError("cannot read %s %s: %s" % (what, path, e.strerror))
    except ValueError as e:
        raise ReportError("%s %s is not valid JSON: %s" % (what, path, e))


def load_bench_file(path):
    doc = load_json(path, "bench results")
    if not isinstance(doc, dict) or doc.get("schema") not in BENCH_SCHEMAS:
        raise ReportError("%s: not a randygpt-bench/1 or /2 file (schema %r)" % (
            path, doc.get("schema") if isinstance(doc, dict) else None))
    for key in ("machine", "build", "config", "peak", "runs"):
        if key not in doc:
            raise ReportError("%s: missing key '%s'" % (os.path.basename(path), key))
    for r in doc["runs"]:  # /1 runs are all op-level: one replica, one rank
        if isinstance(r, dict):
            r.setdefault("replicas", 1)
            r.setdefault("ranks", 1)
    return doc


def load_bench(run_dir):
    return load_bench_file(os.path.join(run_dir, "bench.json"))


def load_side_benches(run_dir):
    """The bench.json files of the other bench runs of bench-all beside this one: contend.json
    (`bench --contend N`) or None, [preset-P.json] (larger presets), in name order, and
    strategies.json (`bench --replicas ... --ranks ...`) or None."""
    def optional(name):
        path = os.path.join(run_dir, name)
        return load_bench_file(path) if os.path.exists(path) else None
    presets = sorted(f for f in os.listdir(run_dir)
                     if f.startswith("preset-") and f.endswith(".json"))
    return (optional("contend.json"), [load_bench_file(os.path.join(run_dir, f)) for f in presets],
            optional("strategies.json"))


def load_versus(run_dir):
    """versus.json (scripts/versus_torch.py: ours against PyTorch in interleaved rounds) or None."""
    path = os.path.join(run_dir, "versus.json")
    if not os.path.exists(path):
        return None
    doc = load_json(path, "the interleaved PyTorch rounds")
    if not isinstance(doc, dict) or doc.get("schema") != "randygpt-versus-torch/1":
        raise ReportError("%s: not a randygpt-versus-torch/1 file" % path)
    return doc


def load_torch(run_dir):
    path = os.path.join(run_dir, "torch.json")
    if not os.path.exists(path):
        return None
    doc = load_json(path, "PyTorch results")
    if not isinstance(doc, dict) or doc.get("schema") not in ("randygpt-torch/1",
                                                              "randygpt-torch/2"):
        raise ReportError("%s: not a randygpt-torch/1 or /2 file" % path)
    for r in doc.get("runs", []):
        # a /1 file ran PyTorch as shipped only
        r.setdefault("setting", {"name": "shipped", "label": "%d torch, %d inter-op threads; "
                                 "OpenBLAS as shipped" % (r["threads"], r["threads"])})
    return doc


def load_kbench(run_dir):
    path = os.path.join(run_dir, "kbench.json")
    if not os.path.exists(path):
        return None
    doc = load_json(path, "kernel benchmarks")
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ReportError("%s: not a Google Benchmark JSON file" % path)
    return doc


# ---- number formats (one per quantity, used everywhere) ----

def fmt(x, spec, suffix=""):
    return "—" if x is None else format(x, spec) + suffix


def ms(x):
    return fmt(x, ".2f")


def speedup(x):
    return fmt(x, ".2f", "x")


def gflops(x):
    return fmt(x, ".1f")


def cpu_name(machine):
    """The model name with the CPUID family and model where bench recorded them (runs before
    they were recorded have neither): one name can cover two generations."""
    name = machine.get("cpu_model", "unknown")
    family, model = machine.get("cpu_family"), machine.get("cpu_model_number")
    if family is None or model is None:
        return name
    return "%s (family %d, model %d)" % (name, family, model)


def pct(x):
    return fmt(None if x is None else 100.0 * x, ".1f", "%")


def mib(x):
    return fmt(None if x is None else x / 2 ** 20, ".1f")


def cell(text):
    """Table cell text: pipes would split the cell."""
    return str(text).replace("|", "\\|")


def table(header, rows, align=None):
    align = align or ["---"] * len(header)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


# ---- the runs, as one list of bench and PyTorch rows ----

def op_kinds(runs):
    """OP_KINDS plus any other op kind that the runs list (in their per-op timings or native ops),
    each put right after the kind it follows in the run's own list, so that results of an older
    ABI keep their order."""
    kinds = list(OP_KINDS)
    for r in runs:
        for names in ([o.get("op") for o in r.get("ops") or []], r.get("native_ops") or []):
            prev = None
            for name in names:
                if name not in kinds:
                    kinds.insert(kinds.index(prev) + 1 if prev in kinds else len(kinds), name)
                prev = name
    return kinds


def ok(run):
    return run is not None and run.get("status") == "ok"


def torch_runs(torch_doc, bench):
    """PyTorch runs shaped like bench RUNs (backend "pytorch"), MFU against the bench's peak: at
    each thread count its fastest setting first, then the shipped one (if another); "setting" is
    the text that names either (torch_label), "describe" its settings."""
    if not torch_doc:
        return []
    peak = {p["threads"]: p["gflops"] for p in bench["peak"].get("by_threads", [])}
    runs = []
    for t in sorted({r["threads"] for r in torch_doc.get("runs", [])}):
        at = [r for r in torch_doc["runs"] if r["threads"] == t]
        good = [r for r in at if ok(r)]
        best = min(good, key=lambda r: r["step_ms"]["median"]) if good else None
        shipped = next((r for r in at if r["setting"]["name"] == "shipped"), None)
        chosen = []
        if best is not None:
            chosen.append((best, "as shipped, its best setting" if best is shipped
                           else "at its best setting"))
        if shipped is not None and shipped is not best:
            chosen.append((shipped, "as shipped"))
        for r, what in chosen or [(at[0], "as run")]:
            run = dict(r, backend="pytorch", describe=r["setting"]["label"],
                       setting="%s (%s)" % (what, r["setting"]["label"]))
            p = peak.get(t)
            run["peak_gflops"] = p
            run["mfu"] = r["gflops"] / p if ok(r) and p and r.get("gflops") is not None else None
            runs.append(run)
    return runs


def find_run(runs, backend, threads):
    for r in runs:
        if r["backend"] == backend and r["threads"] == threads:
            return r
    return None


def step_ms(run):
    return run["step_ms"]["median"] if ok(run) else None


def repeat_span(run):
    """(fastest, slowest) repeat of a run that succeeded, in ms, else None."""
    reps = run.get("repeat_step_ms") if run and ok(run) else None
    return (min(reps), max(reps)) if reps else None


def spans_overlap(a, b):
    return a[0] <= b[1] and b[0] <= a[1]


def ratio(a, b):
    return a / b if a is not None and b else None


def failure(run, detail=False):
    """Short text for a run that did not succeed. A refused configuration (e.g. `single` at 2
    threads) is not a failure of the backend and says only that, unless detail is asked for."""
    reason, why = run.get("reason"), run.get("signal") or run.get("error")
    if reason == "refused" and not detail:
        return "refused"
    return "%s (%s)" % ("refused" if reason == "refused" else "failed",
                        ": ".join(str(x) for x in (reason, why) if x and x != "refused") or "?")


def backends_in_order(runs, with_torch=True):
    """Every backend that has a run, in the order of the runs (bench's order, PyTorch last)."""
    names = []
    for r in runs:
        if r["backend"] not in names and (with_torch or r["backend"] != "pytorch"):
            names.append(r["backend"])
    return names


def torch_label(run):
    """A PyTorch run's name in the text: its setting (torch.json's optional "setting" of a run,
    e.g. the best one found) or, without one, "as shipped"."""
    return "PyTorch %s" % (run.get("setting") or "as shipped")


def fastest(runs, backend=None, threads=None, max_threads=None):
    """The successful run with the lowest median step among those of backend (any, PyTorch
    excluded, when None) at threads (or at most max_threads), or None."""
    cands = [r for r in runs if ok(r)
             and (r["backend"] == backend if backend else r["backend"] != "pytorch")
             and (threads is None or r["threads"] == threads)
             and (max_threads is None or r["threads"] <= max_threads)]
    return min(cands, key=step_ms) if cands else None


def op_times(run):
    """op kind -> ms per step, and the host's glue, scaled so that they add up to the run's median
    step: bench measures the ops' shares over all repeats (their mean), the tables quote medians."""
    ops = {o["op"]: o["ms_per_step"] for o in run.get("ops") or []}
    other = run.get("other_ms_per_step") or 0.0
    total = sum(ops.values()) + other
    scale = step_ms(run) / total if total > 0 else 0.0
    return {k: v * scale for k, v in ops.items()}, other * scale


def threads_text(n):
    return plural(n, "thread")


# ---- sections ----

def plural(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def faster_than(win_ms, other_ms):
    """"2.50x faster than" or, when win is the slower, "1.20x slower than"."""
    r = ratio(other_ms, win_ms)
    return "%s faster than" % speedup(r) if r >= 1 else "%s slower than" % speedup(1 / r)


def deciding_op(win, other):
    """The op kind in which win saves the most time per step over other, with both times, or
    None without per-op timings."""
    a, b = op_times(win)[0], op_times(other)[0]
    common = [k for k in a if k in b]
    if not common:
        return None
    op = max(common, key=lambda k: b[k] - a[k])
    return op, a[op], b[op]


def verdict_at(runs, t, best_one):
    """The verdict's sentence for thread count t (best_one: the fastest 1-thread run)."""
    win = fastest(runs, threads=t)
    s = "At %s, **%s** is fastest: %s ms per step" % (threads_text(t), win["backend"],
                                                      ms(step_ms(win)))
    cmp = []
    if t == 1:
        ref = find_run(runs, BASELINE, 1)
        if ok(ref) and ref is not win:
            cmp.append("%s the reference `%s` (%s ms)" % (
                faster_than(step_ms(win), step_ms(ref)), BASELINE, ms(step_ms(ref))))
    elif best_one is not None:
        cmp.append("%s the best single-thread backend (`%s`, %s ms)" % (
            faster_than(step_ms(win), step_ms(best_one)), best_one["backend"],
            ms(step_ms(best_one))))
    torch = fastest(runs, backend="pytorch", max_threads=t)
    if torch is not None:
        cmp.append("%s %s at %s (%s ms%s)" % (
            faster_than(step_ms(win), step_ms(torch)), torch_label(torch),
            threads_text(torch["threads"]), ms(step_ms(torch)),
            "" if t == 1 else "; its fastest at up to %s" % threads_text(t)))
    if cmp:
        s += ", " + " and ".join(cmp)
    rest = [r for r in runs if ok(r) and r["threads"] == t and r is not win
            and r["backend"] != "pytorch"]
    if rest:
        second = min(rest, key=step_ms)
        s += "; the runner-up `%s` takes %s ms" % (second["backend"], ms(step_ms(second)))
        d = deciding_op(win, second)
        if d:
            s += ", and most of the difference is in %s (%s against %s ms per step)" % (
                d[0], ms(d[1]), ms(d[2]))
        if win["step_ms"]["max"] >= second["step_ms"]["min"]:
            s += "; their repeats overlap (%s–%s against %s–%s ms), so this order is within " \
                 "the machine's noise" % (ms(win["step_ms"]["min"]), ms(win["step_ms"]["max"]),
                                       ms(second["step_ms"]["min"]), ms(second["step_ms"]["max"]))
    return s + "."


def section_verdict(runs):
    """The report's opening paragraph: the answer, with the figures it rests on."""
    threads = sorted({r["threads"] for r in runs if ok(r) and r["backend"] != "pytorch"})
    if not threads:
        return "**Verdict.** No backend ran successfully: there is nothing to compare."
    parts = ["**Verdict** (median step times)."]
    parts += [verdict_at(runs, t, fastest(runs, threads=1)) for t in threads]
    top = fastest(runs, threads=threads[-1])
    ops, other = op_times(top)
    if ops:
        mm = sum(v for k, v in ops.items() if k.startswith("matmul"))
        att = sum(v for k, v in ops.items() if k.startswith("attention"))
        parts.append("In `%s`'s step at %s, the matmuls take %s ms (%s of it), attention "
                     "%s ms (%s), everything else %s ms." % (
                         top["backend"], threads_text(top["threads"]), ms(mm),
                         pct(mm / step_ms(top)), ms(att), pct(att / step_ms(top)),
                         ms(step_ms(top) - mm - att)))
    return " ".join(parts)


def section_header(bench, torch_doc):
    cfg = bench["config"]
    lines = []
    lines.append("Run `%s`, started %s." % (bench.get("command", "randygpt bench"),
                                             bench.get("created_utc", "at an unknown time")))
    lines.append("")
    lines.append("Preset **%s**: B=%d, T=%d, C=%d, NH=%d, L=%d, V=%d; %s parameters; %.3f GFLOP "
                 "per training step (6 x matrix params x B x T + per layer attention forward "
                 "4 B NH T^2 hs and backward twice that)." % (cfg["preset"], cfg["B"], cfg["T"], cfg["C"],
                                             cfg["NH"], cfg["L"], cfg["V"],
                                             format(cfg["num_params"], ","),
                                             cfg["step_flops"] / 1e9))
    lines.append("")
    lines.append("Step time: %s, then %s of %s; each repeat gives its wall time / %d, and the "
                 "median over the repeats is quoted. Data: %s." % (
                     plural(cfg["warmup"], "warm-up step"), plural(cfg["repeat"], "repeat"),
                     plural(cfg["steps"], "step"), cfg["steps"], cfg["data"]))
    micro = sorted({r["micro_batches"] for r in bench["runs"] if r.get("micro_batches")})
    if micro:
        lines.append("Each replica's share of a step ran as %s micro-batches in sequence, "
                     "gradients accumulated (`--micro-batches`%s)." % (
                         " or ".join(str(k) for k in micro),
                         " %d" % cfg["micro_batches"] if cfg.get("micro_batches") else
                         ": the default, passes of at least 512 tokens"))
    if cfg.get("contend"):
        lines.append("Timed with %s of bench's own running (`--contend %d`): a shared machine." % (
            plural(cfg["contend"], "busy process"), cfg["contend"]))
    if torch_doc:
        tc = torch_doc["config"]
        lines.append("PyTorch rows: the same model in PyTorch (scripts/torch_baseline.py), timed "
                     "the same way (%s, %s of %s): at each thread count its fastest setting and "
                     "the shipped one (every setting: PyTorch settings)." % (
                         plural(tc["warmup"], "warm-up step"), plural(tc["repeat"], "repeat"),
                         plural(tc["steps"], "step")))
    rel = bench.get("reliability")
    if rel and not rel.get("reliable", True):
        lines += ["", "**UNRELIABLE RUN**: its MFU figures cannot be trusted, because"]
        lines += ["- %s;" % p for p in rel.get("problems", [])]
        lines.append("so run it again on a quiet machine.")
    return "\n".join(lines)


def section_machine(bench, runs, torch_doc):
    m, b, peak = bench["machine"], bench["build"], bench["peak"]
    flags = ", ".join(sorted(k for k, v in m.get("flags", {}).items() if v)) or "none"
    peaks = ", ".join("%s at %d thread%s" % (gflops(p["gflops"]), p["threads"],
                                             "" if p["threads"] == 1 else "s")
                      for p in peak.get("by_threads", []))
    samples = max([len(p.get("samples") or []) for p in peak.get("by_threads", [])] or [0])
    rows = [
        ["CPU", cpu_name(m)],
        ["CPUs", m.get("cpus", "unknown")],
        ["CPU flags", flags],
        ["Kernel", m.get("kernel", "unknown")],
        ["Memory", fmt(None if m.get("mem_total_bytes") is None
                       else m["mem_total_bytes"] / 2 ** 30, ".1f", " GiB")],
        ["Compiler", b.get("compiler", "unknown")],
        ["Compile flags", "`%s`" % b.get("flags", "unknown")],
        ["Commit", b.get("git_commit", "unknown")],
        ["Measured fp32 peak (GFLOP/s)", "%s (%s, %s-bit FMA, %s chains per thread%s)" % (
            peaks, peak.get("isa"), peak.get("vector_bits"), peak.get("chains"),
            "; best of %d samples taken before, between and after the rounds" % samples
            if samples > 1 else "")],
    ]
    if bench.get("bandwidth"):
        bw = bench["bandwidth"]
        rows.append(["Measured memory bandwidth (GB/s)", "%s (STREAM-style triad, 3 x %s MiB, "
                     "best of %s passes)" % (", ".join(
                         "%s at %d thread%s" % (gflops(p.get("gbps")), p["threads"],
                                                "" if p["threads"] == 1 else "s")
                         for p in bw.get("by_threads", [])),
                         fmt(bw["array_bytes"] / 2 ** 20, ".0f"), bw.get("passes"))])
    if bench.get("load"):
        ld = bench["load"]
        rows.append(["Load during the rounds", "other processes %s of the %d CPUs' time, steal "
                     "%s (`/proc/stat`, less bench's own processes, over %s s)" % (
                         pct(ld["others_fraction"]), ld["cpus"], pct(ld["steal_fraction"]),
                         fmt(ld["wall_s"], ".0f"))])
    if torch_doc:
        t = torch_doc["torch"]
        rows.append(["PyTorch", "%s, BLAS %s, parallel backend %s" % (
            t.get("version"), t.get("blas"), t.get("parallel_backend"))])
    out = ["## Machine", "", table(["", ""], rows), "", "### Backends", "",
           "Each backend's own `describe` line (library, version, kernel set, threads) and the ops "
           "it runs natively; the others ran the core's reference kernel and are never credited "
           "to the backend.", ""]
    brows = []
    for r in runs:
        if r["backend"] == "pytorch":
            continue
        if not ok(r):
            brows.append([r["backend"], r["threads"], failure(r, detail=True), "—"])
            continue
        native = r.get("native_ops") or []
        kinds = op_kinds([r])
        missing = [op for op in kinds if op not in native]
        nat = "all %d" % len(kinds) if not missing else "%d of %d; reference: %s" % (
            len(kinds) - len(missing), len(kinds), ", ".join(missing))
        brows.append([r["backend"], r["threads"], r.get("describe") or "—", nat])
    out.append(table(["backend", "threads", "describe", "native ops"], brows,
                     ["---", "--:", "---", "---"]))
    return "\n".join(out)


def predictions(cores):
    """What the design note predicts, quoted, per row kind. cores: the row's thread count."""
    data_parallel = ("~%dx: data parallelism (Rayon) is \"Near-linear with cores (2x cores = ~2x "
                     "speed)\", \"~4-8x speedup on typical CPUs\"; its table: 4 cores ~3x, "
                     "8 cores ~5x" % cores)
    blas = ("~2-4x: BLAS gives \"~2-4x speedup\" (\"Another 2x speedup\" on top of data "
            "parallelism; its table: 8 cores + BLAS ~8x)")
    return {"single": "1x (the note's \"1 (current)\" row)", "openmp": data_parallel,
            "pthreads": data_parallel, "openblas": blas, "blis": blas,
            "pytorch": "no prediction (the note names PyTorch only as a BLAS user)"}


def speedup_rows(runs, cores):
    """The speedup table's runs after the reference: every backend that has a run, at `cores`
    threads or else at the most threads it has a run for, fastest first and failed runs after
    them; then every PyTorch run at `cores` (one per setting)."""
    rows = []
    for b in backends_in_order(runs):
        if b == BASELINE:
            continue
        mine = [r for r in runs if r["backend"] == b]
        at = [r for r in mine if r["threads"] == cores]
        if b == "pytorch":
            rows += at
        else:
            rows.append(at[0] if at else max(mine, key=lambda r: r["threads"]))
    rows.sort(key=lambda r: (r["backend"] == "pytorch", not ok(r), step_ms(r) or 0.0))
    return rows


def section_speedup(bench, runs):
    base = find_run(runs, BASELINE, 1)
    base_ms = step_ms(base)
    cores = max([r["threads"] for r in runs] or [1])
    pred = predictions(cores)
    out = ["## Speedup against single-thread `single`", ""]
    if base_ms is None:
        out.append("No successful `single` run at 1 thread: no speedups can be given.")
        return "\n".join(out)
    out.append("Measured: the step time of single-thread `single` (%s ms) divided by the row's. "
               "Predicted: quoted from %s, written for the Rust original; its figures were "
               "predictions and never measured. Its data parallelism splits the batch across "
               "cores; our openmp and pthreads backends split every kernel instead, the closest "
               "counterpart in this design." % (ms(base_ms), NOTE))
    out.append("")
    rows = [["1 core, reference", BASELINE, 1, ms(base_ms), speedup(1.0), pred["single"]]]
    for run in speedup_rows(runs, cores):
        b, t = run["backend"], run["threads"]
        label = "%d core%s" % (t, "" if t == 1 else "s")
        name = "%s, %s" % (label, torch_label(run)) if b == "pytorch" else "%s with %s" % (label, b)
        p = pred.get(b, "no prediction (not a backend of the note)")
        if not ok(run):
            rows.append([name, b, t, failure(run), "—", p])
        else:
            rows.append([name, b, t, ms(step_ms(run)), speedup(ratio(base_ms, step_ms(run))), p])
    out.append(table(["configuration", "backend", "threads", "step ms", "measured speedup",
                      "predicted by " + NOTE], rows, ["---", "---", "--:", "--:", "--:", "---"]))
    return "\n".join(out)


def section_scaling(runs):
    threads = sorted({r["threads"] for r in runs})
    backends = []
    for r in runs:
        if r["backend"] not in backends:
            backends.append(r["backend"])
    out = ["## Thread scaling", "",
           "Median step time in ms, and in brackets the speedup over the same backend at 1 "
           "thread.", ""]
    rows = []
    for b in backends:
        one = step_ms(find_run(runs, b, 1))
        row = [b]
        for t in threads:
            run = find_run(runs, b, t)
            if run is None:
                row.append("—")
            elif not ok(run):
                row.append(failure(run))
            else:
                s = ratio(one, step_ms(run))
                row.append(ms(step_ms(run)) + ("" if s is None else " (%s)" % speedup(s)))
        rows.append(row)
    out.append(table(["backend"] + ["%d thread%s" % (t, "" if t == 1 else "s") for t in threads],
                     rows, ["---"] + ["--:"] * len(threads)))
    return "\n".join(out)


def rss_growth(runs, run):
    """Peak RSS of run minus that of the same backend at 1 thread, in MiB ("—" without both)."""
    one = find_run(runs, run["backend"], 1)
    if run["threads"] == 1 or one is None or not ok(one):
        return "—"
    a, b = run.get("peak_rss_bytes"), one.get("peak_rss_bytes")
    if a is None or b is None:
        return "—"
    return "%+.1f" % ((a - b) / 1048576.0)


def section_runs(runs):
    out = ["## All runs: throughput, MFU and memory", "",
           "MFU: GFLOP/s over the fp32 FMA peak measured in the same bench run at the same thread "
           "count. Peak RSS: the maximum resident set of the run's process (for PyTorch it "
           "includes the Python interpreter and the torch library); RSS growth: its difference "
           "from the same backend at 1 thread, what the extra threads cost in memory (their "
           "stacks and per-thread workspace).", ""]
    rows = []
    for r in runs:
        if not ok(r):
            rows.append([r["backend"], r["threads"], failure(r)] + ["—"] * 5
                        + [mib(r.get("peak_rss_bytes")), "—"])
            continue
        s, mfu = r["step_ms"], r.get("mfu")
        rows.append([r["backend"], r["threads"], "ok",
                     "%s (%s–%s)" % (ms(s["median"]), ms(s["min"]), ms(s["max"])),
                     fmt(r.get("tok_per_s"), ".0f"), gflops(r.get("gflops")),
                     gflops(r.get("peak_gflops")),
                     pct(mfu) + (" (over 100%: unreliable)" if mfu is not None and mfu > 1
                                 else ""),
                     mib(r.get("peak_rss_bytes")), rss_growth(runs, r)])
    out.append(table(["backend", "threads", "status", "step ms median (min–max)", "tok/s",
                      "GFLOP/s", "peak GFLOP/s", "MFU", "peak RSS MiB", "RSS growth MiB"], rows,
                     ["---", "--:", "---", "--:", "--:", "--:", "--:", "--:", "--:", "--:"]))
    return "\n".join(out)


def breakdown_runs(runs):
    """The runs of the op breakdown: each bench backend at its largest thread count that ran."""
    chosen = {}
    for r in runs:
        if r["backend"] != "pytorch" and ok(r) and r.get("ops"):
            if r["backend"] not in chosen or r["threads"] > chosen[r["backend"]]["threads"]:
                chosen[r["backend"]] = r
    order = []
    for r in runs:
        if r["backend"] in chosen and chosen[r["backend"]] not in order:
            order.append(chosen[r["backend"]])
    return order


def section_ops(runs):
    cols = breakdown_runs(runs)
    out = ["## Op breakdown", "",
           "Milliseconds per training step spent in each op kind, at each backend's largest "
           "thread count: each op's share of the time over all repeats, times the median step, "
           "so that a column adds up to the median quoted everywhere else. *ref* marks an op the "
           "backend does not run natively: the core's reference kernel ran it.", ""]
    if not cols:
        out.append("No successful run with per-op timings.")
        return "\n".join(out)
    times = [op_times(r) for r in cols]
    rows = []
    for op in op_kinds(cols):
        row = [op]
        for r, (t, _) in zip(cols, times):
            e = next((o for o in r["ops"] if o["op"] == op), None)
            row.append("—" if e is None else ms(t[op]) + ("" if e["native"] else " *ref*"))
        rows.append(row)
    rows.append(["other (model glue)"] + [ms(other) for _, other in times])
    rows.append(["**step (median)**"] + ["**%s**" % ms(step_ms(r)) for r in cols])
    out.append(table(["op"] + ["%s, %d thr" % (r["backend"], r["threads"]) for r in cols], rows,
                     ["---"] + ["--:"] * len(cols)))
    return "\n".join(out)


def section_torch(torch_doc, bench):
    out = ["## PyTorch settings", ""]
    o = torch_doc.get("openblas_coretype") or {}
    out.append("Every setting timed by scripts/torch_baseline.py, each in a process of its own; "
               "the tables above show the fastest at each thread count and the shipped one. "
               "OpenBLAS core type of the tuned settings: %s (%s); the core column is what "
               "OpenBLAS reported in the run." % (o.get("chosen") or "its own choice",
                                                  o.get("how") or "as shipped"))
    out.append("")
    peak = {p["threads"]: p["gflops"] for p in bench["peak"].get("by_threads", [])}
    best = {}
    for r in torch_doc.get("runs", []):
        if ok(r) and (r["threads"] not in best or step_ms(r) < step_ms(best[r["threads"]])):
            best[r["threads"]] = r
    rows = []
    for r in torch_doc.get("runs", []):
        label = r["setting"]["label"] + (" (as shipped)" if r["setting"]["name"] == "shipped"
                                         else "")
        if not ok(r):
            rows.append([r["threads"], label, failure(r, detail=True), "—", "—", "—", ""])
            continue
        p = peak.get(r["threads"])
        rows.append([r["threads"], label, ms(step_ms(r)), gflops(r.get("gflops")),
                     pct(r["gflops"] / p if p and r.get("gflops") is not None else None),
                     r.get("openblas_core") or "—",
                     "**fastest**" if best.get(r["threads"]) is r else ""])
    out.append(table(["threads", "setting", "step ms", "GFLOP/s", "MFU", "OpenBLAS core", ""],
                     rows, ["--:", "---", "--:", "--:", "--:", "---", "---"]))
    return "\n".join(out)


def unreliable_lines(doc):
    """A bench document's reliability problems as a paragraph under its section (none when
    reliable)."""
    rel = doc.get("reliability")
    if not rel or rel.get("reliable", True):
        return []
    return ["**UNRELIABLE** (this run): %s; so these figures cannot be trusted." %
            "; ".join(rel.get("problems", [])), ""]


def section_contend(doc, bench, runs):
    """Each backend at 1 thread and at the run's largest thread count with N busy processes
    running, op-level and (where the run has them) data-parallel replicas, the verdict on the
    faster of the two, beside the quiet run's figure (when both ran the same preset)."""
    n = doc["config"].get("contend", 0)
    out = ["## On a shared machine (`--contend %d`)" % n, "",
           "A second bench run (`%s`) with %s of bench's own running during every round. The "
           "target: every multi-core backend is no slower at more threads than at 1 thread. "
           "Op-level parallelism joins its threads at every op, so a thread that shares its core "
           "with a busy process holds up the others at every op; data-parallel replicas "
           "(`--replicas`, one per thread) join once per step, so each thread uses whatever share "
           "of a core it gets." % (
               doc.get("command", "randygpt bench --contend %d" % n),
               plural(n, "busy process")), ""]
    out += unreliable_lines(doc)
    crun = doc["runs"]
    tmax = max([r["threads"] for r in crun] or [1])
    rows = []
    for b in [r["backend"] for r in crun if r["threads"] == tmax and op_level(r)]:
        one = find_strategy(crun, b, 1, 1, 1)
        level = find_strategy(crun, b, tmax, 1, 1)
        dp = find_strategy(crun, b, tmax, tmax, 1)
        if tmax == 1 or not ok(level):
            continue
        best = dp if ok(dp) and step_ms(dp) < step_ms(level) else level
        same = doc["config"].get("preset") == bench["config"]["preset"]
        quiet = step_ms(find_run(runs, b, tmax)) if same else None
        r = ratio(step_ms(one), step_ms(best))
        spans = [repeat_span(one), repeat_span(best)]
        rows.append([b, ms(step_ms(one)), ms(step_ms(level)), ms(step_ms(dp)), speedup(r),
                     "—" if r is None else ("no slower" if r >= 1.0 else "**slower**"),
                     " / ".join("—" if x is None else "%.1f–%.1f" % x for x in spans),
                     "—" if None in spans else ("yes" if spans_overlap(*spans) else "no"),
                     ms(quiet), speedup(ratio(step_ms(level), quiet))])
    if not rows:
        out.append("No backend ran at more than 1 thread.")
        return "\n".join(out)
    t = "%d threads" % tmax
    out.append(table(["backend", "1 thread ms", t + " op-level ms",
                      "%s, %d replicas ms" % (t, tmax), "speedup (faster)", "verdict",
                      "repeats, ms (1 thread / faster)", "repeats overlap",
                      t + " op-level ms, quiet run", "op-level slowdown from quiet"], rows,
                     ["---", "--:", "--:", "--:", "--:", "---", "--:", "---", "--:", "--:"]))
    out.extend(["", "The speedup and the verdict compare the medians of 1 thread and of the faster "
                "strategy at %s. Where their repeats overlap, the difference is within what the "
                "machine's noise did in this run." % t])
    return "\n".join(out)


def section_versus(doc):
    """The fastest backend against PyTorch's fastest setting at each thread count, timed again in
    interleaved rounds (versus.json)."""
    c = doc["config"]
    out = ["## Against PyTorch, interleaved", "",
           "The tables above time our backends and PyTorch minutes apart, and this machine's speed "
           "drifts. `scripts/versus_torch.py` timed, at each thread count, the fastest backend "
           "and PyTorch's fastest setting again: %s of one repeat (%s, after %s) each, the order "
           "alternating between rounds, so that each round's ratio, PyTorch's step time over "
           "ours, is of two runs seconds apart." % (
               plural(doc["rounds"], "round"), plural(c["steps"], "step"),
               plural(c["warmup"], "warm-up step")), ""]
    rows = []
    for p in doc["pairs"]:
        ours = [x for x in p["ours_ms"] if x]
        theirs = [x for x in p["torch_ms"] if x]
        r = p["ratios"]
        rows.append([str(p["threads"]), p["backend"], ms(median(ours) if ours else None),
                     p["torch_setting"], ms(median(theirs) if theirs else None),
                     "%.2f–%.2fx" % (min(r), max(r)) if r else "—",
                     "**%s**" % speedup(p["median_ratio"]), str(len(r))])
    out.append(table(["threads", "backend", "ms, median of rounds", "PyTorch setting",
                      "PyTorch ms, median of rounds", "ratio per round", "median ratio",
                      "rounds"], rows, ["--:", "---", "--:", "---", "--:", "--:", "--:", "--:"]))
    return "\n".join(out)


def section_presets(docs):
    """The larger presets' runs: step time, MFU and peak RSS of each backend and thread count."""
    out = ["## Larger presets", "",
           "Bench runs of bench-all at the larger presets, with few steps and repeats (so their "
           "step times are rougher than above); the reference `single` is left out, as it "
           "takes minutes per step there.", ""]
    rows = []
    for doc in docs:
        c = doc["config"]
        what = c["preset"]
        out.append("- %s: C=%d, NH=%d, L=%d, T=%d, B=%d; %s parameters; %.1f GFLOP per step; %s, "
                   "then %s of %s." % (
                       what, c["C"], c["NH"], c["L"], c["T"], c["B"], format(c["num_params"], ","),
                       c["step_flops"] / 1e9, plural(c["warmup"], "warm-up step"),
                       plural(c["repeat"], "repeat"), plural(c["steps"], "step")))
        for r in doc["runs"]:
            if not ok(r):
                rows.append([what, r["backend"], r["threads"], failure(r), "—", "—",
                             mib(r.get("peak_rss_bytes"))])
                continue
            rows.append([what, r["backend"], r["threads"], ms(step_ms(r)), gflops(r.get("gflops")),
                         pct(r.get("mfu")), mib(r.get("peak_rss_bytes"))])
        rel = doc.get("reliability")
        if rel and not rel.get("reliable", True):
            rows.append([what, "UNRELIABLE", "—", "; ".join(rel.get("problems", [])), "—", "—",
                         "—"])
    out.append("")
    out.append(table(["preset", "backend", "threads", "step ms", "GFLOP/s", "MFU",
                      "peak RSS MiB"], rows, ["---", "---", "--:", "--:", "--:", "--:", "--:"]))
    return "\n".join(out)


def kbench_entries(doc):
    """name -> (seconds per call, rate text, native), or None for an error, from Google Benchmark
    JSON. With repetitions the median aggregate wins; without one, the median repetition."""
    reps, medians = {}, {}
    for b in doc["benchmarks"]:
        name = b.get("run_name", b["name"])
        if b.get("run_type") != "aggregate":
            reps.setdefault(name, []).append(b)
        elif b.get("aggregate_name") == "median":
            medians[name] = b
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    out = {}
    for name in list(reps) + [n for n in medians if n not in reps]:
        runs = reps.get(name, [])
        if any(b.get("error_occurred") for b in runs):
            out[name] = None
            continue
        b = medians.get(name) or sorted(runs, key=lambda b: b["real_time"])[(len(runs) - 1) // 2]
        seconds = b["real_time"] * scale[b.get("time_unit", "ns")]
        if "flops" in b:
            rate = "%s GFLOP/s" % gflops(b["flops"] / 1e9)
        elif "bytes" in b:
            rate = "%s GB/s" % gflops(b["bytes"] / 1e9)
        else:
            rate = ""
        out[name] = (seconds, rate, b.get("label") == "native")
    return out


def section_kbench(doc):
    entries = kbench_entries(doc)
    cols, rows_keys = [], []
    for name in entries:
        parts = name.split("/")
        if parts[-1] == "real_time":
            parts = parts[:-1]
        if len(parts) < 3:
            continue
        col, key = "/".join(parts[:2]), "/".join(parts[2:])
        if col not in cols:
            cols.append(col)
        if key not in rows_keys:
            rows_keys.append(key)
    ctx = doc.get("context", {})
    out = ["## Kernel micro-benchmarks", "",
           "randygpt-kbench (Google Benchmark) at preset %s (%s): wall time per call in "
           "microseconds and the rate, GFLOP/s for the matmuls and attention (FLOPs as in the "
           "step formula), GB/s (bytes read + written) for the others. *ref*: the backend does "
           "not run the op natively." % (ctx.get("preset", "?"), ctx.get("shape", "?")), ""]
    rows = []
    for key in rows_keys:
        row = [key]
        for col in cols:
            e = entries.get("%s/%s/real_time" % (col, key), entries.get("%s/%s" % (col, key)))
            if e is None:
                row.append("error" if ("%s/%s/real_time" % (col, key)) in entries else "—")
                continue
            seconds, rate, native = e
            row.append("%s µs, %s%s" % (fmt(seconds * 1e6, ".1f"), rate,
                                        "" if native else " *ref*"))
        rows.append(row)
    out.append(table(["op"] + cols, rows, ["---"] + ["--:"] * len(cols)))
    return "\n".join(out)


# ---- parallel strategies: op-level, replicas, ranks ----

# The design note's figures for its data parallelism: speedup by cores, and memory.
NOTE_SPEEDUP = {1: "1x", 2: "~2x (\"2x cores = ~2x speed\")", 4: "~3x", 8: "~5x"}
NOTE_MEMORY = "~15 MB at 1 thread, ~58 MB at 8 (~6.1 MB per extra worker)"


def op_level(run):
    return run.get("replicas", 1) == 1 and run.get("ranks", 1) == 1


def strategy_name(run):
    r, p = run.get("replicas", 1), run.get("ranks", 1)
    if p > 1:
        return "MPI, %d ranks" % p + (" x %d replicas" % r if r > 1 else "")
    if r == 1:
        return "op-level"
    return "data-parallel" if r == run["threads"] else "hybrid, %d replicas" % r


def cores_of(run):
    return run["threads"] * run.get("ranks", 1)


def strategy_runs(runs):
    """The bench runs of every backend that has a run with replicas or ranks, in bench order."""
    names = {r["backend"] for r in runs if not op_level(r)}
    return [r for r in runs if r["backend"] in names and r["backend"] != "pytorch"]


def find_strategy(runs, backend, threads, replicas, ranks):
    for r in runs:
        if (r["backend"], r["threads"], r.get("replicas", 1), r.get("ranks", 1)) == (
                backend, threads, replicas, ranks):
            return r
    return None


def strategy_row(runs, run, cpus):
    """The table row of run; cpus: the machine's (more cores than that share them)."""
    b = run["backend"]
    base = find_strategy(runs, b, 1, 1, 1)
    same_cores = [r for r in runs if r["backend"] == b and op_level(r) and ok(r)
                  and cores_of(r) == cores_of(run)]
    cores = cores_of(run)
    row = [b, strategy_name(run), cores if not cpus or cores <= cpus else
           "%d (on %d CPUs)" % (cores, cpus), run["threads"], run.get("replicas", 1),
           run.get("ranks", 1)]
    if not ok(run):
        return row + [failure(run)] + ["—"] * 7 + [NOTE_SPEEDUP.get(cores_of(run), "—")]
    vs_op = ratio(step_ms(same_cores[0]), step_ms(run)) if same_cores else None
    red = run.get("reduce_ms_per_step")
    red_text = "—" if red is None else "%s (%s)" % (ms(red), pct(run.get("reduce_fraction")))
    per_rank = run.get("rank_peak_rss_bytes") or [run.get("peak_rss_bytes")]
    return row + [ms(step_ms(run)), speedup(ratio(step_ms(base), step_ms(run)) if base and ok(base)
                                            else None),
                  speedup(vs_op), pct(run.get("mfu")), red_text, mib(max(per_rank)),
                  mib(run.get("peak_rss_sum_bytes")), NOTE_SPEEDUP.get(cores_of(run), "—")]


def replica_memory_rows(bench, runs):
    """Each (backend, threads) with a 1-replica and an R-replica run on one rank: the peak RSS each
    replica after the first adds, against rg_dp_replica_cost's total."""
    formula = (bench["config"].get("replica_bytes") or {}).get("total")
    rows = []
    for run in runs:
        R = run.get("replicas", 1)
        one = find_strategy(runs, run["backend"], run["threads"], 1, 1)
        if R == 1 or run.get("ranks", 1) != 1 or one is None or not (ok(run) and ok(one)):
            continue
        grown = (run["peak_rss_sum_bytes"] - one["peak_rss_sum_bytes"]) / (R - 1)
        rows.append([run["backend"], run["threads"], R, mib(one["peak_rss_sum_bytes"]),
                     mib(run["peak_rss_sum_bytes"]), mib(grown), mib(formula),
                     "—" if not formula else "%+.0f%%" % (100.0 * (grown / formula - 1.0))])
    return rows


def section_strategies(bench, runs):
    runs = strategy_runs(runs)
    if not runs:
        return None
    out = ["## Parallel strategies: op-level, data-parallel replicas, MPI ranks", "",
           "`randygpt bench --replicas` and `--ranks` (docs/data-parallel.md), interleaved in the "
           "same rounds. Op-level: one model, every kernel split over the threads. Data-parallel: "
           "the batch split over replicas on threads of their own (one per thread: the design "
           "note's strategy), gradients summed, one AdamW. MPI: the batch split over processes, "
           "gradients summed with `MPI_Allreduce`. Cores: threads x ranks. Speedup: over the "
           "backend's own 1-core run; vs op-level: the op-level run's step time at as many cores "
           "over this one's (above 1x: faster than op-level). The "
           "gradient sum includes the clipping norm's sum of squares fused into it (all an "
           "op-level run shows). Predicted: %s, for its data parallelism." % NOTE, ""]
    out += unreliable_lines(bench)
    cpus = bench["machine"].get("cpus")
    rows = [strategy_row(runs, r, cpus) for r in runs]
    out.append(table(["backend", "strategy", "cores", "threads", "replicas", "ranks", "step ms",
                      "speedup", "vs op-level", "MFU", "gradient sum ms (share)",
                      "peak RSS per process, MiB", "summed, MiB", "predicted speedup"],
                     rows, ["---", "---"] + ["--:"] * 11 + ["---"]))
    mem = replica_memory_rows(bench, runs)
    if mem:
        out += ["", "Memory of each replica after the first: the growth of peak RSS from 1 "
                "replica to R, over R-1, against the formula `rg_dp_replica_cost` computes from "
                "the model's buffer sizes (its own parameter gradients, plus what splitting the "
                "activations changes; the backend's workspace and the thread are not in it). "
                "The note predicts %s." % NOTE_MEMORY, ""]
        out.append(table(["backend", "threads", "replicas", "RSS at 1 replica, MiB",
                          "RSS at R, MiB", "measured per extra replica, MiB",
                          "formula, MiB", "measured vs formula"], mem,
                         ["---"] + ["--:"] * 7))
    return "\n".join(out)


# ---- plots ----

def plot_speedup(out_dir, runs):
    series = []
    for b in backends_in_order(runs):
        pts = {}
        for r in runs:
            if r["backend"] == b and ok(r) and (r["threads"] not in pts
                                                 or step_ms(r) < pts[r["threads"]]):
                pts[r["threads"]] = step_ms(r)  # PyTorch: its best setting at each count
        if pts:
            series.append((b, sorted(pts.items())))
    if not series:
        return None
    rgplot.plot_scaling(series, os.path.join(out_dir, "speedup.png"),
                        "Thread scaling: median step time and speedup over each backend's own "
                        "1-thread run")
    return "speedup.png", "Thread scaling of every backend against its own 1-thread run"


def plot_ops(out_dir, runs):
    cols = breakdown_runs(runs)
    if not cols:
        return None
    columns = []
    for r in cols:
        t, other = op_times(r)
        v = {g: sum(t.get(k, 0.0) for k in kinds) for g, kinds in OP_GROUPS}
        v[OP_GROUPS[-2][0]] += sum(x for k, x in t.items()
                                   if not any(k in kinds for _, kinds in OP_GROUPS))
        v[OP_GROUPS[-1][0]] = other
        columns.append(("%s\n%s" % (r["backend"], threads_text(r["threads"])), v))
    separate = ["%s\n%s" % (r["backend"], threads_text(r["threads"])) for r in cols
                if r["backend"] == BASELINE]
    rgplot.plot_ops(columns, [g for g, _ in OP_GROUPS], os.path.join(out_dir, "ops.png"),
                    "Where a training step's time goes (the reference on its own scale)",
                    separate)
    return "ops.png", "Time per op kind per backend, ms per median step"


def pure_strategy(run):
    """The line of the strategy plot a run belongs on: op-level, data-parallel (a replica per
    thread) or MPI (a rank per core); None for a hybrid (in the table only)."""
    r, p, t = run.get("replicas", 1), run.get("ranks", 1), run["threads"]
    if p == 1:
        return "op-level" if r == 1 else "data-parallel" if r == t else None
    return "MPI ranks" if t == 1 and r == 1 else None


def plot_strategies(out_dir, runs):
    """Step time and speedup by cores, one line per backend and pure strategy, each from the
    backend's 1-core run."""
    runs = strategy_runs(runs)
    series = []
    for b in backends_in_order(runs, with_torch=False):
        base = find_strategy(runs, b, 1, 1, 1)
        kinds = {}
        for r in runs:
            kind = pure_strategy(r)
            if r["backend"] == b and ok(r) and r is not base and kind:
                kinds.setdefault(kind, {})[cores_of(r)] = step_ms(r)
        for name, pts in kinds.items():
            if base is not None and ok(base):
                pts.setdefault(1, step_ms(base))
            series.append(("%s %s" % (b, name), sorted(pts.items())))
    if not series:
        return None
    rgplot.plot_scaling(series, os.path.join(out_dir, "strategies.png"),
                        "Parallel strategies: step time and speedup over the 1-core run",
                        "cores (threads x ranks)")
    return "strategies.png", "Op-level, data-parallel and MPI runs by cores"


def plot_logs(out_dir, logs):
    if not logs:
        return None
    rgplot.plot_loss([(rgplot.log_label(p), pts) for p, pts in logs],
                     os.path.join(out_dir, "loss.png"), "Training loss (`randygpt train --log`)")
    return "loss.png", "Loss curves by step and by training time"


def plots(out_dir, runs, strategy_runs_, logs):
    """Writes the plots; returns [(file name, title)] of those written. runs: the op-level runs;
    strategy_runs_: those of the strategy section."""
    return [w for w in (plot_speedup(out_dir, runs), plot_ops(out_dir, runs),
                        plot_strategies(out_dir, strategy_runs_), plot_logs(out_dir, logs)) if w]


# ---- main ----

def build_report(run_dir, log_paths, out_dir, with_plots):
    bench = load_bench(run_dir)
    torch_doc = load_torch(run_dir)
    kbench = load_kbench(run_dir)
    contend, presets, strategies_doc = load_side_benches(run_dir)
    logs = [(p, rgplot.load_log(p)) for p in log_paths]
    all_runs = list(bench["runs"]) + torch_runs(torch_doc, bench)
    for r in all_runs:
        if "backend" not in r or "threads" not in r or "status" not in r:
            raise ReportError("bench.json: a run lacks backend, threads or status")
    # every section but the strategies' compares op-level runs (one replica, one rank)
    runs = [r for r in all_runs if op_level(r)]

    parts = ["# randyGPT-C benchmark report", section_verdict(runs), section_header(bench, torch_doc), section_machine(bench, runs, torch_doc),
             section_speedup(bench, runs), section_scaling(runs), section_runs(runs),
             section_ops(runs),
             roofline.section(bench, breakdown_runs(runs),
                              [op_times(r)[0] for r in breakdown_runs(runs)], fmt, table)]
    # the strategies of this bench run, else those of bench-all's strategies.json
    strategy_doc = bench if strategy_runs(all_runs) or not strategies_doc else strategies_doc
    strategies = section_strategies(strategy_doc, strategy_doc["runs"])
    if strategies:
        parts.append(strategies)
    if torch_doc:
        parts.append(section_torch(torch_doc, bench))
    versus = load_versus(run_dir)
    if versus:
        parts.append(section_versus(versus))
    if contend:
        parts.append(section_contend(contend, bench, runs))
    if presets:
        parts.append(section_presets(presets))
    if kbench:
        parts.append(section_kbench(kbench))
    if with_plots:
        written = plots(out_dir, runs, strategy_doc["runs"], logs)
        if written:
            parts.append("## Plots\n\n" + "\n\n".join("![%s](%s)" % (title, name)
                                                        for name, title in written))
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write("\n\n".join(parts) + "\n")


def main():
    p = argparse.ArgumentParser(description="Write report.md and plots for a bench run directory.")
    p.add_argument("run_dir")
    p.add_argument("--out", help="output directory (default: RUN_DIR)")
    p.add_argument("--logs", nargs="+", default=[], metavar="FILE",
                   help="`randygpt train --log` files for the loss-curve plot")
    p.add_argument("--no-plots", action="store_true", help="write report.md only")
    args = p.parse_args()
    out_dir = args.out or args.run_dir
    try:
        if not os.path.isdir(args.run_dir):
            raise ReportError("%s is not a directory" % args.run_dir)
        os.makedirs(out_dir, exist_ok=True)
        build_report(args.run_dir, args.logs, out_dir, not args.no_plots)
    except (ReportError, rgplot.PlotError) as e:
        print("%s: %s" % (PROG, e), file=sys.stderr)
        return 1
    except (KeyError, TypeError) as e:
        print("%s: malformed input: missing or wrong field %s" % (PROG, e), file=sys.stderr)
        return 1
    print(os.path.join(out_dir, "report.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
