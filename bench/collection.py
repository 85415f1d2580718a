#!/usr/bin/env python3
"""Images/s of `classify` on a folder of photos, against the Python pipelines a user would write.

  bench/collection.py [--count 300] [--rounds 1] [--engines classify torchvision ort]
                      [--arch resnet50] [--build-dir build] [--ort-dir DIR] [--keep DIR]
                      [--rss 100 2000] [--json FILE]

Builds a collection in a temporary directory (--keep DIR: there, and reused):
--count photos made from examples/images, each rescaled to a random size from
300x200 to 2000x1500 and written as JPEG (quality 90, two in three) or PNG,
in one folder per source photo (ImageFolder's layout). Random-init weights
(--arch, seed 0) are converted for every engine. Then, per round, each engine
classifies the whole folder once (top-5 of every image), round-robin:
  classify     build/examples/classify --jsonl OUT DIR, default plan (all
               cores); timed as the whole process, model load included
  torchvision  ImageFolder + DataLoader(num_workers = cores, batch 32) and the
               torchvision model, torch.set_num_threads(cores); timed from the
               first batch request to the last result
  ort          PIL workers (multiprocessing.Pool(cores), torchvision's PIL
               transforms) feeding onnxruntime-node 1.30.0 (bench/ort_stream.js,
               intra-op threads = cores) through a pipe; timed likewise
and the medians over the rounds are reported, with each engine's CPU time
per image (its whole process tree, start-up included; on a shared machine
this is steadier than images/s) and the machine's limit:
cores / (core-seconds per image of decode + preprocess + forward, each
measured alone on one core: bench/stages for the first two, averaged over
the collection, bench/benchmark --threads 1 for the forward).
"of limit × free CPU" divides by the limit scaled to the share of the CPU
other processes left free during the engine's runs (median), an estimate for
a shared machine. "stages ÷ CPU" is the limit's core-seconds per image over the engine's CPU
time per image: the share of its CPU time that went into those three stages.
For classify it also prints each round's ratios to that round's limit and
to its faster Python pipeline, and their medians: on a host whose speed
changes between rounds these are steadier than ratios of medians.
--rss N... also runs classify on N images (for each N: the collection's,
cycled through as often as needed) and reports its peak RSS, which should
not grow with N.

Build first: cmake --build build --target classify stages benchmark
"""
import argparse
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (re-executes this script with /usr/bin/python3 if torch is missing)

REPO = compare.REPO
ENGINES = ("classify", "torchvision", "ort")
PHOTOS = ("chelsea.png", "coffee.png")


def make_image(job):
    """Writes one collection image: photo `src` rescaled to w×h, as JPEG or PNG."""
    from PIL import Image
    src, path, w, h = job
    image = Image.open(os.path.join(REPO, "examples", "images", src)).convert("RGB").resize((w, h), Image.BICUBIC)
    if path.endswith(".jpg"):
        image.save(path, "JPEG", quality=90)
    else:
        image.save(path, "PNG")


def build_collection(root, count):
    """`count` images under root/<photo>/, sizes and formats drawn from a fixed seed; reuses what exists."""
    rng = random.Random(0)
    jobs = []
    for i in range(count):
        w = rng.randint(300, 2000)
        h = max(200, min(1500, round(w * rng.choice((2 / 3, 3 / 4, 4 / 3, 1)))))
        src = PHOTOS[i % len(PHOTOS)]
        path = os.path.join(root, src.split(".")[0], f"{i:06d}_{w}x{h}." + ("png" if i % 3 == 2 else "jpg"))
        jobs.append((src, path, w, h))
    for src in PHOTOS:
        os.makedirs(os.path.join(root, src.split(".")[0]), exist_ok=True)
    todo = [j for j in jobs if not os.path.exists(j[1])]
    if todo:
        print(f"writing {len(todo)} images into {root}", file=sys.stderr)
        with multiprocessing.Pool(os.cpu_count()) as pool:
            pool.map(make_image, todo, chunksize=8)
    return sorted(j[1] for j in jobs)


def eval_transform(weights):
    """torchvision's eval transform with the preset the weights' metadata names (as classify reads it)."""
    from torchvision import transforms
    _, meta = compare.converter().read_safetensors(weights)
    floats = lambda key: [float(v) for v in meta[key].split(",")]  # noqa: E731
    return transforms.Compose([transforms.Resize(int(meta["resize"])), transforms.CenterCrop(int(meta["crop"])),
                               transforms.ToTensor(), transforms.Normalize(floats("mean"), floats("std"))])


def torchvision_worker(argv):
    """_torchvision --weights W --dir D: ImageFolder + DataLoader + model; prints {images, seconds}."""
    import torch
    from torchvision import datasets
    p = argparse.ArgumentParser(prog="collection.py _torchvision")
    p.add_argument("--weights", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--batch", type=int, default=32)
    a = p.parse_args(argv)
    cores = os.cpu_count()
    torch.set_num_threads(cores)
    model = compare.torch_model(a.weights)
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(a.dir, eval_transform(a.weights)),
                                         batch_size=a.batch, num_workers=cores)
    images, start = 0, time.perf_counter()
    with torch.inference_mode():
        for x, _ in loader:
            model(x).softmax(1).topk(5)
            images += len(x)
    print(json.dumps({"images": images, "seconds": time.perf_counter() - start,
                      "peak_rss_mib": compare.peak_rss_mib()}))


_transform = None


def pil_tensor(path):
    return _transform(_open_rgb(path)).numpy().tobytes()


def _open_rgb(path):
    from PIL import Image
    with Image.open(path) as image:
        return image.convert("RGB")


def _init_pil_worker(weights):
    global _transform
    _transform = eval_transform(weights)


def ort_worker(argv):
    """_ort --weights W --onnx M --ort DIR --dir D: PIL workers feeding ort_stream.js; prints {images, seconds}."""
    p = argparse.ArgumentParser(prog="collection.py _ort")
    for name in ("--weights", "--onnx", "--ort", "--dir"):
        p.add_argument(name, required=True)
    a = p.parse_args(argv)
    cores = os.cpu_count()
    files = [os.path.join(d, f) for d, _, names in sorted(os.walk(a.dir)) for f in sorted(names)]
    node = subprocess.Popen(["node", os.path.join(REPO, "bench", "ort_stream.js"), a.ort, "--model", a.onnx,
                             "--threads", str(cores), "--size", "224"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    if node.stdout.readline().strip() != b"ready":
        compare.fail("ort_stream.js did not start")
    start = time.perf_counter()
    with multiprocessing.Pool(cores, _init_pil_worker, (a.weights,)) as pool:
        for x in pool.imap(pil_tensor, files, chunksize=2):
            node.stdin.write(x)
    node.stdin.close()
    result = json.loads(node.stdout.read().decode().strip().splitlines()[-1])
    if node.wait() != 0 or result["images"] != len(files):
        compare.fail(f"ort_stream.js classified {result['images']} of {len(files)} images")
    print(json.dumps({"images": len(files), "seconds": time.perf_counter() - start}))


def timed(cmd, what):
    """Runs cmd; returns its last stdout line as JSON (or {}), wall seconds, its peak RSS in MiB
    (the process itself, not its children) and the share of the CPU other processes took meanwhile."""
    (busy0, own0), t0 = compare.busy_cpu_seconds(), time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    (busy1, own1) = compare.busy_cpu_seconds()
    if proc.returncode != 0:
        compare.fail(f"{what} failed (exit {proc.returncode}): {(err.strip().splitlines() or ['?'])[-1]}")
    lines = out.strip().splitlines()
    result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    others = max(0.0, (busy1 - busy0) - (own1 - own0)) / (wall * os.cpu_count())
    return {**result, "wall_s": wall, "cpu_s": own1 - own0, "others_cpu_share": others}


def machine_limit(cores, decode_ms, preprocess_ms, forward_ms):
    """Images/s the cores could reach if they did nothing but the three stages, each at its one-core cost."""
    return cores / ((decode_ms + preprocess_ms + forward_ms) / 1e3)


def round_ratios(runs, cores):
    """One round's classify images/s over that round's limit and over its faster Python pipeline:
    steadier than ratios of medians on a host whose speed changes between rounds."""
    stages = next(r for r in runs if r["engine"] == "stages")
    rates = {r["engine"]: r["images_per_s"] for r in runs if r["engine"] != "stages"}
    if "classify" not in rates:
        return {}
    limit = machine_limit(cores, stages["decode_ms"], stages["preprocess_ms"], stages["forward_ms"])
    out = {"limit_images_per_s": limit, "of_limit": rates["classify"] / limit}
    python = [v for e, v in rates.items() if e != "classify"]
    if python:
        out["x_best_python"] = rates["classify"] / max(python)
    return out


def peak_rss_of(cmd):
    """Peak RSS (MiB) of cmd, as GNU time reports it: os.wait4's ru_maxrss would count this
    Python's own RSS, which a forked child carries until it execs."""
    if not os.access("/usr/bin/time", os.X_OK):
        compare.fail("--rss needs GNU time (/usr/bin/time; Debian: apt-get install time)")
    r = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode not in (0, 1):
        compare.fail(f"{cmd[0]} failed (exit {r.returncode}): {r.stderr.strip()[-200:]}")
    return int(r.stderr.strip().splitlines()[-1]) / 1024


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=300, help="images in the collection (default 300)")
    p.add_argument("--rounds", type=int, default=1, help="times each engine classifies the folder (default 1)")
    p.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    p.add_argument("--ort-dir", default=os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                                     "resnet", "onnxruntime-node"))
    p.add_argument("--keep", metavar="DIR", help="build (or reuse) the collection and weights here")
    p.add_argument("--rss", type=int, nargs="*", default=[], metavar="N",
                   help="also measure classify's peak RSS on the first N images, for each N")
    p.add_argument("--json", metavar="FILE", help="also write the runs and the summary here")
    a = p.parse_args()
    tools = {t: os.path.join(a.build_dir, d, t) for d, t in (("examples", "classify"), ("bench", "stages"),
                                                                ("bench", "benchmark"))}
    for tool, path in tools.items():
        if not os.access(path, os.X_OK):
            compare.fail(f"{path} not found; build it: cmake --build {a.build_dir} --target {tool}")
    engines = [e for e in ENGINES if e in a.engines]
    ort = compare.ort_package(a.ort_dir) if "ort" in engines else None
    if "ort" in engines and not ort:
        engines.remove("ort")

    tmp = tempfile.TemporaryDirectory(prefix="resnet-collection-")
    work = a.keep or tmp.name
    os.makedirs(work, exist_ok=True)
    weights, onnx = os.path.join(work, f"{a.arch}.safetensors"), os.path.join(work, f"{a.arch}.onnx")
    if not os.path.exists(weights):
        subprocess.run([sys.executable, os.path.join(REPO, "weights", "convert_torchvision.py"), "--random-init",
                        "--seed", "0", "--arch", a.arch, "-o", weights], check=True, stdout=subprocess.DEVNULL)
    if "ort" in engines and not os.path.exists(onnx):
        compare.export_onnx(weights, onnx, 224)
    root = os.path.join(work, f"photos{a.count}")
    files = build_collection(root, a.count)
    cores = os.cpu_count()

    def command(engine):
        return {"classify": [tools["classify"], "--weights", weights, "--jsonl", os.path.join(work, "out.jsonl"), root],
                "torchvision": [sys.executable, os.path.abspath(__file__), "_torchvision", "--weights", weights,
                                "--dir", root],
                "ort": [sys.executable, os.path.abspath(__file__), "_ort", "--weights", weights, "--onnx", onnx,
                        "--ort", str(ort), "--dir", root]}[engine]

    runs, start = [], time.time()
    for rnd in range(a.rounds):
        print(f"round {rnd + 1}/{a.rounds} ({time.time() - start:.0f} s)", file=sys.stderr)
        stages = timed([tools["stages"], "--weights", weights, root], "stages")
        forward = timed([tools["benchmark"], "--weights", weights, "--threads", "1", "--iters", "10", "--json"],
                        "benchmark")
        runs.append({"engine": "stages", "round": rnd, **stages, "forward_ms": forward["median_ms"]})
        for e in engines[rnd % len(engines):] + engines[:rnd % len(engines)]:
            if os.path.exists(os.path.join(work, "out.jsonl")):
                os.remove(os.path.join(work, "out.jsonl"))
            r = timed(command(e), e)
            seconds = r.get("seconds", r["wall_s"])
            runs.append({"engine": e, "round": rnd, **r, "images_per_s": a.count / seconds,
                         "cpu_ms": 1e3 * r["cpu_s"] / a.count})
            print(f"  {e}: {a.count / seconds:.2f} images/s, {1e3 * r['cpu_s'] / a.count:.0f} CPU ms per image "
                  f"(others took {r['others_cpu_share']:.0%} of the CPU)", file=sys.stderr)
    rss = {}
    for n in a.rss:
        with open(os.path.join(work, "list.txt"), "w") as f:
            f.write("".join(files[i % len(files)] + "\n" for i in range(n)))
        rss[n] = peak_rss_of([tools["classify"], "--weights", weights, "--json", "--list",
                              os.path.join(work, "list.txt")])

    med = lambda engine, key: statistics.median(r[key] for r in runs if r["engine"] == engine)  # noqa: E731
    decode, pre, fwd = med("stages", "decode_ms"), med("stages", "preprocess_ms"), med("stages", "forward_ms")
    limit = machine_limit(cores, decode, pre, fwd)
    rates = {e: med(e, "images_per_s") for e in engines}
    cpu = {e: med(e, "cpu_ms") for e in engines}
    python = {e: rates[e] for e in engines if e != "classify"}
    others = statistics.mean(r["others_cpu_share"] for r in runs)
    per_round = [round_ratios([r for r in runs if r["round"] == rnd], cores) for rnd in range(a.rounds)]
    summary = {"cpu": compare.cpu_model(), "cores": cores, "count": a.count, "rounds": a.rounds, "arch": a.arch,
               "decode_ms": decode, "preprocess_ms": pre, "forward_1thread_ms": fwd, "limit_images_per_s": limit,
               "images_per_s": rates, "cpu_ms_per_image": cpu, "others_cpu_share": others,
               "classify_peak_rss_mib": rss, "per_round": per_round}
    print(f"{a.count} photos (300x200 to 2000x1500, 2/3 JPEG), {a.arch} random-init, {summary['cpu']} "
          f"({cores} cores), medians of {a.rounds} round(s); other processes used {others:.0%} of the CPU")
    print(f"machine limit: {cores} cores / ({decode:.1f} decode + {pre:.1f} preprocess + {fwd:.1f} forward "
          f"ms per image on one core) = {limit:.2f} images/s")
    stage_ms = decode + pre + fwd
    rows = []
    best_python = max(python.values()) if python else None
    for e in engines:
        free = 1 - med(e, "others_cpu_share")
        rows.append([e, f"{rates[e]:.2f}", f"{rates[e] / limit:.0%}", f"{rates[e] / (limit * free):.0%}",
                     f"{rates['classify'] / rates[e]:.2f}" if "classify" in rates else "-",
                     f"{rates[e] / best_python:.2f}" if best_python else "-",
                     f"{cpu[e]:.0f}", f"{stage_ms / cpu[e]:.0%}"])
    print(compare.markdown_table(["engine", "images/s", "of limit", "of limit × free CPU", "classify ×",
                                  "× best Python", "CPU ms/image", "stages ÷ CPU"], rows))
    for key, what, fmt in (("of_limit", "of its round's limit", "{:.0%}"),
                           ("x_best_python", "× its round's faster Python pipeline", "{:.2f}")):
        values = [r[key] for r in per_round if key in r]
        if values:
            print(f"classify, per round, {what}: {' '.join(fmt.format(v) for v in values)} "
                  f"(median {fmt.format(statistics.median(values))})")
    for n, mib in rss.items():
        print(f"classify peak RSS on {n} images: {mib:.0f} MiB")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"summary": summary, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["_torchvision"]:
        torchvision_worker(sys.argv[2:])
    elif sys.argv[1:2] == ["_ort"]:
        ort_worker(sys.argv[2:])
    else:
        main()
