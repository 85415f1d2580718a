#!/usr/bin/env python3
"""Time bench/benchmark against ONNX Runtime, PyTorch and OpenCV DNN on the same weights and input.

  bench/compare.py [--threads 1 2] [--batch 1 8] [--runs 10] [--arch resnet50]
                   [--engines resnet resnet-O2 ort pytorch opencv] [--ort-dir DIR]
                   [--build-dir build] [--iters 1] [--warmup 1] [--size 224]
                   [--max-others 0.1] [--pin] [--profile] [--paired N [--paired-gap 0.3]]
                   [--json FILE]

Writes one random-init weights file with weights/convert_torchvision.py (seed 0)
and an ONNX export of it, which ONNX Runtime and OpenCV DNN both run. ONNX
Runtime is onnxruntime-node 1.30.0 (its CPU library ships in the npm package),
installed on first use with `npm install --ignore-scripts` into --ort-dir and
run by node through bench/ort_worker.js. Then, for --runs
rounds, runs every engine once for every (threads, batch) pair, round-robin, so
that load from other processes hits all engines alike. Each run is a fresh
process (clean thread settings and peak RSS) that loads the weights, makes
--warmup untimed and --iters timed forward passes on the same N(0,1) input,
and reports the median of the timed ones; the table shows the median over the
rounds. The first round's logits are compared with PyTorch's (max |Δ|).
Engine resnet-O2 (not run by default) is bench/benchmark_O2, the same program
built at -O2 instead of the build type's flags: users' builds use either.
The machine's CPU use is sampled around each run: a run during which other
processes took more than --max-others of the CPU is repeated once, and if
still so, left out of the medians ("quiet runs" counts those kept; 0/N means
no run was quiet and all N are used). With --pin, the runs of one round that use
fewer threads than there are CPUs all run on the same CPUs (the next ones in the
following round).
With --profile, for every thread count at the smallest batch, --runs more
rounds time each layer inside the network: our benchmark's --profile
(ResNet::forward(x, timings)) against ONNX Runtime's own profiler, per
torchvision layer and summed by kind of convolution.
With --paired N, for every thread count at the smallest batch, one warm
process per engine (ours and ONNX Runtime, `--serve`) runs N turns of
--warmup + --iters forward passes each, alternating, --paired-gap seconds
apart: each pair of turns meets the same state of a shared host, which
changes faster than a round (see run_paired).

Needs a Python that imports torch and torchvision: run by one that cannot, it
re-executes itself with /usr/bin/python3. Build the benchmark first:
  cmake -S . -B build -G Ninja && cmake --build build --target benchmark
"""
import argparse
import datetime
import importlib.util
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SYSTEM_PYTHON = "/usr/bin/python3"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINES = ("resnet", "resnet-O2", "ort", "pytorch", "opencv")
REFERENCES = ("ort", "pytorch", "opencv")  # the ×ORT, ×PyTorch and ×OpenCV columns
DEFAULT_ENGINES = ("resnet",) + REFERENCES
ORT_PACKAGE = "onnxruntime-node@1.30.0"


def fail(message):
    sys.exit(f"compare.py: error: {message}")


def require_torch():
    """Return if this interpreter can import torch and torchvision, else re-exec
    the running script (this one, or bench/collection.py importing it) with
    /usr/bin/python3 (Debian's python3-torch), else exit."""
    if importlib.util.find_spec("torch") and importlib.util.find_spec("torchvision"):
        return
    if os.path.realpath(sys.executable) != os.path.realpath(SYSTEM_PYTHON) and os.access(SYSTEM_PYTHON, os.X_OK):
        os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON, os.path.abspath(sys.argv[0]), *sys.argv[1:]])
    fail(f"{sys.executable} cannot import torch and torchvision "
         "(on Debian: apt-get install python3-torch python3-torchvision, then run with /usr/bin/python3)")


require_torch()
import numpy as np  # noqa: E402  (after the interpreter check: numpy may be missing too)


def converter():
    if os.path.join(REPO, "weights") not in sys.path:
        sys.path.insert(0, os.path.join(REPO, "weights"))
    import convert_torchvision
    return convert_torchvision


def torch_model(weights):
    """The eval-mode torchvision model holding the tensors of a converter-written .safetensors file."""
    import torch
    import torchvision
    ct = converter()
    arrays, _ = ct.read_safetensors(weights)
    arch, classes = ct.infer_arch(arrays)
    model = getattr(torchvision.models, arch)(weights=None, num_classes=classes)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()}, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise ValueError(f"{weights}: keys do not match {arch}: {sorted(missing + unexpected)[:5]}")
    return model.eval()


def export_onnx(weights, path, size):
    """Export the weights' model to ONNX (opset 11, dynamic batch) that OpenCV 4.6 can read.

    torch.onnx.export replaces every initializer equal to an earlier one by an
    Identity node (the pass _jit_pass_onnx_deduplicate_initializers), and
    OpenCV 4.6 rejects an Identity whose input is an initializer. Random
    BatchNorm statistics make equal tensors unlikely, but default-init and some
    trained weights have them (all-ones BN weights), so the pass is skipped.
    """
    import torch
    model = torch_model(weights)
    dedup = torch._C._jit_pass_onnx_deduplicate_initializers
    torch._C._jit_pass_onnx_deduplicate_initializers = lambda graph, params, training: params
    try:
        torch.onnx.export(model, torch.zeros(1, 3, size, size), path, opset_version=11,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    finally:
        torch._C._jit_pass_onnx_deduplicate_initializers = dedup


def load_engine(engine, model, threads):
    """Load `model` into `engine` ("pytorch": .safetensors, "opencv": .onnx) using
    `threads` threads; return forward(x: N×3×S×S float32) -> N×classes array."""
    if engine == "pytorch":
        import torch
        torch.set_num_threads(threads)
        net = torch_model(model)

        def forward(x):
            with torch.inference_mode():
                return net(torch.from_numpy(x)).numpy()
        return forward
    import cv2
    cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromONNX(model)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

    def forward(x):
        net.setInput(x)
        return net.forward()
    return forward


def ort_package(cache_dir):
    """The onnxruntime-node package directory under cache_dir, installed there with npm
    on first use; None, with a note on stderr, when node or npm is missing or npm fails."""
    name, version = ORT_PACKAGE.split("@")
    package = os.path.join(cache_dir, "node_modules", name)
    try:
        with open(os.path.join(package, "package.json")) as f:
            if json.load(f)["version"] == version:
                return package
    except (OSError, ValueError, KeyError):
        pass
    missing = [tool for tool in ("node", "npm") if not shutil.which(tool)]
    if missing:
        print(f"note: {' and '.join(missing)} not found; ONNX Runtime is left out "
              "(on Debian: apt-get install nodejs npm)", file=sys.stderr)
        return None
    os.makedirs(cache_dir, exist_ok=True)
    print(f"installing {ORT_PACKAGE} into {cache_dir}", file=sys.stderr)
    # --ignore-scripts: the install script only downloads GPU binaries.
    r = subprocess.run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", cache_dir,
                        ORT_PACKAGE], capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"note: npm install {ORT_PACKAGE} failed ({tail}); ONNX Runtime is left out", file=sys.stderr)
        return None
    return package


def peak_rss_mib():
    """This process's peak resident set (VmHWM) in MiB. Unlike ru_maxrss it starts
    afresh at exec, so it does not include the parent's peak."""
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024


def worker(argv):
    """One timed run of PyTorch or OpenCV in this process; prints the JSON fields bench/benchmark prints."""
    p = argparse.ArgumentParser(prog="compare.py _worker")
    p.add_argument("engine", choices=("pytorch", "opencv"))
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--logits")
    for name in ("--batch", "--threads", "--iters", "--warmup", "--size"):
        p.add_argument(name, type=int, required=True)
    a = p.parse_args(argv)
    importlib.import_module("torchvision" if a.engine == "pytorch" else "cv2")  # not part of load_ms
    start = time.perf_counter()
    forward = load_engine(a.engine, a.model, a.threads)
    load_ms = (time.perf_counter() - start) * 1e3
    x = np.fromfile(a.input, np.float32).reshape(a.batch, 3, a.size, a.size)
    for _ in range(a.warmup):
        forward(x)
    times = []
    for _ in range(a.iters):
        start = time.perf_counter()
        logits = forward(x)
        times.append((time.perf_counter() - start) * 1e3)
    if a.logits:
        np.asarray(logits, np.float32).tofile(a.logits)
    median = statistics.median(times)
    print(json.dumps({"engine": a.engine, "batch": a.batch, "threads": a.threads, "median_ms": median,
                      "min_ms": min(times), "max_ms": max(times), "ms_per_image": median / a.batch,
                      "peak_rss_mib": peak_rss_mib(), "load_ms": load_ms}))


def run_engine(cmd, what, max_others, cpus=None):
    """Run cmd, on the CPUs `cpus` if given; return the JSON object on the last line of
    its stdout plus wall_s and others_cpu_share (the share of all cores that other
    processes used meanwhile). A run with a share above max_others is repeated once and
    the quieter attempt kept. Exits naming `what` if cmd fails."""
    attempts = []
    while len(attempts) < 2 and (not attempts or attempts[-1]["others_cpu_share"] > max_others):
        (busy0, own0), t0 = busy_cpu_seconds(), time.time()
        r = subprocess.run(cmd, capture_output=True, text=True,
                           preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        (busy1, own1), t1 = busy_cpu_seconds(), time.time()
        if r.returncode != 0:
            tail = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
            fail(f"{what} failed (exit {r.returncode}): {tail}")
        others = max(0.0, (busy1 - busy0) - (own1 - own0)) / ((t1 - t0) * os.cpu_count())
        attempts.append({**json.loads(r.stdout.strip().splitlines()[-1]), "wall_s": t1 - t0,
                         "others_cpu_share": others})
    return min(attempts, key=lambda r: r["others_cpu_share"])


def ort_layers(nodes):
    """ONNX Runtime's profiled nodes ({name, op, ms}, in the order they ran) → ms per torchvision
    layer name. A convolution is named by its block ("/layer1/layer1.0/...") and its place
    there, as ONNX Runtime names a convolution fused with its ReLU after the ReLU; the
    downsample by name, the stem as the convolution outside the blocks; pooling and fc by
    op; the rest (layout reorders, Flatten) is "other"."""
    layers, convs_seen = {}, {}
    for node in nodes:
        block = re.match(r"/layer\d+/(layer\d+\.\d+)/", node["name"])
        if node["op"] in ("Conv", "FusedConv"):
            if not block:
                name = "conv1"
            elif "/downsample/" in node["name"]:
                name = block.group(1) + ".downsample.0"
            else:
                convs_seen[block.group(1)] = convs_seen.get(block.group(1), 0) + 1
                name = f"{block.group(1)}.conv{convs_seen[block.group(1)]}"
        else:
            name = {"MaxPool": "maxpool", "GlobalAveragePool": "avgpool", "GlobalMaxPool": "avgpool",
                    "Gemm": "fc", "FusedGemm": "fc"}.get(node["op"], "other")
        layers[name] = layers.get(name, 0.0) + node["ms"]
    return layers


def conv_kinds(arch):
    """torchvision layer name → "KxK stride S" for every convolution of `arch`."""
    import torch
    import torchvision
    return {n: f"{m.kernel_size[0]}x{m.kernel_size[1]} stride {m.stride[0]}" + (f" groups {m.groups}" if m.groups > 1 else "")
            for n, m in getattr(torchvision.models, arch)().named_modules() if isinstance(m, torch.nn.Conv2d)}


def print_profiles(profiles, arch):
    """Per thread count: each layer's median ms over the rounds, ours beside ONNX Runtime's,
    then the sums by kind of layer."""
    kinds = conv_kinds(arch)
    for threads in sorted({p["threads"] for p in profiles}):
        med = {}
        for e in ("resnet", "ort"):
            rounds = [p["layers"] for p in profiles if p["threads"] == threads and p["engine"] == e]
            names = {n for r in rounds for n in r}
            med[e] = {n: statistics.median(r.get(n, 0.0) for r in rounds) for n in names}
        first = {e: next((p["layers"] for p in profiles if p["threads"] == threads and p["engine"] == e), {})
                 for e in ("resnet", "ort")}
        order = list(dict.fromkeys(list(first["resnet"]) + list(first["ort"])))  # ours in network order, then ORT's others
        by_kind, rows = {}, []
        for n in order:
            ours, theirs = med["resnet"].get(n), med["ort"].get(n)
            kind = kinds.get(n, n)
            k = by_kind.setdefault(kind, [0.0, 0.0, 0])
            k[0] += ours or 0.0
            k[1] += theirs or 0.0
            k[2] += 1
            rows.append([n, kind, fmt(ours, ".3f"), fmt(theirs, ".3f"), fmt(ours / theirs if ours and theirs else None, ".2f")])
        print(f"\n{arch}, {threads} thread(s): each layer inside the network, ms (median of "
              f"{len([p for p in profiles if p['threads'] == threads and p['engine'] == 'resnet'])} rounds)")
        print(markdown_table(["layer", "kind", "ours", "ORT", "×ORT"], rows))
        total = [sum(v[i] for v in by_kind.values()) for i in (0, 1)]
        print(markdown_table(["kind", "layers", "ours", "ORT", "×ORT"], [
            [kind, str(c), f"{o:.2f}", f"{t:.2f}", fmt(o / t if o and t else None, ".2f")]
            for kind, (o, t, c) in by_kind.items()] + [["all", "", f"{total[0]:.2f}", f"{total[1]:.2f}",
                                                         fmt(total[0] / total[1] if all(total) else None, ".2f")]]))


def run_paired(commands, pairs, gap, cpus, warmup, iters):
    """Alternates turns between warm `--serve` processes, one per engine
    ({engine: command}), on the same CPUs (a set, or None for all): `pairs` turns
    each, the order swapped every pair, a turn `warmup` + `iters` forward passes
    back to back (as a run of the rounds), `gap` seconds before each turn (ONNX
    Runtime's workers spin for tens of ms after a run: with no pause they took
    the next turn's CPU). → {engine: [median ms of each turn's timed passes, …]}."""
    pin = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []
    procs = {}
    try:
        for e, cmd in commands.items():
            procs[e] = subprocess.Popen(pin + cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            if procs[e].stdout.readline().strip() != "ready":
                fail(f"{e} --serve did not start: {' '.join(cmd)}")
        times = {e: [] for e in procs}
        for i in range(pairs):
            for e in list(procs)[::1 if i % 2 == 0 else -1]:
                time.sleep(gap)
                procs[e].stdin.write(f"{warmup + iters}\n")
                procs[e].stdin.flush()
                line = procs[e].stdout.readline()
                if not line:
                    fail(f"{e} --serve stopped: {' '.join(commands[e])}")
                times[e].append(statistics.median(map(float, line.split()[warmup:])))
        return times
    finally:
        for proc in procs.values():
            proc.stdin.close()
            proc.wait()


def print_paired(paired):
    rows = []
    for p in paired:
        for e, ms in p["times"].items():
            ratios = [x / y for x, y in zip(ms, p["times"]["ort"])]
            quartiles = statistics.quantiles(ratios, n=4)
            rows.append([str(p["threads"]), e, str(len(ms)), fmt(statistics.median(ms), ".1f"),
                         fmt(statistics.median(ratios), ".3f"), f"{quartiles[0]:.3f}–{quartiles[2]:.3f}"])
    print("\n" + markdown_table(["threads", "engine", "pairs", "median ms", "×ORT per pair", "quartiles"], rows))


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def markdown_table(header, rows):
    """A Markdown table padded to read well in a terminal; all but the first column right-aligned."""
    widths = [max(len(c) for c in col) for col in zip(header, *rows)]

    def line(cells):
        return "| " + " | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    rule = "|" + "|".join("-" * (w + 1) + ("-" if i == 0 else ":") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule] + [line(r) for r in rows])


def busy_cpu_seconds():
    """(CPU seconds the whole machine has been busy since boot, CPU seconds this process and
    its finished children have used): their difference over a span is what other processes took."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    own = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"), sum(r.ru_utime + r.ru_stime for r in own)


def cpu_model():
    with open("/proc/cpuinfo") as f:
        return next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "unknown CPU")


def summarize(runs, deltas, max_others):
    """One row per (engine, threads, batch): medians over its quiet runs (other processes
    used at most max_others of the CPU; all runs if none was quiet) and ratios to ONNX
    Runtime, PyTorch and OpenCV at the same threads and batch."""
    groups = {}
    for r in runs:
        groups.setdefault((r["threads"], r["batch"], ENGINES.index(r["engine"])), []).append(r)
    med = {}
    for key, group in groups.items():
        quiet = [r for r in group if r["others_cpu_share"] <= max_others]
        med[key] = {f: statistics.median(r[f] for r in quiet or group)
                    for f in ("median_ms", "ms_per_image", "peak_rss_mib", "load_ms")}
        med[key].update(runs=len(group), quiet_runs=len(quiet))
    by_round = {(r["threads"], r["batch"], r["engine"], r["round"]): r for r in runs}

    def per_round_vs_ort(threads, batch, engine):
        """The median over rounds of this engine's time ÷ ONNX Runtime's in the same
        round: it cancels what the host did to a whole round, which the ratio of the
        medians does not. Rounds where both runs were quiet (all, if none was)."""
        pairs = [(r, by_round.get((threads, batch, "ort", r["round"]))) for r in groups[threads, batch, ENGINES.index(engine)]]
        pairs = [(a, b) for a, b in pairs if b]
        quiet = [(a, b) for a, b in pairs if max(a["others_cpu_share"], b["others_cpu_share"]) <= max_others]
        return statistics.median(a["median_ms"] / b["median_ms"] for a, b in quiet or pairs) if pairs else None

    rows = []
    for (threads, batch, e), m in sorted(med.items()):
        ref = {name: med.get((threads, batch, ENGINES.index(name))) for name in REFERENCES}
        rows.append({"engine": ENGINES[e], "threads": threads, "batch": batch, **m,
                     **{f"vs_{n}": m["median_ms"] / v["median_ms"] if v else None for n, v in ref.items()},
                     "vs_ort_per_round": per_round_vs_ort(threads, batch, ENGINES[e]),
                     "max_abs_diff_vs_pytorch": deltas.get((ENGINES[e], threads, batch))})
    return rows


def print_table(rows):
    header = ["engine", "threads", "batch", "quiet runs", "ms/batch", "ms/image", "×ORT", "×ORT per round",
              "×PyTorch", "×OpenCV", "peak RSS MiB", "load ms", "max abs Δ vs PyTorch"]
    print(markdown_table(header, [
        [r["engine"], str(r["threads"]), str(r["batch"]), f"{r['quiet_runs']}/{r['runs']}",
         fmt(r["median_ms"], ".1f"), fmt(r["ms_per_image"], ".1f"), fmt(r["vs_ort"], ".2f"),
         fmt(r["vs_ort_per_round"], ".2f"), *(fmt(r[f"vs_{n}"], ".2f") for n in REFERENCES[1:]),
         fmt(r["peak_rss_mib"], ".0f"),
         fmt(r["load_ms"], ".0f"), fmt(r["max_abs_diff_vs_pytorch"], ".1e")] for r in rows]))


def main():
    p = argparse.ArgumentParser(description="Compare bench/benchmark with ONNX Runtime, PyTorch and OpenCV DNN.")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    p.add_argument("--runs", type=int, default=10, help="rounds; each engine runs once per round and config")
    p.add_argument("--arch", default="resnet50", help="torchvision architecture (default resnet50)")
    p.add_argument("--engines", nargs="+", choices=ENGINES, default=list(DEFAULT_ENGINES),
                   help="engines to run (default: all but resnet-O2, bench/benchmark_O2: the same program built "
                        "at -O2; PyTorch is always run, as the logits reference)")
    p.add_argument("--ort-dir", default=os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                     os.path.expanduser("~/.cache"), "resnet", "onnxruntime-node"),
                   help="npm prefix holding (or to receive) onnxruntime-node (default ~/.cache/resnet/onnxruntime-node)")
    p.add_argument("--build-dir", default=os.path.join(REPO, "build"),
                   help="CMake build directory holding bench/benchmark (default: build in the repository)")
    p.add_argument("--iters", type=int, default=1, help="timed forward passes per run (default 1)")
    p.add_argument("--warmup", type=int, default=1, help="untimed forward passes first (default 1)")
    p.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    p.add_argument("--max-others", type=float, default=0.1, metavar="SHARE",
                   help="a run during which other processes used more than this share of the CPU is repeated "
                        "once, and left out of the medians if still so (default 0.1)")
    p.add_argument("--pin", action="store_true",
                   help="run every engine of a round on the same CPUs when it uses fewer threads than there are "
                        "(round r: T CPUs from the (r*T)-th on, cycling), so that a per-round ratio compares "
                        "engines on the same cores; for VMs whose vCPUs run at different speeds")
    p.add_argument("--profile", action="store_true",
                   help="then time each layer inside the network, ours against ONNX Runtime's profiler: --runs more "
                        "rounds per thread count, at the smallest --batch")
    p.add_argument("--paired", type=int, default=0, metavar="N",
                   help="then, per thread count at the smallest --batch, N turns of --warmup + --iters forward "
                        "passes, ours and ONNX Runtime alternating between two warm processes (pinned as by "
                        "--pin): ratios per pair of turns")
    p.add_argument("--paired-gap", type=float, default=0.3, metavar="SECONDS",
                   help="pause before each turn of --paired (default 0.3)")
    p.add_argument("--json", metavar="FILE", help="also write every run and the summary here")
    a = p.parse_args()
    if min(a.threads + a.batch + [a.runs, a.iters, a.size]) < 1 or a.warmup < 0:
        fail("--threads, --batch, --runs, --iters and --size must be >= 1, --warmup >= 0")
    if a.paired == 1 or a.paired < 0 or a.paired_gap < 0:
        fail("--paired takes 0 (off) or at least 2 pairs (quartiles of their ratios), --paired-gap >= 0 seconds")
    benches = {e: os.path.join(a.build_dir, "bench", name) for e, name in
               (("resnet", "benchmark"), ("resnet-O2", "benchmark_O2")) if e in a.engines}
    for bench in benches.values():
        if not os.access(bench, os.X_OK):
            target = os.path.basename(bench)
            fail(f"{bench} not found; build it: cmake -S . -B build -G Ninja && cmake --build build --target {target}")
    wanted = set(a.engines) | {"pytorch"}
    cv2 = None
    if "opencv" in wanted:
        try:
            import cv2
        except ImportError:
            wanted.discard("opencv")
            print("note: cv2 does not import; OpenCV DNN is left out", file=sys.stderr)
    ort = ort_package(a.ort_dir) if "ort" in wanted else None
    if not ort:
        wanted.discard("ort")
    engines = tuple(e for e in ENGINES if e in wanted)

    with tempfile.TemporaryDirectory(prefix="resnet-compare-") as tmp:
        weights, onnx = os.path.join(tmp, f"{a.arch}.safetensors"), os.path.join(tmp, f"{a.arch}.onnx")
        subprocess.run([sys.executable, os.path.join(REPO, "weights", "convert_torchvision.py"), "--random-init",
                        "--seed", "0", "--arch", a.arch, "-o", weights], check=True)
        if {"ort", "opencv"} & wanted:
            export_onnx(weights, onnx, a.size)
        rng = np.random.default_rng(0)
        inputs = {}
        for n in sorted(set(a.batch)):
            inputs[n] = os.path.join(tmp, f"input{n}.f32")
            rng.standard_normal((n, 3, a.size, a.size), dtype=np.float32).tofile(inputs[n])

        def command(engine, threads, batch, logits, profile=False, serve=False):
            common = ["--batch", batch, "--threads", threads, "--iters", a.iters, "--warmup", a.warmup,
                      "--size", a.size, "--input", inputs[batch]] + (["--logits", logits] if logits else [])
            for flag, on in (("--profile", profile), ("--serve", serve)):
                if on:
                    common += [flag] + (["1"] if engine == "ort" else [])
            head = {**{e: [bench, "--json", "--weights", weights] for e, bench in benches.items()},
                    "ort": ["node", os.path.join(REPO, "bench", "ort_worker.js"), ort, "--model", onnx]}.get(
                engine, [sys.executable, os.path.abspath(__file__), "_worker", engine,
                         "--model", weights if engine == "pytorch" else onnx])
            return [str(c) for c in head + common]

        configs = [(t, n) for t in a.threads for n in a.batch]
        allowed = sorted(os.sched_getaffinity(0)) if a.pin else []

        def cpus_for(rnd, threads):
            if threads >= len(allowed):
                return None
            return {allowed[(rnd * threads + i) % len(allowed)] for i in range(threads)}

        start, runs, deltas = time.time(), [], {}
        for rnd in range(a.runs):
            print(f"round {rnd + 1}/{a.runs} ({time.time() - start:.0f} s)", file=sys.stderr)
            for threads, batch in configs:
                order = engines[rnd % len(engines):] + engines[:rnd % len(engines)]
                logits = {e: os.path.join(tmp, f"{e}.logits") if rnd == 0 else None for e in engines}
                for e in order:
                    r = run_engine(command(e, threads, batch, logits[e]), f"{e} ({threads} threads, batch {batch})",
                                   a.max_others, cpus_for(rnd, threads))
                    runs.append({**r, "engine": e, "threads": threads, "batch": batch, "round": rnd})
                if rnd == 0:
                    ref = np.fromfile(logits["pytorch"], np.float32)
                    for e in (e for e in engines if e != "pytorch"):
                        deltas[e, threads, batch] = float(np.abs(np.fromfile(logits[e], np.float32) - ref).max())

        profiles = []
        for threads in a.threads if a.profile else []:
            for rnd in range(a.runs):
                print(f"profile, {threads} thread(s), round {rnd + 1}/{a.runs}", file=sys.stderr)
                for e in (e for e in ("resnet", "ort") if e in engines):
                    r = run_engine(command(e, threads, min(a.batch), None, profile=True),
                                   f"{e} --profile ({threads} threads)", a.max_others, cpus_for(rnd, threads))
                    layers = ort_layers(r["profile"]) if e == "ort" else {n["name"]: n["ms"] for n in r["profile"]}
                    profiles.append({"engine": e, "threads": threads, "round": rnd, "layers": layers})

        paired = []
        for threads in a.threads if a.paired and {"resnet", "ort"} <= set(engines) else []:
            print(f"paired, {threads} thread(s): {a.paired} pairs", file=sys.stderr)
            times = run_paired({e: command(e, threads, min(a.batch), None, serve=True) for e in ("resnet", "ort")},
                               a.paired, a.paired_gap, cpus_for(0, threads), a.warmup, a.iters)
            paired.append({"threads": threads, "batch": min(a.batch), "gap_s": a.paired_gap, "times": times})

    rows = summarize(runs, deltas, a.max_others)
    others = statistics.mean(r["others_cpu_share"] for r in runs)
    import torch
    meta = {"cpu": cpu_model(), "cores": os.cpu_count(), "date": datetime.date.today().isoformat(),
            "arch": a.arch, "size": a.size, "runs": a.runs, "iters": a.iters, "warmup": a.warmup,
            "max_others": a.max_others, "torch": torch.__version__, "opencv": cv2.__version__ if cv2 else None,
            "onnxruntime": ORT_PACKAGE if ort else None, "pinned": a.pin,
            "others_cpu_share": others, "seconds": round(time.time() - start)}
    print(f"{a.arch} {a.size}x{a.size} on {meta['cpu']} ({meta['cores']} cores), {meta['date']}, torch "
          f"{meta['torch']}, OpenCV {meta['opencv']}, ONNX Runtime {meta['onnxruntime']}: medians over the quiet runs of {a.runs} rounds, each run "
          f"{a.warmup} warm-up + {a.iters} timed pass(es){'; each round pinned to the same CPUs' if a.pin else ''}; "
          f"other processes used {others:.0%} of the CPU; "
          f"{meta['seconds']} s")
    print_table(rows)
    if profiles:
        print_profiles(profiles, a.arch)
    if paired:
        print_paired(paired)
    if any(2 * r["quiet_runs"] < r["runs"] for r in rows):
        print(f"warning: in some rows most runs shared the CPU with other processes (more than "
              f"{a.max_others:.0%}); their figures are unreliable: re-run when the machine is idle", file=sys.stderr)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "summary": rows, "runs": runs, "profiles": profiles, "paired": paired}, f,
                      indent=1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["_worker"]:
        worker(sys.argv[2:])
    else:
        main()
