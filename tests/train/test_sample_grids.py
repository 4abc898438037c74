"""The sample grids glow-train writes: one PNG per side and epoch, a row per temperature."""

import os

import numpy as np
import pytest

from glow_tf2 import image_grid
from glow_tf2.config import TEMPERATURES
from glow_tf2.train import outputs as outputs_lib
from tests import helpers


def _batches(side: int, n: int = 5, size: int = 4, channels: int = 1) -> list[np.ndarray]:
  """A batch per temperature whose pixel (row i, draw j) is 100 * side + 10 * i + j."""
  return [
    np.stack([np.full((size, size, channels), 100 * side + 10 * i + j, np.uint8) for j in range(n)])
    for i in range(len(TEMPERATURES))
  ]


def test_grids_write_one_png_per_side_with_a_row_per_temperature(tmp_path):
  outputs = outputs_lib.Outputs(str(tmp_path), {"problem": "x"}, ("A", "B"), 4, 0)
  samples = {"A": _batches(0), "B": _batches(1)}
  translations = {"A2B": image_grid.make_rows_grid([_batches(0)[0]] * 3)}
  outputs.grids(3, 30, samples, translations)
  pngs = sorted(name for name in os.listdir(tmp_path) if name.endswith(".png"))
  assert pngs == ["A2B_epoch_3.png", "A_samples_epoch_3.png", "B_samples_epoch_3.png"]
  assert not [name for name in os.listdir(tmp_path) if ".tmp" in name]  # renamed into place
  for side, key in enumerate("AB"):
    grid = helpers.decode_file(str(tmp_path / outputs_lib.SAMPLE_GRID.format(side=key, epoch=3)))
    cells = helpers.grid_cells(grid, len(TEMPERATURES), 5, 4)
    for i in range(len(TEMPERATURES)):
      for j in range(5):
        assert np.all(cells[i, j] == 100 * side + 10 * i + j), (key, i, j)


def test_grid_cells_inverts_make_grid():
  images = np.arange(6 * 3 * 3 * 2, dtype=np.uint8).reshape(6, 3, 3, 2)
  cells = image_grid.grid_cells(image_grid.make_grid(images, n_cols=3), 3)
  assert cells.shape == (2, 3, 3, 3, 2)
  np.testing.assert_array_equal(cells.reshape(6, 3, 3, 2), images)
  # A grid with an empty cell gives it back as the padding colour.
  cells = image_grid.grid_cells(image_grid.make_grid(images[:5], n_cols=3), 3)
  assert np.all(cells[1, 2] == 128)


def test_grid_cells_refuses_a_grid_of_other_cells():
  grid = image_grid.make_grid(np.zeros((4, 3, 3, 1), np.uint8))  # 2x2 cells of 3 pixels
  with pytest.raises(ValueError, match="a grid of 4-pixel cells with padding 1 cannot be 9x9"):
    image_grid.grid_cells(grid, 4)
