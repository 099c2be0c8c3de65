#!/usr/bin/python3
"""Loss curves of one or several `randygpt train --log` files: loss against step and against
training time (the steps' own times summed, evaluation excluded), so that trainings with two
backends compare by time to a given loss.

Usage: plot.py LOG... [--out FILE] [--title TEXT]

Each log is named in the legend by its file name without .jsonl. Writes FILE (default loss.png)
and prints its name. Bad input: one line on stderr, exit status 1.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rgplot  # noqa: E402

PROG = "plot.py"


def main():
    p = argparse.ArgumentParser(prog=PROG, description="Plot loss by step and by training time "
                                "for `randygpt train --log` files.")
    p.add_argument("logs", nargs="+", metavar="LOG", help="`randygpt train --log` JSON-lines file")
    p.add_argument("--out", default="loss.png", help="the PNG to write (default: loss.png)")
    p.add_argument("--title", default="Training loss", help="the figure's title")
    args = p.parse_args()
    try:
        logs = [(rgplot.log_label(path), rgplot.load_log(path)) for path in args.logs]
        rgplot.plot_loss(logs, args.out, args.title)
    except rgplot.PlotError as e:
        print("%s: %s" % (PROG, e), file=sys.stderr)
        return 1
    except OSError as e:
        print("%s: cannot write %s: %s" % (PROG, args.out, e.strerror), file=sys.stderr)
        return 1
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
