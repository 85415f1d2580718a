#!/usr/bin/env python3
"""Writes the reference data the C++ tests compare against.

    make_fixtures.py --out DIR

Everything is computed here by PyTorch/torchvision at test time; nothing is
typed by hand. DIR receives:
  <model>.safetensors      random-init weights, written by weights/convert_torchvision.py
  <model>.ref.safetensors  inputs and torchvision's outputs (layer1..4, avgpool, fc)
  ops.safetensors          per-op cases: conv, conv+BN, max-pool, avg-pool, linear
A stamp file makes reruns free while this script and the converter are unchanged.
"""
import argparse
import hashlib
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
CONVERTER = HERE.parents[1] / "weights" / "convert_torchvision.py"
sys.path.insert(0, str(CONVERTER.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import convert_torchvision as ct  # noqa: E402

OUTPUTS = ["layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]

# name: (arch, seed, num_classes, dtype, inputs); inputs are N×3×H×W shapes.
FULL = [(1, 3, 224, 224), (3, 3, 197, 263)]
SMALL = [(2, 3, 64, 80)]
MODELS = {
    "resnet18": ("resnet18", 1, 10, "f32", FULL),
    "resnet34": ("resnet34", 2, 1000, "f32", FULL),
    "resnet50": ("resnet50", 3, 1000, "f32", FULL),
    "resnet101": ("resnet101", 4, 1000, "f32", FULL),
    "resnet152": ("resnet152", 5, 1000, "f32", FULL),
    "resnet50_bf16": ("resnet50", 6, 1000, "bf16", SMALL),
    "resnet18_f16": ("resnet18", 7, 37, "f16", SMALL),
    "wide_resnet50_2": ("wide_resnet50_2", 8, 1000, "f32", [(1, 3, 96, 96)]),
    "resnext50_32x4d": ("resnext50_32x4d", 9, 1000, "f32", FULL),
    # 88M and 83M parameters: a smaller batch of 3 keeps them quick
    "resnext101_32x8d": ("resnext101_32x8d", 10, 1000, "f32", [(3, 3, 99, 131)]),
    "resnext101_64x4d": ("resnext101_64x4d", 11, 1000, "f32", [(3, 3, 99, 131)]),
}
# Models also run in float64 (model.double()) on a small input.
DOUBLE = {"resnet18": (2, 3, 96, 112), "resnet50": (2, 3, 96, 112)}


def stage_outputs(model, x):
    """{name: tensor} for layer1..4, avgpool and fc of a torchvision ResNet."""
    out = {}
    hooks = [getattr(model, n).register_forward_hook(lambda m, i, o, n=n: out.__setitem__(n, o.detach().clone()))
             for n in OUTPUTS]
    with torch.inference_mode():
        model(x)
    for h in hooks:
        h.remove()
    return out


def load_converted(path, arch, num_classes):
    """A torchvision model holding exactly the weights in the converted file."""
    tensors, _ = ct.read_safetensors(path)
    model = getattr(__import__("torchvision").models, arch)(weights=None, num_classes=num_classes)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=False)
    return model.eval()


def make_model(out_dir, name, arch, seed, classes, dtype, inputs):
    weights = out_dir / f"{name}.safetensors"
    subprocess.run([sys.executable, str(CONVERTER), "--random-init", "--seed", str(seed), "--arch", arch,
                    "--num-classes", str(classes), "--dtype", dtype, "-o", str(weights)], check=True)
    model = load_converted(weights, arch, classes)
    gen = torch.Generator().manual_seed(seed)
    ref = {}
    for i, shape in enumerate(inputs):
        x = torch.randn(*shape, generator=gen)
        ref[f"x{i}"] = x
        ref.update({f"x{i}.{k}": v for k, v in stage_outputs(model, x).items()})
    if name in DOUBLE:
        x = torch.randn(*DOUBLE[name], generator=gen)
        ref["xd"] = x
        ref.update({f"xd.{k}": v for k, v in stage_outputs(model, x).items()})
        ref["xd64"] = x.double()
        ref.update({f"xd64.{k}": v for k, v in stage_outputs(model.double(), x.double()).items()})
    ct.write_safetensors(out_dir / f"{name}.ref.safetensors", ref, {"arch": arch}, dtype=None)


def op_cases():
    """Per-op references, all float64."""
    g = torch.Generator().manual_seed(1234)
    rand = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    cases = {}
    # (cin, cout, kernel, stride, pad, dilation, h, w, groups); the grouped
    # ones have 1, 2, 4 and 8 channels per group, as depthwise and ResNeXt
    # layers; two are strided and dilated at once; the last two run the
    # channel-vector direct convolution under Auto
    convs = [(3, 8, 7, 2, 3, 1, 19, 23, 1), (5, 6, 3, 1, 1, 1, 9, 8, 1), (4, 7, 3, 2, 1, 1, 10, 11, 1),
             (6, 5, 1, 1, 0, 1, 7, 9, 1), (6, 5, 1, 2, 0, 1, 7, 9, 1), (3, 4, 3, 1, 2, 2, 12, 10, 1),
             (2, 3, 5, 3, 0, 1, 13, 13, 1), (3, 4, 2, 1, 0, 1, 6, 7, 1), (130, 140, 3, 1, 1, 1, 17, 18, 1),
             (4, 3, 3, 2, 1, 1, 1, 1, 1),
             (8, 16, 3, 2, 1, 1, 9, 11, 2), (32, 32, 3, 1, 1, 1, 7, 9, 32), (128, 128, 3, 2, 1, 1, 11, 13, 32),
             (256, 256, 3, 1, 1, 1, 9, 7, 32), (256, 512, 1, 2, 0, 1, 7, 9, 64), (512, 256, 3, 1, 1, 1, 5, 7, 64),
             (64, 128, 1, 1, 0, 1, 4, 8, 64), (3, 4, 3, 2, 2, 2, 13, 11, 1), (8, 8, 3, 2, 2, 2, 11, 9, 4),
             (6, 70, 3, 2, 1, 1, 15, 17, 1), (9, 10, 3, 1, 2, 2, 11, 12, 1)]
    for i, (cin, cout, k, s, p, d, h, w, groups) in enumerate(convs):
        x, wt, b = rand(2, cin, h, w), rand(cout, cin // groups, k, k), rand(cout)
        cases.update({f"conv{i}.x": x, f"conv{i}.w": wt, f"conv{i}.b": b,
                      f"conv{i}.params": torch.tensor([k, s, p, d, groups], dtype=torch.float64),
                      f"conv{i}.y": F.conv2d(x, wt, b, s, p, d, groups)})
    for i, (cin, cout, k, s) in enumerate([(3, 8, 7, 2), (8, 16, 3, 1), (16, 32, 1, 2)]):
        bn = torch.nn.BatchNorm2d(cout).double().eval()
        with torch.no_grad():
            bn.weight.copy_(rand(cout)), bn.bias.copy_(rand(cout))
            bn.running_mean.copy_(rand(cout)), bn.running_var.copy_(rand(cout).abs() + 0.1)
        x, wt = rand(2, cin, 12, 14), rand(cout, cin, k, k)
        with torch.no_grad():
            y = bn(F.conv2d(x, wt, None, s, k // 2))
        cases.update({f"convbn{i}.x": x, f"convbn{i}.w": wt, f"convbn{i}.gamma": bn.weight.detach(),
                      f"convbn{i}.beta": bn.bias.detach(), f"convbn{i}.mean": bn.running_mean,
                      f"convbn{i}.var": bn.running_var, f"convbn{i}.params": torch.tensor([k, s], dtype=torch.float64),
                      f"convbn{i}.y": y})
    # Inputs shifted negative so that zero padding would change border maxima.
    for i, (k, s, p, h, w) in enumerate([(3, 2, 1, 112, 112), (3, 2, 1, 9, 12), (2, 2, 0, 7, 7), (3, 1, 1, 5, 6),
                                         (3, 3, 1, 8, 10), (3, 2, 1, 2, 2), (1, 1, 0, 3, 4), (3, 2, 1, 5, 75),
                                         (5, 2, 2, 6, 67), (2, 2, 1, 4, 40)]):
        x = rand(2, 3, h, w) - 10.0
        cases.update({f"maxpool{i}.x": x, f"maxpool{i}.params": torch.tensor([k, s, p], dtype=torch.float64),
                      f"maxpool{i}.y": F.max_pool2d(x, k, s, p),
                      # Keras' ZeroPadding2D + MaxPooling2D (MaxPool2d::zero_pad)
                      f"maxpool{i}.y_zero_pad": F.max_pool2d(F.pad(x, (p, p, p, p), value=0.0), k, s)})
    x = rand(2, 5, 7, 6)
    cases.update({"avgpool.x": x, "avgpool.y": F.adaptive_avg_pool2d(x, 1)})
    x, wt, b = rand(4, 20), rand(150, 20), rand(150)  # 150 outputs: Linear's blocks of 64, the last partial
    cases.update({"linear.x": x, "linear.w": wt, "linear.b": b, "linear.y": F.linear(x, wt, b)})
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(pathlib.Path(__file__).read_bytes() + CONVERTER.read_bytes()).hexdigest()
    stamp = args.out / "fixtures.stamp"
    if stamp.exists() and stamp.read_text() == digest:
        print(f"fixtures in {args.out} are up to date")
        return
    torch.set_num_threads(max(1, torch.get_num_threads()))
    ct.write_safetensors(args.out / "ops.safetensors", op_cases(), {}, dtype=None)
    for name, spec in MODELS.items():
        make_model(args.out, name, *spec)
    stamp.write_text(digest)
    print(f"fixtures written to {args.out}")


if __name__ == "__main__":
    main()
