"""The TFRecord format shared by the generators (`glow-data`) and the reader (`--problem`).

One `tf.train.Example` per image, exactly the original Glow generators' layout:

  shape  int64[3]   (H, W, C)
  data   bytes      raw uint8 pixels, HWC row-major
  label  int64[1]   class index (0 when the set has no classes)
  attr   int64[40]  CelebA attributes (0/1), only in sets that have them (Glow's ImageNet
                    generator writes an empty `attr` list: read as no attributes)

A paired example (pix2pix-flow: the two sides A and B of one pair) holds both images in one
Example, `data_a` and `data_b` (same `shape`), plus `label`, so a pair can never come apart.

Files: `<root>/<split>/<split>-r{log2 res:02d}-s-{shard:04d}-of-{nshards:04d}.tfrecords`,
uncompressed, split in {train, validation}.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
import dataclasses
import glob
import os
import re
import struct

import numpy as np
import tensorflow as tf

SPLITS = ("train", "validation")
N_ATTR = 40
# Sets up to this many bytes are CRC-checked in full when opened; larger ones are only walked
# record by record (lengths and their checksums), which finds truncated or garbled files.
FULL_CHECK_BYTES = 1 << 30

_SHARD_RE = re.compile(
  r"^(?P<split>.+)-r(?P<res>\d{2})-s-(?P<shard>\d{4})-of-(?P<n>\d{4})\.tfrecords$"
)


class DataError(ValueError):
  """Bad input data: the message names the file (or folder) and what is wrong, in one line."""


# --------------------------------------------------------------------------------------------
# Writing.


def _int64(values: Iterable[int]) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _bytes(value: bytes) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3:
    raise ValueError(f"{what} must be uint8 [H, W, C], got {image.dtype} {image.shape}")
  return np.ascontiguousarray(image)


def encode_example(image: np.ndarray, label: int = 0, attr: Sequence[int] | None = None) -> bytes:
  """Serializes one image (uint8 [H, W, C]) as the original Glow generators did."""
  image = _check_image(image)
  feature = {
    "shape": _int64(image.shape),
    "data": _bytes(image.tobytes()),
    "label": _int64([label]),
  }
  if attr is not None:
    if len(attr) != N_ATTR:
      raise ValueError(f"attr must have {N_ATTR} values, got {len(attr)}")
    feature["attr"] = _int64(attr)
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def encode_pair(image_a: np.ndarray, image_b: np.ndarray, label: int = 0) -> bytes:
  """Serializes the two sides of one pair (uint8 [H, W, C] each, same shape) as one Example."""
  image_a = _check_image(image_a, "image_a")
  image_b = _check_image(image_b, "image_b")
  if image_a.shape != image_b.shape:
    raise ValueError(f"A and B of a pair differ in shape: {image_a.shape} vs {image_b.shape}")
  feature = {
    "shape": _int64(image_a.shape),
    "data_a": _bytes(image_a.tobytes()),
    "data_b": _bytes(image_b.tobytes()),
    "label": _int64([label]),
  }
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def decode_example(serialized: bytes) -> dict:
  """Parses one serialized Example in numpy (for tools and tests; the pipeline uses `parse_batch`).

  Returns a dict with `shape` (tuple), `label` (int), and `image` (unpaired) or `image_a` and
  `image_b` (paired) as uint8 [H, W, C], plus `attr` (int64 [40]) when present.
  """
  feature = tf.train.Example.FromString(serialized).features.feature
  if "shape" not in feature:
    raise DataError("record has no 'shape' feature: not a Glow TFRecord")
  shape = tuple(int(v) for v in feature["shape"].int64_list.value)
  if len(shape) != 3:
    raise DataError(f"record 'shape' must have 3 values (H, W, C), got {shape}")
  out: dict = {"shape": shape}
  labels = feature["label"].int64_list.value if "label" in feature else [0]
  out["label"] = int(labels[0]) if labels else 0
  keys = {"data": "image"} if "data" in feature else {"data_a": "image_a", "data_b": "image_b"}
  for key, name in keys.items():
    if key not in feature:
      raise DataError(f"record has no '{key}' feature")
    raw = feature[key].bytes_list.value[0]
    if len(raw) != int(np.prod(shape)):
      raise DataError(
        f"record '{key}' holds {len(raw)} bytes, shape {shape} needs {np.prod(shape)}"
      )
    out[name] = np.frombuffer(raw, np.uint8).reshape(shape)
  # Glow's ImageNet generator writes `attr` as an empty list (add_image(label, imgs, [])):
  # only a non-empty list means the set has attributes.
  attr = feature["attr"].int64_list.value if "attr" in feature else []
  if attr:
    if len(attr) != N_ATTR:
      raise DataError(f"record 'attr' holds {len(attr)} values, expected {N_ATTR} (or none)")
    out["attr"] = np.asarray(attr, np.int64)
  return out


# --------------------------------------------------------------------------------------------
# File names.


def shard_path(root: str, split: str, res_log2: int, shard: int, n_shards: int) -> str:
  """`<root>/<split>/<split>-r{res_log2:02d}-s-{shard:04d}-of-{n_shards:04d}.tfrecords`."""
  name = f"{split}-r{res_log2:02d}-s-{shard:04d}-of-{n_shards:04d}.tfrecords"
  return os.path.join(root, split, name)


def resolution_log2(size: int) -> int:
  """log2 of an image side; raises ValueError unless `size` is a power of two (>= 1)."""
  size = int(size)
  if size < 1 or size & (size - 1):
    raise ValueError(f"image size must be a power of two (file names hold log2 of it), got {size}")
  return size.bit_length() - 1


def resolutions(root: str, split: str) -> list[int]:
  """The resolutions (log2 of the side) with at least one shard file of `split` under `root`."""
  found = set()
  for path in glob.glob(os.path.join(glob.escape(root), split, f"{split}-r*-s-*-of-*.tfrecords")):
    match = _SHARD_RE.match(os.path.basename(path))
    if match and match["split"] == split:
      found.add(int(match["res"]))
  return sorted(found)


def find_shards(root: str, split: str, res_log2: int) -> list[str]:
  """The complete, sorted list of shard files of one split at one resolution.

  Raises:
    DataError: no shards, or some of the `-of-N` shards are missing (the message names the first
      missing file), or shard files of two different counts are mixed.
  """
  folder = os.path.join(root, split)
  pattern = os.path.join(glob.escape(folder), f"{split}-r{res_log2:02d}-s-*-of-*.tfrecords")
  by_count: dict[int, dict[int, str]] = {}
  for path in glob.glob(pattern):
    match = _SHARD_RE.match(os.path.basename(path))
    if match and match["split"] == split:
      by_count.setdefault(int(match["n"]), {})[int(match["shard"])] = path
  if not by_count:
    raise DataError(f"{pattern}: no TFRecord shards found")
  if len(by_count) > 1:
    raise DataError(f"{folder}: shard sets of different sizes mixed ({sorted(by_count)} shards)")
  ((n_shards, shards),) = by_count.items()
  missing = [i for i in range(n_shards) if i not in shards]
  if missing:
    first = shard_path(root, split, res_log2, missing[0], n_shards)
    raise DataError(f"{first}: missing shard ({len(missing)} of {n_shards} shards absent)")
  return [shards[i] for i in range(n_shards)]


def is_complete(root: str, split: str, res_log2: int) -> bool:
  """Whether `find_shards` would succeed."""
  try:
    find_shards(root, split, res_log2)
  except DataError:
    return False
  return True


# --------------------------------------------------------------------------------------------
# Checking files without TensorFlow's reader (whose errors do not name the file).


def _crc32c_table() -> list[int]:
  table = []
  for i in range(256):
    crc = i
    for _ in range(8):
      crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    table.append(crc)
  return table


_CRC_TABLE = _crc32c_table()


def _masked_crc32c(data: bytes) -> int:
  crc = 0xFFFFFFFF
  for byte in data:
    crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  crc ^= 0xFFFFFFFF
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


@dataclasses.dataclass(frozen=True)
class FileSummary:
  """What `scan_file` learnt about one TFRecord file."""

  path: str
  n_records: int
  first_record: bytes | None


def scan_file(path: str, full: bool = False) -> FileSummary:
  """Counts the records of one TFRecord file and returns its first record.

  With `full=False` the file is walked record by record, checking each length and its checksum
  (finds truncated and garbled files quickly); with `full=True` every record's data checksum is
  checked too.

  Raises:
    DataError: the file is missing, truncated or corrupt (the message names it).
  """
  try:
    size = os.path.getsize(path)
    handle = open(path, "rb")
  except OSError as error:
    raise DataError(f"{path}: cannot read ({error.strerror})") from None
  first = None
  count = 0
  with handle:
    pos = 0
    while pos < size:
      header = handle.read(12)
      if len(header) < 12:
        raise DataError(f"{path}: corrupt TFRecord file (truncated record header at byte {pos})")
      (length,) = struct.unpack("<Q", header[:8])
      (length_crc,) = struct.unpack("<I", header[8:])
      if _masked_crc32c(header[:8]) != length_crc:
        raise DataError(f"{path}: corrupt TFRecord file (bad length checksum at byte {pos})")
      end = pos + 12 + length + 4
      if end > size:
        raise DataError(f"{path}: corrupt TFRecord file (truncated record at byte {pos})")
      if count == 0:
        first = handle.read(length)
        (data_crc,) = struct.unpack("<I", handle.read(4))
        if _masked_crc32c(first) != data_crc:
          raise DataError(f"{path}: corrupt TFRecord file (bad data checksum at byte {pos})")
      else:
        handle.seek(end)
      pos = end
      count += 1
  if full and count > 1:
    check_checksums([path])
  return FileSummary(path=path, n_records=count, first_record=first)


def check_checksums(paths: Sequence[str]) -> None:
  """Reads every record of `paths` in C++, checking each data checksum.

  Raises:
    DataError: naming the first corrupt file.
  """
  if not paths:
    return
  # The record iterator is deprecated in favour of tf.data, but is 3-10x faster for a plain scan.
  from tensorflow.python.util import deprecation

  for path in paths:
    try:
      with deprecation.silence():
        for _ in tf.compat.v1.io.tf_record_iterator(path):
          pass
    except tf.errors.DataLossError as error:
      detail = error.message.splitlines()[0] if error.message else "data loss"
      raise DataError(f"{path}: corrupt TFRecord file ({detail})") from None


@dataclasses.dataclass(frozen=True)
class SetSummary:
  """The layout of one split of a TFRecord set, read from its files."""

  files: tuple[str, ...]
  n_examples: int
  shape: tuple[int, int, int]
  paired: bool
  has_attr: bool


def scan_files(
  files: Sequence[str], verify: bool | None = None, same_shape: bool = True
) -> SetSummary:
  """Checks a list of shard files and reads the layout from their first record.

  Args:
    files: TFRecord files of one split.
    verify: check every record's checksum (True), only the record framing (False), or the full
      check when the files together are at most `FULL_CHECK_BYTES` (None).
    same_shape: every file's first record must have the same (H, W, C); with False only C must
      agree (LSUN realnvp sets store each image at its own aspect ratio) and `shape` is the
      first file's.

  Raises:
    DataError: a file is corrupt, holds no Glow Examples, or differs in layout from the others.
  """
  if verify is None:
    verify = sum(os.path.getsize(f) for f in files if os.path.exists(f)) <= FULL_CHECK_BYTES
  total = 0
  layout = None
  for path in files:
    summary = scan_file(path, full=False)
    total += summary.n_records
    if summary.first_record is None:
      continue
    try:
      example = decode_example(summary.first_record)
    except DataError as error:
      raise DataError(f"{path}: {error}") from None
    except Exception as error:  # a protobuf decode error: not an Example at all
      raise DataError(f"{path}: not a tf.train.Example record ({type(error).__name__})") from None
    this = (example["shape"], "image_a" in example, "attr" in example)
    if layout is None:
      layout = this
    elif (this if same_shape else this[0][2:] + this[1:]) != (
      layout if same_shape else layout[0][2:] + layout[1:]
    ):
      raise DataError(
        f"{path}: records differ from the set's first file "
        f"(shape {this[0]} paired={this[1]} vs shape {layout[0]} paired={layout[1]})"
      )
  if layout is None:
    raise DataError(
      f"{os.path.dirname(files[0]) if files else '?'}: the TFRecord files hold no records"
    )
  if verify:
    check_checksums(files)
  return SetSummary(
    files=tuple(files), n_examples=total, shape=layout[0], paired=layout[1], has_attr=layout[2]
  )


# --------------------------------------------------------------------------------------------
# Reading in tf.data.


def parse_batch(
  serialized: tf.Tensor,
  shape: Sequence[int],
  paired: bool,
  has_attr: bool = False,
) -> dict[str, tf.Tensor]:
  """Parses a batch of serialized Examples ([B] strings) into uint8 images.

  Returns `{"image_a": uint8 [B, H, W, C], "label": int32 [B]}`, plus `image_b` for paired sets
  and `attr` (int32 [B, 40]) for sets with attributes. An unpaired set's `data` becomes
  `image_a`. Fails (InvalidArgumentError) when a record's `shape` differs from `shape`.
  """
  spec = {
    "shape": tf.io.FixedLenFeature([3], tf.int64),
    "label": tf.io.FixedLenFeature([1], tf.int64, default_value=[0]),
  }
  keys = ("data_a", "data_b") if paired else ("data",)
  for key in keys:
    spec[key] = tf.io.FixedLenFeature([], tf.string)
  if has_attr:
    spec["attr"] = tf.io.FixedLenFeature([N_ATTR], tf.int64)
  parsed = tf.io.parse_example(serialized, spec)
  expected = tf.constant(list(shape), tf.int64)
  check = tf.debugging.assert_equal(
    parsed["shape"],
    tf.broadcast_to(expected, tf.shape(parsed["shape"])),
    message=f"a record's shape differs from the set's shape {tuple(shape)}",
  )
  with tf.control_dependencies([check]):
    images = [tf.reshape(tf.io.decode_raw(parsed[key], tf.uint8), [-1, *shape]) for key in keys]
  for image in images:  # keep a static batch size (drop_remainder) for XLA and distribution
    image.set_shape(serialized.shape.concatenate(shape))
  out = {"image_a": images[0], "label": tf.cast(parsed["label"][:, 0], tf.int32)}
  if paired:
    out["image_b"] = images[1]
  if has_attr:
    out["attr"] = tf.cast(parsed["attr"], tf.int32)
  return out


def parse_and_crop(
  serialized: tf.Tensor,
  size: Sequence[int],
  channels: int,
  paired: bool,
  seed: tf.Tensor | None,
) -> dict[str, tf.Tensor]:
  """Parses ONE serialized Example of any (H, W) and crops `size` (h, w) out of it.

  With a stateless `seed` ([2] int64) the crop is at a uniformly random offset (the same one
  for both sides of a pair); without, it is the centre crop (extra pixel of an odd margin at the
  bottom and right). This is how Glow read LSUN realnvp (stored with the short side 96,
  `tf.random_crop` to 64 at train time). Fails (InvalidArgumentError) on a record smaller than
  `size` or with other than `channels` channels.

  Returns `{"image_a": uint8 [h, w, C], "label": int32 []}` (+ `image_b` for pairs).
  """
  spec = {
    "shape": tf.io.FixedLenFeature([3], tf.int64),
    "label": tf.io.FixedLenFeature([1], tf.int64, default_value=[0]),
  }
  keys = ("data_a", "data_b") if paired else ("data",)
  for key in keys:
    spec[key] = tf.io.FixedLenFeature([], tf.string)
  parsed = tf.io.parse_single_example(serialized, spec)
  shape = tf.cast(parsed["shape"], tf.int32)
  h, w = int(size[0]), int(size[1])
  check = tf.debugging.assert_equal(
    tf.reduce_all([shape[0] >= h, shape[1] >= w, shape[2] == channels]),
    True,
    message=f"a record is smaller than the {h}x{w} crop or has other than {channels} channels",
  )
  with tf.control_dependencies([check]):
    margin = shape[:2] - tf.constant([h, w])
  if seed is None:
    offset = margin // 2
  else:
    unit = tf.random.stateless_uniform([2], seed=seed, dtype=tf.float32)
    offset = tf.minimum(tf.cast(unit * tf.cast(margin + 1, tf.float32), tf.int32), margin)
  out = {"label": tf.cast(parsed["label"][0], tf.int32)}
  for key, name in zip(keys, ("image_a", "image_b")):
    image = tf.reshape(tf.io.decode_raw(parsed[key], tf.uint8), shape)
    crop = image[offset[0] : offset[0] + h, offset[1] : offset[1] + w, :]
    crop.set_shape([h, w, channels])
    out[name] = crop
  return out
