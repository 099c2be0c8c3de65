#!/usr/bin/python3
"""The randyGPT model in PyTorch, timed the way `randygpt bench` times a backend.

Same model as the C core (docs/model.md, GUIDE section 2): byte-level tokens, wte + wpe, pre-norm
RMSNorm without gain (eps 1e-5), causal multi-head attention, squared-ReLU MLP, no biases, untied
LM head, AdamW (decay only on the matrices), gradient clipping by global norm 1.0, linear warm-up
then cosine learning rate. Synthetic data: uniform random tokens of a V-byte vocabulary, as the
bench's default.

Timing, as in docs/bench-format.md: W warm-up steps, then R repeats of N steps; each repeat gives
its wall time / N; the median over the repeats is the step time. GFLOP/s uses the core's formula
(rg_model_step_flops). Each setting runs in its own child process, because PyTorch's inter-op
thread count and OpenBLAS's threads and kernels can be set only once per process; peak RSS is the
child's own ru_maxrss, as the bench's wait4 reports it.

Settings, at each thread count N of --threads: PyTorch as shipped (N torch and N inter-op threads,
OpenBLAS left to its own thread count and kernel choice), and the tuned ones: 1 or N inter-op
threads x OPENBLAS_NUM_THREADS 1 or N, with OpenBLAS's core type chosen the way the openblas
backend chooses it (OPENBLAS_CORETYPE from the environment if set; else SkylakeX on an AVX-512 CPU
that OpenBLAS does not run AVX-512 kernels on; else OpenBLAS's own choice) and OpenMP's spin
bounded as the core's loader bounds it for the openmp backend (GOMP_SPINCOUNT, unless the
environment sets it or OMP_WAIT_POLICY). --settings shipped runs
only the first. The report shows the fastest setting beside the shipped one.

Usage: torch_baseline.py [--preset small] [--threads 1,2] [--steps 20] [--warmup 3] [--repeat 3]
                         [--seed 1337] [--vocab 67] [--settings all|shipped] [--out torch.json]
Writes the JSON described in docs/bench-format.md ("PyTorch baseline: torch.json").
"""
import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

SCHEMA = "randygpt-torch/2"
OPENBLAS_LIB = "libopenblas.so.0"
AUTO_CORE = "SkylakeX"  # what the openblas backend loads on an AVX-512 CPU OpenBLAS misdetects
AVX512_CORES = ("skylakex", "cooperlake", "sapphirerapids")
GOMP_SPINCOUNT = "10000"  # RG_GOMP_SPINCOUNT of core/src/loader.c
PRESETS = {  # C, NH, L, T, B (GUIDE section 2)
    "tiny": (64, 4, 2, 32, 16),
    "small": (128, 8, 4, 64, 32),
    "medium": (256, 8, 6, 128, 32),
    "large": (512, 16, 12, 256, 16),
}


def step_flops(V, C, NH, L, B, T):
    """rg_model_step_flops: 6 x matrix params x B x T + per layer attention forward 4 B NH T^2 hs
    and backward twice that. Matrix params: wqkv, wo, w1, w2 per layer and wlm."""
    matrix_params = L * (3 * C * C + C * C + 4 * C * C + 4 * C * C) + V * C
    attention_fwd = 4.0 * B * NH * T * T * (C // NH)
    return 6.0 * matrix_params * B * T + L * 3.0 * attention_fwd


def lr_at(step, max_steps, lr=3e-4, min_frac=0.1, warmup=100):
    """rg_lr_at: linear warm-up over `warmup` steps, then cosine from lr to lr * min_frac."""
    if step < warmup:
        return lr * (step + 1) / warmup
    if max_steps <= warmup:
        return lr
    progress = min(1.0, (step - warmup) / (max_steps - warmup))
    return lr * (min_frac + (1.0 - min_frac) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def build_model(torch, V, C, NH, L, T, seed):
    nn = torch.nn
    F = torch.nn.functional

    class RandyGPT(nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(seed)

            def normal(*shape, std=0.02):
                return nn.Parameter(torch.randn(*shape, generator=g) * std)

            proj_std = 0.02 / math.sqrt(2 * L)
            self.wte = normal(V, C)           # (V, C)
            self.wpe = normal(T, C)           # (maxT, C)
            self.wqkv = normal(L, 3 * C, C)   # (L, 3C, C)
            self.wo = normal(L, C, C, std=proj_std)
            self.w1 = normal(L, 4 * C, C)
            self.w2 = normal(L, C, 4 * C, std=proj_std)
            self.wlm = normal(V, C)           # untied head
            self.register_buffer("mask", torch.tril(torch.ones(T, T, dtype=torch.bool)))

        @staticmethod
        def rmsnorm(x):  # no gain
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)

        def forward(self, idx, targets):
            B, T = idx.shape
            hs = C // NH
            x = self.wte[idx] + self.wpe[:T]                       # (B, T, C)
            mask = self.mask[:T, :T]
            for l in range(L):
                qkv = self.rmsnorm(x) @ self.wqkv[l].t()           # (B, T, 3C)
                q, k, v = (t.view(B, T, NH, hs).transpose(1, 2) for t in qkv.split(C, dim=2))
                att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)    # (B, NH, T, T)
                att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
                y = (att @ v).transpose(1, 2).reshape(B, T, C)
                x = x + y @ self.wo[l].t()
                h = F.relu(self.rmsnorm(x) @ self.w1[l].t())       # (B, T, 4C)
                x = x + h.square() @ self.w2[l].t()
            logits = x @ self.wlm.t()                              # (B, T, V)
            return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))

    return RandyGPT()


def openblas_state():
    """(core type, thread count) of the OpenBLAS loaded in this process, or (None, None)."""
    import ctypes
    try:
        lib = ctypes.CDLL(OPENBLAS_LIB)
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode(), lib.openblas_get_num_threads()
    except (OSError, AttributeError):
        return None, None


def run_child(args):
    """Times one setting and prints one JSON line with the measured fields."""
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.interop)
    C, NH, L, T, B = PRESETS[args.preset]
    V = args.vocab
    model = build_model(torch, V, C, NH, L, T, args.seed)
    no_decay = [model.wte, model.wpe]
    decay = [model.wqkv, model.wo, model.w1, model.w2, model.wlm]
    opt = torch.optim.AdamW([{"params": no_decay, "weight_decay": 0.0},
                             {"params": decay, "weight_decay": 0.1}],
                            lr=3e-4, betas=(0.9, 0.999), eps=1e-8)
    g = torch.Generator().manual_seed(args.seed)
    max_steps = args.warmup + args.repeat * args.steps
    step_no = 0

    def step():
        nonlocal step_no
        tokens = torch.randint(0, V, (B, T + 1), generator=g)
        for group in opt.param_groups:
            group["lr"] = lr_at(step_no, max_steps)
        opt.zero_grad(set_to_none=False)
        loss = model(tokens[:, :-1], tokens[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step_no += 1
        return loss.item()

    losses = [step() for _ in range(args.warmup)]
    repeat_ms = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            losses.append(step())
        repeat_ms.append((time.perf_counter() - t0) * 1000.0 / args.steps)
    median = statistics.median(repeat_ms)
    flops = step_flops(V, C, NH, L, B, T)
    core, blas_threads = openblas_state()
    result = {
        "threads": args.threads,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "openblas_core": core,
        "openblas_threads": blas_threads,
        "step_ms": {"median": median, "min": min(repeat_ms), "max": max(repeat_ms)},
        "repeat_step_ms": repeat_ms,
        "tok_per_s": B * T / (median / 1000.0),
        "gflops": flops / median / 1e6,
        "loss_first": finite_or_none(losses[0]),
        "loss_last": finite_or_none(losses[-1]),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    print(json.dumps(result))
    return 0


def finite_or_none(x):
    return x if isinstance(x, float) and math.isfinite(x) else None


def torch_info():
    """Version and threading/BLAS configuration of the PyTorch that the children import."""
    code = ("import json, torch; print(json.dumps({'version': torch.__version__, "
            "'parallel_info': torch.__config__.parallel_info(), "
            "'config': torch.__config__.show()}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        line = (proc.stderr.strip().splitlines() or ["import failed"])[-1]
        raise SystemExit("torch_baseline.py: cannot import torch with %s: %s" % (sys.executable,
                                                                                line))
    info = json.loads(proc.stdout)
    blas = [l.split("=", 1)[1].split(",")[0] for l in info["config"].splitlines()
            if "BLAS_INFO=" in l]
    backend = [l.split(":", 1)[1].strip() for l in info["parallel_info"].splitlines()
               if l.startswith("ATen parallel backend")]
    return {"version": info["version"], "blas": blas[0] if blas else None,
            "parallel_backend": backend[0] if backend else None}


def openblas_detected():
    """The core type OpenBLAS picks by itself here (OPENBLAS_CORETYPE unset), asked in a child."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    code = ("import json, sys; sys.path.insert(0, %r); import torch_baseline as t; "
            "print(json.dumps(t.openblas_state()[0]))" % os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def cpu_has_avx512():
    try:
        with open("/proc/cpuinfo") as f:
            return any(l.startswith("flags") and " avx512f" in l for l in f)
    except OSError:
        return False


def our_coretype():
    """(OPENBLAS_CORETYPE to run with or None, how it was chosen), as the openblas backend
    chooses it (backends/openblas/openblas.c)."""
    env = os.environ.get("OPENBLAS_CORETYPE")
    if env:
        return env, "from OPENBLAS_CORETYPE=%s" % env
    if not cpu_has_avx512():
        return None, "chosen by OpenBLAS"
    detected = openblas_detected()
    if detected is None or detected.lower() in AVX512_CORES:
        return None, "chosen by OpenBLAS"
    return AUTO_CORE, "auto: OpenBLAS detected %s on this AVX-512 CPU" % detected


def settings_for(n, which, core):
    """The settings run at n threads: dicts of torch threads, inter-op threads, OpenBLAS threads
    (None: its default), OPENBLAS_CORETYPE and GOMP_SPINCOUNT (None: the environment's)."""
    out = [{"name": "shipped", "torch_threads": n, "interop_threads": n, "openblas_threads": None,
            "openblas_coretype": None, "gomp_spincount": None}]
    user_wait = "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ
    if which == "all":
        for interop in sorted({1, n}):
            for blas in sorted({1, n}):
                out.append({"name": "tuned", "torch_threads": n, "interop_threads": interop,
                            "openblas_threads": blas, "openblas_coretype": core,
                            "gomp_spincount": None if user_wait else GOMP_SPINCOUNT})
    return out


def setting_label(s):
    return ("%d torch, %d inter-op threads; OPENBLAS_NUM_THREADS=%s; OPENBLAS_CORETYPE=%s; "
            "GOMP_SPINCOUNT=%s" % (
                s["torch_threads"], s["interop_threads"], s["openblas_threads"] or "unset",
                s["openblas_coretype"] or os.environ.get("OPENBLAS_CORETYPE") or "unset",
                s["gomp_spincount"] or os.environ.get("GOMP_SPINCOUNT") or "unset"))


def run_setting(n, setting, preset, steps, warmup, repeat, seed, vocab):
    """Times one setting at n threads in a process of its own: a torch.json run (its "status" is
    "ok", or "failed" with the child's last error line)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--threads", str(n),
           "--interop", str(setting["interop_threads"]), "--preset", preset, "--steps", str(steps),
           "--warmup", str(warmup), "--repeat", str(repeat), "--seed", str(seed),
           "--vocab", str(vocab)]
    # one setting per process; the OpenMP runtime must not start more threads than asked
    env = dict(os.environ, OMP_NUM_THREADS=str(n))
    if setting["openblas_threads"] is not None:
        env["OPENBLAS_NUM_THREADS"] = str(setting["openblas_threads"])
    else:
        env.pop("OPENBLAS_NUM_THREADS", None)
    for var, key in (("OPENBLAS_CORETYPE", "openblas_coretype"),
                     ("GOMP_SPINCOUNT", "gomp_spincount")):
        if setting[key] is not None:
            env[var] = setting[key]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    run = {"threads": n, "setting": dict(setting, label=setting_label(setting)),
           "status": "ok", "error": None, "wall_s": time.perf_counter() - t0}
    try:
        if proc.returncode != 0:
            raise ValueError("exit status %d" % proc.returncode)
        run.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError) as e:
        lines = proc.stderr.strip().splitlines()
        run.update(status="failed", error=lines[-1] if lines else str(e) or "no result line")
    return run


def run_parent(args, threads):
    C, NH, L, T, B = PRESETS[args.preset]
    V = args.vocab
    matrix = L * 12 * C * C + V * C
    doc = {
        "schema": SCHEMA,
        "command": "torch_baseline.py " + " ".join(sys.argv[1:]),
        "torch": torch_info(),
        "config": {"preset": args.preset, "B": B, "T": T, "C": C, "NH": NH, "L": L, "V": V,
                   "num_params": matrix + V * C + T * C,
                   "step_flops": step_flops(V, C, NH, L, B, T), "steps": args.steps,
                   "warmup": args.warmup, "repeat": args.repeat, "data": "synthetic",
                   "seed": args.seed},
        "runs": [],
    }
    core, how = our_coretype() if args.settings == "all" else (None, None)
    doc["openblas_coretype"] = {"chosen": core, "how": how}
    status = 0
    for n, setting in [(n, s) for n in threads for s in settings_for(n, args.settings, core)]:
        run = run_setting(n, setting, args.preset, args.steps, args.warmup, args.repeat,
                          args.seed, V)
        status = status if run["status"] == "ok" else 1
        doc["runs"].append(run)
        print("torch_baseline.py: %s: %s" % (
            run["setting"]["label"], "%.2f ms/step" % run["step_ms"]["median"]
            if run["status"] == "ok" else run["error"]), file=sys.stderr)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    return status


def parse_threads(text):
    try:
        threads = [int(t) for t in text.split(",")]
    except ValueError:
        threads = []
    if not threads or min(threads) <= 0:
        raise SystemExit("torch_baseline.py: --threads needs a comma-separated list of positive "
                         "integers, not '%s'" % text)
    return threads


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="small", choices=sorted(PRESETS))
    p.add_argument("--threads", default=str(len(os.sched_getaffinity(0))),
                   help="comma-separated thread counts (default: the usable CPUs)")
    p.add_argument("--steps", type=int, default=20, help="steps per repeat")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--vocab", type=int, default=67, help="vocabulary size of the synthetic data")
    p.add_argument("--settings", default="all", choices=("all", "shipped"),
                   help="all: as shipped and tuned; shipped: only as shipped")
    p.add_argument("--out", default="torch.json")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--interop", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    for name in ("steps", "repeat", "vocab"):
        if getattr(args, name) <= 0:
            raise SystemExit("torch_baseline.py: --%s must be positive" % name)
    if args.warmup < 0:
        raise SystemExit("torch_baseline.py: --warmup must not be negative")
    threads = parse_threads(args.threads)
    if args.child:
        args.threads = threads[0]
        args.interop = args.interop or args.threads
        return run_child(args)
    return run_parent(args, threads)


if __name__ == "__main__":
    sys.exit(main())
