#!/usr/bin/python3
"""Writes report.md and PNG plots for one `randygpt bench` run directory.

Usage: report.py RUN_DIR [--out DIR] [--logs FILE ...] [--no-plots]

Reads RUN_DIR/bench.json (docs/bench-format.md) and, when present, RUN_DIR/kbench.json (Google
Benchmark JSON from randygpt-kbench) and RUN_DIR/torch.json (scripts/torch_baseline.py). --logs
takes `randygpt train --log` JSON-lines files for the loss-curve plot. Writes, into --out (default
RUN_DIR): report.md, speedup.png, ops.png and, with --logs, loss.png.

The output depends only on the inputs: no clock, no host lookups, fixed ordering and number
formats, PNGs without a software stamp.
"""
import argparse
import json
import os
import sys

PROG = "report.py"
NOTE = "randyGPT's multi-core design note"
BASELINE = "single"
# The speedup table's rows after the reference: (backend, what it is).
SPEEDUP_ROWS = [
    ("openmp", "with openmp"),
    ("pthreads", "with pthreads"),
    ("openblas", "with openblas"),
    ("blis", "with blis"),
]
# The op kinds of the current backend ABI, in rg_op_kind order. Results of an older ABI may list
# others (residual_backward, before version 2): op_kinds() adds them.
OP_KINDS = ["matmul_forward", "matmul_backward", "attention_forward", "attention_backward",
            "adamw_step", "rmsnorm_forward", "rmsnorm_backward", "sqrelu_forward",
            "sqrelu_backward", "residual_forward", "embedding_forward", "embedding_backward",
            "crossentropy_forward", "crossentropy_backward", "sum_squares"]


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


def load_bench(run_dir):
    doc = load_json(os.path.join(run_dir, "bench.json"), "bench results")
    if not isinstance(doc, dict) or doc.get("schema") != "randygpt-bench/1":
        raise ReportError("%s: not a randygpt-bench/1 file (schema %r)" % (
            os.path.join(run_dir, "bench.json"),
            doc.get("schema") if isinstance(doc, dict) else None))
    for key in ("machine", "build", "config", "peak", "runs"):
        if key not in doc:
            raise ReportError("bench.json: missing key '%s'" % key)
    return doc


def load_torch(run_dir):
    path = os.path.join(run_dir, "torch.json")
    if not os.path.exists(path):
        return None
    doc = load_json(path, "PyTorch results")
    if not isinstance(doc, dict) or doc.get("schema") != "randygpt-torch/1":
        raise ReportError("%s: not a randygpt-torch/1 file" % path)
    return doc


def load_kbench(run_dir):
    path = os.path.join(run_dir, "kbench.json")
    if not os.path.exists(path):
        return None
    doc = load_json(path, "kernel benchmarks")
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ReportError("%s: not a Google Benchmark JSON file" % path)
    return doc


def load_log(path):
    """A `randygpt train --log` file: one JSON object per line with step and loss, some with
    val_loss."""
    points = []
    try:
        with open(path) as f:
            for no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    points.append((int(rec["step"]), rec["loss"], rec.get("val_loss")))
                except (ValueError, KeyError, TypeError):
                    raise ReportError("%s:%d: not a train log line (JSON with step and loss)"
                                      % (path, no))
    except OSError as e:
        raise ReportError("cannot read train log %s: %s" % (path, e.strerror))
    if not points:
        raise ReportError("train log %s has no steps" % path)
    return points


# ---- number formats (one per quantity, used everywhere) ----

def fmt(x, spec, suffix=""):
    return "—" if x is None else format(x, spec) + suffix


def ms(x):
    return fmt(x, ".2f")


def speedup(x):
    return fmt(x, ".2f", "x")


def gflops(x):
    return fmt(x, ".1f")


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
    """PyTorch runs shaped like bench RUNs (backend "pytorch"), MFU against the bench's peak."""
    if not torch_doc:
        return []
    peak = {p["threads"]: p["gflops"] for p in bench["peak"].get("by_threads", [])}
    runs = []
    for r in torch_doc.get("runs", []):
        run = dict(r, backend="pytorch")
        p = peak.get(r["threads"])
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


# ---- sections ----

def plural(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def section_header(bench, torch_doc):
    cfg = bench["config"]
    lines = ["# randyGPT-C benchmark report", ""]
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
    if torch_doc:
        tc = torch_doc["config"]
        lines.append("PyTorch rows: the same model in PyTorch (scripts/torch_baseline.py), timed "
                     "the same way (%s, %s of %s)." % (
                         plural(tc["warmup"], "warm-up step"), plural(tc["repeat"], "repeat"),
                         plural(tc["steps"], "step")))
    return "\n".join(lines)


def section_machine(bench, runs, torch_doc):
    m, b, peak = bench["machine"], bench["build"], bench["peak"]
    flags = ", ".join(sorted(k for k, v in m.get("flags", {}).items() if v)) or "none"
    peaks = ", ".join("%s at %d thread%s" % (gflops(p["gflops"]), p["threads"],
                                             "" if p["threads"] == 1 else "s")
                      for p in peak.get("by_threads", []))
    rows = [
        ["CPU", m.get("cpu_model", "unknown")],
        ["CPUs", m.get("cpus", "unknown")],
        ["CPU flags", flags],
        ["Kernel", m.get("kernel", "unknown")],
        ["Memory", fmt(None if m.get("mem_total_bytes") is None
                       else m["mem_total_bytes"] / 2 ** 30, ".1f", " GiB")],
        ["Compiler", b.get("compiler", "unknown")],
        ["Compile flags", "`%s`" % b.get("flags", "unknown")],
        ["Commit", b.get("git_commit", "unknown")],
        ["Measured fp32 peak (GFLOP/s)", "%s (%s, %s-bit FMA, %s chains per thread)" % (
            peaks, peak.get("isa"), peak.get("vector_bits"), peak.get("chains"))],
    ]
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
    label = "%d core%s" % (cores, "" if cores == 1 else "s")
    for backend, what in SPEEDUP_ROWS + [("pytorch", "PyTorch")]:
        run = find_run(runs, backend, cores)
        name = "%s %s" % (label, what) if backend != "pytorch" else "%s, %s" % (label, what)
        if run is None:
            rows.append([name, backend, cores, "not run", "—", pred[backend]])
        elif not ok(run):
            rows.append([name, backend, cores, failure(run), "—", pred[backend]])
        else:
            rows.append([name, backend, cores, ms(step_ms(run)),
                         speedup(ratio(base_ms, step_ms(run))), pred[backend]])
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
        s = r["step_ms"]
        rows.append([r["backend"], r["threads"], "ok",
                     "%s (%s–%s)" % (ms(s["median"]), ms(s["min"]), ms(s["max"])),
                     fmt(r.get("tok_per_s"), ".0f"), gflops(r.get("gflops")),
                     gflops(r.get("peak_gflops")), pct(r.get("mfu")),
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
           "thread count. *ref* marks an op the backend does not run natively: the core's "
           "reference kernel ran it.", ""]
    if not cols:
        out.append("No successful run with per-op timings.")
        return "\n".join(out)
    rows = []
    for op in op_kinds(cols):
        row = [op]
        for r in cols:
            e = next((o for o in r["ops"] if o["op"] == op), None)
            row.append("—" if e is None else ms(e["ms_per_step"]) + ("" if e["native"]
                                                                   else " *ref*"))
        rows.append(row)
    rows.append(["other (model glue)"] + [ms(r.get("other_ms_per_step")) for r in cols])
    rows.append(["**step (median)**"] + ["**%s**" % ms(step_ms(r)) for r in cols])
    out.append(table(["op"] + ["%s, %d thr" % (r["backend"], r["threads"]) for r in cols], rows,
                     ["---"] + ["--:"] * len(cols)))
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


# ---- plots ----

def plots(out_dir, runs, logs):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = {"Software": None}  # no version stamp: the same input gives the same bytes
    written = []

    base_ms = step_ms(find_run(runs, BASELINE, 1))
    if base_ms is not None:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        backends = []
        for r in runs:
            if r["backend"] not in backends:
                backends.append(r["backend"])
        threads = sorted({r["threads"] for r in runs})
        for b in backends:
            pts = [(r["threads"], base_ms / step_ms(r)) for r in runs
                   if r["backend"] == b and ok(r)]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=b)
        ax.plot(threads, threads, linestyle=":", color="grey", label="linear")
        ax.set_xlabel("threads")
        ax.set_ylabel("speedup over single-thread single")
        ax.set_xticks(threads)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "speedup.png"), dpi=100, metadata=meta)
        plt.close(fig)
        written.append(("speedup.png", "Speedup over single-thread single, by thread count"))

    cols = breakdown_runs(runs)
    if cols:
        fig, ax = plt.subplots(figsize=(7.5, 4.8))
        labels = ["%s\n%d thr" % (r["backend"], r["threads"]) for r in cols]
        bottom = [0.0] * len(cols)
        colors = plt.get_cmap("tab20").colors
        for i, op in enumerate(op_kinds(cols) + ["other"]):
            vals = []
            for r in cols:
                if op == "other":
                    vals.append(r.get("other_ms_per_step") or 0.0)
                else:
                    e = next((o for o in r["ops"] if o["op"] == op), None)
                    vals.append(e["ms_per_step"] if e else 0.0)
            ax.bar(labels, vals, bottom=bottom, label=op, color=colors[i % len(colors)])
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_ylabel("ms per step")
        ax.legend(fontsize="x-small", ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "ops.png"), dpi=100, metadata=meta)
        plt.close(fig)
        written.append(("ops.png", "Time per op kind per backend (ms per step)"))

    if logs:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for i, (path, points) in enumerate(logs):
            name = os.path.splitext(os.path.basename(path))[0]
            color = "C%d" % (i % 10)
            ax.plot([p[0] for p in points], [p[1] for p in points], color=color, linewidth=1,
                    label=name + " train")
            val = [(p[0], p[2]) for p in points if p[2] is not None]
            if val:
                ax.plot([v[0] for v in val], [v[1] for v in val], color=color, marker="o",
                        linestyle="--", label=name + " val")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "loss.png"), dpi=100, metadata=meta)
        plt.close(fig)
        written.append(("loss.png", "Loss curves"))
    return written


# ---- main ----

def build_report(run_dir, log_paths, out_dir, with_plots):
    bench = load_bench(run_dir)
    torch_doc = load_torch(run_dir)
    kbench = load_kbench(run_dir)
    logs = [(p, load_log(p)) for p in log_paths]
    runs = list(bench["runs"]) + torch_runs(torch_doc, bench)
    for r in runs:
        if "backend" not in r or "threads" not in r or "status" not in r:
            raise ReportError("bench.json: a run lacks backend, threads or status")

    parts = [section_header(bench, torch_doc), section_machine(bench, runs, torch_doc),
             section_speedup(bench, runs), section_scaling(runs), section_runs(runs),
             section_ops(runs)]
    if kbench:
        parts.append(section_kbench(kbench))
    if with_plots:
        written = plots(out_dir, runs, logs)
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
    except ReportError as e:
        print("%s: %s" % (PROG, e), file=sys.stderr)
        return 1
    except (KeyError, TypeError) as e:
        print("%s: malformed input: missing or wrong field %s" % (PROG, e), file=sys.stderr)
        return 1
    print(os.path.join(out_dir, "report.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
