"""FLOPs and bytes of each op kind in one training step, and the report's roofline section.

op_costs() is the one place these counts live for the report: per call they are the counts of
randygpt-kbench (harness/kbench/kbench.c, kb_flops and kb_bytes: every float read plus every float
written, a += output counted twice, int32 tokens once), summed over the calls of one training step
of the model (core/src/model.c), the backward's recomputations included: each layer's Wo product,
skip connection and two norms again, and the embedding once more. FLOPs: a matmul 2 N C OC forward
and 4 N C OC backward, attention 4 B NH T^2 hs forward and twice that backward (the parts of
rg_model_step_flops, plus the recomputed Wo products); the memory-bound ops count no FLOPs.
"""

F = 4.0  # bytes per float and per int32 token


def op_costs(cfg):
    """{op: (flops, bytes)} per training step for a bench.json config (B, T, C, NH, L, V,
    num_params)."""
    B, T, C, NH, L, V = (cfg[k] for k in ("B", "T", "C", "NH", "L", "V"))
    N, P = float(B * T), float(cfg["num_params"])
    # the model's matmuls: (C, OC) of each layer's four and of the LM head once; forward, also
    # each layer's Wo product again (the backward recomputes the residual after attention)
    shapes = [(C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)] * L + [(C, V)]
    fwd_shapes = shapes + [(C, C)] * L
    mm_f = sum(2.0 * N * c * oc for c, oc in fwd_shapes)
    mm_fb = sum(F * (N * c + oc * c + N * oc) for c, oc in fwd_shapes)
    mm_b = sum(4.0 * N * c * oc for c, oc in shapes)
    # dout, inp, weight read; dinp written; dweight += (read and written)
    mm_bb = sum(F * (N * oc + 2.0 * N * c + 3.0 * oc * c) for c, oc in shapes)
    att = 4.0 * B * NH * T * T * (C // NH)
    stats = float(B * NH * T * 2)  # each row's max and 1/sum; the (T,T) probabilities stay in cache
    return {
        "matmul_forward": (mm_f, mm_fb),
        "matmul_backward": (mm_b, mm_bb),
        # qkv read; stats and out written
        "attention_forward": (L * att, L * F * (3 * N * C + stats + N * C)),
        # qkv, stats, dout read; dqkv written
        "attention_backward": (L * 2.0 * att, L * F * (3 * N * C + stats + N * C + 3 * N * C)),
        "adamw_step": (0.0, F * 7.0 * P),
        "rmsnorm_forward": (0.0, 4 * L * F * (2.0 * N * C + N)),  # 2 per layer, again backward
        "rmsnorm_backward": (0.0, 2 * L * F * (4.0 * N * C + N)),
        "sqrelu_forward": (0.0, L * F * 2.0 * 4 * N * C),
        "sqrelu_backward": (0.0, L * F * 3.0 * 4 * N * C),
        "residual_forward": (0.0, 3 * L * F * 3.0 * N * C),  # 2 per layer, 1 again backward
        "embedding_forward": (0.0, 2 * F * (3.0 * N * C + N)),  # again before layer 0's backward
        "embedding_backward": (0.0, F * (5.0 * N * C + N)),
        "crossentropy_forward": (0.0, F * (2.0 * N * V + 2.0 * N)),
        "crossentropy_backward": (0.0, F * (2.0 * N * V + N)),
        "sum_squares": (0.0, F * P),
    }


def by_threads(bench, section, key):
    """{threads: value} of bench[section]["by_threads"], without missing values."""
    return {p["threads"]: p[key] for p in (bench.get(section) or {}).get("by_threads", [])
            if p.get(key) is not None}


def section(bench, cols, times, fmt, table):
    """The roofline table for the runs cols (each backend at its largest thread count; times: the
    {op: ms per step} of each): per op, its FLOPs and bytes per step, arithmetic intensity, and per
    run the rate it reached against the roof that bounds it at the run's thread count."""
    out = ["## Roofline", ""]
    peaks, bws = by_threads(bench, "peak", "gflops"), by_threads(bench, "bandwidth", "gbps")
    if not bws:
        out.append("No memory bandwidth in bench.json (a bench older than its `bandwidth` "
                   "section): no roofline.")
        return "\n".join(out)
    threads = sorted({r["threads"] for r in cols})
    out.append("Each op's FLOPs and bytes (read + written) per training step, counted as "
               "randygpt-kbench counts them (scripts/roofline.py), its arithmetic intensity "
               "(FLOP/byte), and what each backend reached: GFLOP/s against the FMA peak for an "
               "op above the ridge point (compute-bound), GB/s against the triad bandwidth for one "
               "below it (memory-bound), with the percentage of that roof; over 100%% of the bandwidth "
               "means the op's data stayed in the caches, which the triad's arrays are too large "
               "for. Roofs at each thread count: %s." % "; ".join(
                   "%d thread%s: %s GFLOP/s, %s GB/s, ridge %s FLOP/byte" % (
                       t, "" if t == 1 else "s", fmt(peaks.get(t), ".1f"), fmt(bws.get(t), ".1f"),
                       fmt(peaks[t] / bws[t] if peaks.get(t) and bws.get(t) else None, ".1f"))
                   for t in threads))
    out.append("")
    costs = op_costs(bench["config"])
    rows = []
    for op, (flops, nbytes) in costs.items():
        ai = flops / nbytes if nbytes else None
        row = [op, fmt(flops / 1e9, ".3f"), fmt(nbytes / 1e6, ".1f"), fmt(ai, ".1f")]
        for r, t in zip(cols, times):
            e = next((o for o in r.get("ops") or [] if o["op"] == op), None)
            peak, bw = peaks.get(r["threads"]), bws.get(r["threads"])
            if e is None or not t.get(op) or not peak or not bw:
                row.append("—")
                continue
            s = t[op] / 1e3
            compute = ai is not None and ai >= peak / bw
            if compute:
                rate, roof, unit = flops / s / 1e9, peak, "GFLOP/s"
            else:
                rate, roof, unit = nbytes / s / 1e9, bw, "GB/s"
            row.append("%s %s, %s of %s%s" % (fmt(rate, ".1f"), unit, fmt(100 * rate / roof, ".0f",
                                                                       "%"),
                                              "peak" if compute else "bandwidth",
                                              "" if e.get("native", True) else " *ref*"))
        rows.append(row)
    out.append(table(["op", "GFLOP/step", "MB/step", "FLOP/byte"]
                     + ["%s, %d thr" % (r["backend"], r["threads"]) for r in cols], rows,
                     ["---", "--:", "--:", "--:"] + ["--:"] * len(cols)))
    return "\n".join(out)
