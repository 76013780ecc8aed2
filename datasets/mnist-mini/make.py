#!/usr/bin/env python3
"""Regenerates the bundled MNIST subset from the full MNIST files.

    python3 datasets/mnist-mini/make.py [MNIST_DIR]

MNIST_DIR holds the four standard IDX files, plain or gzip-compressed (default: the shared
copy at ../shared/datasets/mnist/ beside the repository). Writes, next to this script, the
first 10,000 training images and labels and all 10,000 test images and labels as IDX files
whose headers say 10000, gzip-compressed with mtime 0 and no file name in the header, so the
output is the same bytes on every run. Only the Python standard library is used.
"""

import gzip
import hashlib
import os
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[2] / "shared" / "datasets" / "mnist"
COUNT = 10_000

# sha256 of the uncompressed original files: the subset is only as right as its source.
SOURCES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def read_source(directory: Path, name: str) -> bytes:
    """The uncompressed content of `name` (stored plain or as `name.gz`), checksum verified."""
    for candidate, opener in ((directory / (name + ".gz"), gzip.open), (directory / name, open)):
        if candidate.is_file():
            with opener(candidate, "rb") as f:
                data = f.read()
            digest = hashlib.sha256(data).hexdigest()
            if digest != SOURCES[name]:
                sys.exit(f"{candidate}: sha256 {digest} is not MNIST's {SOURCES[name]}")
            return data
    sys.exit(f"{directory}: neither {name}.gz nor {name} found")


def subset(data: bytes, ndim: int, count: int) -> bytes:
    """The first `count` items of an IDX u8 file, with the header's count rewritten."""
    magic, n = struct.unpack(">II", data[:8])
    assert magic == 0x0800 + ndim and n >= count, (hex(magic), n)
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    item = 1
    for d in dims[1:]:
        item *= d
    header = struct.pack(">I", magic) + struct.pack(">" + "I" * ndim, count, *dims[1:])
    start = 4 + 4 * ndim
    return header + data[start : start + count * item]


def write_gz(path: Path, data: bytes) -> None:
    """Writes `data` gzip-compressed, deterministically, via a temporary file and a rename."""
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
            gz.write(data)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, path)


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE
    for name, ndim in (
        ("train-images-idx3-ubyte", 3),
        ("train-labels-idx1-ubyte", 1),
        ("t10k-images-idx3-ubyte", 3),
        ("t10k-labels-idx1-ubyte", 1),
    ):
        data = subset(read_source(source, name), ndim, COUNT)
        out = HERE / (name + ".gz")
        write_gz(out, data)
        print(f"{hashlib.sha256(out.read_bytes()).hexdigest()}  {out.name}")
        print(f"{hashlib.sha256(data).hexdigest()}  {name}")


if __name__ == "__main__":
    main()
