"""Manipulation directions from CelebA's 40 binary attributes (Glow's smile, age, ... sliders).

For attribute j and each domain d of the model,

    direction_d[j] = mean(encode_d(x) for x with attr_j = 1) - mean(encode_d(x) for attr_j = 0),

Glow's demo vectors (the original computed them from CelebA-HQ's annotations). Adding
`strength * direction_d[j]` to a face's code moves it towards having attribute j. The result has
the layout of `glow_tf2.demo.manipulators.compute_directions`, so glow-demo serves either.
"""

from collections.abc import Iterable

import numpy as np

from glow_tf2.demo import model as model_lib

# CelebA's attributes, in the order of list_attr_celeba.txt (and of a record's `attr` feature).
CELEBA_ATTRIBUTES = (
  "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
  "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
  "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
  "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
  "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
  "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
  "Wearing_Necktie", "Young",
)  # fmt: skip


class AttributeCodes:
  """Running sums of codes with and without each of K binary attributes (float64)."""

  def __init__(self, dim: int, n_attributes: int):
    self.dim = dim
    self.sums = np.zeros([2, n_attributes, dim])  # [without, with]
    self.counts = np.zeros([2, n_attributes], np.int64)

  def add(self, codes: np.ndarray, attributes: np.ndarray) -> None:
    codes = np.asarray(codes, np.float64)
    present = np.asarray(attributes) > 0
    if codes.shape != (len(present), self.dim) or present.shape[1:] != self.counts.shape[1:]:
      raise ValueError(
        f"codes {codes.shape} and attributes {present.shape} do not match "
        f"D={self.dim}, K={self.counts.shape[1]}"
      )
    weights = present.astype(np.float64)  # [n, K]
    self.sums[1] += weights.T @ codes
    self.sums[0] += (1.0 - weights).T @ codes
    self.counts[1] += present.sum(axis=0)
    self.counts[0] += (~present).sum(axis=0)

  def directions(self) -> tuple[list[int], np.ndarray, list[int]]:
    """(attribute indices, float32 [K', D] directions, counts with) for attributes seen both ways."""
    keep = [j for j in range(self.counts.shape[1]) if self.counts[0, j] and self.counts[1, j]]
    rows = [self.sums[1, j] / self.counts[1, j] - self.sums[0, j] / self.counts[0, j] for j in keep]
    array = np.stack(rows).astype(np.float32) if rows else np.zeros([0, self.dim], np.float32)
    return keep, array, [int(self.counts[1, j]) for j in keep]


def compute_attribute_directions(
  model: model_lib.DemoModel, batches: Iterable[dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
  """Directions of every attribute seen with and without, in every domain of `model`.

  Args:
    model: the loaded SavedModel.
    batches: dicts with "image_a" (and "image_b" for a pair's B side; else B uses A's
      directions), uint8 [n, H, W, C], and "attr" int [n, K] of 0/1.

  Returns:
    {"labels": int64 [K'] attribute indices, "counts": int64 [K'] images with the attribute,
    "direction_a": float32 [K', D], and "direction_b" for a pair}.
  """
  sums, seen_b = {}, False
  for batch in batches:
    attributes = np.asarray(batch["attr"])
    for domain in model.domains:
      images = batch["image_a"] if domain == "a" else batch.get("image_b")
      if images is None:
        continue
      seen_b |= domain == "b"
      if domain not in sums:
        sums[domain] = AttributeCodes(model.data_dim, attributes.shape[1])
      sums[domain].add(model.encode(images, domain, None), attributes)
  if "a" not in sums:
    raise ValueError("no batches with images to compute attribute directions from")
  keep, direction_a, counts = sums["a"].directions()
  result = {
    "labels": np.asarray(keep, np.int64),
    "counts": np.asarray(counts, np.int64),
    "direction_a": direction_a,
  }
  if "b" in model.domains:
    result["direction_b"] = sums["b"].directions()[1] if seen_b else direction_a.copy()
  return result


def attribute_names(indices) -> list[str]:
  """Display names of attribute indices (CelebA's, else `attribute <j>`)."""
  table = CELEBA_ATTRIBUTES
  return [table[j] if 0 <= j < len(table) else f"attribute {j}" for j in indices]


__all__ = [
  "CELEBA_ATTRIBUTES",
  "AttributeCodes",
  "attribute_names",
  "compute_attribute_directions",
]
