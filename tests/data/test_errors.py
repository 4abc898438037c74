"""Bad input gives a one-line error naming the file, and leaves nothing half-written."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.input import records
from glow_tf2.input import writer
from glow_tf2.input.records import DataError
from glow_tf2_data import generate
from tests.helpers import grey_patches
from tests.helpers import listing
from tests.helpers import photo_patches
from tests.helpers import save


def _folder(root, n=6, size=8, seed=40):
  for i, p in enumerate(photo_patches(n, size, seed=seed)):
    save(os.path.join(root, f"{i}.png"), p)
  return root


def _fails(tmp_path, match, source="folder", **kwargs):
  out = tmp_path / "out"
  with pytest.raises(DataError, match=match) as info:
    generate.generate(source, str(out), **kwargs)
  message = str(info.value)
  assert "\n" not in message
  assert (
    not [f for f in listing(str(out)) if f.endswith(".tfrecords") or ".tmp-" in f]
    if out.exists()
    else True
  )
  return message


def test_missing_folder(tmp_path):
  message = _fails(tmp_path, "does not exist", input=str(tmp_path / "nowhere"))
  assert str(tmp_path / "nowhere") in message


def test_empty_folder(tmp_path):
  os.makedirs(tmp_path / "empty")
  _fails(tmp_path, "empty folder", input=str(tmp_path / "empty"))


def test_corrupt_image_is_named_and_nothing_is_left(tmp_path):
  src = _folder(str(tmp_path / "src"), n=30)
  with open(os.path.join(src, "7.png"), "r+b") as handle:  # keep the header, garble the pixels
    handle.seek(40)
    handle.write(b"\x00garbage" * 20)
  message = _fails(tmp_path, "corrupt image", input=src)
  assert "7.png" in message


def test_mixed_sizes(tmp_path):
  src = _folder(str(tmp_path / "src"))
  save(os.path.join(src, "big.png"), photo_patches(1, 16)[0])
  message = _fails(tmp_path, "different sizes", input=src)
  # The odd one out is named with both sizes, against one of the 8x8 files read before it.
  assert re.fullmatch(
    re.escape(os.path.join(src, "big.png"))
    + r": images of different sizes \(16x16 here, 8x8 in [0-5]\.png\); give --image_size",
    message,
  ), message


def test_grey_where_colour_is_asked(tmp_path):
  src = _folder(str(tmp_path / "src"))
  save(os.path.join(src, "grey.png"), grey_patches(1, 8)[0][..., None])
  message = _fails(tmp_path, "grey image where --channels=3", input=src)
  assert "grey.png" in message


def test_a_b_count_mismatch(tmp_path):
  a = photo_patches(5, 8)
  for folder in ("train", "val"):
    os.makedirs(tmp_path / "src" / folder)
    np.save(tmp_path / "src" / folder / "A.npy", a)
    np.save(tmp_path / "src" / folder / "B.npy", a[: 4 if folder == "val" else 5])
  message = _fails(tmp_path, "4 images but A.npy has 5", source="npy", input=str(tmp_path / "src"))
  assert os.path.join("val", "B.npy") in message


def test_pix2pix_missing_val(tmp_path):
  save(str(tmp_path / "src" / "train" / "0.jpg"), np.concatenate(list(photo_patches(2, 8)), axis=1))
  _fails(tmp_path, "val: missing folder", source="pix2pix", input=str(tmp_path / "src"))


def test_unknown_problem_and_source():
  with pytest.raises(ValueError, match="unknown problem 'cifar100'"):
    problems.get_problem("cifar100")
  with pytest.raises(ValueError, match="unknown --source='svhn'"):
    generate.generate("svhn", "/tmp/unused")


@pytest.fixture()
def written(tmp_path):
  generate.generate(
    "folder", str(tmp_path / "set"), input=_folder(str(tmp_path / "src"), n=40), shards=4
  )
  return str(tmp_path / "set")


def test_missing_shard(written):
  os.remove(records.shard_path(written, "train", 3, 2, 4))
  with pytest.raises(DataError, match="missing shard") as info:
    problems.get_problem(written)
  assert "train-r03-s-0002-of-0004.tfrecords" in str(info.value)


def test_truncated_tfrecord(written):
  path = records.shard_path(written, "train", 3, 1, 4)
  size = os.path.getsize(path)
  with open(path, "r+b") as handle:
    handle.truncate(size - 10)
  with pytest.raises(DataError, match="corrupt TFRecord") as info:
    problems.get_problem(written)
  assert path in str(info.value)


def test_flipped_byte_in_tfrecord_data(written):
  path = records.shard_path(written, "train", 3, 3, 4)
  data = bytearray(open(path, "rb").read())
  first_length = int.from_bytes(data[:8], "little")
  data[12 + first_length + 4 + 12 + 30] ^= 0xFF  # inside the second record's payload
  open(path, "wb").write(bytes(data))
  with pytest.raises(DataError, match="corrupt TFRecord") as info:
    problems.get_problem(written)
  assert path in str(info.value)


def test_channel_mismatch_on_read(written):
  with pytest.raises(DataError, match="where 1 channels are asked"):
    problems.get_problem(written, channels=1)


def test_failed_overwrite_keeps_the_old_set(tmp_path, written):
  before = listing(written)
  spec = writer.DatasetSpec(
    splits={
      "train": writer.SplitData(3, _explode(), 1),
      "validation": writer.SplitData(1, iter([b""]), 1),
    },
    res_log2s=(3,),
    meta={},
  )
  with pytest.raises(KeyboardInterrupt):
    writer.write_set(written, spec, overwrite=True)
  assert listing(written) == before
  assert problems.get_problem(written).n_train == 36


def _explode():
  yield records.encode_example(photo_patches(1, 8)[0])
  raise KeyboardInterrupt  # as if the user pressed ^C mid-way


def test_stale_temporaries_of_a_killed_run_are_not_a_set_and_get_removed(tmp_path):
  split_dir = tmp_path / "out" / "train"
  os.makedirs(split_dir)
  stale = split_dir / ".train-r03-s-0000-of-0001.tfrecords.tmp-999999-deadbeef"
  stale.write_bytes(b"partial")
  with pytest.raises(DataError):
    problems.get_problem(str(tmp_path / "out"))
  generate.generate("folder", str(tmp_path / "out"), input=_folder(str(tmp_path / "src")))
  assert not stale.exists()


def test_pipeline_rejects_a_bad_split(written):
  with pytest.raises(ValueError, match="split"):
    input_pipeline.make_dataset(problems.get_problem(written), "validation", 4)


def test_cli_reports_one_line_and_exit_status_1(tmp_path):
  src = _folder(str(tmp_path / "src"))
  save(os.path.join(src, "grey.png"), grey_patches(1, 8)[0][..., None])
  cli = os.path.join(os.path.dirname(sys.executable), "glow-data")
  result = subprocess.run(
    [cli, "--source=folder", f"--input={src}", f"--output={tmp_path / 'out'}"],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("glow-data: error: ") and "grey.png" in last
  assert not os.path.exists(tmp_path / "out") or not [
    f for f in listing(str(tmp_path / "out")) if "tfrecords" in f
  ]
