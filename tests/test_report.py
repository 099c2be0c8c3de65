"""Tests of scripts/report.py on the fixture run directory tests/fixtures-report: the whole
report.md against expected-report.md, the verdict paragraph and the headline figures recomputed
here from the fixture JSON, a speedup table row for every backend that ran, the plots,
byte-for-byte determinism, and one clear error line for bad input. Also scripts/plot.py on two
small train logs, scripts/torch_baseline.py at the tiny preset (skipped without PyTorch), and the
report over it.

Usage: test_report.py --tmpdir DIR (run by ctest as test_report)
"""
import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REPORT = os.path.join(ROOT, "scripts", "report.py")
PLOT = os.path.join(ROOT, "scripts", "plot.py")
FIXTURE = os.path.join(HERE, "fixtures-report")
LOG = os.path.join(FIXTURE, "train-openblas.jsonl")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

TMP = None


def run_report(*args):
    return subprocess.run([sys.executable, REPORT, *args], capture_output=True, text=True,
                          timeout=120)


def run_plot(*args):
    return subprocess.run([sys.executable, PLOT, *args], capture_output=True, text=True,
                          timeout=120)


def report_of(name, bench, torch=None, extra=None):
    """report.md of a run directory TMP/name made of these documents, and of extra's (file name:
    document), without plots."""
    run_dir = os.path.join(TMP, name)
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    for file, doc in [("bench.json", bench), ("torch.json", torch)] + list((extra or {}).items()):
        if doc is not None:
            with open(os.path.join(run_dir, file), "w") as f:
                json.dump(doc, f)
    proc = run_report(run_dir, "--no-plots")
    if proc.returncode != 0:
        raise AssertionError("report.py failed: " + proc.stderr)
    return read(os.path.join(run_dir, "report.md"))


def verdict(md):
    """The report's opening paragraph: the first one after the title."""
    paragraphs = md.split("\n\n")
    assert paragraphs[0] == "# randyGPT-C benchmark report", paragraphs[0]
    return paragraphs[1]


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def table_rows(md, heading, level="##"):
    """The rows (lists of cells) of the first table after a '## heading' line (or another level)."""
    lines = md.splitlines()
    start = lines.index(level + " " + heading)
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if line.startswith("|") and not set(line) <= set("|-: "):  # not the alignment row
            rows.append([c.strip() for c in line.strip("|").split(" | ")])
        elif rows and not line.startswith("|"):
            break
    return rows[1:]  # without the header row


class FullReport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = os.path.join(TMP, "full")
        shutil.rmtree(cls.out, ignore_errors=True)
        proc = run_report(FIXTURE, "--out", cls.out, "--logs", LOG)
        if proc.returncode != 0:
            raise AssertionError("report.py failed: " + proc.stderr)
        cls.md = read(os.path.join(cls.out, "report.md"))
        cls.bench = json.loads(read(os.path.join(FIXTURE, "bench.json")))
        cls.torch = json.loads(read(os.path.join(FIXTURE, "torch.json")))

    def run_ms(self, backend, threads):
        if backend == "pytorch":  # its fastest setting at that thread count
            return torch_best(self.torch, threads)["step_ms"]["median"]
        for r in self.bench["runs"]:
            if r["backend"] == backend and r["threads"] == threads:
                return r["step_ms"]["median"]
        raise KeyError((backend, threads))

    def test_matches_expected_file(self):
        expected = read(os.path.join(FIXTURE, "expected-report.md"))
        self.assertEqual(self.md, expected)

    def test_machine_load_row(self):
        rows = dict((r[0], r[1]) for r in table_rows(self.md, "Machine"))
        load = self.bench["load"]
        self.assertEqual(rows["Load during the rounds"],
                         "other processes %.1f%% of the 2 CPUs' time, steal %.1f%% (`/proc/stat`, "
                         "less bench's own processes, over 418 s)"
                         % (100 * load["others_fraction"], 100 * load["steal_fraction"]))

    def test_machine_cpu_row(self):
        """The CPU row names the family and model where bench recorded them (the fixture, older,
        has neither: the model name alone)."""
        # the Machine table's first row (table_rows takes it for a header)
        self.assertIn("\n| CPU | %s |\n" % self.bench["machine"]["cpu_model"], self.md)
        bench = json.loads(json.dumps(self.bench))
        bench["machine"].update(cpu_model="AMD EPYC", cpu_family=25, cpu_model_number=17)
        self.assertIn("\n| CPU | AMD EPYC (family 25, model 17) |\n", report_of("cpu-row", bench))

    def test_speedup_table_recomputed(self):
        rows = {r[1]: r for r in table_rows(self.md, "Speedup against single-thread `single`")}
        base = self.run_ms("single", 1)
        self.assertEqual(rows["single"][4], "1.00x")
        for backend in ("openmp", "openblas", "blis"):
            measured = float(rows[backend][4].rstrip("x"))
            self.assertAlmostEqual(measured, base / self.run_ms(backend, 2), delta=0.005)
            self.assertEqual(rows[backend][2], "2")
        # PyTorch: its fastest setting at 2 threads, then as shipped, each named with its settings
        torch_rows = [r for r in table_rows(self.md, "Speedup against single-thread `single`")
                      if r[1] == "pytorch"]
        best, shipped = torch_best(self.torch, 2), torch_shipped(self.torch, 2)
        self.assertEqual(torch_rows[0][0], "2 cores, PyTorch at its best setting (%s)"
                         % best["setting"]["label"])
        self.assertEqual(torch_rows[1][0], "2 cores, PyTorch as shipped (%s)"
                         % shipped["setting"]["label"])
        for row, run in zip(torch_rows, (best, shipped)):
            self.assertAlmostEqual(float(row[4].rstrip("x")), base / run["step_ms"]["median"],
                                   delta=0.005)
        # pthreads failed at 2 threads: no speedup is claimed for it
        self.assertEqual(rows["pthreads"][3], "failed (signal: SIGSEGV)")
        self.assertEqual(rows["pthreads"][4], "—")
        # predictions are the note's, by kind of backend
        self.assertIn("\"Near-linear with cores (2x cores = ~2x speed)\"", rows["openmp"][5])
        self.assertIn("~2-4x", rows["blis"][5])
        self.assertIn("no prediction", rows["pytorch"][5])

    def test_mfu_and_rss_recomputed(self):
        peaks = {p["threads"]: p["gflops"] for p in self.bench["peak"]["by_threads"]}
        rows = table_rows(self.md, "All runs: throughput, MFU and memory")
        # PyTorch: at each thread count its fastest setting, then the shipped one
        chosen = [dict(r, backend="pytorch") for t in (1, 2)
                  for r in (torch_best(self.torch, t), torch_shipped(self.torch, t))]
        self.assertEqual(len(rows), len(self.bench["runs"]) + len(chosen))
        for run in self.bench["runs"] + chosen:
            row = next(r for r in rows if r[0] == run["backend"] and r[1] == str(run["threads"])
                       and (r[0] != "pytorch" or r[3].startswith("%.2f " % run["step_ms"]["median"])))
            self.assertAlmostEqual(float(row[8]), run["peak_rss_bytes"] / 2 ** 20, delta=0.05)
            if run["status"] != "ok":
                # a refused configuration is not a failure of the backend
                self.assertEqual(row[2], "refused" if run["reason"] == "refused"
                                 else "failed (%s: %s)" % (run["reason"], run["signal"]))
                continue
            mfu = run["gflops"] / peaks[run["threads"]]
            self.assertAlmostEqual(float(row[7].rstrip("%")), 100 * mfu, delta=0.05)
            one = next(r for r in rows if r[0] == run["backend"] and r[1] == "1")
            if run["backend"] == "pytorch":
                continue  # its RSS growth is against its first 1-thread row
            if run["threads"] == 1 or one[2] != "ok":
                self.assertEqual(row[9], "—")
            else:
                self.assertAlmostEqual(float(row[9]), float(row[8]) - float(one[8]), delta=0.051)

    def test_scaling_is_against_own_one_thread_run(self):
        rows = {r[0]: r for r in table_rows(self.md, "Thread scaling")}
        ratio = self.run_ms("openmp", 1) / self.run_ms("openmp", 2)
        self.assertEqual(rows["openmp"][2], "%.2f (%.2fx)" % (self.run_ms("openmp", 2), ratio))
        self.assertEqual(rows["single"][2], "refused")
        self.assertEqual(rows["pthreads"][2], "failed (signal: SIGSEGV)")

    def test_op_breakdown_marks_reference_ops(self):
        rows = table_rows(self.md, "Op breakdown")
        header = [l for l in self.md.splitlines() if l.startswith("| op | single")][0]
        cols = [c.strip() for c in header.strip("|").split(" | ")]
        col = cols.index("openblas, 2 thr")
        refs = [r[0] for r in rows if r[col].endswith("*ref*")]
        self.assertEqual(refs, ["sum_squares"])
        # no other backend has a reference op
        for c in range(1, len(cols)):
            if c != col:
                self.assertFalse(any(r[c].endswith("*ref*") for r in rows))
        # pthreads failed at 2 threads: its breakdown is its 1-thread run
        self.assertIn("pthreads, 1 thr", cols)

    def test_plots_written(self):
        for name in ("speedup.png", "ops.png", "strategies.png", "loss.png"):
            data = read(os.path.join(self.out, name), "rb")
            self.assertEqual(data[:8], PNG_MAGIC, name)
            self.assertGreater(len(data), 5000, name)
            self.assertIn("](%s)" % name, self.md)

    def test_deterministic(self):
        again = os.path.join(TMP, "again")
        shutil.rmtree(again, ignore_errors=True)
        proc = run_report(FIXTURE, "--out", again, "--logs", LOG)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        for name in ("report.md", "speedup.png", "ops.png", "loss.png"):
            self.assertEqual(read(os.path.join(self.out, name), "rb"),
                             read(os.path.join(again, name), "rb"), name)


def fixture(name):
    return json.loads(read(os.path.join(FIXTURE, name)))


def torch_best(doc, threads):
    """The fastest successful PyTorch run of any setting at threads."""
    return min((r for r in doc["runs"] if r["threads"] == threads and r["status"] == "ok"),
               key=lambda r: r["step_ms"]["median"])


def torch_shipped(doc, threads):
    return next(r for r in doc["runs"] if r["threads"] == threads
                and r["setting"]["name"] == "shipped")


class Verdict(unittest.TestCase):
    """The opening paragraph names the fastest backend at each thread count, recomputed here,
    with its lead over the best single-thread backend and PyTorch, and the op that decides it."""

    def test_fixture_verdict(self):
        bench, torch = fixture("bench.json"), fixture("torch.json")
        text = verdict(report_of("verdict", bench, torch))
        self.assertTrue(text.startswith("**Verdict**"), text)
        ok = [r for r in bench["runs"] if r["status"] == "ok"]
        med = {(r["backend"], r["threads"]): r["step_ms"]["median"] for r in ok}
        best1 = min((r for r in ok if r["threads"] == 1), key=lambda r: r["step_ms"]["median"])
        for t in (1, 2):
            win = min((r for r in ok if r["threads"] == t), key=lambda r: r["step_ms"]["median"])
            sentence = [s for s in text.split(". ") if s.startswith("At %d thread" % t)][0]
            self.assertIn("**%s** is fastest: %.2f ms" % (win["backend"],
                                                          win["step_ms"]["median"]), sentence)
            tor = min((r for r in torch["runs"] if r["threads"] <= t and r["status"] == "ok"),
                      key=lambda r: r["step_ms"]["median"])
            self.assertIn("%.2fx faster than PyTorch at its best setting (%s) at %d thread" % (
                tor["step_ms"]["median"] / win["step_ms"]["median"], tor["setting"]["label"],
                tor["threads"]), sentence)
            if t > 1:
                self.assertIn("%.2fx faster than the best single-thread backend (`%s`" % (
                    best1["step_ms"]["median"] / win["step_ms"]["median"], best1["backend"]),
                    sentence)
            # the op that decides: the largest per-op saving over the runner-up
            second = sorted((r for r in ok if r["threads"] == t),
                            key=lambda r: r["step_ms"]["median"])[1]
            a = {o["op"]: o["ms_per_step"] for o in win["ops"]}
            b = {o["op"]: o["ms_per_step"] for o in second["ops"]}
            scale_a = med[(win["backend"], t)] / (sum(a.values()) + win["other_ms_per_step"])
            scale_b = med[(second["backend"], t)] / (sum(b.values())
                                                     + second["other_ms_per_step"])
            op = max(a, key=lambda k: b[k] * scale_b - a[k] * scale_a)
            self.assertIn("runner-up `%s`" % second["backend"], sentence)
            self.assertIn("difference is in %s (%.2f against %.2f ms" % (
                op, a[op] * scale_a, b[op] * scale_b), sentence)

    def test_pytorch_best_setting_is_used_and_named(self):
        bench, torch = fixture("bench.json"), fixture("torch.json")
        tuned = next(r for r in torch["runs"] if r["threads"] == 1
                     and r["setting"]["name"] == "tuned")
        tuned["step_ms"] = {"median": 50.0, "min": 49.0, "max": 51.0}
        text = verdict(report_of("verdict-torch", bench, torch))
        # openblas at 1 thread: 60 ms against the best setting's 50 ms; at 2 threads PyTorch's
        # best 2-thread setting is faster still (40 ms), and is the one compared with
        self.assertIn("1.20x slower than PyTorch at its best setting (%s) at 1 thread (50.00 ms)"
                      % tuned["setting"]["label"], text)
        self.assertIn("1.14x faster than PyTorch at its best setting (%s) at 2 threads (40.00 ms"
                      % torch_best(torch, 2)["setting"]["label"], text)

    def test_shipped_when_it_is_the_best(self):
        bench, torch = fixture("bench.json"), fixture("torch.json")
        torch["runs"] = [r for r in torch["runs"] if r["setting"]["name"] == "shipped"]
        md = report_of("verdict-shipped", bench, torch)
        rows = [r for r in table_rows(md, "Speedup against single-thread `single`")
                if r[1] == "pytorch"]
        self.assertEqual([r[0] for r in rows], ["2 cores, PyTorch as shipped, its best setting "
                                                "(%s)" % torch_shipped(torch, 2)["setting"]["label"]])

    def test_version_1_torch_file(self):
        """A randygpt-torch/1 file ran PyTorch as shipped only."""
        bench, torch = fixture("bench.json"), fixture("torch.json")
        torch["schema"] = "randygpt-torch/1"
        torch["runs"] = [{k: v for k, v in r.items() if k != "setting"} for r in torch["runs"]
                         if r["setting"]["name"] == "shipped"]
        md = report_of("torch-v1", bench, torch)
        self.assertIn("PyTorch as shipped, its best setting (2 torch, 2 inter-op threads; "
                      "OpenBLAS as shipped) at 2 threads (45.00 ms", verdict(md))

    def test_noise_is_said(self):
        bench = fixture("bench.json")
        for r in bench["runs"]:
            if r["backend"] == "blis" and r["threads"] == 2:
                r["step_ms"]["min"] = 30.0  # its fastest repeat beats openblas's slowest
        text = verdict(report_of("verdict-noise", bench))
        self.assertIn("their repeats overlap (34.50–36.00 against 30.00–41.00 ms), so this order "
                      "is within the machine's noise", text)
        self.assertEqual(text.count("overlap"), 1)  # at 1 thread they do not

    def test_nothing_ran(self):
        bench = fixture("bench.json")
        for r in bench["runs"]:
            r["status"], r["reason"], r["signal"] = "failed", "signal", "SIGSEGV"
        text = verdict(report_of("verdict-none", bench))
        self.assertEqual(text, "**Verdict.** No backend ran successfully: there is nothing to "
                               "compare.")


class Measurement(unittest.TestCase):
    """The peak's reliability, the roofline, every PyTorch setting and the contended run."""

    @classmethod
    def setUpClass(cls):
        cls.bench, cls.torch = fixture("bench.json"), fixture("torch.json")
        cls.md = read(os.path.join(FIXTURE, "expected-report.md"))

    def test_reliable_run_has_no_warning(self):
        self.assertNotIn("UNRELIABLE", self.md)

    def test_unreliable_run_is_flagged(self):
        bench = fixture("bench.json")
        problem = ("the 2-thread FMA peak (230.0 GFLOP/s) is under 0.8 x 2 x the 1-thread peak "
                   "(200.0 GFLOP/s): the cores were not all free while it was measured")
        bench["reliability"] = {"reliable": False, "problems": [problem]}
        run = next(r for r in bench["runs"] if r["backend"] == "openblas" and r["threads"] == 2)
        run["gflops"], run["mfu"] = 480.0, 1.2
        md = report_of("unreliable", bench)
        self.assertIn("**UNRELIABLE RUN**: its MFU figures cannot be trusted, because\n- %s;"
                      % problem, md)
        row = next(r for r in table_rows(md, "All runs: throughput, MFU and memory")
                   if r[0] == "openblas" and r[1] == "2")
        self.assertEqual(row[7], "120.0% (over 100%: unreliable)")

    def test_unreliable_side_runs_are_flagged(self):
        # the contended and the strategies runs are bench runs of their own, each with its load
        steal = ("the hypervisor gave 17.7% of the 2 CPUs' time to other guests (steal) during "
                 "the timed rounds")
        others = ("other processes used 31.0% of the 2 CPUs' time during the timed rounds (96.1 "
                  "CPU-seconds in 155.0 s): the backends were timed on a busy machine")
        side = {}
        for file, problem in (("contend.json", others), ("strategies.json", steal)):
            side[file] = fixture(file)
            side[file]["reliability"] = {"reliable": False, "problems": [problem]}
        md = report_of("unreliable-side", fixture("bench.json"), extra=side)
        for heading, problem in (("## On a shared machine", others),
                                 ("## Parallel strategies", steal)):
            section = md[md.index(heading):]
            end = section.find("\n## ", 1)
            section = section[:end] if end > 0 else section
            self.assertIn("**UNRELIABLE** (this run): %s; so these figures cannot be trusted."
                          % problem, section)
        self.assertNotIn("UNRELIABLE RUN", md)  # the main run itself was reliable

    def test_roofline_recomputed(self):
        rows = {r[0]: r for r in table_rows(self.md, "Roofline")}
        cfg = self.bench["config"]
        N, C, L, V = cfg["B"] * cfg["T"], cfg["C"], cfg["L"], cfg["V"]
        # residual_forward: 2 per layer and 1 recomputed, 3 vectors of N*C floats each
        self.assertEqual(rows["residual_forward"][2], "%.1f" % (3 * L * 3 * N * C * 4 / 1e6))
        # matmul_forward: 2 N C OC FLOPs over inp + weight + out floats, every weight shape and
        # each layer's recomputed Wo product
        shapes = [(C, 3 * C), (C, C), (C, 4 * C), (4 * C, C), (C, C)] * L + [(C, V)]
        flops = sum(2 * N * c * oc for c, oc in shapes)
        nbytes = sum(4 * (N * c + oc * c + N * oc) for c, oc in shapes)
        self.assertEqual(rows["matmul_forward"][1], "%.3f" % (flops / 1e9))
        self.assertEqual(rows["matmul_forward"][3], "%.1f" % (flops / nbytes))
        # openmp at 2 threads: its matmul_forward time (scaled to the median step) against the
        # 2-thread peak, as the intensity is above the ridge (peak / bandwidth)
        run = next(r for r in self.bench["runs"] if r["backend"] == "openmp" and r["threads"] == 2)
        ops = {o["op"]: o["ms_per_step"] for o in run["ops"]}
        ms = ops["matmul_forward"] * run["step_ms"]["median"] / (sum(ops.values())
                                                                  + run["other_ms_per_step"])
        self.assertGreater(flops / nbytes, 400.0 / 16.0)
        rate = flops / (ms / 1e3) / 1e9
        header = [c.strip() for c in [l for l in self.md.splitlines()
                                      if l.startswith("| op | GFLOP/step")][0].strip("|").split(" | ")]
        self.assertEqual(rows["matmul_forward"][header.index("openmp, 2 thr")],
                         "%.1f GFLOP/s, %.0f%% of peak" % (rate, 100 * rate / 400.0))
        # a memory-bound op is measured against the bandwidth
        self.assertTrue(rows["adamw_step"][header.index("openmp, 2 thr")].endswith("of bandwidth"))

    def test_every_pytorch_setting_listed(self):
        rows = table_rows(self.md, "PyTorch settings")
        self.assertEqual(len(rows), len(self.torch["runs"]))
        fastest = [(r[0], r[2]) for r in rows if r[6] == "**fastest**"]
        self.assertEqual(fastest, [("1", "%.2f" % torch_best(self.torch, 1)["step_ms"]["median"]),
                                   ("2", "%.2f" % torch_best(self.torch, 2)["step_ms"]["median"])])
        self.assertTrue(any(r[2].startswith("failed") for r in rows))
        self.assertEqual(sum(r[1].endswith("(as shipped)") for r in rows), 2)

    def test_contended_run(self):
        doc = fixture("contend.json")
        rows = {r[0]: r for r in table_rows(self.md, "On a shared machine (`--contend 1`)")}

        def run(b, threads, replicas):
            return next((r for r in doc["runs"] if r["backend"] == b and r["threads"] == threads
                         and r.get("replicas", 1) == replicas), None)

        for b, row in rows.items():
            one, level, dp = run(b, 1, 1), run(b, 2, 1), run(b, 2, 2)
            self.assertEqual(row[3], "%.2f" % dp["step_ms"]["median"] if dp else "—")
            best = min([x for x in (level, dp) if x], key=lambda x: x["step_ms"]["median"])
            r = one["step_ms"]["median"] / best["step_ms"]["median"]
            self.assertEqual(row[4], "%.2fx" % r)
            self.assertEqual(row[5], "no slower" if r >= 1 else "**slower**")
            spans = [(min(x["repeat_step_ms"]), max(x["repeat_step_ms"])) for x in (one, best)]
            self.assertEqual(row[6], "%.1f–%.1f / %.1f–%.1f" % (spans[0] + spans[1]))
        # openmp: op-level 110 ms, replicas 100 ms against 150 ms at 1 thread: the replicas count
        self.assertEqual(rows["openmp"][4], "1.50x")
        self.assertEqual(rows["pthreads"][5], "**slower**")  # replicas 150 against 140 ms
        self.assertEqual(rows["pthreads"][7], "no")  # 139-141 against 149-151 ms
        self.assertEqual(rows["blis"][3], "—")  # no replicas run
        self.assertEqual(rows["blis"][5], "**slower**")
        self.assertEqual(rows["blis"][7], "yes")  # 100 against 101 ms, repeats 99-101, 98-103
        self.assertNotIn("single", rows)  # a 1-thread backend has nothing to compare

    def test_interleaved_against_pytorch(self):
        doc = fixture("versus.json")
        rows = table_rows(self.md, "Against PyTorch, interleaved")
        self.assertEqual(len(rows), len(doc["pairs"]))
        for row, p in zip(rows, doc["pairs"]):
            self.assertEqual(row[0], str(p["threads"]))
            self.assertEqual(row[1], p["backend"])
            ours = [x for x in p["ours_ms"] if x]  # a failed round (None) is left out
            self.assertEqual(row[2], "%.2f" % statistics.median(ours))
            self.assertEqual(row[4], "%.2f" % statistics.median(p["torch_ms"]))
            self.assertEqual(row[5], "%.2f–%.2fx" % (min(p["ratios"]), max(p["ratios"])))
            self.assertEqual(row[6], "**%.2fx**" % statistics.median(p["ratios"]))
            self.assertEqual(row[7], str(len(ours)))

    def test_versus_pairs_the_fastest(self):
        """versus_torch.py times, at each thread count, the fastest op-level backend that ran and
        PyTorch's fastest setting; a thread count without both is left out."""
        sys.path.insert(0, os.path.join(ROOT, "scripts"))
        import versus_torch
        bench = json.loads(json.dumps(self.bench))
        bench["runs"].append(dict(bench["runs"][-1], backend="openmp", threads=2, replicas=2,
                                  step_ms={"median": 1.0, "min": 1.0, "max": 1.0}))
        got = [(t, o["backend"], o["step_ms"]["median"], p["step_ms"]["median"])
               for t, o, p in versus_torch.pairs(bench, self.torch)]
        self.assertEqual(got, [(1, "openblas", 60.0, 70.0), (2, "openblas", 35.0, 40.0)])
        one_thread = dict(self.torch, runs=[r for r in self.torch["runs"] if r["threads"] == 1])
        self.assertEqual([t for t, _, _ in versus_torch.pairs(bench, one_thread)], [1])

    def test_larger_presets(self):
        doc = fixture("preset-medium.json")
        rows = table_rows(self.md, "Larger presets")
        self.assertEqual(len(rows), len(doc["runs"]))
        for row, run in zip(rows, doc["runs"]):
            self.assertEqual(row[:3], ["medium", run["backend"], str(run["threads"])])
            self.assertEqual(row[3], "%.2f" % run["step_ms"]["median"])
            mfu = doc["config"]["step_flops"] / run["step_ms"]["median"] / 1e6 / run["peak_gflops"]
            self.assertEqual(row[5], "%.1f%%" % (100 * mfu))
            self.assertEqual(row[6], "%.1f" % (run["peak_rss_bytes"] / 2 ** 20))


class Strategies(unittest.TestCase):
    """The strategy table and the memory per replica, recomputed from strategies.json (a real
    `bench --replicas 1,2 --ranks 1,2` run), and their plot."""
    HEADING = "Parallel strategies: op-level, data-parallel replicas, MPI ranks"

    @classmethod
    def setUpClass(cls):
        cls.doc = fixture("strategies.json")
        cls.md = read(os.path.join(FIXTURE, "expected-report.md"))

    def run_of(self, backend, threads, replicas, ranks):
        return next(r for r in self.doc["runs"] if (r["backend"], r["threads"], r["replicas"],
                                                    r["ranks"]) == (backend, threads, replicas, ranks))

    def test_every_run_recomputed(self):
        rows = table_rows(self.md, self.HEADING)
        self.assertEqual(len(rows), len(self.doc["runs"]))
        for row in rows:
            b, cores, t, R, P = row[0], int(row[2].split()[0]), int(row[3]), int(row[4]), int(row[5])
            cpus = self.doc["machine"]["cpus"]
            self.assertEqual(row[2], str(cores) if cores <= cpus else "%d (on %d CPUs)" % (cores, cpus))
            run = self.run_of(b, t, R, P)
            base = self.run_of(b, 1, 1, 1)
            self.assertEqual(cores, t * P)
            self.assertEqual(row[6], "%.2f" % run["step_ms"]["median"])
            self.assertEqual(row[7], "%.2fx" % (base["step_ms"]["median"] / run["step_ms"]["median"]))
            op = [r for r in self.doc["runs"] if r["backend"] == b and r["replicas"] == 1
                  and r["ranks"] == 1 and r["threads"] == cores]
            self.assertEqual(row[8], "%.2fx" % (op[0]["step_ms"]["median"] / run["step_ms"]["median"])
                             if op else "—")
            self.assertEqual(row[10], "%.2f (%.1f%%)" % (run["reduce_ms_per_step"],
                                                         100 * run["reduce_fraction"]))
            self.assertEqual(row[11], "%.1f" % (max(run["rank_peak_rss_bytes"]) / 2 ** 20))
            self.assertEqual(row[12], "%.1f" % (sum(run["rank_peak_rss_bytes"]) / 2 ** 20))
            name = ("MPI, %d ranks" % P + (" x %d replicas" % R if R > 1 else "") if P > 1 else
                    "op-level" if R == 1 else "data-parallel" if R == t else "hybrid, %d replicas" % R)
            self.assertEqual(row[1], name)
        self.assertIn("~2x", dict((r[2], r[-1]) for r in rows)["2"])
        self.assertIn("~3x", dict((r[2], r[-1]) for r in rows)["4 (on 2 CPUs)"])

    def test_memory_per_replica_against_formula(self):
        rows = [r for r in self.md.split("\n") if r.startswith("| openmp | 2 | 2 |")]
        self.assertEqual(len(rows), 1)
        cells = [c.strip() for c in rows[0].strip("|").split(" | ")]
        one, two = self.run_of("openmp", 2, 1, 1), self.run_of("openmp", 2, 2, 1)
        grown = two["peak_rss_sum_bytes"] - one["peak_rss_sum_bytes"]
        formula = self.doc["config"]["replica_bytes"]["total"]
        self.assertEqual(formula, self.doc["config"]["replica_bytes"]["param_grads"] +
                         self.doc["config"]["replica_bytes"]["acts"] +
                         self.doc["config"]["replica_bytes"]["batch"])
        self.assertEqual(cells[5], "%.1f" % (grown / 2 ** 20))
        self.assertEqual(cells[6], "%.1f" % (formula / 2 ** 20))
        self.assertEqual(cells[7], "%+.0f%%" % (100 * (grown / formula - 1)))

    def test_op_level_sections_leave_strategies_out(self):
        # the scaling table has one row per backend, openmp's from bench.json alone
        rows = table_rows(self.md, "Thread scaling")
        self.assertEqual(len(rows), len({r[0] for r in rows}))
        one = next(r for r in fixture("bench.json")["runs"]
                   if r["backend"] == "openmp" and r["threads"] == 1)
        self.assertEqual(next(r for r in rows if r[0] == "openmp")[1],
                         "%.2f (1.00x)" % one["step_ms"]["median"])

    def test_in_a_bench_run_of_its_own(self):
        md = report_of("strategies-alone", self.doc)
        self.assertEqual(len(table_rows(md, self.HEADING)), len(self.doc["runs"]))


class EveryBackend(unittest.TestCase):
    """An out-of-tree backend gets its own row in the speedup table, at the most threads it ran."""

    def test_out_of_tree_row(self):
        bench = fixture("bench.json")
        mine = dict(next(r for r in bench["runs"] if r["backend"] == "openmp"
                         and r["threads"] == 1), backend="mine", path="build/mine.so")
        mine["step_ms"] = {"median": 25.0, "min": 24.0, "max": 26.0}
        bench["runs"].append(mine)
        md = report_of("every-backend", bench)
        rows = {r[1]: r for r in table_rows(md, "Speedup against single-thread `single`")}
        self.assertEqual(sorted(rows), ["blis", "mine", "openblas", "openmp", "pthreads",
                                        "single"])
        self.assertEqual(rows["mine"][:5], ["1 core with mine", "mine", "1", "25.00", "4.00x"])
        self.assertIn("no prediction", rows["mine"][5])
        # and the verdict names it, fastest at 1 thread
        self.assertIn("At 1 thread, **mine** is fastest", verdict(md))


class OpsAtMedians(unittest.TestCase):
    def test_columns_add_up_to_the_median(self):
        md = report_of("ops-median", fixture("bench.json"))
        rows = table_rows(md, "Op breakdown")
        header = [l for l in md.splitlines() if l.startswith("| op | single")][0]
        cols = [c.strip() for c in header.strip("|").split(" | ")]
        for c in range(1, len(cols)):
            parts = [float(r[c].split()[0]) for r in rows[:-1] if r[c] != "—"]
            step = float(rows[-1][c].strip("*"))
            self.assertAlmostEqual(sum(parts), step, delta=0.01 * len(parts), msg=cols[c])


class PlotScript(unittest.TestCase):
    """scripts/plot.py on two small train logs, and its errors."""

    def test_two_logs(self):
        other = os.path.join(TMP, "train-openmp.jsonl")
        with open(other, "w") as f:
            for step in range(1, 7):
                f.write(json.dumps({"step": step, "loss": 4.0 - 0.2 * step, "ms": 12.5}) + "\n")
        out = os.path.join(TMP, "plot-two.png")
        proc = run_plot(LOG, other, "--out", out)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout.strip(), out)
        data = read(out, "rb")
        self.assertEqual(data[:8], PNG_MAGIC)
        self.assertGreater(len(data), 10000)

    def test_wall_time_carried_over_a_resume(self):
        sys.path.insert(0, os.path.join(ROOT, "scripts"))
        import rgplot
        path = os.path.join(TMP, "plot-resumed.jsonl")
        lines = [{"step": 1, "loss": 4.0, "ms": 10.0, "wall_s": 0.5},
                 {"step": 2, "loss": 3.9, "ms": 10.0, "wall_s": 1.5, "train_loss": 3.8,
                  "val_loss": 3.85},
                 {"step": 3, "loss": 3.7, "ms": 12.0, "wall_s": 0.25}]  # resumed: a new clock
        with open(path, "w") as f:
            f.write("".join(json.dumps(l) + "\n" for l in lines))
        points = rgplot.load_log(path)
        self.assertEqual([p["wall_s"] for p in points], [0.5, 1.5, 1.75])
        self.assertEqual([round(p["time_s"], 6) for p in points], [0.01, 0.02, 0.032])
        self.assertEqual([p["train_loss"] for p in points], [None, 3.8, None])
        self.assertEqual([p["val_loss"] for p in points], [None, 3.85, None])
        proc = run_plot(path, LOG, "--out", os.path.join(TMP, "plot-mixed.png"))
        self.assertEqual(proc.returncode, 0, proc.stderr)

    def test_bad_log(self):
        bad = os.path.join(TMP, "plot-bad.jsonl")
        with open(bad, "w") as f:
            f.write('{"step": 1, "loss": 4.0}\nnot json\n')
        proc = run_plot(LOG, bad, "--out", os.path.join(TMP, "plot-bad.png"))
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(proc.stderr.strip().splitlines(),
                         ["plot.py: %s:2: not a train log line (JSON with step and loss)" % bad])
        self.assertFalse(os.path.exists(os.path.join(TMP, "plot-bad.png")))

    def test_missing_log(self):
        proc = run_plot(os.path.join(TMP, "no-such.jsonl"))
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr)
        self.assertIn("cannot read train log", proc.stderr)


class OptionalInputs(unittest.TestCase):
    def test_bench_json_alone(self):
        run_dir = os.path.join(TMP, "bench-only")
        shutil.rmtree(run_dir, ignore_errors=True)
        os.makedirs(run_dir)
        shutil.copy(os.path.join(FIXTURE, "bench.json"), run_dir)
        proc = run_report(run_dir, "--no-plots")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        md = read(os.path.join(run_dir, "report.md"))
        self.assertNotIn("## Kernel micro-benchmarks", md)
        self.assertNotIn("## Plots", md)
        self.assertEqual(sorted(os.listdir(run_dir)), ["bench.json", "report.md"])
        rows = {r[1]: r for r in table_rows(md, "Speedup against single-thread `single`")}
        # only backends that ran have a row
        self.assertNotIn("pytorch", rows)
        self.assertEqual(sorted(rows), ["blis", "openblas", "openmp", "pthreads", "single"])


class AbiVersions(unittest.TestCase):
    """The fixture holds results of backend ABI version 1, whose 16 op kinds include
    residual_backward; version 2 has 15. Both give a report, each counting its own ops."""

    def report(self, name, doc):
        run_dir = os.path.join(TMP, name)
        shutil.rmtree(run_dir, ignore_errors=True)
        os.makedirs(run_dir)
        with open(os.path.join(run_dir, "bench.json"), "w") as f:
            json.dump(doc, f)
        proc = run_report(run_dir, "--no-plots")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        md = read(os.path.join(run_dir, "report.md"))
        native = {(r[0], r[1]): r[3] for r in table_rows(md, "Backends", level="###")}
        ops = [r[0] for r in table_rows(md, "Op breakdown")]
        return native, ops

    def test_version_1_results(self):
        doc = json.loads(read(os.path.join(FIXTURE, "bench.json")))
        native, ops = self.report("abi1", doc)
        self.assertEqual(native[("single", "1")], "all 16")
        self.assertEqual(native[("openblas", "2")], "15 of 16; reference: sum_squares")
        # the older kind keeps its place, after residual_forward
        self.assertEqual(ops[ops.index("residual_forward") + 1], "residual_backward")

    def test_version_2_results(self):
        doc = json.loads(read(os.path.join(FIXTURE, "bench.json")))
        for run in doc["runs"]:
            if run.get("native_ops"):
                run["native_ops"].remove("residual_backward")
            if run.get("ops"):
                run["ops"] = [o for o in run["ops"] if o["op"] != "residual_backward"]
        native, ops = self.report("abi2", doc)
        self.assertEqual(native[("single", "1")], "all 15")
        self.assertEqual(native[("openblas", "2")], "14 of 15; reference: sum_squares")
        self.assertNotIn("residual_backward", ops)
        self.assertIn("residual_forward", ops)


def has_torch():
    return subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0


@unittest.skipUnless(has_torch(), "PyTorch is not installed for " + sys.executable)
class TorchBaseline(unittest.TestCase):
    """scripts/torch_baseline.py at the tiny preset, and the report over its output."""

    @classmethod
    def setUpClass(cls):
        cls.run_dir = os.path.join(TMP, "torch")
        shutil.rmtree(cls.run_dir, ignore_errors=True)
        os.makedirs(cls.run_dir)
        shutil.copy(os.path.join(FIXTURE, "bench.json"), cls.run_dir)
        cls.proc = subprocess.run(
            [sys.executable, os.path.join(ROOT, "scripts", "torch_baseline.py"), "--preset",
             "tiny", "--threads", "1", "--steps", "2", "--warmup", "1", "--repeat", "2",
             "--out", os.path.join(cls.run_dir, "torch.json")],
            capture_output=True, text=True, timeout=240)
        cls.doc = json.loads(read(os.path.join(cls.run_dir, "torch.json")))

    def test_run(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)
        self.assertEqual(self.doc["schema"], "randygpt-torch/2")
        # at 1 thread: as shipped, and one tuned setting (1 inter-op, 1 OpenBLAS thread)
        shipped, tuned = self.doc["runs"]
        self.assertEqual(shipped["setting"]["name"], "shipped")
        self.assertIsNone(shipped["setting"]["openblas_threads"])
        self.assertEqual(tuned["setting"]["name"], "tuned")
        self.assertEqual(tuned["setting"]["openblas_threads"], 1)
        # the tuned setting runs the core type chosen as the openblas backend chooses it
        chosen = self.doc["openblas_coretype"]["chosen"]
        if tuned.get("openblas_core") and chosen:
            self.assertEqual(tuned["openblas_core"].lower(), chosen.lower())
        run = shipped
        self.assertEqual(run["status"], "ok", run.get("error"))
        self.assertEqual((run["threads"], run["torch_threads"], run["torch_interop_threads"]),
                         (1, 1, 1))
        self.assertEqual(len(run["repeat_step_ms"]), 2)
        self.assertAlmostEqual(run["step_ms"]["median"], statistics.median(run["repeat_step_ms"]),
                               delta=1e-9)
        # first loss of a freshly initialised model on uniform tokens: about ln(V)
        self.assertAlmostEqual(run["loss_first"], math.log(67), delta=0.05)
        self.assertGreater(run["peak_rss_bytes"], 10 * 2 ** 20)

    def test_flops_formula(self):
        # rg_model_step_flops at tiny (B=16 T=32 C=64 NH=4 L=2 V=67): 6 x matrix params x B x T
        # + L x 3 x attention forward
        C, NH, L, T, B, V = 64, 4, 2, 32, 16, 67
        matrix = L * 12 * C * C + V * C
        expected = 6 * matrix * B * T + L * 3 * 4 * B * NH * T * T * (C // NH)
        self.assertEqual(self.doc["config"]["step_flops"], expected)
        self.assertEqual(self.doc["config"]["num_params"], matrix + V * C + T * C)
        run = self.doc["runs"][0]
        self.assertAlmostEqual(run["gflops"] * run["step_ms"]["median"] * 1e6 / expected, 1.0,
                               delta=1e-9)
        self.assertAlmostEqual(run["tok_per_s"] * run["step_ms"]["median"] / 1000, B * T,
                               delta=1e-6)

    def test_report_reads_it(self):
        proc = run_report(self.run_dir, "--no-plots")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        md = read(os.path.join(self.run_dir, "report.md"))
        rows = [r for r in table_rows(md, "All runs: throughput, MFU and memory")
                if r[0] == "pytorch"]
        self.assertIn(len(rows), (1, 2))  # one when the shipped setting is also the fastest
        self.assertEqual(rows[0][:3], ["pytorch", "1", "ok"])

    def test_bad_threads(self):
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "torch_baseline.py"),
                               "--threads", "0"], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(proc.returncode, 0)
        self.assertEqual(proc.stderr.strip().splitlines(),
                         ["torch_baseline.py: --threads needs a comma-separated list of positive "
                          "integers, not '0'"])


class BadInput(unittest.TestCase):
    def assert_one_line_error(self, proc, text):
        self.assertEqual(proc.returncode, 1, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertTrue(lines[0].startswith("report.py: "), lines[0])
        self.assertIn(text, lines[0])

    def make_dir(self, name, bench_text):
        d = os.path.join(TMP, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        with open(os.path.join(d, "bench.json"), "w") as f:
            f.write(bench_text)
        return d

    def test_missing_directory(self):
        self.assert_one_line_error(run_report(os.path.join(TMP, "no-such-dir")),
                                   "is not a directory")

    def test_missing_bench_json(self):
        d = os.path.join(TMP, "empty")
        os.makedirs(d, exist_ok=True)
        self.assert_one_line_error(run_report(d), "cannot read bench results")

    def test_not_json(self):
        self.assert_one_line_error(run_report(self.make_dir("notjson", "{ oops")),
                                   "is not valid JSON")

    def test_wrong_schema(self):
        self.assert_one_line_error(run_report(self.make_dir("schema", '{"schema": "other/1"}')),
                                   "not a randygpt-bench/1 or /2 file")

    def test_run_without_fields(self):
        doc = json.loads(read(os.path.join(FIXTURE, "bench.json")))
        del doc["runs"][0]["step_ms"]
        self.assert_one_line_error(run_report(self.make_dir("fields", json.dumps(doc))),
                                   "malformed input")

    def test_bad_log(self):
        path = os.path.join(TMP, "bad.jsonl")
        with open(path, "w") as f:
            f.write('{"step": 0, "loss": 4.2}\n{"loss": 4.1}\n')
        self.assert_one_line_error(run_report(FIXTURE, "--out", os.path.join(TMP, "badlog"),
                                              "--logs", path), "bad.jsonl:2")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tmpdir", required=True)
    args, rest = parser.parse_known_args()
    TMP = args.tmpdir
    os.makedirs(TMP, exist_ok=True)
    unittest.main(argv=[sys.argv[0]] + rest)
