"""Tests of randygpt-kbench: run it on the `single` backend at the tiny preset and check that its
Google Benchmark JSON has every op kind with the expected work counters, and that bad input gives
one error line and a non-zero exit.

Usage: test_kbench.py --kbench PATH --tmpdir DIR
"""
import argparse
import json
import os
import subprocess
import sys
import unittest

OPS = ["matmul_forward", "matmul_backward", "attention_forward", "attention_backward",
       "adamw_step", "rmsnorm_forward", "rmsnorm_backward", "sqrelu_forward", "sqrelu_backward",
       "residual_forward", "embedding_forward", "embedding_backward", "crossentropy_forward",
       "crossentropy_backward", "sum_squares"]
SHAPES = ["qkv", "attproj", "fc", "fcproj", "lmhead"]
# tiny preset (GUIDE section 2) and the default vocabulary
B, T, C, NH, L, V = 16, 32, 64, 4, 2, 67

ARGS = None


class KbenchJson(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        out = os.path.join(ARGS.tmpdir, "kbench-tiny.json")
        cmd = [ARGS.kbench, "--backends", "single", "--threads", "1", "--preset", "tiny",
               "--benchmark_min_time=0.001", "--benchmark_out=" + out,
               "--benchmark_out_format=json"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise AssertionError("kbench failed: " + proc.stderr)
        with open(out) as f:
            cls.doc = json.load(f)
        cls.bench = {b["name"]: b for b in cls.doc["benchmarks"]}

    def test_every_op_and_matmul_shape(self):
        expected = set()
        for op in OPS:
            if op.startswith("matmul"):
                expected |= {"single/t1/%s/%s/real_time" % (op, s) for s in SHAPES}
            else:
                expected.add("single/t1/%s/real_time" % op)
        self.assertEqual(set(self.bench), expected)
        self.assertEqual(len(self.doc["benchmarks"]), len(OPS) + 2 * 4)

    def test_context(self):
        ctx = self.doc["context"]
        self.assertEqual(ctx["preset"], "tiny")
        self.assertEqual(ctx["shape"], "B=16 T=32 C=64 NH=4 L=2 V=67")
        self.assertIn("describe:single/t1", ctx)
        self.assertEqual(ctx["native_ops:single"].split(","), OPS)

    def check_work(self, name, key, per_iter):
        b = self.bench[name]
        self.assertEqual(b["time_unit"], "ns")
        seconds = b["real_time"] * 1e-9  # per iteration
        # the rate counter is work per iteration / seconds per iteration
        self.assertAlmostEqual(b[key] * seconds / per_iter, 1.0, delta=1e-6, msg=name)

    def test_flops_counters(self):
        N = B * T
        dims = {"qkv": (C, 3 * C), "attproj": (C, C), "fc": (C, 4 * C), "fcproj": (4 * C, C),
                "lmhead": (C, V)}
        for s, (c, oc) in dims.items():
            self.check_work("single/t1/matmul_forward/%s/real_time" % s, "flops", 2 * N * c * oc)
            self.check_work("single/t1/matmul_backward/%s/real_time" % s, "flops", 4 * N * c * oc)
        attn = 4 * B * NH * T * T * (C // NH)
        self.check_work("single/t1/attention_forward/real_time", "flops", attn)
        self.check_work("single/t1/attention_backward/real_time", "flops", 2 * attn)

    def test_bytes_counters(self):
        N = B * T
        params = V * C + T * C + L * (3 * C * C + C * C + 4 * C * C + 4 * C * C) + V * C
        self.check_work("single/t1/adamw_step/real_time", "bytes", 4 * 7 * params)
        self.check_work("single/t1/sum_squares/real_time", "bytes", 4 * params)
        self.check_work("single/t1/sqrelu_forward/real_time", "bytes", 4 * 2 * N * 4 * C)
        self.check_work("single/t1/residual_forward/real_time", "bytes", 4 * 3 * N * C)
        # overwritten gradients: read dout and the forward's input, write dinp once
        self.check_work("single/t1/sqrelu_backward/real_time", "bytes", 4 * 3 * N * 4 * C)
        self.check_work("single/t1/crossentropy_backward/real_time", "bytes", 4 * (2 * N * V + N))
        self.check_work("single/t1/crossentropy_forward/real_time", "bytes",
                        4 * (2 * N * V + 2 * N))
        self.assertNotIn("flops", self.bench["single/t1/adamw_step/real_time"])
        self.assertNotIn("bytes", self.bench["single/t1/matmul_forward/qkv/real_time"])

    def test_native_label_and_counters(self):
        for b in self.doc["benchmarks"]:
            self.assertEqual(b["label"], "native", b["name"])
            self.assertEqual(b["native"], 1.0)
            self.assertEqual(b["threads"], 1.0)
            self.assertGreater(b["iterations"], 0)


class KbenchErrors(unittest.TestCase):
    def run_kbench(self, *args):
        return subprocess.run([ARGS.kbench, *args], capture_output=True, text=True, timeout=60)

    def assert_one_line_error(self, proc, code, text):
        self.assertEqual(proc.returncode, code, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertIn(text, lines[0])

    def test_unknown_backend(self):
        self.assert_one_line_error(self.run_kbench("--backends", "no_such_backend"), 1,
                                   "no_such_backend")

    def test_bad_threads(self):
        self.assert_one_line_error(self.run_kbench("--threads", "1,x"), 2, "--threads")
        self.assert_one_line_error(self.run_kbench("--threads", "1,,2"), 2, "--threads")

    def test_bad_preset_and_option(self):
        self.assert_one_line_error(self.run_kbench("--preset", "huge"), 2, "huge")
        self.assert_one_line_error(self.run_kbench("--no-such-flag"), 2, "--no-such-flag")

    def test_help(self):
        proc = self.run_kbench("--help")
        self.assertEqual(proc.returncode, 0)
        self.assertTrue(proc.stdout.startswith("usage: randygpt-kbench"))
        self.assertIn("--backends LIST", proc.stdout)

    def test_refused_thread_count_is_skipped(self):
        # single runs on one thread only: 3 threads is skipped with a note, 1 thread still runs
        proc = self.run_kbench("--backends", "single", "--threads", "3,1", "--preset", "tiny",
                               "--benchmark_filter=residual_forward",
                               "--benchmark_min_time=0.001")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("skipping single at 3 threads", proc.stderr)
        self.assertIn("single/t1/residual_forward", proc.stdout)
        self.assertNotIn("single/t3/", proc.stdout)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--kbench", required=True)
    parser.add_argument("--tmpdir", required=True)
    ARGS, rest = parser.parse_known_args()
    os.makedirs(ARGS.tmpdir, exist_ok=True)
    unittest.main(argv=[sys.argv[0]] + rest)
