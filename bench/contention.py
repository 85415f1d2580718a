#!/usr/bin/env python3
"""Time resnet50 batch 1 on a quiet machine and with one core kept busy by a process of our own.

  bench/contention.py [--build-dir build] [--base-build-dir DIR] [--rounds 7] [--iters 5]
                      [--warmup 2] [--arch resnet50] [--no-ort] [--ort-dir DIR] [--json FILE]

Configurations: quiet with 1, 2 and 4 threads, and 2 threads while one extra
process spins (a Python busy loop that ends itself after --busy-limit seconds,
started just before the run and killed by PID right after it). Engines: this
build's bench/benchmark, optionally a second benchmark (--base-build-dir, e.g.
an older commit's build) and ONNX Runtime 2 threads (onnxruntime-node through
bench/ort_worker.js, as in compare.py; --no-ort or no node/npm leaves it out).
All engines run the same random-init weights (weights/convert_torchvision.py,
seed 0) and the same N(0,1) input. Rounds are interleaved: each round runs
every (engine, configuration) once, each run a fresh process, and each figure
is the median over the rounds of each run's median forward() time. The share
of the CPU that *other* processes (not this script, its runs or its spinner)
used is sampled around every run and reported: above ~10% the machine was not
quiet and the figures carry that load.

Prints the table and the issue-14 targets (2-core machine):
  busy 2 threads <= 1.1 x quiet 1 thread, and <= ONNX Runtime busy 2 threads;
  quiet 4 threads <= 1.15 x quiet 2 threads; quiet 2 threads vs the base build.
Needs /usr/bin/python3 (torch) like compare.py, whose helpers it uses.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (re-executes this script with /usr/bin/python3 when torch is missing)
import numpy as np  # noqa: E402

CONFIGS = (("quiet", 1), ("quiet", 2), ("quiet", 4), ("busy", 2))  # (load, threads)
ORT_CONFIGS = (("quiet", 2), ("busy", 2))


def start_spinner(limit_s):
    """A process that keeps one core busy for at most limit_s seconds."""
    code = f"import time\nend = time.monotonic() + {limit_s}\nwhile time.monotonic() < end:\n    pass\n"
    p = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(0.2)  # running before the timed process starts
    return p


def timed_run(cmd, busy, limit_s):
    """Run cmd (one JSON line out), with a spinner alongside if busy; returns its
    JSON plus others_cpu_share, the share of all cores other processes used."""
    (busy0, own0), t0 = compare.busy_cpu_seconds(), time.time()
    spinner = start_spinner(limit_s) if busy else None
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=limit_s)
    finally:
        if spinner:
            os.kill(spinner.pid, signal.SIGKILL)
            spinner.wait()  # reaped: its CPU time now counts as ours
    (busy1, own1), t1 = compare.busy_cpu_seconds(), time.time()
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        sys.exit(f"contention.py: error: {cmd[0]} failed (exit {r.returncode}): {tail}")
    others = max(0.0, (busy1 - busy0) - (own1 - own0)) / ((t1 - t0) * os.cpu_count())
    return {**json.loads(r.stdout.strip().splitlines()[-1]), "others_cpu_share": others}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build-dir", default=os.path.join(compare.REPO, "build"))
    p.add_argument("--base-build-dir", help="a second build whose bench/benchmark runs alongside (e.g. main's)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--iters", type=int, default=5, help="timed forward() calls per run (default 5)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--busy-limit", type=float, default=120, help="seconds after which the spinner ends itself")
    p.add_argument("--no-ort", action="store_true", help="leave ONNX Runtime out")
    p.add_argument("--ort-dir", default=os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                     os.path.expanduser("~/.cache"), "resnet", "onnxruntime-node"))
    p.add_argument("--json", metavar="FILE", help="also write every run and the summary here")
    a = p.parse_args()
    benches = {"resnet": os.path.join(a.build_dir, "bench", "benchmark")}
    if a.base_build_dir:
        benches["base"] = os.path.join(a.base_build_dir, "bench", "benchmark")
    for name, path in benches.items():
        if not os.access(path, os.X_OK):
            sys.exit(f"contention.py: error: {path} not found ({name}); build it with "
                     "cmake --build BUILD_DIR --target benchmark")
    ort = None if a.no_ort else compare.ort_package(a.ort_dir)

    runs = []
    with tempfile.TemporaryDirectory(prefix="resnet-contention-") as tmp:
        weights, onnx, x = (os.path.join(tmp, f) for f in (f"{a.arch}.safetensors", f"{a.arch}.onnx", "x.f32"))
        subprocess.run([sys.executable, os.path.join(compare.REPO, "weights", "convert_torchvision.py"),
                        "--random-init", "--seed", "0", "--arch", a.arch, "-o", weights], check=True)
        np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32).tofile(x)
        common = ["--batch", "1", "--iters", str(a.iters), "--warmup", str(a.warmup), "--size", "224", "--input", x]
        jobs = [(name, load, threads, [path, "--json", "--weights", weights, "--threads", str(threads)] + common)
                for name, path in benches.items() for load, threads in CONFIGS]
        if ort:
            compare.export_onnx(weights, onnx, 224)
            ort_cmd = ["node", os.path.join(compare.REPO, "bench", "ort_worker.js"), ort, "--model", onnx]
            jobs += [("ort", load, threads, ort_cmd + ["--threads", str(threads)] + common)
                     for load, threads in ORT_CONFIGS]
        start = time.time()
        for rnd in range(a.rounds):
            print(f"round {rnd + 1}/{a.rounds} ({time.time() - start:.0f} s)", file=sys.stderr)
            shift = rnd % len(jobs)
            for name, load, threads, cmd in jobs[shift:] + jobs[:shift]:
                r = timed_run(cmd, load == "busy", a.busy_limit)
                runs.append({"engine": name, "load": load, "threads": threads, "round": rnd,
                             "median_ms": r["median_ms"], "others_cpu_share": r["others_cpu_share"]})

    med = {}
    for name, load, threads, _ in jobs:
        group = [r for r in runs if (r["engine"], r["load"], r["threads"]) == (name, load, threads)]
        med[name, load, threads] = {"median_ms": statistics.median(r["median_ms"] for r in group),
                                    "min_ms": min(r["median_ms"] for r in group),
                                    "max_ms": max(r["median_ms"] for r in group),
                                    "others": statistics.median(r["others_cpu_share"] for r in group)}
    one = med["resnet", "quiet", 1]["median_ms"]
    rows = [[name, load, str(threads), f"{m['median_ms']:.1f}", f"{m['min_ms']:.1f}–{m['max_ms']:.1f}",
             f"{m['median_ms'] / one:.2f}", f"{m['others']:.0%}"] for (name, load, threads), m in med.items()]
    print(f"{a.arch} 224x224 batch 1 on {compare.cpu_model()} ({os.cpu_count()} cores): medians over {a.rounds} "
          f"interleaved rounds, each run {a.warmup} warm-up + {a.iters} timed calls; "
          f"ONNX Runtime {compare.ORT_PACKAGE if ort else 'not run'}")
    print(compare.markdown_table(["engine", "load", "threads", "ms", "range over rounds", "× resnet quiet 1t",
                                  "others' CPU"], rows))

    def by_round(key):
        return {r["round"]: r["median_ms"] for r in runs if (r["engine"], r["load"], r["threads"]) == key}

    def ratios(num, den):
        """The ratio of the two medians, and the median of the rounds' own
        ratios: the second cancels what the host did to a whole round."""
        if num not in med or den not in med:
            return None
        num_ms, den_ms = by_round(num), by_round(den)
        return (med[num]["median_ms"] / med[den]["median_ms"],
                statistics.median(num_ms[r] / den_ms[r] for r in num_ms))
    targets = [("busy 2t / quiet 1t", ratios(("resnet", "busy", 2), ("resnet", "quiet", 1)), 1.10),
               ("busy 2t / ORT busy 2t", ratios(("resnet", "busy", 2), ("ort", "busy", 2)), 1.00),
               ("quiet 4t / quiet 2t", ratios(("resnet", "quiet", 4), ("resnet", "quiet", 2)), 1.15),
               ("quiet 2t / base quiet 2t", ratios(("resnet", "quiet", 2), ("base", "quiet", 2)), None)]
    for what, value, limit in targets:
        if value is not None:
            verdict = "" if limit is None else ("  met" if value[0] <= limit else f"  MISSED (target <= {limit:.2f})")
            print(f"{what}: {value[0]:.2f} (median of per-round ratios {value[1]:.2f}){verdict}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"cpu": compare.cpu_model(), "summary": {" ".join(map(str, k)): v for k, v in med.items()},
                       "targets": {w: v and {"of_medians": v[0], "per_round_median": v[1]} for w, v, _ in targets},
                       "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
