"""An atomic, sharded TFRecord writer.

Every shard is written under a temporary hidden name and all of them are renamed into place only
after every split of the set has been written completely, so an interrupted run never leaves a
set that looks whole (the reader insists on all `-of-N` shards). `meta.json` (the set's class
count and source) is renamed into place before the shards, so a set that looks whole always has it.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
import dataclasses
import glob
import json
import os
import uuid

import numpy as np
import tensorflow as tf

from glow_tf2 import atomic_dir
from glow_tf2.input import records

META_FILE = "meta.json"
# Above this many shard files open at once (shards x resolutions), records go to shards in
# contiguous runs instead, one file open at a time.
MAX_OPEN_FILES = 256


@dataclasses.dataclass
class SplitData:
  """One split to write: `n_examples` records, each serialized bytes, or a dict
  {res_log2: bytes} when the set is written at several resolutions (CelebA)."""

  n_examples: int
  records: Iterable[bytes | Mapping[int, bytes]]
  n_shards: int = 1


@dataclasses.dataclass
class DatasetSpec:
  """Everything `write_set` needs: the splits, the resolutions (log2) and the metadata."""

  splits: dict[str, SplitData]
  res_log2s: tuple[int, ...]
  meta: dict


def set_is_complete(output: str, splits: Iterable[str], res_log2s: Iterable[int]) -> bool:
  """Whether every split has a complete shard set at every resolution, and meta.json exists."""
  if not os.path.isfile(os.path.join(output, META_FILE)):
    return False
  return all(records.is_complete(output, s, r) for s in splits for r in res_log2s)


def read_meta(output: str) -> dict:
  """The set's meta.json, or {} when it has none (sets written by other generators)."""
  path = os.path.join(output, META_FILE)
  if not os.path.isfile(path):
    return {}
  try:
    with open(path) as handle:
      return json.load(handle)
  except (OSError, ValueError) as error:
    raise records.DataError(f"{path}: unreadable ({error})") from None


def _remove_stale_temporaries(folder: str) -> None:
  """Removes temporary files that a killed run of this writer left behind (its pid is dead)."""
  for path in glob.glob(os.path.join(glob.escape(folder), ".*.tmp-*-*")):
    try:
      pid = int(path.rsplit(".tmp-", 1)[1].split("-")[0])
    except ValueError:
      continue
    if pid != os.getpid() and not atomic_dir.pid_alive(pid):
      try:
        os.remove(path)
      except OSError:
        pass


class _ShardedSplitWriter:
  """Writes one split at one resolution into temporary files.

  Records go to shards in a seeded random assignment (as the original generators did, minus
  the global RNG), all shard files open at once; with `contiguous`, record i goes to shard
  floor(i * n_shards / n), one file open at a time (for thousands of shards; the sources hand
  records over in a seeded random order, so the shards are mixed either way).
  """

  def __init__(
    self, final_paths: list[str], token: str, n_examples: int, seed: int, contiguous: bool
  ):
    self.final_paths = final_paths
    self.temp_paths = [
      os.path.join(os.path.dirname(p), f".{os.path.basename(p)}.tmp-{token}") for p in final_paths
    ]
    n_shards = len(final_paths)
    self.n_examples = n_examples
    if contiguous:
      self.to_shard = (np.arange(n_examples) * n_shards) // max(n_examples, 1)
    else:
      self.to_shard = np.zeros(n_examples, np.int64)
      order = np.random.default_rng(seed).permutation(n_examples)
      for shard, part in enumerate(np.array_split(order, n_shards)):
        self.to_shard[part] = shard
    self.contiguous = contiguous
    self.writers: dict[int, tf.io.TFRecordWriter] = {}
    self.count = 0

  def add(self, serialized: bytes) -> None:
    if self.count >= self.n_examples:
      raise ValueError(f"more records than the {self.n_examples} announced")
    shard = int(self.to_shard[self.count])
    if shard not in self.writers:
      if self.contiguous:
        self.close()
      self.writers[shard] = tf.io.TFRecordWriter(self.temp_paths[shard])
    self.writers[shard].write(serialized)
    self.count += 1

  def close(self) -> None:
    for writer in self.writers.values():
      writer.close()
    self.writers = {}

  def finish(self) -> None:
    """Closes the files and creates the (empty) shards no record went to."""
    self.close()
    for path in self.temp_paths:
      if not os.path.exists(path):
        open(path, "wb").close()

  def remove(self) -> None:
    self.close()
    for path in self.temp_paths:
      if os.path.exists(path):
        os.remove(path)


def write_set(output: str, spec: DatasetSpec, *, overwrite: bool = False, seed: int = 0) -> bool:
  """Writes a TFRecord set atomically.

  Args:
    output: the set's root; shards go to `<output>/<split>/`.
    spec: the splits, resolutions and metadata.
    overwrite: replace a complete set; without it a complete set is left alone.
    seed: seeds the assignment of records to shards.

  Returns:
    True if the set was written, False if a complete set was already there (no-op).

  Raises:
    DataError (or anything the record iterators raise): nothing new is left behind and an
    existing set is untouched.
  """
  if not overwrite and set_is_complete(output, spec.splits, spec.res_log2s):
    return False
  token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
  writers: list[_ShardedSplitWriter] = []
  meta_temp = os.path.join(output, f".{META_FILE}.tmp-{token}")
  try:
    for split_index, (split, data) in enumerate(spec.splits.items()):
      folder = os.path.join(output, split)
      os.makedirs(folder, exist_ok=True)
      _remove_stale_temporaries(folder)
      n_shards = max(1, min(int(data.n_shards), data.n_examples))
      by_res = {}
      contiguous = n_shards * len(spec.res_log2s) > MAX_OPEN_FILES
      for res in spec.res_log2s:
        paths = [records.shard_path(output, split, res, i, n_shards) for i in range(n_shards)]
        by_res[res] = _ShardedSplitWriter(
          paths, token, data.n_examples, seed + split_index, contiguous
        )
        writers.append(by_res[res])
      for record in data.records:
        if isinstance(record, (bytes, bytearray)):
          if len(by_res) != 1:
            raise ValueError("multi-resolution sets need a {res_log2: bytes} per record")
          next(iter(by_res.values())).add(record)
        else:
          for res, writer in by_res.items():
            writer.add(record[res])
      for res, writer in by_res.items():
        writer.finish()
        if writer.count != data.n_examples:
          raise records.DataError(
            f"{output}/{split}: got {writer.count} records, expected {data.n_examples}"
          )
    with open(meta_temp, "w") as handle:
      json.dump(spec.meta, handle, indent=1, sort_keys=True)
  except BaseException:
    for writer in writers:
      writer.remove()
    if os.path.exists(meta_temp):
      os.remove(meta_temp)
    raise
  # Commit: drop the shards this set replaces, then move meta.json and the shards into place.
  for split in spec.splits:
    for res in spec.res_log2s:
      for old in records.resolutions(output, split):
        if old != res:
          continue
        pattern = os.path.join(
          glob.escape(os.path.join(output, split)), f"{split}-r{res:02d}-s-*-of-*.tfrecords"
        )
        for path in glob.glob(pattern):
          os.remove(path)
  os.replace(meta_temp, os.path.join(output, META_FILE))
  for writer in writers:
    for temp, final in zip(writer.temp_paths, writer.final_paths):
      os.replace(temp, final)
  return True
