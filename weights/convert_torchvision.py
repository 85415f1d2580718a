#!/usr/bin/env python3
"""Convert torchvision ResNet weights to a .safetensors file for the resnet C++ library.

Usage (PyTorch and torchvision are required; on Debian use /usr/bin/python3):

  # a local checkpoint: a state_dict, a whole pickled model, or a dict holding
  # a "state_dict" or "model" entry; the architecture is inferred from the keys
  convert_torchvision.py --checkpoint resnet50.pth -o resnet50.safetensors

  # official ImageNet weights (downloads them, so it needs internet access)
  convert_torchvision.py --pretrained IMAGENET1K_V2 --arch resnet50 -o resnet50.safetensors

  # deterministic random weights with randomized BatchNorm statistics (for tests)
  convert_torchvision.py --random-init --seed 3 --arch resnet18 --num-classes 10 -o r18.safetensors

Options: --dtype {f32,f16,bf16} stores float tensors in that type (default f32).

The file holds every state_dict tensor except num_batches_tracked, named as in
torchvision, plus string metadata: format, arch, num_classes, source, resize,
crop, interpolation, mean, std and, when known, labels (a JSON list).
"""
import argparse
import contextlib
import io
import json
import os
import pickle
import re
import sys

try:
    import numpy as np
    import torch
    import torchvision

    import safetensors_io
except ImportError:
    print("error: this script needs PyTorch and torchvision; on Debian run it with /usr/bin/python3 "
          "(apt-get install python3-torch python3-torchvision)", file=sys.stderr)
    sys.exit(2)

ARCHES = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
          "wide_resnet50_2", "wide_resnet101_2",
          "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d"]

# (blocks per stage, bottleneck) -> architecture of plain width; infer_arch
# derives the wide and ResNeXt names from layer1's bottleneck width and groups.
LAYOUTS = {
    ((2, 2, 2, 2), False): "resnet18",
    ((3, 4, 6, 3), False): "resnet34",
    ((3, 4, 6, 3), True): "resnet50",
    ((3, 4, 23, 3), True): "resnet101",
    ((3, 8, 36, 3), True): "resnet152",
}

TARGET_DTYPES = safetensors_io.TARGETS


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def write_safetensors(path, tensors, metadata, dtype="f32"):
    """safetensors_io.write() for torch tensors or numpy arrays (name -> tensor)."""
    arrays = {name: t if isinstance(t, np.ndarray) else
              (t.detach().cpu().float() if t.dtype == torch.bfloat16 else t.detach().cpu()).numpy()
              for name, t in tensors.items()}
    safetensors_io.write(path, arrays, metadata, dtype)


read_safetensors = safetensors_io.read


def state_dict_for_export(model_or_sd):
    """Extract a plain state_dict (tensors on CPU, no "module." prefix, no num_batches_tracked)
    from an nn.Module, a state_dict, or a checkpoint dict with a "state_dict" or "model" entry."""
    if isinstance(model_or_sd, torch.nn.Module):
        model_or_sd = model_or_sd.state_dict()
    elif isinstance(model_or_sd, dict):
        for key in ("state_dict", "model"):
            if key in model_or_sd:
                return state_dict_for_export(model_or_sd[key])
    if not isinstance(model_or_sd, dict) or not all(
            torch.is_tensor(v) for v in model_or_sd.values()):
        keys = list(model_or_sd)[:8] if isinstance(model_or_sd, dict) else type(model_or_sd).__name__
        raise ValueError(f"no state_dict found (got {keys})")
    return {
        (k[len("module."):] if k.startswith("module.") else k): v.detach().cpu().contiguous()
        for k, v in model_or_sd.items() if not k.endswith("num_batches_tracked")
    }


def infer_arch(state_dict, arch=None):
    """Return (arch, num_classes) of a torchvision ResNet state_dict; arch is deduced
    from the keys unless given."""
    if "fc.weight" not in state_dict:
        raise ValueError("not a torchvision ResNet state_dict: no fc.weight")
    num_classes = state_dict["fc.weight"].shape[0]
    if arch:
        return arch, num_classes
    blocks = tuple(
        len({m.group(1) for k in state_dict for m in [re.match(rf"layer{s}\.(\d+)\.", k)] if m})
        for s in range(1, 5))
    bottleneck = "layer1.0.conv3.weight" in state_dict
    arch = LAYOUTS.get((blocks, bottleneck))
    if arch and bottleneck:
        # conv2 of a bottleneck is [width, width/groups, 3, 3]
        width, per_group = state_dict["layer1.0.conv1.weight"].shape[0], state_dict["layer1.0.conv2.weight"].shape[1]
        if width != per_group:
            arch = f"resnext{arch[len('resnet'):]}_{width // per_group}x{per_group}d"
        elif width == 128:
            arch = f"wide_{arch}_2"
    if arch not in ARCHES:
        kind = "bottleneck" if bottleneck else "basic"
        grouping = f" ({arch})" if arch else ""
        raise ValueError(f"unknown ResNet layout: blocks {list(blocks)} with {kind} blocks{grouping}")
    return arch, num_classes


def random_model(arch, num_classes, seed):
    """A deterministic randomly initialized torchvision ResNet in eval mode.

    Convolutions keep torchvision's (kaiming) init; every BatchNorm gets random
    affine parameters and running statistics, and the fc bias is made nonzero.
    The last BatchNorm of each residual branch gets a small scale (as trained
    networks have), so that activations stay well scaled even in resnet152.
    """
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=gen)
                module.bias.normal_(0.0, 0.2, generator=gen)
                module.running_mean.normal_(0.0, 0.2, generator=gen)
                module.running_var.uniform_(0.5, 2.0, generator=gen)
        for block in model.modules():
            if isinstance(block, (torchvision.models.resnet.BasicBlock, torchvision.models.resnet.Bottleneck)):
                last_bn = block.bn3 if hasattr(block, "bn3") else block.bn2
                last_bn.weight.uniform_(0.1, 0.3, generator=gen)
        model.fc.bias.normal_(0.0, 0.1, generator=gen)
    return model.eval()


def check_layout(state_dict, arch, num_classes):
    """Raise ValueError unless state_dict has exactly the tensors torchvision's arch has."""
    reference = {k: v.shape for k, v in state_dict_for_export(
        getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)).items()}
    if reference.keys() != state_dict.keys():
        diff = sorted(reference.keys() ^ state_dict.keys())
        raise ValueError(f"checkpoint keys do not match {arch}: {diff[:5]}")
    for name, shape in reference.items():
        if state_dict[name].shape != shape:
            raise ValueError(f"{name}: shape {list(state_dict[name].shape)} but {arch} "
                             f"expects {list(shape)}")


def load_pretrained(arch, weights_name):
    """Return (state_dict, metadata) for official torchvision weights; exits 2 on failure."""
    try:
        weights = torchvision.models.get_model_weights(arch)[weights_name]
    except KeyError:
        fail(f"{arch} has no {weights_name} weights")
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # torch.hub's "Downloading: ..." line
            model = getattr(torchvision.models, arch)(weights=weights, progress=False)
    except Exception as e:  # URLError, OSError, RuntimeError, ... from the download
        reason = " ".join(str(e).split()) or type(e).__name__
        fail(f"downloading {arch} {weights_name} weights failed (no internet?): {reason}. "
             "On a machine with internet run this command there, "
             "or download the .pth and use --checkpoint FILE.pth")
    return state_dict_for_export(model), {
        "source": f"torchvision:{weights_name}",
        "resize": str(weights.transforms().resize_size[0]),
        "labels": json.dumps(weights.meta["categories"]),
    }


def main():
    parser = argparse.ArgumentParser(
        description="Convert torchvision ResNet weights to .safetensors.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="FILE.pth", help="local torch checkpoint")
    source.add_argument("--pretrained", choices=["IMAGENET1K_V1", "IMAGENET1K_V2"],
                        help="official torchvision weights (needs internet)")
    source.add_argument("--random-init", action="store_true",
                        help="random weights with randomized BatchNorm statistics")
    parser.add_argument("--arch", choices=ARCHES,
                        help="architecture (default: inferred for --checkpoint, else resnet50)")
    parser.add_argument("--num-classes", type=int,
                        help="classifier outputs for --random-init (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random-init (default 0)")
    parser.add_argument("-o", "--output", required=True, metavar="FILE.safetensors")
    parser.add_argument("--dtype", choices=TARGET_DTYPES, default="f32",
                        help="storage type of float tensors (default f32)")
    args = parser.parse_args()
    if args.num_classes is not None and not args.random_init:
        parser.error("--num-classes only applies to --random-init")

    metadata = {"resize": "256"}
    try:
        if args.checkpoint:
            state_dict = state_dict_for_export(torch.load(args.checkpoint, map_location="cpu"))
            arch, num_classes = infer_arch(state_dict, args.arch)
            check_layout(state_dict, arch, num_classes)
            metadata["source"] = f"checkpoint:{os.path.basename(args.checkpoint)}"
        elif args.pretrained:
            arch = args.arch or "resnet50"
            state_dict, extra = load_pretrained(arch, args.pretrained)
            num_classes = state_dict["fc.weight"].shape[0]
            metadata.update(extra)
        else:
            arch = args.arch or "resnet50"
            num_classes = args.num_classes or 1000
            state_dict = state_dict_for_export(random_model(arch, num_classes, args.seed))
            metadata["source"] = f"random-init seed={args.seed}"
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as e:
        fail(e)

    metadata.update({
        "format": "pt", "arch": arch, "num_classes": str(num_classes), "crop": "224",
        "interpolation": "bilinear", "mean": "0.485,0.456,0.406", "std": "0.229,0.224,0.225",
    })
    write_safetensors(args.output, state_dict, metadata, args.dtype)
    size_mb = os.path.getsize(args.output) / 1e6
    print(f"wrote {args.output}: {arch}, {num_classes} classes, {len(state_dict)} tensors, "
          f"{args.dtype}, {size_mb:.1f} MB")


if __name__ == "__main__":
    main()
