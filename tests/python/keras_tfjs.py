#!/usr/bin/env python3
"""The Keras-semantics shim (keras_shim.py) against an independent Keras:
TensorFlow.js' layers (npm @tensorflow/tfjs-layers on the pure-JavaScript
CPU backend), which implement Keras' layers, TensorFlow's SAME padding
included, and read Keras model configs.

    keras_tfjs.py --work DIR

npm installs the packages into DIR once. For ResNet50 and ResNet50V2 (the
real keras_applications builders through the shim, seeded random weights),
the shim's Keras config and weights go to tests/js/keras_tfjs.js as a tfjs
model, its top Dense made linear so that tfjs returns the logits; the stage
outputs, the pooled features and the logits of both must agree within
1e-4 · max(1, max|shim|) on a batch of 2 odd-sized inputs. As a control, the
shim with BatchNorm epsilon 1e-3 instead of 1.001e-5 must disagree.
Exits 77 (ctest: skipped) when node or npm is missing.
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
from keras_applications import resnet_common

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "weights"))
import keras_fixtures  # noqa: E402
import keras_shim as ks  # noqa: E402

TFJS_VERSION = "4.22.0"
PACKAGES = ("tfjs-core", "tfjs-layers", "tfjs-backend-cpu")
RUNNER = HERE.parent / "js" / "keras_tfjs.js"
CASES = {"resnet50": resnet_common.ResNet50, "resnet50v2": resnet_common.ResNet50V2}
INPUT = (2, 75, 91)  # N, H, W: odd sizes, every stride-2 layer floors
TOLERANCE = 1e-4
SKIPPED = 77


def install(work):
    """node and the node_modules directory holding the tfjs packages."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        print("SKIPPED: the TensorFlow.js cross-check needs node and npm (Debian: apt-get install nodejs npm)")
        sys.exit(SKIPPED)
    modules = work / "node_modules"
    versions = [modules / "@tensorflow" / p / "package.json" for p in PACKAGES]
    if not all(v.exists() and json.loads(v.read_text())["version"] == TFJS_VERSION for v in versions):
        packages = [f"@tensorflow/{p}@{TFJS_VERSION}" for p in PACKAGES]
        if subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(work),
                           *packages]).returncode:
            print(f"FAILED: npm install {' '.join(packages)} into {work} (it needs the npm registry once)")
            sys.exit(1)
    return node, modules


def tfjs_outputs(node, modules, model, x, names, case_dir):
    """{name: float32 array} of the layers `names` as tfjs computes them."""
    case_dir.mkdir(parents=True, exist_ok=True)
    config = ks.model_config(model)
    for layer in config["config"]["layers"]:
        if layer["name"] == model.output.layer.name:
            layer["config"]["activation"] = "linear"
    specs, blobs = [], []
    for layer in model.layers:
        for var, a in layer.weights:
            specs.append({"name": f"{layer.name}/{var}", "shape": list(a.shape), "dtype": "float32"})
            blobs.append(a.astype("<f4").tobytes())
    (case_dir / "weights.bin").write_bytes(b"".join(blobs))
    (case_dir / "model.json").write_text(json.dumps({
        "modelTopology": {**config, "keras_version": "2.11.0", "backend": "tensorflow"},
        "weightsManifest": [{"paths": ["weights.bin"], "weights": specs}]}))
    (case_dir / "input.bin").write_bytes(x.astype("<f4").tobytes())
    (case_dir / "input.json").write_text(json.dumps({"shape": list(x.shape), "outputs": names}))
    subprocess.run([node, str(RUNNER), str(case_dir)], check=True, env={**os.environ, "NODE_PATH": str(modules)})
    shapes = json.loads((case_dir / "output.json").read_text())["shapes"]
    flat, out, at = np.fromfile(case_dir / "output.bin", "<f4"), {}, 0
    for name, shape in zip(names, shapes):
        size = int(np.prod(shape))
        out[name], at = flat[at:at + size].reshape(shape), at + size
    return out


def shim_outputs(model, x, names):
    """{name: float64 array}, the top's pre-activation values as "logits"."""
    values = model.run(x)
    return {**{n: values[n] for n in names[:-1]}, "logits": values["logits"]}


def agree(reference, other, label):
    ok = True
    for name, ref in reference.items():
        diff, scale = float(np.abs(other[name] - ref).max()), float(np.abs(ref).max())
        good = other[name].shape == ref.shape and diff <= TOLERANCE * max(1.0, scale)
        print(f"{label} {name} {list(ref.shape)}: max|d|={diff:.3g} max|ref|={scale:.3g}{'' if good else '  DIFFERENT'}")
        ok = ok and good
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, type=pathlib.Path)
    work = ap.parse_args().work
    work.mkdir(parents=True, exist_ok=True)
    node, modules = install(work)
    failures = 0
    for seed, (name, builder) in enumerate(CASES.items(), start=300):
        n, h, w = INPUT
        model = ks.build(builder, weights=None, input_shape=(h, w, 3))
        ks.randomize(model, seed)
        x = np.random.default_rng(seed).standard_normal((n, h, w, 3)).astype(np.float32)
        names = keras_fixtures.stage_outputs(model) + ["avg_pool", model.output.layer.name]
        tfjs = tfjs_outputs(node, modules, model, x, names, work / name)
        tfjs["logits"] = tfjs.pop(names[-1])
        failures += not agree(shim_outputs(model, x, names), tfjs, f"tfjs vs shim {name}")
        for layer in model.layers:
            if isinstance(layer, ks.BatchNormalization):
                layer.epsilon = 1e-3
        if agree(shim_outputs(model, x, names), tfjs, f"control (shim with epsilon 1e-3) {name}"):
            print(f"FAILED: {name}: the comparison does not notice a wrong BatchNorm epsilon")
            failures += 1
    print("tfjs and the shim agree" if not failures else f"{failures} case(s) FAILED")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
