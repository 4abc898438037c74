"""Image grids for samples and translations: numpy in, PNG out."""

from collections.abc import Sequence
import math
import os

import numpy as np
from PIL import Image


def make_grid(
  images: np.ndarray, n_cols: int | None = None, pad: int = 1, pad_value: int = 128
) -> np.ndarray:
  """uint8 `[N, H, W, C]` -> one uint8 `[rows*(H+pad)+pad, cols*(W+pad)+pad, C]` image.

  Images fill the grid row by row; `n_cols` defaults to ceil(sqrt(N)). Empty cells stay at
  `pad_value`.
  """
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"make_grid: images must be [N, H, W, C], got shape {images.shape}")
  n, h, w, c = images.shape
  n_cols = n_cols or max(1, math.ceil(math.sqrt(n)))
  n_rows = max(1, math.ceil(n / n_cols))
  grid = np.full((n_rows * (h + pad) + pad, n_cols * (w + pad) + pad, c), pad_value, np.uint8)
  for i in range(n):
    r, col = divmod(i, n_cols)
    y, x = pad + r * (h + pad), pad + col * (w + pad)
    grid[y : y + h, x : x + w] = images[i]
  return grid


def make_rows_grid(rows: Sequence[np.ndarray], pad: int = 1) -> np.ndarray:
  """Stacks equally long batches `[N, H, W, C]` as grid rows (e.g. source / translation / target)."""
  n = rows[0].shape[0]
  return make_grid(np.concatenate(list(rows), axis=0), n_cols=n, pad=pad)


def grid_cells(grid: np.ndarray, cell: int, pad: int = 1) -> np.ndarray:
  """The cells of a `make_grid` grid of square `cell` x `cell` images: `[rows, cols, cell, cell,
  C]`, the inverse of `make_grid` for a full grid (empty cells come back as `pad_value`).

  Raises:
    ValueError: the grid's size is not `pad + k * (cell + pad)` both ways.
  """
  grid = np.asarray(grid)
  step = cell + pad
  (n_rows, rest_h), (n_cols, rest_w) = (
    divmod(grid.shape[0] - pad, step),
    divmod(grid.shape[1] - pad, step),
  )
  if rest_h or rest_w or n_rows < 1 or n_cols < 1:
    raise ValueError(
      f"grid_cells: a grid of {cell}-pixel cells with padding {pad} cannot be "
      f"{grid.shape[0]}x{grid.shape[1]}"
    )
  return np.stack(
    [
      np.stack(
        [
          grid[pad + r * step : pad + r * step + cell, pad + c * step : pad + c * step + cell]
          for c in range(n_cols)
        ]
      )
      for r in range(n_rows)
    ]
  )


def save_row_groups(path: str, groups: Sequence[Sequence[np.ndarray]]) -> None:
  """Groups of equally long rows `[N, H, W, C]` as one RGB PNG grid, a white row between groups
  (e.g. A -> B's rows, then B -> A's)."""
  rows = []
  for group in groups:
    if rows:
      rows.append(np.full_like(group[0], 255))
    rows.extend(group)
  rows = [r if r.shape[-1] == 3 else np.repeat(r, 3, axis=-1) for r in rows]
  save_png(path, make_rows_grid(rows))


def save_png(path: str, grid: np.ndarray) -> None:
  """Writes a uint8 `[H, W, C]` grid (C = 1 or 3) as PNG, atomically (temp file + rename)."""
  grid = np.asarray(grid, np.uint8)
  image = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
  tmp = f"{path}.tmp{os.getpid()}"
  image.save(tmp, format="PNG")
  os.replace(tmp, path)
