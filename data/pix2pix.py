"""Source `pix2pix`: the pix2pix paired layout `<root>/{train,val}/*.jpg`, each file holding A on
the left half and B on the right (edges2shoes, edges2handbags, facades, maps). `val` is written
as `validation`. Both halves get the same crop and resize."""

from __future__ import annotations

from glow_tf2.input import image_files as images
from glow_tf2.input import records
from glow_tf2.input.records import DataError
from glow_tf2.input.writer import DatasetSpec
from glow_tf2.input.writer import SplitData

DEFAULT_SHARDS = {"train": 64, "validation": 4}


def halves(path: str, channels: int):
  """(A, B) of one side-by-side file: uint8 [H, W/2, C] each."""
  image = images.load_image(path, channels)
  width = image.shape[1]
  if width % 2:
    raise DataError(f"{path}: odd width {width}, cannot split into A|B halves")
  return image[:, : width // 2], image[:, width // 2 :]


def split_files(root: str) -> dict[str, list[str]]:
  out = {}
  for split, folder in images.split_folders(root, "pix2pix").items():
    files = images.list_images(folder)
    if not files:
      raise DataError(f"{folder}: empty folder (no JPEG/PNG pairs)")
    out[split] = files
  return out


def _records(files, channels, check):
  for path in files:
    a, b = halves(path, channels)
    yield records.encode_pair(check(a, path), check(b, path))


def spec(input, image_size=None, channels=None, shards=None, **_) -> DatasetSpec:
  files = split_files(input)
  channels = channels or 3
  check = images.SizeChecker(image_size)
  size = image_size or check(halves(files["train"][0], channels)[0], files["train"][0]).shape[0]
  data = {
    split: SplitData(
      len(f), _records(images.shuffled(f), channels, check), shards or DEFAULT_SHARDS[split]
    )
    for split, f in files.items()
  }
  meta = {"source": "pix2pix", "paired": True, "n_classes": 0, "channels": channels}
  return DatasetSpec(splits=data, res_log2s=(records.resolution_log2(size),), meta=meta)
