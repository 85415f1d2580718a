#!/usr/bin/env python3
"""ctest `collection_cli`: `classify` on a photo collection, checked against torchvision.

    collection_cli.py --classify BIN --weights resnet50.safetensors --work DIR

Writes a small collection into DIR (the photos of examples/images re-encoded
as JPEG and PNG at several sizes in nested folders, a text file, a file that
is not an image, an empty one, and a folder without images), then checks:
  - --jsonl: one line per input, in sorted order; each photo's top-5 against
    PIL + torchvision's eval transform + the torchvision model on the same
    weights (each prob within tolerance of torchvision's for that class, the
    classes a top-5 of torchvision's probabilities up to that tolerance, the
    labels torchvision's ImageNet categories); each bad input an "error" line
    and a stderr line, the others still classified, exit status 1;
  - the same bytes with one forward of one thread at a time (--streams 1
    --loaders 1 --threads 1): order and results do not depend on the plan;
  - --resume after a run killed mid-line: the partial line is dropped and the
    file ends byte-identical to the uninterrupted run's; a complete file is
    left alone, a whole last line missing only its newline gets it; a non-JSONL file and an existing file without --resume are
    refused and left untouched;
  - --shard I/3 for I = 0, 1, 2: disjoint, their union every input, each line
    the full run's;
  - --list - (stdin): the listed order, a missing file an error line;
  - --progress: the final count on stderr.
"""
import argparse
import json
import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "weights"))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision import models, transforms  # noqa: E402

import convert_torchvision as ct  # noqa: E402
from make_fixtures import load_converted  # noqa: E402

ATOL, RTOL = 1e-6, 1e-4  # on probabilities: forward's logits agree with PyTorch's to ~1e-5


def fail(message):
    sys.exit(f"collection_cli: FAILED: {message}")


def check(condition, message):
    if not condition:
        fail(message)


def make_collection(work):
    """Writes the collection; returns (the inputs classify lists for `photos no_images`, the bad ones)."""
    photos = work / "photos"
    shutil.rmtree(work, ignore_errors=True)
    for sub in ("cats/deep", "coffee", "bad"):
        (photos / sub).mkdir(parents=True)
    (work / "no_images").mkdir()
    (work / "no_images" / "readme.txt").write_text("no images here\n")
    chelsea, coffee = (Image.open(ROOT / "examples" / "images" / f).convert("RGB") for f in ("chelsea.png", "coffee.png"))
    chelsea.resize((300, 200)).save(photos / "cats" / "chelsea_300x200.jpg", quality=90)
    chelsea.resize((640, 427)).save(photos / "cats" / "deep" / "chelsea_640x427.png")
    chelsea.resize((250, 400)).save(photos / "cats" / "deep" / "chelsea 250x400.JPEG", quality=80)
    coffee.resize((500, 333)).save(photos / "coffee" / "coffee_500x333.jpg", quality=95)
    coffee.resize((333, 500)).save(photos / "coffee" / "coffee_333x500.png")
    (photos / "coffee" / "notes.txt").write_text("skipped: not an image extension\n")
    (photos / "bad" / "notes.jpg").write_text("not an image\n")
    (photos / "bad" / "empty.png").write_bytes(b"")
    files = sorted(str(p) for p in photos.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return files + [str(work / "no_images")], {str(photos / "bad" / "notes.jpg"), str(photos / "bad" / "empty.png"),
                                               str(work / "no_images")}


def reference_probs(weights, paths):
    """path -> torchvision's class probabilities (1000) for that image, with the weights' preset."""
    tensors, meta = ct.read_safetensors(weights)
    model = load_converted(weights, "resnet50", 1000)
    floats = lambda key, default: [float(v) for v in meta.get(key, default).split(",")]  # noqa: E731
    transform = transforms.Compose([
        transforms.Resize(int(meta.get("resize", 256))), transforms.CenterCrop(int(meta.get("crop", 224))),
        transforms.ToTensor(), transforms.Normalize(floats("mean", "0.485,0.456,0.406"), floats("std", "0.229,0.224,0.225"))])
    probs = {}
    with torch.inference_mode():
        for p in paths:
            x = transform(Image.open(p).convert("RGB")).unsqueeze(0)
            probs[p] = model(x).double().softmax(1)[0]
    return probs


def check_top(line, ref, categories):
    top = line["top"]
    check(len(top) == 5, f"{line['input']}: {len(top)} classes, expected 5")
    ranked = ref.sort(descending=True).values
    for rank, entry in enumerate(top):
        i, p = entry["index"], entry["prob"]
        tol = ATOL + RTOL * float(ref[i])
        check(abs(p - float(ref[i])) <= tol, f"{line['input']} rank {rank + 1}: class {i} prob {p}, torchvision "
              f"{float(ref[i])}")
        check(float(ref[i]) >= float(ranked[4]) - tol, f"{line['input']}: class {i} (torchvision prob {float(ref[i])})"
              f" is not in torchvision's top 5 (5th: {float(ranked[4])})")
        check(rank == 0 or p <= top[rank - 1]["prob"], f"{line['input']}: probs not in decreasing order")
        check(entry["label"] == categories[i], f"{line['input']}: label {entry['label']!r} for class {i}, "
              f"torchvision's is {categories[i]!r}")
    check(len({e["index"] for e in top}) == 5, f"{line['input']}: a class appears twice")


def run(classify, weights, *args, stdin=None, expect=None):
    cmd = [classify, "--weights", weights, *map(str, args)]
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    print(f"$ {' '.join(cmd)}\n{r.stderr}exit status {r.returncode}")
    if expect is not None:
        check(r.returncode == expect, f"exit status {r.returncode}, expected {expect}")
    return r


def lines_of(path):
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classify", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--work", required=True, type=pathlib.Path)
    a = ap.parse_args()
    inputs, bad = make_collection(a.work)
    c = lambda *args, **kw: run(a.classify, a.weights, *args, **kw)  # noqa: E731
    photos, no_images = a.work / "photos", a.work / "no_images"

    # The whole collection: order, results against torchvision, error lines.
    full = a.work / "full.jsonl"
    r = c("--jsonl", full, photos, no_images, expect=1)
    lines = lines_of(full)
    check([line["input"] for line in lines] == inputs, f"inputs {[l['input'] for l in lines]}, expected {inputs}")
    good = [p for p in inputs if p not in bad]
    ref = reference_probs(a.weights, good)
    categories = models.ResNet50_Weights.IMAGENET1K_V2.meta["categories"]
    for line in lines:
        if line["input"] in bad:
            check(set(line) == {"input", "error"} and line["error"], f"bad input line {line}")
            check(f"classify: error: {line['input']}: {line['error']}\n" in r.stderr, f"no stderr line for {line}")
        else:
            check_top(line, ref[line["input"]], categories)
    check(r.stderr.count("classify: error: ") == len(bad), "expected one stderr line per bad input")
    check("directory without image files" in next(l["error"] for l in lines if l["input"] == str(no_images)),
          "the folder without images is not reported as such")
    print(f"{len(good)} photos within {RTOL} (relative) + {ATOL} of torchvision's probabilities, {len(bad)} errors")

    # Plan-independent: one single-threaded forward at a time gives the same bytes.
    serial = a.work / "serial.jsonl"
    c("--jsonl", serial, "--streams", 1, "--loaders", 1, "--threads", 1, photos, no_images, expect=1)
    check(serial.read_bytes() == full.read_bytes(), "a serial run's output differs from the default plan's")

    # --resume after a kill mid-line: ends byte-identical to the uninterrupted run.
    text = full.read_bytes()
    cut = [i for i, b in enumerate(text) if b == ord("\n")][2] + 1  # three whole lines ...
    resumed = a.work / "resumed.jsonl"
    resumed.write_bytes(text[:cut + 40])  # ... and 40 bytes of the fourth
    r = c("--jsonl", resumed, "--resume", photos, no_images, expect=1)
    check("dropped an incomplete last line" in r.stderr and f"resuming: 3 of {len(inputs)}" in r.stderr,
          "resume did not report the dropped line and the skipped inputs")
    check(resumed.read_bytes() == text, "the resumed file differs from the uninterrupted run's")
    r = c("--jsonl", resumed, "--resume", photos, no_images, expect=0)
    check(resumed.read_bytes() == text, "resuming a complete file changed it")
    resumed.write_bytes(text[:-1])  # killed between the last line and its newline
    r = c("--jsonl", resumed, "--resume", photos, no_images, expect=0)
    check("completed its last line" in r.stderr and resumed.read_bytes() == text, "a last line without its newline")

    # Files that must not be appended to are refused and left as they were.
    r = c("--jsonl", resumed, photos, expect=2)
    check("already holds results; pass --resume" in r.stderr and resumed.read_bytes() == text, "existing file")
    foreign = a.work / "foreign.jsonl"
    foreign.write_text('{"input": "a.jpg", "top": []}\nnot json\n')
    r = c("--jsonl", foreign, "--resume", photos, expect=2)
    check(f"{foreign} line 2: not a classify result" in r.stderr, "a non-JSONL file was not refused by line")
    check(foreign.read_text() == '{"input": "a.jpg", "top": []}\nnot json\n', "the refused file was changed")

    # Shards: disjoint, union = everything, same lines as the full run.
    by_input = {line["input"]: line for line in lines}
    seen = []
    for i in range(3):
        shard = a.work / f"shard{i}.jsonl"
        c("--jsonl", shard, "--shard", f"{i}/3", photos, no_images)
        for line in lines_of(shard):
            check(line == by_input[line["input"]], f"shard {i}: {line['input']} differs from the full run")
            seen.append(line["input"])
    check(sorted(seen) == sorted(inputs), f"shards cover {sorted(seen)}, expected each of {sorted(inputs)} once")
    r = c("--shard", "3/3", photos, expect=2)
    check("expected I/N with 0 <= I < N" in r.stderr, "a bad --shard was not explained")

    # --list - : stdin's order, a missing file reported in place.
    missing = str(a.work / "missing.jpg")
    listed = good[::-1][:2] + [missing] + good[::-1][2:]
    r = c("--json", "--list", "-", stdin="".join(p + "\n" for p in listed), expect=1)
    out = [json.loads(line) for line in r.stdout.splitlines()]
    check([line["input"] for line in out] == listed, f"--list - gave {[l['input'] for l in out]}, expected {listed}")
    for line in out:
        check(line == by_input[line["input"]] if line["input"] != missing else "no such file" in line["error"].lower(),
              f"--list line {line}")
    r = c("--list", a.work / "no_list.txt", expect=2)
    check("no_list.txt: cannot open" in r.stderr, "a missing --list file was not explained")

    # --progress on a pipe: the final line counts every input and the errors.
    r = c("--json", "--progress", photos, no_images, expect=1)
    check(f"{len(inputs)}/{len(inputs)} images" in r.stderr and f"{len(bad)} errors" in r.stderr, "progress line")
    print("collection_cli: all checks passed")


if __name__ == "__main__":
    main()
