"""The plotting code of scripts/plot.py and scripts/report.py: loss curves from `randygpt train --log`
files, thread scaling and the per-op breakdown of a bench run. One look for every picture: a title,
labelled axes, a grid, and PNGs without a software stamp (the same input gives the same bytes).

Every function raises PlotError for bad input; the scripts print it as one line.
"""
import json
import os

# One colour per backend or log, in order (matplotlib's tab10: ten colours that stay apart).
COLORS = ["C%d" % i for i in range(10)]
DPI = 100


class PlotError(Exception):
    """Bad or missing input: reported as one line, exit status 1."""


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, path):
    plt = pyplot()
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)


def color(i):
    return COLORS[i % len(COLORS)]


# ---- training logs ----

def load_log(path):
    """A `randygpt train --log` file (one JSON object per step: step, loss = the batch's loss;
    at evaluations train_loss and val_loss, measured alike; ms = the step's own time; wall_s =
    the wall time since training started, evaluations included). Returns a list of dicts with
    step, loss, train_loss and val_loss (None between evaluations), time_s: the steps' times
    summed up to and including that step (None once a line lacks ms), and wall_s (None once a
    line lacks it; a log appended to by --resume restarts its clock, which is carried on)."""
    points, total, wall, offset = [], 0.0, 0.0, 0.0
    try:
        with open(path) as f:
            for no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    step, loss = int(rec["step"]), float(rec["loss"])
                    val, train = (None if rec.get(k) is None else float(rec[k])
                                  for k in ("val_loss", "train_loss"))
                    ms = rec.get("ms")
                    total = None if ms is None or total is None else total + float(ms) / 1e3
                    w = rec.get("wall_s")
                    if w is None or wall is None:
                        wall = None
                    else:
                        if float(w) + offset < wall:  # a resumed run's clock starts again
                            offset = wall
                        wall = float(w) + offset
                except (ValueError, KeyError, TypeError, AttributeError):
                    raise PlotError("%s:%d: not a train log line (JSON with step and loss)"
                                    % (path, no))
                points.append({"step": step, "loss": loss, "train_loss": train, "val_loss": val,
                               "time_s": total, "wall_s": wall})
    except OSError as e:
        raise PlotError("cannot read train log %s: %s" % (path, e.strerror))
    if not points:
        raise PlotError("train log %s has no steps" % path)
    return points


def log_label(path):
    """A log's legend name: its file name without .jsonl (train-openmp.jsonl -> train-openmp)."""
    return os.path.splitext(os.path.basename(path))[0]


def plot_loss(logs, path, title="Training loss"):
    """logs: [(label, points from load_log)]. Two panels: loss against step and against time
    (wall time when every log has it, else the steps' times summed; on a log scale when one log
    took over 5x another's time). Batch losses as a thin line, the evaluations' validation loss
    (dashed, circles) and train loss (squares) as markers."""
    plt = pyplot()
    panels = [("step", "step")]
    if all(p[-1]["wall_s"] is not None for _, p in logs):
        panels.append(("wall_s", "wall time (s, evaluations included)"))
    elif all(p[-1]["time_s"] is not None for _, p in logs):
        panels.append(("time_s", "training time (s, step times summed, evaluations excluded)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 4.4), squeeze=False)
    axes = axes[0]
    for ax, (key, xlabel) in zip(axes, panels):
        for i, (label, points) in enumerate(logs):
            xs = [p[key] for p in points]
            ax.plot(xs, [p["loss"] for p in points], color=color(i), linewidth=0.8, alpha=0.8,
                    label=label + " train (batch)")
            val = [(p[key], p["val_loss"]) for p in points if p["val_loss"] is not None]
            if val:
                ax.plot([v[0] for v in val], [v[1] for v in val], color=color(i), marker="o",
                        markersize=4, linestyle="--", linewidth=1.2, label=label + " validation")
            ev = [(p[key], p["train_loss"]) for p in points if p["train_loss"] is not None]
            if ev:
                ax.plot([v[0] for v in ev], [v[1] for v in ev], color=color(i), marker="s",
                        markersize=4, linestyle="none", label=label + " train (evaluated)")
        totals = [p[-1][key] for _, p in logs]
        if key != "step" and min(totals) > 0 and max(totals) / min(totals) > 5:
            ax.set_xscale("log")  # a 20x slower backend would squash the others into one line
            xlabel += ", log scale"
        ax.set_xlabel(xlabel)
        ax.set_ylabel("loss (cross-entropy, nats per byte)")
        ax.set_title("by step" if key == "step" else "by time")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, path)


# ---- bench runs ----

def log_axis(ax):
    """A log-scale y axis with plain numbers (70, 100, 200) instead of powers of ten; minor ticks
    are labelled too when the range spans less than a decade, which would show no major tick."""
    from matplotlib.ticker import FuncFormatter, NullFormatter
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: "%g" % v)
    ax.yaxis.set_major_formatter(plain)
    lo, hi = ax.get_ylim()
    ax.yaxis.set_minor_formatter(plain if hi / lo < 10 else NullFormatter())


def plot_scaling(series, path, title, xlabel="threads"):
    """series: [(backend, [(threads, median step ms), ...])]. Left: step time against threads on a
    log scale, each backend with its own ideal line (its 1-thread time / threads, dotted, same
    colour). Right: speedup over the backend's own 1-thread run, against the ideal y = threads.
    xlabel names what the x axis counts (the strategy plot: every thread of every rank)."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.0, 4.4))
    threads = sorted({t for _, pts in series for t, _ in pts})
    for i, (backend, pts) in enumerate(series):
        pts = sorted(pts)
        left.plot([t for t, _ in pts], [m for _, m in pts], color=color(i), marker="o",
                  label=backend)
        one = dict(pts).get(1)
        if one is not None and len(pts) > 1:
            left.plot(threads, [one / t for t in threads], color=color(i), linestyle=":",
                      linewidth=1)
            right.plot([t for t, _ in pts], [one / m for _, m in pts], color=color(i),
                       marker="o", label=backend)
    right.plot(threads, threads, color="black", linestyle=":", linewidth=1,
               label="ideal (threads x)")
    log_axis(left)
    left.set_ylabel("median step time (ms, log scale)")
    left.set_title("step time (dotted: 1-thread time / threads)")
    right.set_ylabel("speedup over the same backend at 1 thread")
    right.set_title("scaling with threads")
    for ax in (left, right):
        ax.set_xlabel(xlabel)
        ax.set_xticks(threads)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, path)


def plot_ops(columns, groups, path, title, separate=()):
    """columns: [(label, {group: ms})]; groups: the stacking order (one colour each). Columns whose
    label is in separate (the reference, ten times slower) get a panel and a scale of their own."""
    plt = pyplot()
    panels = []
    if any(l in separate for l, _ in columns):
        panels.append("sep")
    if any(l not in separate for l, _ in columns):
        panels.append("main")
    widths = [1 if p == "sep" else max(1, sum(l not in separate for l, _ in columns))
              for p in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 + 1.3 * sum(widths), 4.8),
                             squeeze=False, gridspec_kw={"width_ratios": widths})
    for ax, panel in zip(axes[0], panels):
        cols = [(l, v) for l, v in columns if (l in separate) == (panel == "sep")]
        bottom = [0.0] * len(cols)
        for i, g in enumerate(groups):
            vals = [v.get(g, 0.0) for _, v in cols]
            ax.bar([l for l, _ in cols], vals, bottom=bottom, color=color(i), label=g, width=0.6)
            bottom = [b + v for b, v in zip(bottom, vals)]
        for x, top in enumerate(bottom):
            ax.annotate("%.1f" % top, (x, top), ha="center", va="bottom", fontsize="small")
        ax.set_ylim(0, max(bottom) * 1.1 if bottom and max(bottom) > 0 else 1)
        ax.set_ylabel("ms per step (median step)")
        ax.grid(True, axis="y", alpha=0.3)
        ax.tick_params(axis="x", labelsize="small")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    axes[0][-1].legend(handles[::-1], labels[::-1], fontsize="small", loc="upper left",
                       bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, path)
