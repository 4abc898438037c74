"""The demo's data beyond the model: example images for the page and manipulation directions.

Both are read from .npz files without pickles (`serving.npy_files.open_npz`: a file that is
no .npz, such as a text file, is one line naming it). Examples (`load_examples`, or
`make_examples` from arrays such as a problem's test split) are fitted to the model's image
shape; directions (`load_directions`, the file of `glow-manipulators`) are checked against the
model's code size. `demo.api` serves them.
"""

import base64
import dataclasses

import numpy as np

from glow_tf2.demo import images as image_io
from glow_tf2.demo.model import DemoModel
from glow_tf2.serving.npy_files import npz_array
from glow_tf2.serving.npy_files import open_npz


@dataclasses.dataclass
class Examples:
  """Test images for the page's strip: uint8 [N, H, W, C] per domain and int labels [N]."""

  images: dict[str, np.ndarray]
  labels: np.ndarray
  source: str


@dataclasses.dataclass
class Directions:
  """Manipulation directions: names [K] and, per domain, float32 [K, D]."""

  names: list[str]
  vectors: dict[str, np.ndarray]
  counts: list[int]
  source: str


def load_examples(path: str, model: DemoModel, max_examples: int = 32) -> Examples:
  """Examples from an .npz with `image_a` (or `images`), optional `image_b` and `label(s)`."""
  with open_npz(path) as data:
    keys = set(data.files)
    first = "image_a" if "image_a" in keys else "images" if "images" in keys else None
    if first is None:
      raise ValueError(f"{path}: no `image_a` (or `images`) array; has {sorted(keys)}")
    arrays = {"a": npz_array(data, first, path)}
    if "image_b" in keys:
      arrays["b"] = npz_array(data, "image_b", path)
    label_key = "label" if "label" in keys else "labels" if "labels" in keys else None
    labels = npz_array(data, label_key, path) if label_key else np.zeros(len(arrays["a"]), np.int64)
  return make_examples(arrays, labels, model, source=path, max_examples=max_examples)


def make_examples(
  arrays: dict[str, np.ndarray],
  labels: np.ndarray,
  model: DemoModel,
  source: str,
  max_examples: int = 32,
) -> Examples:
  """Checks and fits arrays of examples to the model (resampled if their size differs)."""
  out = {}
  for domain, array in arrays.items():
    if domain not in model.domains:
      continue
    array = np.asarray(array)
    if array.ndim == 3:
      array = array[..., None]
    if array.ndim != 4 or array.dtype != np.uint8:
      raise ValueError(
        f"{source}: examples must be uint8 [N, H, W, C], got {array.dtype} {array.shape}"
      )
    array = array[:max_examples]
    if array.shape[1:] != model.image_shape:
      array = np.stack(
        [image_io.to_model_image(_png_bytes(x), model.image_shape, "example")[0] for x in array]
      )
    out[domain] = array
  labels = np.asarray(labels).reshape(-1)[: len(out["a"])].astype(np.int64)
  if len(labels) != len(out["a"]):
    raise ValueError(f"{source}: {len(labels)} labels for {len(out['a'])} images")
  return Examples(out, labels, source)


def _png_bytes(image: np.ndarray) -> bytes:
  return base64.b64decode(image_io.to_png_base64(image))


def load_directions(path: str, model: DemoModel) -> Directions:
  """Directions from the .npz of `glow-manipulators` (names, direction_a[, direction_b])."""
  with open_npz(path) as data:
    if "names" not in data.files:
      raise ValueError(
        f"{path}: no `names` array; has {sorted(data.files)}: not glow-manipulators'?"
      )
    names = [str(n) for n in npz_array(data, "names", path)]
    counts = npz_array(data, "counts", path) if "counts" in data.files else [0] * len(names)
    counts = [int(c) for c in counts]
    vectors = {}
    for domain in model.domains:
      key = f"direction_{domain}"
      if key not in data.files:
        key = "direction_a"  # codes are shared: A's directions stand in for a missing B
      vectors[domain] = np.asarray(npz_array(data, key, path), np.float32)
  for domain, array in vectors.items():
    if array.shape != (len(names), model.data_dim) or not np.all(np.isfinite(array)):
      raise ValueError(
        f"{path}: direction_{domain} must be finite [{len(names)}, "
        f"{model.data_dim}], got {array.shape}: not made for this model?"
      )
  return Directions(names, vectors, counts, path)
