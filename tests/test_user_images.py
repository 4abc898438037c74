"""user_images: a user's files found (recursively, named by their place under the input) and
fitted to a model's shape (crop or resize, channels converted), on real photos."""

import os

import numpy as np
from PIL import Image
import pytest
import skimage.data

import glow_tf2
from glow_tf2 import user_images
from glow_tf2.input import image_files
from tests import helpers


@pytest.fixture
def tree(tmp_path):
  """A folder of real images in mixed formats and sizes, with what must be left out."""
  photo = skimage.data.astronaut()
  helpers.save(str(tmp_path / "in" / "10.png"), photo[:40, :60])
  helpers.save(str(tmp_path / "in" / "2.jpg"), photo[100:180, 200:250], quality=90)
  helpers.save(str(tmp_path / "in" / "sub" / "grey.JPEG"), skimage.data.camera()[:64, :48, None])
  helpers.save(str(tmp_path / "in" / "sub" / "deeper" / "a.png"), photo[::8, ::8])
  helpers.save(str(tmp_path / "in" / ".hidden.png"), photo[:8, :8])
  helpers.save(str(tmp_path / "in" / ".cache" / "b.png"), photo[:8, :8])
  helpers.save(str(tmp_path / "in" / "out" / "old.png"), photo[:8, :8])  # a former run's output
  (tmp_path / "in" / "notes.txt").write_text("not an image")
  return tmp_path


def test_find_images_recurses_in_natural_order_and_names_outputs_by_relative_path(tree):
  found = user_images.find_images([str(tree / "in")], skip=str(tree / "in" / "out"))
  assert [f.stem for f in found] == ["2", "10", "sub/deeper/a", "sub/grey"]
  assert [os.path.relpath(f.path, tree / "in") for f in found] == [
    "2.jpg",
    "10.png",
    os.path.join("sub", "deeper", "a.png"),
    os.path.join("sub", "grey.JPEG"),
  ]
  # Without the skip, the former output is an input like any other.
  assert "out/old" in [f.stem for f in user_images.find_images([str(tree / "in")])]


def test_find_images_takes_files_by_name_once_each(tree):
  single = str(tree / "in" / "sub" / "grey.JPEG")
  notes = str(tree / "in" / "notes.txt")  # named by the user: taken (and fails when decoded)
  found = user_images.find_images([single, str(tree / "in" / "sub"), notes])
  assert [(f.path, f.stem) for f in found] == [
    (single, "grey"),
    (str(tree / "in" / "sub" / "deeper" / "a.png"), "deeper/a"),
    (notes, "notes"),
  ]


def test_find_images_refuses_two_files_of_one_output_and_a_missing_input(tree):
  helpers.save(str(tree / "in" / "2.png"), np.zeros((4, 4, 3), np.uint8))
  with pytest.raises(ValueError, match=r"2\.jpg and .*2\.png would both be written as 2\.png"):
    user_images.find_images([str(tree / "in")])
  with pytest.raises(FileNotFoundError, match="nope: no such file or folder"):
    user_images.find_images([str(tree / "nope")])


def test_load_keeps_grey_grey_and_names_a_corrupt_file(tree):
  assert user_images.load(str(tree / "in" / "sub" / "grey.JPEG")).shape == (64, 48, 1)
  assert user_images.load(str(tree / "in" / "2.jpg")).shape == (80, 50, 3)
  with pytest.raises(glow_tf2.DataError, match="notes.txt: unreadable or corrupt image"):
    user_images.load(str(tree / "in" / "notes.txt"))


def test_crop_takes_the_centre_and_resize_the_whole_picture():
  # Three bands across a 2:1 picture: crop keeps the middle band only, resize all three.
  image = np.zeros((32, 64, 1), np.uint8)
  image[:, 16:48], image[:, 48:] = 128, 255
  crop = user_images.fit(image, (16, 16, 1), "crop")
  resize = user_images.fit(image, (16, 16, 1), "resize")
  assert (crop == 128).all()
  np.testing.assert_array_equal(resize[0, :, 0], [0] * 4 + [128] * 8 + [255] * 4)
  # A tall picture is cropped in height.
  tall = image.transpose(1, 0, 2)
  np.testing.assert_array_equal(user_images.centre_crop(tall, 1.0), tall[16:48])


def test_fit_of_real_photos_in_every_size_to_the_models_shape():
  photo = skimage.data.astronaut()
  for part in (photo[:37, :101], photo[:300, :20], photo[:5, :7], photo):
    for how in user_images.FITS:
      for shape in ((32, 32, 1), (32, 32, 3), (16, 32, 3)):
        out = user_images.fit(part, shape, how)
        assert out.shape == shape and out.dtype == np.uint8
  # Down by exactly 2: the area average of each 2x2 block (PIL rounds, glow-data floors).
  fitted = user_images.fit(photo, (256, 256, 3), "resize").astype(int)
  blocks = photo.reshape(256, 2, 256, 2, 3).astype(int).mean(axis=(1, 3))
  assert np.abs(fitted - blocks).max() <= 1
  # Crop of a non-square photo: its centre square, scaled as resize scales.
  wide = photo[100:228, :]  # 128 x 512
  np.testing.assert_array_equal(
    user_images.fit(wide, (32, 32, 3), "crop"),
    user_images.fit(wide[:, 192:320], (32, 32, 3), "resize"),
  )
  # Up: bicubic, the same as PIL's.
  small = photo[:8, :8]
  expected = np.asarray(Image.fromarray(small).resize((32, 32), Image.Resampling.BICUBIC))
  np.testing.assert_array_equal(user_images.fit(small, (32, 32, 3), "resize"), expected)


def test_channels_colour_to_grey_by_luma_and_grey_to_colour_repeated():
  photo = skimage.data.astronaut()[:32, :32]
  np.testing.assert_array_equal(
    user_images.fit(photo, (32, 32, 1), "crop"), image_files.to_grey(photo)
  )
  grey = skimage.data.camera()[:32, :32, None]
  colour = user_images.fit(grey, (32, 32, 3), "crop")
  for c in range(3):
    np.testing.assert_array_equal(colour[..., c : c + 1], grey)
  with pytest.raises(ValueError, match="fit must be one of crop, resize, got 'squash'"):
    user_images.fit(grey, (32, 32, 1), "squash")


def test_describe_fit_says_what_happens():
  assert user_images.describe_fit((32, 32, 1), "crop") == (
    "centre-cropped to 1:1 and scaled to 32x32, grey (colour converted by luma)"
  )
  assert user_images.describe_fit((16, 32, 3), "resize") == (
    "resized whole to 16x32 (aspect ratio not kept), colour (grey repeated)"
  )
