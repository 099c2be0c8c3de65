#!/usr/bin/python3
"""The fastest backend against PyTorch's fastest setting, in interleaved rounds.

bench.json and torch.json of a bench-all run were timed one after the other, minutes apart, on a
machine whose speed drifts; their ratio mixes the two programs with the drift. This times both
again at each thread count they share, one repeat each per round, the order alternating between
rounds, so that every round's ratio (PyTorch's step time over ours) is of two runs seconds apart.
Writes versus.json (docs/bench-format.md): the rounds, their ratios and the median ratio.

Usage: versus_torch.py --bench RUN_DIR/bench.json --torch RUN_DIR/torch.json
                       --randygpt build/bin/randygpt [--rounds 5] --out RUN_DIR/versus.json
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402  (which run is fastest, as the report picks it)
import torch_baseline  # noqa: E402  (the PyTorch side: the same child, the same settings)

SCHEMA = "randygpt-versus-torch/1"


def pairs(bench, torch):
    """[(threads, our fastest run, PyTorch's fastest run)] at every thread count both ran."""
    ours_runs = [r for r in bench["runs"] if report.op_level(r)]
    theirs_runs = [dict(r, backend="pytorch") for r in torch["runs"]]
    out = []
    for t in sorted({r["threads"] for r in bench["runs"]}):
        ours = report.fastest(ours_runs, threads=t)
        theirs = report.fastest(theirs_runs, backend="pytorch", threads=t)
        if ours and theirs:
            out.append((t, ours, theirs))
    return out


def time_ours(randygpt, run, cfg, tmp):
    """One repeat of our run's backend and thread count: its step time in ms, or None."""
    out = tempfile.mkdtemp(dir=tmp)
    cmd = [randygpt, "bench", "--backends", run["path"], "--threads", str(run["threads"]),
           "--preset", cfg["preset"], "--steps", str(cfg["steps"]), "--warmup",
           str(cfg["warmup"]), "--repeat", "1", "--seed", str(cfg["seed"]), "--out", out,
           "--machine", "versus", "--report-script", os.devnull]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = glob.glob(os.path.join(out, "versus", "*", "bench.json"))
    if proc.returncode != 0 or not found:
        print("versus_torch.py: %s failed: %s" % (" ".join(cmd), proc.stderr.strip()[-300:]),
              file=sys.stderr)
        return None
    with open(found[0]) as f:
        runs = [r for r in json.load(f)["runs"] if r["status"] == "ok"]
    return runs[0]["step_ms"]["median"] if runs else None


def time_theirs(run, cfg):
    """One repeat of PyTorch's setting: its step time in ms, or None."""
    r = torch_baseline.run_setting(run["threads"], run["setting"], cfg["preset"], cfg["steps"],
                                   cfg["warmup"], 1, cfg["seed"], cfg["V"])
    if r["status"] != "ok":
        print("versus_torch.py: PyTorch (%s) failed: %s" % (run["setting"]["label"], r["error"]),
              file=sys.stderr)
        return None
    return r["step_ms"]["median"]


def load(path, schema):
    """A bench.json or torch.json whose schema starts with `schema`; one error line otherwise."""
    try:
        with open(path) as f:
            doc = json.load(f)
        if not isinstance(doc, dict) or not str(doc.get("schema", "")).startswith(schema) \
                or "config" not in doc or not isinstance(doc.get("runs"), list):
            raise ValueError("not a %s file" % schema.rstrip("/"))
        return doc
    except (OSError, ValueError) as e:
        raise SystemExit("versus_torch.py: %s: %s" % (path, e))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bench", required=True)
    p.add_argument("--torch", required=True)
    p.add_argument("--randygpt", required=True)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.rounds < 1:
        raise SystemExit("versus_torch.py: --rounds must be at least 1")
    bench, torch = load(args.bench, "randygpt-bench/"), load(args.torch, "randygpt-torch/")
    cfg = bench["config"]
    if torch["config"]["preset"] != cfg["preset"]:
        raise SystemExit("versus_torch.py: bench.json is of preset %s, torch.json of %s" % (
            cfg["preset"], torch["config"]["preset"]))
    doc = {"schema": SCHEMA, "command": "versus_torch.py " + " ".join(sys.argv[1:]),
           "config": {k: cfg[k] for k in ("preset", "steps", "warmup", "seed")},
           "rounds": args.rounds, "pairs": []}
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        for t, ours, theirs in pairs(bench, torch):
            entry = {"threads": t, "backend": ours["backend"],
                     "torch_setting": theirs["setting"]["label"], "ours_ms": [], "torch_ms": []}
            for r in range(args.rounds):
                for side in (("ours", "torch") if r % 2 == 0 else ("torch", "ours")):
                    if side == "ours":
                        ms = time_ours(args.randygpt, ours, cfg, tmp)
                    else:
                        ms = time_theirs(theirs, dict(cfg, V=torch["config"]["V"]))
                    entry[side + "_ms"].append(ms)
            ratios = [b / a for a, b in zip(entry["ours_ms"], entry["torch_ms"]) if a and b]
            entry["ratios"] = ratios
            entry["median_ratio"] = statistics.median(ratios) if ratios else None
            status = status if len(ratios) == args.rounds else 1
            doc["pairs"].append(entry)
            print("versus_torch.py: %d thread%s, %s against PyTorch: %s" % (
                t, "" if t == 1 else "s", ours["backend"],
                "median ratio %.2fx over %d rounds" % (entry["median_ratio"], len(ratios))
                if ratios else "no round completed"), file=sys.stderr)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
