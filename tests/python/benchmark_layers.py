#!/usr/bin/env python3
"""ctest `benchmark_layers`: `benchmark --layers --profile --json` against torchvision.

    benchmark_layers.py --benchmark BIN

For a few architectures (untrained weights, `--random`) and input sizes, the
rows of `--layers` must be torchvision's convolutions: the same names (each
once, in the order the forward runs them: a block's downsample before its
conv1, as the library computes the shortcut first), and for each the
channels, kernel, stride and groups of the nn.Conv2d and the input side a
forward hook sees on a torchvision forward of that size. Each row's path
must be Conv2d's Auto choice (the direct convolution for grouped layers and
the RGB stem; Winograd F(4x4) for ungrouped 3x3 stride-1 layers up to 64
channels, F(2x2) up to 512; under AVX-512 the channel-vector direct
convolution for the other ungrouped layers wider than 1x1, under other
kernel sets im2col + GEMM; the GEMM for the 1x1s), its time positive and its
GFLOP/s 2 x the layer's multiply-adds over that time. The summary's GFLOP
per image must be the sum over the rows plus fc. The rows of `--profile`
(each layer's time inside forward(), ResNet::forward(x, timings)) must be
those convolutions with torchvision's maxpool after conv1 and its avgpool
and fc last, each with a positive time. `--peak` must list the x86 kernel
sets this CPU has (/proc/cpuinfo), each with a positive FMA-loop rate, the
micro-tile of `kernels` for the set the network runs, and a micro-kernel
rate within (0.2, 1.25] of the loop's: no tile can outrun FMAs that never
touch memory by more than timing noise.
"""
import argparse
import json
import platform
import subprocess
import sys

import torch
import torchvision

CASES = [("resnet18", 224), ("resnet50", 160), ("resnext50_32x4d", 97)]


def torchvision_convs(arch, size):
    """(name, in, out, kernel, stride, groups, input side) per nn.Conv2d, in forward order, fc's MACs, and
    the model's top-level module names."""
    model = getattr(torchvision.models, arch)().eval()
    names = {m: n for n, m in model.named_modules()}
    seen = []

    def hook(module, inputs, _output):
        seen.append((names[module], module.in_channels, module.out_channels, module.kernel_size[0],
                     module.stride[0], module.groups, inputs[0].shape[-1]))

    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    return seen, model.fc.in_features * model.fc.out_features, [n for n, _ in model.named_children()]


def shortcut_first(convs):
    """The library's order: in each block, the downsample before conv1."""
    out = list(convs)
    for i, c in enumerate(out):
        if c[0].endswith(".downsample.0"):
            block = c[0][: -len("downsample.0")]
            first = next(j for j, d in enumerate(out) if d[0].startswith(block))
            out.insert(first, out.pop(i))
    return out


def expected_path(cin, cout, k, stride, groups, isa):
    if groups > 1 or cin <= 4:
        return "direct"
    if k == 3 and stride == 1:
        width = max(cin, cout)
        if width <= 128:
            return "winograd 4x4"
        if width <= 512:
            return "winograd 2x2"
    if k > 1 and isa == "avx512":
        return "channel-vector direct"
    return "gemm"


def check_profile(profile, conv_names, children):
    """The profile's rows: the convolutions, with torchvision's pooling layers and fc in their places."""
    missing = [n for n in ("maxpool", "avgpool", "fc") if n not in children]
    if missing:
        return [f"torchvision's model has no module {missing}"]
    want = conv_names[:1] + ["maxpool"] + conv_names[1:] + ["avgpool", "fc"]
    got = [r["name"] for r in profile]
    if got != want:
        return [f"profile names: got {got}, want {want}"]
    return [f"profile {r['name']}: ms {r['ms']}" for r in profile if not r["ms"] > 0]


def check(bench, arch, size):
    out = subprocess.run([bench, "--arch", arch, "--random", "--threads", "1", "--iters", "1", "--warmup", "0",
                          "--size", str(size), "--layers", "--profile", "--json"],
                         capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    rows = report["layers"]
    convs, fc_macs, children = torchvision_convs(arch, size)
    want = shortcut_first(convs)
    errors = check_profile(report["profile"], [c[0] for c in want], children)
    got_names = [r["name"] for r in rows]
    if got_names != [c[0] for c in want]:
        errors.append(f"names: got {got_names}, want {[c[0] for c in want]}")
        return errors
    macs = 0
    for r, (name, cin, cout, k, stride, groups, side) in zip(rows, want):
        got = (r["in_channels"], r["out_channels"], r["kernel"], r["stride"], r["groups"], r["input"])
        if got != (cin, cout, k, stride, groups, side):
            errors.append(f"{name}: got (in, out, k, stride, groups, input) {got}, torchvision has "
                          f"{(cin, cout, k, stride, groups, side)}")
        path = expected_path(cin, cout, k, stride, groups, report["kernels"].split()[0])
        if not r["path"].startswith(path):
            errors.append(f"{name}: path {r['path']!r}, Auto's choice is {path!r}")
        side_out = (side + 2 * (k // 2) - k) // stride + 1
        layer_macs = cout * (cin // groups) * k * k * side_out * side_out
        macs += layer_macs
        if not r["ms"] > 0:
            errors.append(f"{name}: ms {r['ms']}")
        elif abs(r["gflops"] - 2 * layer_macs * 1e-6 / r["ms"]) > 1e-6 * r["gflops"]:
            errors.append(f"{name}: {r['gflops']} GFLOP/s, 2 x {layer_macs} MACs in {r['ms']} ms is "
                          f"{2 * layer_macs * 1e-6 / r['ms']}")
    gflop = 2 * (macs + fc_macs) * 1e-9
    if abs(report["gflop_per_image"] - gflop) > 1e-9 * gflop:
        errors.append(f"gflop_per_image {report['gflop_per_image']}, the rows and fc make {gflop}")
    return errors


def cpu_sets():
    """The x86 kernel sets (isa.hpp) this CPU runs, in --peak's order."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return []
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    wanted = [("sse2", ["sse2"]), ("avx2", ["avx2", "fma"]), ("avx512", ["avx512f"])]
    return [name for name, need in wanted if all(n in flags for n in need)]


def check_peak(bench):
    out = subprocess.run([bench, "--arch", "resnet18", "--random", "--threads", "1", "--iters", "1", "--warmup", "0",
                          "--size", "32", "--peak", "--json"], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    rows = report["peak"]
    errors = []
    if [r["isa"] for r in rows] != cpu_sets():
        errors.append(f"peak sets: got {[r['isa'] for r in rows]}, this CPU has {cpu_sets()}")
    active, tile = report["kernels"].split()[0], report["kernels"].split("micro-tile ")[-1].rstrip(")")
    for r in rows:
        if not r["fma_gflops"] > 0:
            errors.append(f"peak {r['isa']}: FMA loop {r['fma_gflops']} GFLOP/s")
        elif not 0.2 < r["tile_gflops"] / r["fma_gflops"] <= 1.25:
            errors.append(f"peak {r['isa']}: micro-kernel {r['tile_gflops']} against FMA loop {r['fma_gflops']} GFLOP/s")
        if r["isa"] == active and r["tile"] != tile:
            errors.append(f"peak {r['isa']}: tile {r['tile']}, kernels says {report['kernels']}")
    return errors


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--benchmark", required=True)
    args = parser.parse_args()
    checks = [(f"{arch} {size}x{size}", lambda a=arch, n=size: check(args.benchmark, a, n)) for arch, size in CASES]
    checks.append(("--peak", lambda: check_peak(args.benchmark)))
    failed = 0
    for name, run in checks:
        errors = run()
        print(f"{name}: {'ok' if not errors else 'FAILED'}")
        for e in errors:
            print("  " + e)
        failed += bool(errors)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
