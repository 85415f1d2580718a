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
  - --resume after a run killed mid-line: the partial line is dropped, the
    inputs with a result line are skipped, the others (errors included:
    retried) get the uninterrupted run's lines; a whole last line missing
    only its newline gets it; a non-JSONL file and an existing file without
    --resume are refused and left untouched;
  - an input that failed and is then readable gets a result line on resume,
    and is not redone after that;
  - file names that are not UTF-8: lossless "input" (Python's
    surrogateescape), distinct, matched by --resume;
  - --shard I/3 for I = 0, 1, 2: disjoint, their union every input, each line
    the full run's;
  - --list - (stdin): the listed order, a missing file an error line;
  - --progress: the final count on stderr.
"""
import argparse
import json
import os
import pathlib
import re
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


def check_names(c, folder, source, top):
    """File names that are not UTF-8 (and others hard to escape): each "input" is the name, valid UTF-8 as is and
    every other byte as \\udcXX, so Python's surrogateescape decodes it back; names differing only in such bytes
    stay distinct; --resume matches them, in this form and in Python's json.dumps form."""
    folder.mkdir()
    names = [b"caf\xe9.png", b"caf\xe8.png", "caf\u00e9.png".encode(), b"lit\\udce9.png", b'q"uo\\te.png',
             b"tab\there.png", b"x\xed\xb3\xa9\xc0\xaf\xf4\x90\x80\x80\xe2\x82.png", b"\xc3\xa9\xe9.png",
             "\U0001f4e9.png".encode()]  # encoded surrogate, overlong, above U+10FFFF, truncated; astral
    paths = sorted(os.fsencode(folder) + b"/" + n for n in names)
    for p in paths:
        shutil.copy(source, p)
    out = folder.parent / "names.jsonl"
    c("--jsonl", out, folder, expect=0)
    raw = out.read_bytes().splitlines(keepends=True)
    lines = [json.loads(line.decode("utf-8")) for line in raw]  # strict: the file is UTF-8
    check([line["input"].encode("utf-8", "surrogateescape") for line in lines] == paths,
          f"names {[line['input'] for line in lines]} do not decode back to {paths}")
    for path, line, text in zip(paths, lines, raw):
        escaped = re.sub("[\udc80-\udcff]", lambda m: f"\\udc{ord(m.group()) - 0xdc00:02x}",
                         json.dumps(path.decode("utf-8", "surrogateescape"), ensure_ascii=False))
        check(text.startswith(('{"input":' + escaped + ",").encode()), f"{path}: line {text}, expected {escaped}")
        check(line["top"] == top, f"{path}: classified differently from the same image under another name")

    cut = len(b"".join(raw[:3]))  # three whole lines (two names not UTF-8) and part of the fourth
    out.write_bytes(b"".join(raw)[:cut + 10])
    r = c("--jsonl", out, "--resume", folder, expect=0)
    check(f"resuming: 3 of {len(paths)}" in r.stderr and out.read_bytes() == b"".join(raw),
          "resume on names that are not UTF-8: inputs redone or missing")
    out.write_text("".join(json.dumps(line) + "\n" for line in lines))  # as Python writes it: \\u escapes
    before = out.read_bytes()
    r = c("--jsonl", out, "--resume", folder, expect=0)
    check(f"resuming: {len(paths)} of {len(paths)}" in r.stderr and out.read_bytes() == before,
          "resume did not recognize the names in a file Python wrote")


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

    # --resume after a kill mid-line: the partial line dropped, then the uninterrupted run's lines of every
    # input without a result line appended, in order: the rest, and the errors again (retried).
    text = full.read_bytes()
    full_lines = text.splitlines(keepends=True)

    def after_resume(before):
        done = {line["input"] for line in map(json.loads, before.splitlines()) if "error" not in line}
        return before + b"".join(line for line in full_lines if json.loads(line)["input"] not in done)

    cut = [i for i, b in enumerate(text) if b == ord("\n")][2] + 1  # three whole lines ...
    head = [json.loads(line) for line in text[:cut].splitlines()]
    done, retried = sum("error" not in line for line in head), sum("error" in line for line in head)
    check(done > 0 and retried > 0, "the first three lines should hold results and errors")
    resumed = a.work / "resumed.jsonl"
    resumed.write_bytes(text[:cut + 40])  # ... and 40 bytes of the fourth
    r = c("--jsonl", resumed, "--resume", photos, no_images, expect=1)
    check("dropped an incomplete last line" in r.stderr and f"resuming: {done} of {len(inputs)} inputs already in "
          f"{resumed}, retrying {retried} that failed before" in r.stderr,
          "resume did not report the dropped line, the skipped and the retried inputs")
    check(resumed.read_bytes() == after_resume(text[:cut]), "the resumed file is not the uninterrupted run's lines")
    before = resumed.read_bytes()
    r = c("--jsonl", resumed, "--resume", photos, no_images, expect=1)
    check(resumed.read_bytes() == after_resume(before) and f"retrying {len(bad)} that failed before" in r.stderr,
          "resuming a complete file: only the failed inputs should be retried")
    resumed.write_bytes(text[:-1])  # killed between the last line and its newline
    r = c("--jsonl", resumed, "--resume", photos, no_images, expect=1)
    check("completed its last line" in r.stderr and resumed.read_bytes() == after_resume(text),
          "a last line without its newline")

    # Files that must not be appended to are refused and left as they were.
    before = resumed.read_bytes()
    r = c("--jsonl", resumed, photos, expect=2)
    check("already holds results; pass --resume" in r.stderr and resumed.read_bytes() == before, "existing file")
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

    # An input that failed (here: not yet an image) is retried by --resume; its last line is the answer.
    source = photos / "coffee" / "coffee_333x500.png"
    later = a.work / "later"
    later.mkdir()
    (later / "arriving.png").write_text("still being copied\n")
    out = a.work / "later.jsonl"
    c("--jsonl", out, later, expect=1)
    shutil.copy(source, later / "arriving.png")
    r = c("--jsonl", out, "--resume", later, expect=0)
    check("resuming: 0 of 1 inputs already in" in r.stderr and "retrying 1 that failed before" in r.stderr,
          "the failed input was not retried")
    first, last = lines_of(out)
    check(first["input"] == last["input"] == str(later / "arriving.png") and "error" in first and
          last["top"] == by_input[str(source)]["top"], f"retried input: lines {first}, {last}")
    r = c("--jsonl", out, "--resume", later, expect=0)
    check("resuming: 1 of 1" in r.stderr and len(lines_of(out)) == 2, "an input with a result line was redone")

    check_names(c, a.work / "names", source, by_input[str(source)]["top"])

    # --progress on a pipe: the final line counts every input and the errors.
    r = c("--json", "--progress", photos, no_images, expect=1)
    check(f"{len(inputs)}/{len(inputs)} images" in r.stderr and f"{len(bad)} errors" in r.stderr, "progress line")
    print("collection_cli: all checks passed")


if __name__ == "__main__":
    main()
