"""glow-manipulators: a manipulation direction per label, from labelled data and a SavedModel.

    glow-manipulators --saved_model=DIR (--problem=NAME [--data_dir=D] | --data=FILE.npz)
                      [--split=train] [--max_examples=2000] [--output=FILE.npz]

For each label k and each domain d of the model, the direction is

    direction_d[k] = mean(encode_d(x) for x with label k) - mean(encode_d(x) for the rest),

the original's attribute vectors (there: 40 CelebA attributes; here the problem's classes, e.g.
digits or sandal / sneaker / ankle boot). Adding `strength * direction_d[k]` to an image's code
moves it towards label k. Labels with no example, or with every example, have no direction and
are left out.

--data is an .npz of `image_a` (or `images`), optional `image_b` (uint8 [N, H, W, C]) and
`label` (or `labels`) [N]. Without `image_b` a pair's B directions are A's (the codes are shared).

Writes `DIR/assets.extra/manipulators.npz` (names [K] str, labels [K], counts [K], direction_a
[K, D] float32, direction_b) and, unless --n_examples=0, `DIR/assets.extra/examples.npz` (a strip
of test images for glow-demo). Both load with `np.load(..., allow_pickle=False)`.
"""

from collections.abc import Iterable
from collections.abc import Sequence
import os

import numpy as np

from glow_tf2.demo import api as api_lib
from glow_tf2.demo import attributes as attributes_lib
from glow_tf2.demo import model as model_lib
from glow_tf2.serving import npy_files

# Names of the labels of problems whose labels are classes.
LABEL_NAMES = {
  "mnist": tuple(f"digit {i}" for i in range(10)),
  "fashion_edges2shoes": ("sandal", "sneaker", "ankle boot"),
  "cifar10": (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
  ),
}


class MeanCodes:
  """Running per-label sums of codes (float64), for mean-of-label minus mean-of-rest."""

  def __init__(self, dim: int):
    self.dim = dim
    self.sums: dict[int, np.ndarray] = {}
    self.counts: dict[int, int] = {}

  def add(self, codes: np.ndarray, labels: np.ndarray) -> None:
    codes = np.asarray(codes, np.float64)
    labels = np.asarray(labels).reshape(-1)
    if codes.shape != (len(labels), self.dim):
      raise ValueError(f"codes {codes.shape} do not match labels {labels.shape} and D={self.dim}")
    for label in np.unique(labels):
      mask = labels == label
      key = int(label)
      self.sums[key] = self.sums.get(key, np.zeros(self.dim)) + codes[mask].sum(axis=0)
      self.counts[key] = self.counts.get(key, 0) + int(mask.sum())

  def directions(self) -> tuple[list[int], np.ndarray, list[int]]:
    """(labels, float32 [K, D] directions, counts) for labels with examples in and out."""
    total_sum = sum(self.sums.values())
    total = sum(self.counts.values())
    labels, rows, counts = [], [], []
    for label in sorted(self.sums):
      n = self.counts[label]
      if n == total:
        continue
      rows.append(self.sums[label] / n - (total_sum - self.sums[label]) / (total - n))
      labels.append(label)
      counts.append(n)
    array = np.stack(rows).astype(np.float32) if rows else np.zeros([0, self.dim], np.float32)
    return labels, array, counts


def compute_directions(
  model: model_lib.DemoModel, batches: Iterable[dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
  """Directions of every label in every domain of `model`.

  Args:
    model: the loaded SavedModel.
    batches: dicts with "image_a" (and "image_b" for a pair's B side; else B uses A's codes),
      uint8 [n, H, W, C], and "label" int [n].

  Returns:
    {"labels": int64 [K], "counts": int64 [K], "direction_a": float32 [K, D], and
    "direction_b" for a pair}.
  """
  sums = {domain: MeanCodes(model.data_dim) for domain in model.domains}
  seen_b = False
  for batch in batches:
    labels = np.asarray(batch["label"]).reshape(-1)
    model_labels = labels.astype(np.int32) if model.n_classes else None
    sums["a"].add(model.encode(batch["image_a"], "a", model_labels), labels)
    if "b" in sums and batch.get("image_b") is not None:
      seen_b = True
      sums["b"].add(model.encode(batch["image_b"], "b", model_labels), labels)
  labels, direction_a, counts = sums["a"].directions()
  result = {
    "labels": np.asarray(labels, np.int64),
    "counts": np.asarray(counts, np.int64),
    "direction_a": direction_a,
  }
  if "b" in sums:
    result["direction_b"] = sums["b"].directions()[1] if seen_b else direction_a.copy()
  return result


def label_names(
  labels: Sequence[int], problem: str | None, names: Sequence[str] | None = None
) -> list[str]:
  """Display names: --label_names, else the problem's class names, else `label <k>`."""
  table = list(names) if names else LABEL_NAMES.get(problem or "", ())
  return [table[k] if 0 <= k < len(table) else f"label {k}" for k in labels]


def _npz_batches(path: str, batch_size: int, max_examples: int, attributes: bool = False):
  with api_lib.open_npz(path) as data:
    keys = set(data.files)
    key_a = "image_a" if "image_a" in keys else "images" if "images" in keys else None
    key_label = "label" if "label" in keys else "labels" if "labels" in keys else None
    if attributes:
      key_label = "attr" if "attr" in keys else None
    if key_a is None or key_label is None:
      wanted = "`attr` [N, K] of 0/1" if attributes else "`label` (or `labels`)"
      raise ValueError(f"{path}: needs `image_a` (or `images`) and {wanted}; has {sorted(keys)}")
    image_a = npy_files.npz_array(data, key_a, path)[:max_examples]
    image_b = (
      npy_files.npz_array(data, "image_b", path)[:max_examples] if "image_b" in keys else None
    )
    labels = npy_files.npz_array(data, key_label, path)[:max_examples]
  if image_a.ndim == 3:
    image_a = image_a[..., None]
    image_b = None if image_b is None else image_b[..., None]
  if len(labels) != len(image_a):
    raise ValueError(f"{path}: {len(labels)} labels for {len(image_a)} images")
  for start in range(0, len(image_a), batch_size):
    batch = {
      "image_a": image_a[start : start + batch_size],
      "attr" if attributes else "label": labels[start : start + batch_size],
    }
    if image_b is not None:
      batch["image_b"] = image_b[start : start + batch_size]
    yield batch


def _problem_batches(
  problem: str,
  data_dir: str | None,
  split: str,
  image_shape,
  batch_size: int,
  max_examples: int,
  attributes: bool = False,
):
  import glow_tf2  # pylint: disable=g-import-not-at-top

  spec = glow_tf2.get_problem(
    problem, data_dir=data_dir, channels=image_shape[-1], crop_size=image_shape[0]
  )
  if attributes and not spec.has_attr:
    raise ValueError(f"--problem={problem} has no attributes (CelebA's 40): use its labels")
  if not attributes and not spec.n_classes:
    raise ValueError(f"--problem={problem} has no labels: nothing to compute directions from")
  dataset = glow_tf2.make_dataset(spec, split, batch_size, shuffle=False, repeat=False)
  seen = 0
  for batch in dataset:
    keep = ("image_a", "image_b", "attr" if attributes else "label")
    batch = {k: v.numpy() for k, v in batch.items() if k in keep}
    if batch["image_a"].shape[1:] != tuple(image_shape):
      raise ValueError(
        f"--problem={problem} has images {batch['image_a'].shape[1:]}, the model "
        f"takes {tuple(image_shape)}"
      )
    take = min(len(batch["image_a"]), max_examples - seen)
    yield {k: v[:take] for k, v in batch.items()}
    seen += take
    if seen >= max_examples:
      break


def write_npz(path: str, arrays: dict[str, np.ndarray]) -> str:
  """np.savez to `path` atomically (a reader never sees half a file)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.npz"
  np.savez(tmp, **arrays)
  os.replace(tmp, path)
  return path


def write_manipulators(
  saved_model: str,
  problem: str | None = None,
  data_dir: str | None = None,
  data: str | None = None,
  split: str = "train",
  max_examples: int = 2000,
  batch_size: int = 100,
  names: Sequence[str] | None = None,
  output: str | None = None,
  n_examples: int = 12,
  attributes: bool = False,
  model: model_lib.DemoModel | None = None,
) -> list[str]:
  """Computes and writes the directions (and, from a problem, an example strip) of a SavedModel.

  Exactly one of `problem` and `data` (an .npz) gives the labelled images; see the module doc.
  With `attributes` the directions are those of the images' binary attributes (CelebA's 40,
  `glow_tf2.demo.attributes`) instead of their class labels. `model`: the SavedModel at
  `saved_model` already loaded (a `DemoModel`), else it is loaded here.

  Returns:
    The lines to report, one per file written.

  Raises:
    FileNotFoundError, ValueError, KeyError: bad input, with a message naming it.
  """
  if bool(problem) == bool(data):
    raise ValueError("give exactly one of --problem and --data")
  if max_examples < 1 or batch_size < 1 or n_examples < 0:
    raise ValueError(
      f"--max_examples={max_examples} and --batch_size={batch_size} must be at least 1, "
      f"--n_examples={n_examples} at least 0"
    )
  model_lib.check_saved_model(saved_model)
  if data:
    batches = list(_npz_batches(data, batch_size, max_examples, attributes))
  if model is None:
    model = model_lib.DemoModel(saved_model)
  if not data:
    batches = _problem_batches(
      problem, data_dir, split, model.image_shape, batch_size, max_examples, attributes
    )
  if attributes:
    result = attributes_lib.compute_attribute_directions(model, batches)
    if not len(result["labels"]):
      raise ValueError("no attribute seen both with and without: no direction to compute")
    names = list(names) if names else attributes_lib.attribute_names(result["labels"].tolist())
  else:
    result = compute_directions(model, batches)
    if not len(result["labels"]):
      raise ValueError("fewer than two labels in the data: no direction to compute")
    names = label_names(result["labels"].tolist(), problem, names)
  output = output or model_lib.default_manipulators_path(model.path)
  write_npz(output, dict(result, names=np.asarray(names, dtype=str)))
  lines = [
    f"{len(names)} directions ({', '.join(names)}) from "
    f"{int(result['counts'].sum())} examples -> {output}"
  ]
  if problem and n_examples > 0:
    import glow_tf2  # pylint: disable=g-import-not-at-top  (only this path needs the data code)

    spec = glow_tf2.get_problem(
      problem, data_dir=data_dir, channels=model.image_shape[-1], crop_size=model.image_shape[0]
    )
    batch = next(iter(glow_tf2.make_dataset(spec, "test", n_examples, shuffle=False, repeat=False)))
    examples = {k: v.numpy() for k, v in batch.items() if k in ("image_a", "image_b", "label")}
    path = write_npz(model_lib.default_examples_path(model.path), examples)
    lines.append(f"{len(examples['label'])} test examples -> {path}")
  return lines
