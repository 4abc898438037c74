"""The benchmarks' real photo patches at every size glow-bench's memory table asks for."""

import numpy as np

from glow_tf2_tools import sample_images


def test_photo_patches_reach_256_px():
  for size in (8, 64, 128, 256):
    patches = sample_images.photo_patches(4, size)
    assert patches.shape == (4, size, size, 3) and patches.dtype == np.uint8
    assert patches.std() > 10  # photos, not a flat fill
