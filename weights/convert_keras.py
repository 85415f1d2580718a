#!/usr/bin/env python3
"""Convert a Keras ResNet to a .safetensors file for the resnet C++ library.

  convert_keras.py MODEL -o OUT.safetensors [--dtype f16|bf16] [--pooling avg|max|none] [--arch ARCH]

Needs numpy and h5py only (Debian: python3-h5py); no TensorFlow or Keras.
MODEL is any of
  - a Keras 2 / tf.keras weights file (model.save_weights("m.h5"); the
    "imagenet" files keras.applications downloads are of this kind),
  - a Keras 2 full-model file (model.save("m.h5")),
  - a Keras 3 archive (model.save("m.keras")),
  - a Keras 3 weights file (model.save_weights("m.weights.h5")). Keras 3.6
    and later record each layer's name in it; earlier Keras 3 files name
    layers by class and position only (layers/conv2d_5), so they need --arch,
    the keras.applications builder the model came from (its top, with any
    class count, is read from the file when present).
The network is one of keras.applications' ResNet50, ResNet101, ResNet152
(layer names conv1_conv, conv2_block1_1_conv, ...), their older ResNet50
(conv1, bn_conv1, res2a_branch2a, ...), or ResNet50V2, ResNet101V2,
ResNet152V2; with its ImageNet top, with include_top=False, or with a
fine-tuned head: Dense layers (linear, relu, sigmoid, softmax), Dropout,
Activation and Flatten after the global pooling. Full-model files carry the
head and the pooling; for weights-only files without a top, --pooling says
which pooling the model was built with (default: none, Keras' default).

The output is keyed like torchvision's state_dict (conv1.weight,
layer1.0.conv2.weight, layer1.0.bn2.running_var, ...; Keras convolution
biases as .bias, V2's pre-activation BNs as layerS.B.preact.*, its final BN
as post_bn.*, hidden Dense layers as head.J.*, the last as fc.*), with
kernels in PyTorch's layout, plus metadata: format, source, arch, variant,
bn_eps, pooling, head_activations and the preprocessing preset of
keras.applications (caffe for v1, tf for V2; resize_mode stretch,
interpolation nearest: keras.utils.load_img(path, target_size=...)).
"""
import argparse
import io
import json
import os
import re
import sys
import zipfile

try:
    import h5py
    import numpy as np

    import safetensors_io
except ImportError as e:
    print(f"error: this script needs numpy and h5py ({e}); on Debian: apt-get install python3-h5py "
          "and run it with /usr/bin/python3", file=sys.stderr)
    sys.exit(2)

STAGE_BLOCKS = {(3, 4, 6, 3): "50", (3, 4, 23, 3): "101", (3, 8, 36, 3): "152"}
BACKBONE_CLASSES = {"InputLayer", "Conv2D", "BatchNormalization", "Activation", "ZeroPadding2D", "MaxPooling2D",
                    "Add"}
ARCHS = [f"ResNet{depth}{v2}" for v2 in ("", "V2") for depth in STAGE_BLOCKS.values()]
HEAD_ACTIVATIONS = ("linear", "relu", "sigmoid", "softmax")
TOP_NAMES = ("predictions", "probs", "fc1000")  # the ImageNet Dense of tf.keras, keras_applications, old Keras
PRESETS = {
    "caffe": {"scale": "1", "channel_order": "bgr", "mean": "103.939,116.779,123.68", "std": "1,1,1"},
    "tf": {"scale": "127.5", "channel_order": "rgb", "mean": "1,1,1", "std": "1,1,1"},
}


class ConversionError(Exception):
    pass


# --- reading the file: layer name -> list of weight arrays, and the config ----

def snake_case(name):
    """Keras 3's naming.to_snake_case: the weights-file name of a layer class."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def flat_layers(config):
    """The layer configs of a Functional / Sequential model config, nested
    models spliced in, in model order: [(class_name, config, path)], path
    being the layer's Keras 3 weights path."""
    out, used = [], {}
    for layer in config["config"]["layers"]:
        cls = layer["class_name"]
        key = snake_case(cls)
        used[key] = used.get(key, -1) + 1
        out.append((cls, layer["config"], f"{key}_{used[key]}" if used[key] else key))
    flat = []
    for cls, cfg, path in out:
        if cls in ("Functional", "Model", "Sequential"):
            flat += [(c, g, f"{path}/layers/{p}") for c, g, p in flat_layers({"config": cfg})]
        else:
            flat.append((cls, cfg, path))
    return flat


def keras2_weights(group):
    """{layer: [arrays]} of a Keras 2 weights group (root of save_weights
    files, model_weights of full-model files). A nested model's group holds
    its layers' weights as "<layer>/<var>:0"; names without a "/" (Keras 1)
    belong to the group's own layer."""
    weights = {}
    for layer in group.attrs["layer_names"]:
        layer = layer.decode() if isinstance(layer, bytes) else layer
        for name in group[layer].attrs["weight_names"]:
            name = name.decode() if isinstance(name, bytes) else name
            owner = name.rsplit("/", 2)[-2] if "/" in name else layer
            weights.setdefault(owner, []).append(np.asarray(group[layer][name]))
    return weights


def keras3_weights(h5, layers):
    """{layer: [arrays]} of a Keras 3 weights file, whose paths
    layers/<class>[_k]/vars/<i> name layers by class and order only."""
    weights = {}
    for cls, cfg, path in layers:
        vars_path = f"layers/{path}/vars"
        if vars_path in h5 and len(h5[vars_path]):
            group = h5[vars_path]
            weights[cfg["name"]] = [np.asarray(group[str(i)]) for i in range(len(group))]
    return weights


def keras3_order(arch):
    """[(Keras 3 class key, [layer names])]: the layers with weights of
    keras.applications' `arch` by class, in model.layers order, which
    numbers them in a .weights.h5 file (conv2d, conv2d_1, ...). Keras orders
    a functional model's layers by depth (longest path to the output),
    deepest first, ties by first visit of a depth-first walk from the output
    that takes each Add's inputs in order: [shortcut, residual] in
    keras.applications. So a block's first two convolutions (and BNs) come
    first, then the shortcut's before the third's, both as far from the Add.
    (tests/python/keras_shim.py orders the real builders' graph this way.)"""
    v2 = arch.endswith("V2")
    depth = arch[len("ResNet"):].removesuffix("V2")
    naming = Naming("v2" if v2 else "v1", next(b for b, d in STAGE_BLOCKS.items() if d == depth))
    convs, bns = [naming.stem[0]], [] if v2 else [naming.stem[1]]
    for s, count in enumerate(naming.blocks):
        for i in range(count):
            parts = ("1", "2", "0", "3") if i == 0 else ("1", "2", "3")
            convs += [naming.conv(s, i, part) for part in parts]
            bns += [naming.bn(s, i, part) for part in (("preact", "1", "2") if v2 else parts)]
    return [("conv2d", convs), ("batch_normalization", bns + (["post_bn"] if v2 else [])), ("dense", ["predictions"])]


def keras3_weights_file(h5, arch):
    """({layer: [arrays]}, {layer: h5 path}) of a Keras 3 .weights.h5 file:
    layers/<class>[_k]/vars/<i> (_layer_checkpoint_dependencies/... from
    tf.keras 2.13-2.15), the layer's name as attribute "name" since Keras 3.6,
    else the layer found by its position in keras3_order(arch). Groups left
    over are returned under their path, for the caller to refuse."""
    root = "layers" if "layers" in h5 else "_layer_checkpoint_dependencies"
    vars_groups = {key: g["vars"] for key, g in h5[root].items() if isinstance(g, h5py.Group) and len(g.get("vars", ()))}
    names = {key: g.attrs.get("name") for key, g in vars_groups.items()}
    groups = {key: [np.asarray(g[str(i)]) for i in range(len(g))] for key, g in vars_groups.items()}
    if groups and None not in names.values():
        return ({n.decode() if isinstance(n, bytes) else n: groups[key] for key, n in names.items()}, {})
    if arch is None:
        raise ConversionError("a Keras 3 .weights.h5 file written before Keras 3.6 names its layers by class and "
                              f"position only (layers/conv2d_5/vars): pass --arch, one of {', '.join(ARCHS)}")
    weights, paths = {}, {}
    for cls, layer_names in keras3_order(arch):
        for k, name in enumerate(layer_names):
            key = f"{cls}_{k}" if k else cls
            if key not in groups:
                if cls == "dense":
                    continue  # include_top=False
                raise ConversionError(f"{root}/{key}/vars missing: {arch} has {len(layer_names)} {cls} layers")
            weights[name], paths[name] = groups.pop(key), f"{root}/{key}/vars"
    weights.update({f"{root}/{key}": arrays for key, arrays in groups.items()})
    return weights, paths


def read_model(path, arch=None):
    """(weights {layer: [arrays]}, flat layer configs or None for weights-only
    files, {layer: h5 path} where a layer is known by its position only)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if "config.json" not in names or "model.weights.h5" not in names:
                raise ConversionError(f"a .keras archive holds config.json and model.weights.h5, this one {names}")
            layers = flat_layers(json.loads(z.read("config.json")))
            with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as h5:
                return keras3_weights(h5, layers), layers, {}
    try:
        h5 = h5py.File(path, "r")
    except OSError as e:
        raise ConversionError(f"not an HDF5 file or .keras archive ({' '.join(str(e).split())})")
    with h5:
        if "model_config" in h5.attrs and "model_weights" in h5:
            config = h5.attrs["model_config"]
            config = json.loads(config.decode() if isinstance(config, bytes) else config)
            return keras2_weights(h5["model_weights"]), flat_layers(config), {}
        if "layer_names" in h5.attrs:
            return keras2_weights(h5), None, {}
        if "layers" in h5 or "_layer_checkpoint_dependencies" in h5:
            weights, paths = keras3_weights_file(h5, arch)
            return weights, None, paths
        raise ConversionError(f"HDF5 file without Keras weights (root keys {sorted(h5.keys())[:5]})")


# --- which ResNet: names of its layers --------------------------------------

class Naming:
    """Keras layer names of one variant. Stages s = 0..3, blocks i from 0."""

    def __init__(self, kind, blocks):
        self.kind, self.blocks = kind, blocks  # kind: "v1", "v2" or "old"

    def block(self, s, i, part):
        """Layer name of part "1".."3" (main path), "0" (shortcut) or "preact"."""
        if self.kind == "old":
            letter = chr(ord("a") + i)
            branch = "1" if part == "0" else "2" + "abc"[int(part) - 1]
            return f"res{s + 2}{letter}_branch{branch}"
        return f"conv{s + 2}_block{i + 1}_{part}"

    def conv(self, s, i, part):
        return self.block(s, i, part) if self.kind == "old" else self.block(s, i, part) + "_conv"

    def bn(self, s, i, part):
        if self.kind == "old":
            return "bn" + self.block(s, i, part)[3:]
        return self.block(s, i, part) + "_bn"

    @property
    def stem(self):
        return ("conv1", "bn_conv1") if self.kind == "old" else ("conv1_conv", "conv1_bn")


def detect(weights):
    """Naming of the ResNet whose layer names `weights` holds, or ConversionError."""
    names = set(weights)
    if "conv1_conv" in names:
        kind = "v2" if "post_bn" in names else "v1"
        if "conv2_block1_2_conv" in names and len(weights["conv2_block1_2_conv"]) == 1 and kind == "v1":
            raise ConversionError("layer 'conv2_block1_2_conv' has no bias: a Keras ResNeXt, which is not supported")
        count = lambda s: sum(1 for n in names if re.fullmatch(rf"conv{s}_block\d+_1_conv", n))  # noqa: E731
        blocks = tuple(count(s) for s in range(2, 6))
    elif "res2a_branch2a" in names:
        kind = "old"
        count = lambda s: sum(1 for n in names if re.fullmatch(rf"res{s}[a-z]_branch2a", n))  # noqa: E731
        blocks = tuple(count(s) for s in range(2, 6))
    else:
        example = sorted(names)[0] if names else "none"
        raise ConversionError(f"not a Keras ResNet: no layer conv1_conv or res2a_branch2a (layers with weights "
                              f"include '{example}')")
    if blocks not in STAGE_BLOCKS:
        raise ConversionError(f"blocks per stage {list(blocks)} match no Keras ResNet (50: [3,4,6,3], "
                              "101: [3,4,23,3], 152: [3,8,36,3])")
    return Naming(kind, blocks)


# --- conversion -----------------------------------------------------------------

class Converter:
    """Moves each Keras layer's arrays to torchvision keys, checking shapes."""

    def __init__(self, weights, paths):
        self.weights, self.paths, self.out, self.used = weights, paths, {}, set()

    def where(self, layer):
        """The layer, and its h5 path when the file knows it by position only."""
        return f"{self.paths[layer]} (layer '{layer}')" if layer in self.paths else f"layer '{layer}'"

    def arrays(self, layer, count_options):
        if layer not in self.weights:
            raise ConversionError(f"missing layer '{layer}'")
        arrays = self.weights[layer]
        if len(arrays) not in count_options:
            raise ConversionError(f"{self.where(layer)}: {len(arrays)} weight arrays, expected "
                                  f"{' or '.join(map(str, count_options))}")
        self.used.add(layer)
        return arrays

    def check(self, layer, what, array, shape):
        if tuple(array.shape) != tuple(shape):
            raise ConversionError(f"{self.where(layer)}: {what} shape {list(array.shape)}, expected {list(shape)}")

    def conv(self, layer, key, k, cin, cout, bias):
        arrays = self.arrays(layer, (2,) if bias else (1,))
        self.check(layer, "kernel", arrays[0], (k, k, cin, cout))
        self.out[key + ".weight"] = arrays[0].transpose(3, 2, 0, 1)
        if bias:
            self.check(layer, "bias", arrays[1], (cout,))
            self.out[key + ".bias"] = arrays[1]

    def bn(self, layer, key, c):
        arrays = self.arrays(layer, (4,))
        for suffix, array in zip(("weight", "bias", "running_mean", "running_var"), arrays):
            self.check(layer, suffix, array, (c,))
            self.out[f"{key}.{suffix}"] = array

    def dense(self, layer, key, cin, units):
        arrays = self.arrays(layer, (2,))
        self.check(layer, "kernel", arrays[0], (cin, units))
        self.check(layer, "bias", arrays[1], (units,))
        self.out[key + ".weight"], self.out[key + ".bias"] = arrays[0].T, arrays[1]

    def backbone(self, naming):
        """All convolutions and BatchNorms; returns the feature channels."""
        v2 = naming.kind == "v2"
        conv1, bn1 = naming.stem
        self.conv(conv1, "conv1", 7, 3, 64, True)
        if v2:
            self.bn("post_bn", "post_bn", 2048)
        else:
            self.bn(bn1, "bn1", 64)
        channels = 64
        for s, count in enumerate(naming.blocks):
            width = 64 << s
            for i in range(count):
                p = f"layer{s + 1}.{i}."
                if v2:
                    self.bn(naming.bn(s, i, "preact"), p + "preact", channels)
                for part, (k, cin, cout) in zip("123", ((1, channels, width), (3, width, width), (1, width, 4 * width))):
                    last = part == "3"
                    self.conv(naming.conv(s, i, part), f"{p}conv{part}", k, cin, cout, not v2 or last)
                    if not (v2 and last):
                        self.bn(naming.bn(s, i, part), f"{p}bn{part}", cout)
                if i == 0:
                    self.conv(naming.conv(s, i, "0"), p + "downsample.0", 1, channels, 4 * width, True)
                    if not v2:
                        self.bn(naming.bn(s, i, "0"), p + "downsample.1", 4 * width)
                channels = 4 * width
        return channels

    def unused(self):
        return sorted(set(self.weights) - self.used)


def head_from_config(layers):
    """(pooling, [(layer name, units, activation)]) from the flat layer configs:
    the global pooling and the Dense chain after it."""
    pooling, dense = "none", []
    for cls, cfg, _ in layers:
        name = cfg.get("name", "?")
        if pooling == "none":
            if cls in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
                pooling = "avg" if cls == "GlobalAveragePooling2D" else "max"
            elif cls not in BACKBONE_CLASSES:
                raise ConversionError(f"layer '{name}' ({cls}) is not part of a Keras ResNet backbone")
            continue
        if cls == "Dense":
            dense.append([name, cfg["units"], activation_of(cfg, name)])
        elif cls == "Activation":
            act = activation_of(cfg, name)
            if not dense or (dense[-1][2] != "linear" and act != "linear"):
                raise ConversionError(f"layer '{name}' (Activation {act}) must follow a Dense layer without "
                                      "an activation")
            if act != "linear":
                dense[-1][2] = act
        elif cls not in ("Dropout", "Flatten"):
            raise ConversionError(f"layer '{name}' ({cls}) is not supported in the head (expected Dense, "
                                  "Dropout, Activation or Flatten after the global pooling)")
    return pooling, dense


def activation_of(cfg, name):
    act = cfg.get("activation", "linear")
    act = act.get("config", {}).get("name", act.get("class_name")) if isinstance(act, dict) else act
    if act not in HEAD_ACTIVATIONS:
        raise ConversionError(f"layer '{name}': activation '{act}' is not supported "
                              f"(expected {', '.join(HEAD_ACTIVATIONS)})")
    return act


def bn_epsilon(layers, naming):
    """BatchNorm epsilon: from the config (all layers must agree), else keras.applications'."""
    if layers is None:
        return 1e-3 if naming.kind == "old" else 1.001e-5
    eps = {cfg.get("epsilon", 1e-3) for cls, cfg, _ in layers if cls == "BatchNormalization"}
    if len(eps) != 1:
        raise ConversionError(f"BatchNormalization layers use several epsilons {sorted(eps)}")
    return eps.pop()


def input_size(layers):
    """Side of the model's input when the config fixes a square one, else 224."""
    for cls, cfg, _ in layers or []:
        shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
        if cls == "InputLayer" and shape and shape[1] and shape[1] == shape[2]:
            return int(shape[1])
    return 224


def convert(path, pooling_option, arch_option=None):
    """(tensors, metadata) of the Keras model file at path."""
    weights, layers, paths = read_model(path, arch_option)
    naming = detect(weights)
    conv = Converter(weights, paths)
    channels = conv.backbone(naming)
    if layers is not None:
        pooling, dense = head_from_config(layers)
    else:
        top = [n for n in TOP_NAMES if n in weights]
        pooling, dense = ("avg", [[top[0], weights[top[0]][-1].shape[0], "softmax"]]) if top else (pooling_option, [])
    for j, (name, units, _) in enumerate(dense):
        conv.dense(name, "fc" if j + 1 == len(dense) else f"head.{j}", channels, units)
        channels = units
    extra = conv.unused()
    if extra:
        raise ConversionError(f"unexpected layer '{extra[0]}' with weights (not part of this ResNet or its head"
                              f"{'; a weights-only file carries no head config: convert the full model' if layers is None else ''})")
    variant = "v2" if naming.kind == "v2" else "v1"
    arch = f"ResNet{STAGE_BLOCKS[naming.blocks]}{'V2' if variant == 'v2' else ''}"
    if arch_option and arch_option != arch:
        raise ConversionError(f"--arch {arch_option}, but the file's layer names are those of {arch}")
    preset = "tf" if variant == "v2" else "caffe"
    metadata = {
        "format": "pt", "source": f"keras:{os.path.basename(path)}", "arch": arch, "variant": variant,
        "keras_names": "keras-resnet50" if naming.kind == "old" else "keras.applications",
        "bn_eps": repr(bn_epsilon(layers, naming)), "pooling": pooling,
        "head_activations": json.dumps([a for _, _, a in dense]),
        "num_classes": str(dense[-1][1]) if dense else "0",
        "preprocess": f"keras_{preset}", "resize_mode": "stretch", "interpolation": "nearest",
        "crop": str(input_size(layers)), **PRESETS[preset],
    }
    return conv.out, metadata


def main():
    parser = argparse.ArgumentParser(description="Convert a Keras ResNet to .safetensors.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("model", metavar="MODEL",
                        help=".h5 (Keras 2 weights or full model), .keras or .weights.h5 (Keras 3)")
    parser.add_argument("-o", "--output", required=True, metavar="FILE.safetensors")
    parser.add_argument("--dtype", choices=safetensors_io.TARGETS, default="f32",
                        help="storage type of float tensors (default f32)")
    parser.add_argument("--pooling", choices=("avg", "max", "none"), default="none",
                        help="global pooling of a weights-only file without its top (default none)")
    parser.add_argument("--arch", choices=ARCHS,
                        help="the keras.applications builder of a Keras 3 .weights.h5 file from before Keras 3.6")
    args = parser.parse_args()
    try:
        tensors, metadata = convert(args.model, args.pooling, args.arch)
    except (ConversionError, OSError, KeyError, ValueError) as e:
        print(f"error: {args.model}: {e}", file=sys.stderr)
        sys.exit(2)
    safetensors_io.write(args.output, tensors, metadata, args.dtype)
    heads = json.loads(metadata["head_activations"])
    print(f"wrote {args.output}: {metadata['arch']} ({metadata['keras_names']} names), "
          f"{len(heads)} Dense layer(s) {heads}, pooling {metadata['pooling']}, {len(tensors)} tensors, "
          f"{args.dtype}, {os.path.getsize(args.output) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
