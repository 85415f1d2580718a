#!/usr/bin/env python3
"""weights/convert_keras.py on bad files: each must exit with status 2 and
one line on stderr naming the file and what is wrong.

    keras_converter_errors.py --work DIR

The bad files (eleven of them near 95 MB each) are deleted with DIR when
every case passes, and kept for a look when one fails.
"""
import argparse
import pathlib
import shutil
import subprocess
import sys

import h5py
import numpy as np
from keras_applications import resnet_common

HERE = pathlib.Path(__file__).resolve().parent
CONVERTER = HERE.parents[1] / "weights" / "convert_keras.py"
sys.path.insert(0, str(HERE))
import keras_shim as ks  # noqa: E402


def edited_copy(base, path, edit):
    shutil.copy(base, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def drop_layer(f, name):
    f.attrs["layer_names"] = np.array([n for n in f.attrs["layer_names"] if n.decode() != name])
    del f[name]


def add_layer(f, name, arrays):
    f.attrs["layer_names"] = np.array(list(f.attrs["layer_names"]) + [name.encode()])
    g = f.create_group(name)
    g.attrs["weight_names"] = np.array([f"{name}/w{i}:0".encode() for i in range(len(arrays))])
    for i, a in enumerate(arrays):
        g.create_dataset(f"{name}/w{i}:0", data=a)


def reshape(f, layer, var, shape):
    name = f"{layer}/{layer}/{var}:0"
    del f[name]
    f.create_dataset(name, data=np.zeros(shape, np.float32))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", required=True, type=pathlib.Path)
    work = ap.parse_args().work
    work.mkdir(parents=True, exist_ok=True)
    base = work / "resnet50.h5"
    model = ks.build(resnet_common.ResNet50, weights=None, include_top=False, pooling="avg")
    ks.save_weights_h5(model, base)
    vgg = work / "vgg16.h5"
    with h5py.File(vgg, "w") as f:
        f.attrs["layer_names"] = np.array([])
        add_layer(f, "block1_conv1", [np.zeros((3, 3, 3, 64), np.float32), np.zeros(64, np.float32)])
    head = work / "bn_head.h5"
    ks.start()
    model = resnet_common.ResNet50(weights=None, include_top=False, pooling="avg", **ks.KWARGS)
    ks.save_model_h5(ks.Model(model.input, ks.Dense(3, "softmax")(ks.BatchNormalization(name="head_bn")(model.output))), head)
    tanh = work / "tanh_head.h5"
    ks.start()
    model = resnet_common.ResNet50(weights=None, include_top=False, pooling="avg", **ks.KWARGS)
    ks.save_model_h5(ks.Model(model.input, ks.Dense(3, "tanh", name="scores")(model.output)), tanh)
    keras3 = work / "resnet50.weights.h5"
    ks.save_weights_keras3(model, keras3)
    named = work / "named.weights.h5"
    ks.save_weights_keras3(model, named, names=True)

    def keras3_reshape(f):
        del f["layers/conv2d_2/vars/0"]
        f["layers/conv2d_2/vars/0"] = np.zeros((3, 3, 64, 32), np.float32)

    def add_keras3_dense(f):
        f["layers/dense_1/vars/0"] = np.zeros(1, np.float32)
    truncated = work / "truncated.h5"
    truncated.write_bytes(base.read_bytes()[:4096])
    text = work / "notes.h5"
    text.write_text("not a model\n")
    cases = [
        (vgg, "not a Keras ResNet", "block1_conv1"),
        (edited_copy(base, work / "missing.h5", lambda f: drop_layer(f, "conv3_block2_2_bn")),
         "missing layer 'conv3_block2_2_bn'", ""),
        (edited_copy(base, work / "extra.h5", lambda f: add_layer(f, "extra_dense", [np.zeros((4, 4), np.float32)])),
         "unexpected layer 'extra_dense'", ""),
        (edited_copy(base, work / "shape.h5", lambda f: reshape(f, "conv2_block1_2_conv", "kernel", (3, 3, 64, 32))),
         "layer 'conv2_block1_2_conv': kernel shape [3, 3, 64, 32], expected [3, 3, 64, 64]", ""),
        (truncated, "not an HDF5 file", ""),
        (text, "not an HDF5 file", ""),
        (head, "layer 'head_bn' (BatchNormalization) is not supported in the head", ""),
        (tanh, "layer 'scores': activation 'tanh' is not supported", ""),
        (keras3, "names its layers by class and position only", "pass --arch"),
        ((keras3, "--arch", "ResNet101"), "layers/conv2d_53/vars missing: ResNet101 has 104 conv2d layers", ""),
        ((edited_copy(keras3, work / "shape.weights.h5", keras3_reshape), "--arch", "ResNet50"),
         "layers/conv2d_2/vars (layer 'conv2_block1_2_conv'): kernel shape [3, 3, 64, 32], expected [3, 3, 64, 64]",
         ""),
        ((edited_copy(keras3, work / "extra.weights.h5", add_keras3_dense),
          "--arch", "ResNet50"), "unexpected layer 'layers/dense_1' with weights", ""),
        ((named, "--arch", "ResNet50V2"), "--arch ResNet50V2, but the file's layer names are those of ResNet50", ""),
    ]
    failures = 0
    for args, expected, also in cases:
        path, *options = args if isinstance(args, tuple) else (args,)
        r = subprocess.run([sys.executable, str(CONVERTER), str(path), "-o", str(work / "out.safetensors"), *options],
                           capture_output=True, text=True)
        lines = r.stderr.strip().splitlines()
        ok = r.returncode == 2 and len(lines) == 1 and str(path) in lines[0] and expected in lines[0] and also in lines[0]
        print(f"{'ok  ' if ok else 'FAIL'} {path.name}: exit {r.returncode}: {r.stderr.strip()}")
        failures += not ok
    print(f"{len(cases) - failures}/{len(cases)} bad files refused with one clear line")
    if failures:
        sys.exit(1)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
