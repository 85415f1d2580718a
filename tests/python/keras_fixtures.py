#!/usr/bin/env python3
"""Keras models in Keras' own file formats and their Keras-semantics outputs.

    keras_fixtures.py --out DIR

Each case builds a network with the real keras_applications code (through
keras_shim), gives it seeded random weights, saves it in one of Keras' file
formats, converts that file with weights/convert_keras.py and runs the
network on seeded inputs. DIR receives, per case:
  keras_<case>.<h5|keras|weights.h5>  the Keras file
  keras_<case>.safetensors        what convert_keras.py made of it
  keras_<case>.ref.safetensors    inputs x0, x1, … (N×3×H×W) and the
                                  reference's outputs x<i>.layer1..layer4
                                  (N×C×h×w), .avgpool (N×C×1×1), .fc (the
                                  last Dense before its activation), .probs
A stamp file makes reruns free while the scripts are unchanged.
"""
import argparse
import hashlib
import pathlib
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
from keras_applications import resnet50 as keras_resnet50_old
from keras_applications import resnet_common

HERE = pathlib.Path(__file__).resolve().parent
WEIGHTS = HERE.parents[1] / "weights"
CONVERTER = WEIGHTS / "convert_keras.py"
sys.path.insert(0, str(WEIGHTS))
sys.path.insert(0, str(HERE))
import keras_shim as ks  # noqa: E402
import safetensors_io  # noqa: E402

SQUARE, ODD = [(1, 224, 224)], [(1, 224, 224), (3, 197, 263)]
SMALL = [(2, 96, 112)]


def finetuned(base_builder, pooling, hidden):
    """A transfer-learning model: base without top, then a Dense chain."""
    def build():
        ks.start()
        base = base_builder(include_top=False, weights=None, pooling=pooling, input_shape=(224, 224, 3), **ks.KWARGS)
        x = base.output
        for layer in hidden:
            x = layer(x)
        return ks.Model(base.input, x, name="finetuned")
    return build


def application(builder, **kwargs):
    return lambda: ks.build(builder, weights=None, **kwargs)


# name: (model, file format, converter options, inputs N×H×W)
CASES = {
    "resnet50": (application(resnet_common.ResNet50), "weights_h5", [], ODD),
    "resnet101": (application(resnet_common.ResNet101, classes=10), "weights_h5", [], SMALL),
    "resnet152": (application(resnet_common.ResNet152), "model_h5", [], SMALL),
    "resnet50_old": (application(keras_resnet50_old.ResNet50), "weights_h5", [], SQUARE),
    "resnet50v2": (application(resnet_common.ResNet50V2), "weights_h5", [], ODD),
    "resnet101v2": (application(resnet_common.ResNet101V2), "keras", [], SMALL),
    "resnet152v2": (application(resnet_common.ResNet152V2, classes=5), "model_h5", [], SMALL),
    "notop_avg": (application(resnet_common.ResNet50, include_top=False, pooling="avg"), "weights_h5",
                  ["--pooling", "avg"], SMALL),
    "notop_v2": (application(resnet_common.ResNet50V2, include_top=False, input_shape=(None, None, 3)), "keras",
                 [], SMALL),
    "keras3_resnet50": (application(resnet_common.ResNet50), "weights_keras3", ["--arch", "ResNet50"], SMALL),
    "keras3_notop_v2": (application(resnet_common.ResNet50V2, include_top=False, pooling="avg"), "weights_keras3",
                        ["--arch", "ResNet50V2", "--pooling", "avg"], SMALL),
    "keras3_named_v2": (application(resnet_common.ResNet50V2, classes=10), "weights_keras3_named", [], SMALL),
    "finetuned": (finetuned(resnet_common.ResNet50, "avg", [ks.Dense(64, "relu", name="fc_hidden"), ks.Dropout(0.5),
                                                           ks.Dense(64, "relu", name="fc_square"),
                                                           ks.Dense(7, "softmax", name="classes")]),
                  "model_h5", [], [(3, 197, 263)]),
    "finetuned_sigmoid": (finetuned(resnet_common.ResNet50V2, None, [ks.GlobalMaxPooling2D(name="max_pool"),
                                                                     ks.Flatten(), ks.Dense(32), ks.Activation("relu"),
                                                                     ks.Dense(1, "sigmoid", name="is_cat")]),
                          "keras", [], SMALL),
}
SAVERS = {"weights_h5": (ks.save_weights_h5, "h5"), "model_h5": (ks.save_model_h5, "h5"),
          "keras": (ks.save_keras, "keras"),
          "weights_keras3": (ks.save_weights_keras3, "weights.h5"),
          "weights_keras3_named": (lambda model, path: ks.save_weights_keras3(model, path, names=True), "weights.h5")}


def convert(keras_file, out, options):
    subprocess.run([sys.executable, str(CONVERTER), str(keras_file), "-o", str(out), *options], check=True)


def stage_outputs(model):
    """Names of the layers whose outputs are layer1..layer4: each stage's
    last convS_blockB_out (V2: post_relu for the last stage); with the old
    names, the ReLU after the last addition of each stage."""
    names = [l.name for l in model.layers]
    if "conv1_conv" in names:
        last = {n[:5]: n for n in names if re.fullmatch(r"conv\d_block\d+_out", n)}
        ends = [last[f"conv{s}"] for s in range(2, 6)]
        return ends[:3] + ["post_relu"] if "post_relu" in names else ends
    kinds = {l.name: l for l in model.layers}
    relus = [l.name for l in model.layers
             if isinstance(l, ks.Activation) and isinstance(kinds[model.inbound(l)[0]], ks.Add)]
    return [relus[i] for i in np.cumsum([3, 4, 6, 3]) - 1]


def make_case(out_dir, name, seed, spec):
    build, fmt, options, inputs = spec
    model = build()
    ks.randomize(model, seed)
    saver, ext = SAVERS[fmt]
    keras_file = out_dir / f"keras_{name}.{ext}"
    saver(model, keras_file)
    convert(keras_file, out_dir / f"keras_{name}.safetensors", options)
    stages = stage_outputs(model)
    pool = [l.name for l in model.layers if isinstance(l, (ks.GlobalAveragePooling2D, ks.GlobalMaxPooling2D))]
    rng = np.random.default_rng(seed)
    ref = {}
    for i, (n, h, w) in enumerate(inputs):
        x = rng.standard_normal((n, 3, h, w)).astype(np.float32)
        values = model.run(x.transpose(0, 2, 3, 1))
        ref[f"x{i}"] = x
        for s, layer in enumerate(stages):
            ref[f"x{i}.layer{s + 1}"] = values[layer].transpose(0, 3, 1, 2)
        if pool:
            ref[f"x{i}.avgpool"] = values[pool[0]][:, :, None, None]
        if "logits" in values:
            ref[f"x{i}.fc"] = values["logits"]
            ref[f"x{i}.probs"] = values[model.output.layer.name]
    safetensors_io.write(out_dir / f"keras_{name}.ref.safetensors", ref,
                         {"stages": ",".join(stages), "format": fmt}, dtype=None)


def write_mutants(out_dir):
    """Converted files with one thing wrong each, which the tests must tell
    from the right ones: the stride on the 3×3 (torchvision's v1.5) instead
    of the first 1×1, tf.keras' BatchNorm epsilon on the old ResNet50 (1e-3),
    a square Dense kernel left in Keras' [in, out] layout; and a Keras 3
    .weights.h5 file whose same-shaped conv2d_3 and conv2d_4 are swapped
    (conv2_block1_0_conv and _3_conv: how a converter that numbered layers in
    call order instead of Keras' order would read it)."""
    def mutate(source, name, change):
        tensors, metadata = safetensors_io.read(out_dir / f"keras_{source}.safetensors")
        change(tensors, metadata)
        safetensors_io.write(out_dir / f"keras_{name}.safetensors", tensors, metadata, dtype=None)
    mutate("resnet50", "mutant_stride_on_3x3", lambda t, m: m.update(variant="v1.5", arch="resnet50"))
    mutate("resnet50_old", "mutant_eps", lambda t, m: m.update(bn_eps="1.001e-05"))
    mutate("finetuned", "mutant_transposed_dense", lambda t, m: t.update({"head.1.weight": t["head.1.weight"].T}))
    swapped = out_dir / "keras_mutant_keras3_order.weights.h5"
    shutil.copy(out_dir / "keras_keras3_resnet50.weights.h5", swapped)
    with h5py.File(swapped, "r+") as f:
        for a, b in (("conv2d_3", "swap"), ("conv2d_4", "conv2d_3"), ("swap", "conv2d_4")):
            f.move(f"layers/{a}", f"layers/{b}")
    convert(swapped, out_dir / "keras_mutant_keras3_order.safetensors", ["--arch", "ResNet50"])


def preprocessing_refs(out_dir):
    """Images in odd forms and what Keras' pipeline makes of them:
    keras_preprocessing's load_img(target_size=(224, 224)) (nearest, and
    bilinear) → img_to_array → keras_applications' preprocess_input in caffe
    and tf modes, each as a 1×3×224×224 float32 tensor."""
    from keras_applications import imagenet_utils
    from keras_preprocessing.image import img_to_array, load_img
    from PIL import Image
    images = HERE.parents[1] / "examples" / "images"
    cat, coffee = Image.open(images / "chelsea.png"), Image.open(images / "coffee.png")
    forms = {"chelsea.png": cat, "coffee.png": coffee, "gray.png": cat.convert("L"),
             "palette.png": coffee.convert("P", palette=Image.ADAPTIVE), "rgba.png": cat.convert("RGBA"),
             "tiny.png": coffee.convert("RGB").resize((7, 5)), "chelsea.jpg": cat.convert("RGB")}
    refs, files = {}, []
    for name, image in forms.items():
        path = out_dir / f"keras_img_{name}"
        image.save(path, quality=90) if name.endswith(".jpg") else image.save(path)
        files.append(path.name)
        for interpolation in ("nearest", "bilinear"):
            x = img_to_array(load_img(path, target_size=(224, 224), interpolation=interpolation))[None]
            for mode in ("caffe", "tf"):
                y = imagenet_utils.preprocess_input(x.copy(), mode=mode, backend=ks.backend)
                refs[f"{path.name}.{mode}.{interpolation}"] = y.transpose(0, 3, 1, 2).astype(np.float32)
    safetensors_io.write(out_dir / "keras_preprocess.ref.safetensors", refs, {"files": ",".join(files)}, dtype=None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sources = [pathlib.Path(__file__), HERE / "keras_shim.py", CONVERTER, WEIGHTS / "safetensors_io.py"]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()
    stamp = args.out / "keras_fixtures.stamp"
    if stamp.exists() and stamp.read_text() == digest:
        print(f"Keras fixtures in {args.out} are up to date")
        return
    for seed, (name, spec) in enumerate(CASES.items(), start=100):
        make_case(args.out, name, seed, spec)
    write_mutants(args.out)
    preprocessing_refs(args.out)
    stamp.write_text(digest)
    print(f"Keras fixtures written to {args.out}")


if __name__ == "__main__":
    main()
