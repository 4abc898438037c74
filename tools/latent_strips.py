"""Interpolation and manipulation strips of a coupled pair: what a density model's codes buy.

Both strips move a code of domain A and show it decoded twice, by A's flow and, translated at
T = 0, by B's (decode_B(rho * z), the conditional mean code of B given that z,
`glow_tf2.ImagePair.conditional_code`):

- `interpolation_rows`: for two images x, y of A, the codes on the line between them,
  z_t = (1 - t) encode_A(x) + t encode_A(y), t = 0, 1/(n-1), ..., 1. Linear, as in Glow and the
  demo; the end frames are decode_A(encode_A(x)) = x (the flow is exact) and its translation.
- `manipulation_rows`: for an image x of A and a label's direction v (`label_directions`: the
  mean code of the label's training images minus the mean code of the others, the original's
  attribute vectors), the codes encode_A(x) + s v at strengths s; s = 0 is x itself.

The grids are plain uint8 image grids (`image_grid.make_grid`): for each input, one row of A
and one row of its translation into B.
"""

from collections.abc import Iterable
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from glow_tf2 import image_grid
from glow_tf2.demo import manipulators
from glow_tf2.input import pipeline as input_pipeline
from glow_tf2_tools import coupled_figures

STRENGTHS = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)


def _encode(pair, images, labels=None) -> tf.Tensor:
  """A's codes `[N, D]` of uint8 images at the centres of their bins (no dequantisation noise);
  `labels` are used only by a class-conditional pair."""
  return pair.encode(images, "a", coupled_figures.class_labels(pair.glow_a, labels))


def _decoded_rows(pair, codes: tf.Tensor, label=None) -> list[np.ndarray]:
  """[decode_A(codes), decode_B(rho * codes)] as uint8 batches (B's: the pair's conditional mean
  code); `label`: the class of every code, for a class-conditional pair."""
  labels = coupled_figures.class_labels(pair.glow_a, np.full([codes.shape[0]], label or 0))
  return [
    pair.decode(codes, "a", labels).numpy(),
    pair.decode(pair.conditional_code(codes), "b", labels).numpy(),
  ]


def interpolation_rows(pair, images_from, images_to, n_frames: int = 8, labels=None) -> np.ndarray:
  """A uint8 grid of n_frames columns; two rows per pair (x, y): A along the line, its B.

  `labels` [N]: for a class-conditional pair, the class of both ends of line i (and of its
  frames).
  """
  if n_frames < 2:
    raise ValueError(f"interpolation: n_frames must be at least 2, got {n_frames}")
  if len(images_from) != len(images_to):
    raise ValueError(f"interpolation: {len(images_from)} start images but {len(images_to)} ends")
  start, end = _encode(pair, images_from, labels), _encode(pair, images_to, labels)
  t = tf.linspace(0.0, 1.0, n_frames)[:, None]
  rows = []
  for i in range(len(images_from)):
    label = None if labels is None else labels[i]
    rows += _decoded_rows(pair, (1.0 - t) * start[i] + t * end[i], label)
  return image_grid.make_rows_grid(rows)


def label_directions(pair, batches: Iterable[dict[str, np.ndarray]]) -> dict[int, np.ndarray]:
  """{label: mean code of its images - mean code of the others} over `batches` of
  {"image_a" uint8 [n, H, W, C], "label" [n]}, encoded by the pair's A (a class-conditional
  one given each image's label)."""
  sums = manipulators.MeanCodes(pair.config.data_dim)
  for batch in batches:
    sums.add(_encode(pair, batch["image_a"], batch["label"]).numpy(), batch["label"])
  labels, directions, _ = sums.directions()
  return dict(zip(labels, directions))


def manipulation_rows(
  pair, images, direction, strengths: Sequence[float] = STRENGTHS, labels=None
) -> np.ndarray:
  """A uint8 grid of len(strengths) columns; two rows per image x: A at encode_A(x) + s v, its B.

  `labels` [N]: the images' classes, for a class-conditional pair (kept at every strength).
  """
  codes = _encode(pair, images, labels)
  s = tf.constant(strengths, tf.float32)[:, None]
  direction = tf.constant(direction, tf.float32)
  rows = []
  for i in range(len(images)):
    label = None if labels is None else labels[i]
    rows += _decoded_rows(pair, codes[i] + s * direction, label)
  return image_grid.make_rows_grid(rows)


def _train_batches(run: str, max_examples: int, batch_size: int = 100):
  """The first `max_examples` training pairs of a run's problem (rounded up to a batch)."""
  dataset = input_pipeline.make_dataset(
    coupled_figures.problem_of(run), "train", batch_size, shuffle=False, repeat=False
  )
  for batch in dataset.take(-(-max_examples // batch_size)):
    yield {k: batch[k].numpy() for k in ("image_a", "label")}


def write_latent_strips(
  run: str,
  prefix: str,
  label: int | None = None,
  n_inputs: int = 3,
  max_examples: int = 2000,
) -> dict[str, str]:
  """Writes <prefix>_interpolation.png and <prefix>_manipulation.png; returns {what: path}.

  Interpolations join test image i to test image i + n_inputs (of a class-conditional pair: to
  the first test image after those of the same class). The manipulation moves the first
  n_inputs test images not of `label` (default: the highest label with a direction) along its
  direction, from the first `max_examples` training pairs, at `STRENGTHS`.
  """
  pair, test = coupled_figures.load_coupled(run)
  directions = label_directions(pair, _train_batches(run, max_examples))
  if not directions:
    raise ValueError(f"{run}: the training pairs have a single label, there is no direction")
  label = max(directions) if label is None else label
  if label not in directions:
    raise ValueError(f"{run}: no direction for label {label} (labels: {sorted(directions)})")
  images, test_labels = test["image_a"], test["label"]
  out = {
    "interpolation": f"{prefix}_interpolation.png",
    "manipulation": f"{prefix}_manipulation.png",
  }
  ends = np.arange(n_inputs, 2 * n_inputs)
  if pair.config.n_classes:  # a line stays in its class
    later = np.arange(len(images)) >= n_inputs
    same = [np.flatnonzero(later & (test_labels == y)) for y in test_labels[:n_inputs]]
    if not all(len(k) for k in same):
      raise ValueError(f"{run}: a test image's class has no second image to interpolate to")
    ends = np.array([k[0] for k in same])
  image_grid.save_png(
    out["interpolation"],
    interpolation_rows(pair, images[:n_inputs], images[ends], labels=test_labels[:n_inputs]),
  )
  chosen = test_labels != label
  image_grid.save_png(
    out["manipulation"],
    manipulation_rows(
      pair,
      images[chosen][:n_inputs],
      directions[label],
      labels=test_labels[chosen][:n_inputs],
    ),
  )
  return out
