#!/usr/bin/env python3
"""Table of a schedule sweep: one row per --log file (lrLR-itersN.jsonl)."""
import json, re, statistics, sys, pathlib

rows = []
for p in sorted(pathlib.Path(sys.argv[1]).glob("lr*-iters*.jsonl")):
    m = re.match(r"lr([0-9.e-]+)-iters(\d+)", p.stem)
    recs = [json.loads(l) for l in p.read_text().splitlines() if l.strip()]
    iters = int(m.group(2))
    if not recs or recs[-1]["step"] != iters:
        continue
    val = {r["step"]: r["val_loss"] for r in recs if "val_loss" in r}
    ms = statistics.median(r["ms"] for r in recs)
    best = min(val.items(), key=lambda kv: kv[1])
    rows.append((float(m.group(1)), iters, val.get(1000), val.get(2000), val[iters], best, ms))
print("| lr | iters | val @1000 | val @2000 | final val | best val (step) | median ms/step (1 thread, busy machine) |")
print("|--:|--:|--:|--:|--:|--:|--:|")
for lr, it, v1, v2, vf, (bs, bv), ms in sorted(rows, key=lambda r: (r[1], r[0])):
    f = lambda x: f"{x:.4f}" if x is not None else "—"
    print(f"| {lr:g} | {it} | {f(v1)} | {f(v2)} | **{vf:.4f}** | {bv:.4f} ({bs}) | {ms:.0f} |")
