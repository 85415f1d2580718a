#!/usr/bin/env python3
"""Writes the image references the C++ tests ([image] in test_image.cpp) compare against.

    image_fixtures.py --out DIR

DIR is the fixture directory of make_fixtures.py (it must already hold
resnet50.safetensors). Everything is produced here by PIL, torchvision and
PyTorch at test time:
  DIR/images/             test images in every supported format and mode: the
                          photos of examples/images re-encoded, and synthetic ones
                          (PIL writes them; variants PIL cannot write, such as
                          16-bit RGB PNG, are assembled byte by byte, JPEGs with
                          restart markers or 4:4:0 chroma come from libjpeg-turbo's
                          jpegtran and cjpeg), damaged JPEGs, plus .npy inputs
  DIR/images.ref.safetensors
    <case>.rgb            H×W×3: PIL's Image.open(file).convert("RGB") (float16: exact for 0..255)
    <case>.input          1×3×crop×crop: torchvision Resize(resize) → CenterCrop(crop)
                          → ToTensor() → Normalize(ImageNet mean, std) of that image
    <case>.logits         1×1000: torchvision resnet50 with the fixture weights on .input
    resize<i>.in/.out     random images and PIL's img.resize((w, h), BILINEAR) of them
    npy.chw, npy.nchw     the values stored in images/good_chw.npy, images/good_nchw.npy
  metadata "cases": JSON list of {name, file, resize, crop, logits}: every image PIL decodes
           "refused": JSON list of {file, pil_error}: the damaged JPEGs PIL refuses
A stamp file makes reruns free while this script, the photos and the model fixtures are unchanged.
"""
import argparse
import hashlib
import io
import json
import pathlib
import struct
import subprocess
import sys
import zlib

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PHOTOS = ROOT / "examples" / "images"
sys.path.insert(0, str(ROOT / "weights"))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision import transforms  # noqa: E402

import convert_torchvision as ct  # noqa: E402
from make_fixtures import load_converted  # noqa: E402

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

# (in_w, in_h, out_w, out_h): both axes down, both up, one axis only, extreme ratios, 1×1.
RESIZES = [(50, 40, 20, 16), (50, 40, 130, 90), (50, 40, 50, 17), (50, 40, 23, 40), (1, 1, 5, 3),
           (7, 300, 3, 31), (300, 7, 1, 1), (640, 480, 341, 256), (97, 89, 256, 235), (33, 250, 256, 1939)]


def synthetic(w, h, seed):
    """An h×w×3 uint8 image: smooth colour waves plus noise (stresses the resampler's rounding)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    waves = np.stack([128 + 100 * np.sin(x / (5 + 3 * c + seed % 4) + c) * np.cos(y / (9 + c) - c)
                      for c in range(3)], axis=-1)
    return np.clip(waves + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)


def png_file(width, height, bit_depth, color_type, raw, interlace=0, palette=b""):
    """A minimal PNG (IHDR, PLTE if given, one IDAT, IEND) from its filtered rows `raw`."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + (chunk(b"PLTE", palette) if palette else b"")
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def png_bytes(width, height, bit_depth, color_type, rows, interlace=0):
    """A PNG from big-endian sample rows, each with filter type 0, for variants PIL cannot write."""
    return png_file(width, height, bit_depth, color_type, b"".join(b"\x00" + row for row in rows), interlace)


def png_every_filter(samples, color_type, palette=b""):
    """8-bit PNG of an h×w×c uint8 array whose row y has filter type y % 5 (PNG spec §9: none, sub,
    up, average, Paeth), so that every unfiltering path runs; PIL's encoder picks filters itself."""
    h, w, c = samples.shape
    rows, raw = samples.reshape(h, w * c).astype(np.int16), []
    for y in range(h):
        x, b = rows[y], rows[y - 1] if y else np.zeros(w * c, np.int16)
        a, ul = (np.concatenate([np.zeros(c, np.int16), v[:-c]]) for v in (x, b))
        pa, pb, pc = abs(b - ul), abs(a - ul), abs(a + b - 2 * ul)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, ul))
        predictor = [0, a, b, (a + b) >> 1, paeth][y % 5]
        raw.append(bytes([y % 5]) + ((x - predictor) % 256).astype(np.uint8).tobytes())
    return png_file(w, h, 8, color_type, b"".join(raw), palette=palette)


def png16(samples, color_type):
    """16-bit PNG of an h×w×c uint16 array."""
    h, w = samples.shape[:2]
    data = samples.astype(">u2").reshape(h, -1)
    return png_bytes(w, h, 16, color_type, [data[y].tobytes() for y in range(h)])


def png_adam7(samples, color_type):
    """Adam7-interlaced 8-bit PNG of an h×w×c uint8 array: the rows of each pass's sub-image in turn."""
    h, w = samples.shape[:2]
    rows = []
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)):
        sub = samples[y0::dy, x0::dx]
        rows += [row.tobytes() for row in sub] if sub.shape[1] else []
    return png_bytes(w, h, 8, color_type, rows, interlace=1)


def png_gray_packed(gray, bits):
    """1/2/4-bit gray PNG from an h×w array of values < 2**bits."""
    h, w = gray.shape
    per_byte = 8 // bits
    padded = np.zeros((h, -(-w // per_byte) * per_byte), np.uint8)
    padded[:, :w] = gray
    groups = padded.reshape(h, -1, per_byte)
    packed = sum(groups[:, :, i].astype(np.uint16) << (8 - bits * (i + 1)) for i in range(per_byte)).astype(np.uint8)
    return png_bytes(w, h, bits, 0, [packed[y].tobytes() for y in range(h)])


def pnm(samples, maxval):
    """Binary PNM (P5 for h×w, P6 for h×w×3) with the given maxval, big-endian when maxval > 255."""
    magic = "P6" if samples.ndim == 3 else "P5"
    h, w = samples.shape[:2]
    data = samples.astype(">u2" if maxval > 255 else np.uint8).tobytes()
    return f"{magic}\n# written by image_fixtures.py\n{w} {h}\n{maxval}\n".encode() + data


def pil_bytes(image, fmt, **options):
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def lossless_images():
    """name -> encoded bytes in the formats stb_image decodes (PNG, BMP, GIF, TGA) and PNM."""
    rgb = Image.fromarray(synthetic(300, 200, 1))
    rng = np.random.default_rng(7)
    gray = rng.integers(0, 256, (120, 90), dtype=np.uint8)
    images = {f"rgb_{w}x{h}.png": pil_bytes(Image.fromarray(synthetic(w, h, i)), "PNG")
              for i, (w, h) in enumerate([(640, 480), (480, 640), (1200, 300), (300, 1100), (256, 256), (256, 300),
                                          (200, 150), (10, 7), (1, 1), (257, 1000), (1536, 1024), (399, 301)])}
    images.update({
        "gray.png": pil_bytes(rgb.convert("L"), "PNG"),
        "gray_alpha.png": pil_bytes(Image.merge("LA", [rgb.convert("L"), Image.fromarray(gray).resize(rgb.size)]), "PNG"),
        "rgba.png": pil_bytes(Image.merge("RGBA", [*rgb.split(), rgb.convert("L").point(lambda v: 255 - v)]), "PNG"),
        "palette.png": pil_bytes(rgb.quantize(37), "PNG"),
        "palette_transparent.png": pil_bytes(rgb.quantize(16), "PNG", transparency=3),
        "bilevel.png": pil_bytes(rgb.convert("1"), "PNG"),
        "gray_2bit.png": png_gray_packed(gray % 4, 2),
        "gray_4bit.png": png_gray_packed(gray % 16, 4),
        "gray_16bit.png": png16(rng.integers(0, 600, (70, 110, 1)), 0),  # PIL clips values above 255
        "gray_alpha_16bit.png": png16(rng.integers(0, 65536, (70, 110, 2)), 4),
        "rgb_16bit.png": png16(rng.integers(0, 65536, (110, 70, 3)), 2),
        "rgba_16bit.png": png16(rng.integers(0, 65536, (90, 90, 4)), 6),
        "rgb_adam7.png": png_adam7(synthetic(61, 43, 3), 2),
        "filters_rgb.png": png_every_filter(synthetic(45, 31, 5), 2),
        "filters_rgba.png": png_every_filter(rng.integers(0, 256, (23, 17, 4), dtype=np.uint8), 6),
        "filters_gray.png": png_every_filter(gray[:20, :33, None], 0),
        "filters_gray_alpha.png": png_every_filter(rng.integers(0, 256, (15, 29, 2), dtype=np.uint8), 4),
        "filters_palette.png": png_every_filter(rng.integers(0, 37, (25, 19, 1), dtype=np.uint8), 3,
                                                rng.integers(0, 256, 37 * 3, dtype=np.uint8).tobytes()),
        "rgba_adam7_3x2.png": png_adam7(rng.integers(0, 256, (2, 3, 4), dtype=np.uint8), 6),
        "rgb.bmp": pil_bytes(rgb, "BMP"),
        "palette.bmp": pil_bytes(rgb.quantize(64), "BMP"),
        "rgb.gif": pil_bytes(rgb, "GIF"),
        "rgb.tga": pil_bytes(rgb, "TGA"),
        "rgb_rle.tga": pil_bytes(rgb, "TGA", compression="tga_rle"),
        "rgb.ppm": pil_bytes(rgb, "PPM"),
        "gray.pgm": pil_bytes(rgb.convert("L"), "PPM"),
        "rgb_maxval100.ppm": pnm(rng.integers(0, 101, (80, 60, 3)), 100),
        "gray_maxval1000.pgm": pnm(rng.integers(0, 1001, (60, 80)), 1000),
        "gray_16bit.pgm": pnm(rng.integers(0, 700, (60, 80)), 65535),
        "rgb_16bit.ppm": pnm(rng.integers(0, 65536, (60, 80, 3)), 65535),
    })
    return images


def jpegtran(data, *options):
    """JPEG bytes transcoded losslessly by libjpeg-turbo's jpegtran (restart markers, arithmetic coding)."""
    return subprocess.run(["jpegtran", *options], input=data, capture_output=True, check=True).stdout


def cjpeg(image, *options):
    """An RGB image encoded by libjpeg-turbo's cjpeg, for chroma samplings PIL cannot write."""
    return subprocess.run(["cjpeg", *options], input=pil_bytes(image, "PPM"), capture_output=True, check=True).stdout


def jpeg_images():
    """name -> JPEG bytes written by PIL (libjpeg) and libjpeg-turbo's tools: every coding (baseline,
    progressive, arithmetic, restart markers), chroma sampling and colour space (gray, YCbCr, RGB, CMYK, YCCK)."""
    chelsea, coffee = (Image.open(PHOTOS / f).convert("RGB") for f in ("chelsea.png", "coffee.png"))
    odd = Image.fromarray(synthetic(301, 199, 5))
    cmyk = Image.fromarray(np.concatenate([synthetic(203, 150, 6), synthetic(203, 150, 7)[..., :1]], axis=-1), "CMYK")
    adobe_cmyk = pil_bytes(cmyk, "JPEG", quality=90)  # libjpeg writes CMYK with an Adobe marker, transform 0
    at = adobe_cmyk.index(b"Adobe") + 11
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° to display; PIL's open() leaves the pixels as stored
    baseline = pil_bytes(chelsea, "JPEG", quality=90)
    return {
        "chelsea_baseline.jpg": baseline,
        "chelsea_progressive.jpg": pil_bytes(chelsea, "JPEG", quality=90, progressive=True),
        "chelsea_optimized.jpg": pil_bytes(chelsea, "JPEG", quality=75, optimize=True),
        "coffee_444.jpg": pil_bytes(coffee, "JPEG", quality=95, subsampling=0),
        "coffee_422.jpg": pil_bytes(coffee, "JPEG", quality=85, subsampling=1),
        "coffee_420.jpg": pil_bytes(coffee, "JPEG", quality=85, subsampling=2),
        "coffee_progressive_444.jpg": pil_bytes(coffee, "JPEG", quality=90, subsampling=0, progressive=True),
        "chelsea_gray.jpg": pil_bytes(chelsea.convert("L"), "JPEG", quality=90),
        "chelsea_gray_progressive.jpg": pil_bytes(chelsea.convert("L"), "JPEG", quality=90, progressive=True),
        "chelsea_exif_rotated.jpg": pil_bytes(chelsea, "JPEG", quality=90, exif=exif.tobytes()),
        "chelsea_restart_rows.jpg": jpegtran(baseline, "-restart", "1"),
        "chelsea_restart_blocks.jpg": jpegtran(baseline, "-restart", "7B"),
        "chelsea_progressive_restart.jpg": jpegtran(baseline, "-progressive", "-restart", "2"),
        "chelsea_arithmetic.jpg": jpegtran(baseline, "-arithmetic"),
        "synthetic_301x199_420.jpg": pil_bytes(odd, "JPEG", quality=85),
        "synthetic_301x199_422.jpg": pil_bytes(odd, "JPEG", quality=85, subsampling=1),
        "synthetic_301x199_440.jpg": cjpeg(odd, "-quality", "85", "-sample", "1x2"),
        "synthetic_301x199_411.jpg": cjpeg(odd, "-quality", "85", "-sample", "4x1"),
        "synthetic_301x199_rgb.jpg": cjpeg(odd, "-quality", "85", "-rgb"),  # stored as RGB, Adobe transform 0
        "cmyk_adobe.jpg": adobe_cmyk,
        "ycck_adobe.jpg": adobe_cmyk[:at] + b"\x02" + adobe_cmyk[at + 1:],  # same data declared YCCK (transform 2)
    }


def damaged_jpegs(good):
    """name -> JPEG bytes damaged as real files get damaged: cut short, junk between segments, an end
    marker in the middle of the scan data, garbled scan data, a bogus Huffman table."""
    baseline, progressive = good["chelsea_baseline.jpg"], good["chelsea_progressive.jpg"]
    middle, dht = len(baseline) // 2, baseline.index(b"\xff\xc4")
    garbled, huffman = bytearray(baseline), bytearray(baseline)
    garbled[middle:middle + 64] = np.random.default_rng(5).integers(0, 255, 64, np.uint8).tobytes()  # no 0xFF
    huffman[dht + 5:dht + 21] = b"\xff" * 16  # 16 x 255 codes, at most 256 exist
    damaged = {f"damaged_{kind}_cut_{n}.jpg": data[:n]
               for kind, data in (("baseline", baseline), ("progressive", progressive))
               for n in (20, 400, len(data) // 2, len(data) - 2)}
    damaged.update({
        "damaged_baseline_junk_before_eoi.jpg": baseline[:-2] + b"\x00\x01\x02junk" + baseline[-2:],
        "damaged_baseline_early_eoi.jpg": baseline[:len(baseline) // 2] + b"\xff\xd9",
        "damaged_progressive_early_eoi.jpg": progressive[:len(progressive) // 2] + b"\xff\xd9",
        "damaged_baseline_garbled.jpg": bytes(garbled),
        "damaged_baseline_huffman.jpg": bytes(huffman),
    })
    return damaged


def pil_error(path):
    """PIL's error on Image.open(path).convert("RGB"), None if it decodes the file."""
    try:
        Image.open(path).convert("RGB")
    except Exception as e:  # noqa: BLE001 - any refusal counts, whatever PIL raises
        return f"{type(e).__name__}: {e}"
    return None


def transform(resize, crop):
    return transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(crop), transforms.ToTensor(),
                               transforms.Normalize(MEAN, STD)])


def write_npy_inputs(image_dir, refs):
    rng = np.random.default_rng(11)
    chw, nchw = rng.standard_normal((3, 32, 40), np.float32), rng.standard_normal((2, 3, 32, 40), np.float32)
    np.save(image_dir / "good_chw.npy", chw)
    np.save(image_dir / "good_nchw.npy", nchw)
    np.save(image_dir / "bad_dtype.npy", chw.astype(np.float64))
    np.save(image_dir / "bad_shape.npy", chw[0])
    np.save(image_dir / "bad_channels.npy", nchw[:, :2])
    np.save(image_dir / "fortran_order.npy", np.asfortranarray(chw))
    refs.update({"npy.chw": chw, "npy.nchw": nchw})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    args = ap.parse_args()
    weights = args.out / "resnet50.safetensors"
    model_stamp = args.out / "fixtures.stamp"
    if not weights.exists() or not model_stamp.exists():
        sys.exit(f"error: {weights} is missing; run make_fixtures.py --out {args.out} first (ctest -R fixtures)")
    digest = hashlib.sha256(pathlib.Path(__file__).read_bytes() + model_stamp.read_bytes() + b"".join(
        p.read_bytes() for p in sorted(PHOTOS.glob("*.png")))).hexdigest()
    stamp = args.out / "images.stamp"
    if stamp.exists() and stamp.read_text() == digest:
        print(f"image fixtures in {args.out} are up to date")
        return

    image_dir = args.out / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    jpegs = jpeg_images()
    cases, refused = [], []  # (name, path, resize, crop, logits); damaged files PIL refuses
    for name, data in {**lossless_images(), **jpegs, **damaged_jpegs(jpegs)}.items():
        (image_dir / name).write_bytes(data)
        error = pil_error(image_dir / name) if name.startswith("damaged_") else None
        if error:
            refused.append({"file": str(image_dir / name), "pil_error": error})
        else:
            cases.append((name, image_dir / name, 256, 224, name in jpegs))
    cases += [("chelsea.png", PHOTOS / "chelsea.png", 256, 224, True),
              ("coffee.png", PHOTOS / "coffee.png", 256, 224, True),
              ("chelsea.png@v2", PHOTOS / "chelsea.png", 232, 224, False),   # IMAGENET1K_V2 preset
              ("coffee.png@pad", PHOTOS / "coffee.png", 200, 224, False),    # crop > resized height
              ("rgb_640x480.png@crop300", image_dir / "rgb_640x480.png", 256, 300, False)]

    model = load_converted(weights, "resnet50", 1000)
    refs, manifest = {}, []
    for name, path, resize, crop, logits in cases:
        image = Image.open(path).convert("RGB")
        x = transform(resize, crop)(image).unsqueeze(0)
        refs[f"{name}.rgb"] = np.asarray(image, dtype=np.float16)
        refs[f"{name}.input"] = x
        if logits:
            with torch.inference_mode():
                refs[f"{name}.logits"] = model(x)
        manifest.append({"name": name, "file": str(path), "resize": resize, "crop": crop, "logits": logits})
    rng = np.random.default_rng(3)
    for i, (w, h, ow, oh) in enumerate(RESIZES):
        src = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        refs[f"resize{i}.in"] = src.astype(np.float16)
        refs[f"resize{i}.out"] = np.asarray(Image.fromarray(src).resize((ow, oh), Image.BILINEAR), dtype=np.float16)
    write_npy_inputs(image_dir, refs)
    ct.write_safetensors(args.out / "images.ref.safetensors", refs,
                         {"cases": json.dumps(manifest), "refused": json.dumps(refused)}, dtype=None)
    stamp.write_text(digest)
    print(f"image fixtures written to {args.out}: {len(cases)} images, {len(refused)} damaged JPEGs PIL refuses, "
          f"{len(RESIZES)} resizes")


if __name__ == "__main__":
    main()
