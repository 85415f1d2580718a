"""Read and write .safetensors files with numpy alone (the converters share it).

  write(path, {name: ndarray}, {key: str}, dtype="f32")   # dtype None keeps each array's type
  arrays, metadata = read(path)                             # BF16 comes back as float32
"""
import json

import numpy as np

# safetensors dtype name -> numpy dtype of the stored bytes
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8"}
NUMPY_TO_NAME = {np.dtype(v): k for k, v in DTYPES.items() if k != "BF16"}
TARGETS = ("f32", "f16", "bf16")


def bf16_bits(array):
    """float32 -> bfloat16 bit patterns (uint16), rounded to nearest even as torch does."""
    bits = np.ascontiguousarray(array, dtype="<f4").view("<u4").astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")


def _encode(array, dtype):
    """(safetensors dtype name, little-endian bytes) of one array."""
    array = np.asarray(array)
    if dtype is not None and np.issubdtype(array.dtype, np.floating):
        if dtype == "bf16":
            return "BF16", bf16_bits(array).tobytes()
        array = array.astype({"f32": "<f4", "f16": "<f2"}[dtype])
    name = NUMPY_TO_NAME.get(array.dtype.newbyteorder("<"))
    if name is None:
        raise ValueError(f"unsupported dtype {array.dtype}")
    return name, np.ascontiguousarray(array, dtype=DTYPES[name]).tobytes()


def write(path, arrays, metadata, dtype="f32"):
    """Write arrays (name -> numpy array) and string metadata. Floating-point
    arrays are stored as dtype ("f32", "f16" or "bf16"); None keeps their type."""
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"metadata must map str to str, got {key!r}: {value!r}")
    header = {"__metadata__": dict(metadata)} if metadata else {}
    blobs, offset = [], 0
    for name in sorted(arrays):
        kind, blob = _encode(arrays[name], dtype)
        header[name] = {"dtype": kind, "shape": list(np.shape(arrays[name])),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def read(path):
    """Return (name -> numpy array, metadata dict); BF16 is widened to float32."""
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_len).decode("utf-8"))
        data = bytearray(f.read())
    metadata = header.pop("__metadata__", {})
    arrays = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        np_dtype = np.dtype(DTYPES[info["dtype"]])
        count = int(np.prod(info["shape"], dtype=np.int64))
        if end > len(data) or end - begin != count * np_dtype.itemsize:
            raise ValueError(f"{path}: bad data_offsets for {name}")
        array = np.frombuffer(data, np_dtype, count, begin).reshape(info["shape"])
        if info["dtype"] == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        arrays[name] = array
    return arrays, metadata
