"""CelebA attribute directions against means computed one attribute at a time in numpy."""

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2.cli import manipulators as manipulators_cli
from glow_tf2.demo import attributes
from glow_tf2.demo import manipulators


class _FlatModel:
  """A stand-in DemoModel whose code of an image is its pixels (times 2 for domain b)."""

  def __init__(self, domains=("a", "b"), dim=12):
    self.domains, self.data_dim = domains, dim

  def encode(self, images, domain, labels):
    assert labels is None
    codes = np.asarray(images, np.float64).reshape(len(images), -1)
    return codes * (2.0 if domain == "b" else 1.0)


def test_directions_are_mean_with_minus_mean_without():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, [30, 2, 2, 3]).astype(np.uint8)
  attr = rng.integers(0, 2, [30, 5])
  attr[:, 3] = 1  # seen only with: no direction
  batches = [{"image_a": images[i : i + 7], "attr": attr[i : i + 7]} for i in range(0, 30, 7)]
  got = attributes.compute_attribute_directions(_FlatModel(domains=("a",)), batches)
  codes = images.reshape(30, -1).astype(np.float64)
  keep = [0, 1, 2, 4]
  np.testing.assert_array_equal(got["labels"], keep)
  for row, j in enumerate(keep):
    with_j, without_j = codes[attr[:, j] == 1], codes[attr[:, j] == 0]
    np.testing.assert_allclose(
      got["direction_a"][row], with_j.mean(0) - without_j.mean(0), rtol=1e-5
    )
    assert got["counts"][row] == len(with_j)
  assert "direction_b" not in got


def test_a_pair_gets_b_directions_from_b_images():
  rng = np.random.default_rng(1)
  image_a = rng.integers(0, 256, [10, 2, 2, 3]).astype(np.uint8)
  image_b = 255 - image_a
  attr = np.tile([[1, 0], [0, 1]], (5, 1))
  got = attributes.compute_attribute_directions(
    _FlatModel(), [{"image_a": image_a, "image_b": image_b, "attr": attr}]
  )
  codes_b = 2.0 * image_b.reshape(10, -1)
  expected = codes_b[attr[:, 1] == 1].mean(0) - codes_b[attr[:, 1] == 0].mean(0)
  np.testing.assert_allclose(got["direction_b"][1], expected, rtol=1e-5)
  np.testing.assert_allclose(got["direction_b"][0], -expected, rtol=1e-5)  # complementary


def test_names_and_bad_shapes():
  assert attributes.attribute_names([31, 39, 40]) == ["Smiling", "Young", "attribute 40"]
  codes = attributes.AttributeCodes(dim=4, n_attributes=40)
  with pytest.raises(ValueError, match="do not match"):
    codes.add(np.zeros([3, 4]), np.zeros([3, 39]))
  with pytest.raises(ValueError, match="no batches"):
    attributes.compute_attribute_directions(_FlatModel(), [])


def test_attribute_directions_from_an_npz_equal_numpy(files, loaded, tmp_path):
  """write_manipulators(attributes=True), what glow-manipulators --attributes runs, on the demo's
  loaded model (the CLI's own load is tested in test_demo.py); then the CLI without `attr`."""
  with np.load(files["data"]) as data:
    image_a, image_b, labels = data["image_a"], data["image_b"], data["label"]
  # Three binary attributes made from the labels: even digit, digit < 5, digit == 7.
  attr = np.stack([labels % 2 == 0, labels < 5, labels == 7], axis=1).astype(np.int64)
  data_path, output = str(tmp_path / "faces.npz"), str(tmp_path / "directions.npz")
  np.savez(data_path, image_a=image_a, image_b=image_b, attr=attr)
  lines = manipulators.write_manipulators(
    files["saved_model"], data=data_path, output=output, attributes=True, model=loaded
  )
  assert lines[0].startswith("3 directions (5_o_Clock_Shadow, Arched_Eyebrows, Attractive)")
  with np.load(output, allow_pickle=False) as result:
    got = {k: result[k] for k in result.files}
  assert list(got["names"]) == list(attributes.CELEBA_ATTRIBUTES[:3])
  np.testing.assert_array_equal(got["counts"], attr.sum(0))
  for domain, images in (("a", image_a), ("b", image_b)):
    codes = loaded.signatures[f"encode_{domain}"](images=tf.constant(images))["eps"].numpy()
    codes = codes.astype(np.float64)
    expected = [codes[attr[:, j] == 1].mean(0) - codes[attr[:, j] == 0].mean(0) for j in range(3)]
    np.testing.assert_allclose(got[f"direction_{domain}"], np.stack(expected), atol=2e-5)
  # Without `attr` in the file, --attributes says what is missing (before loading any model).
  plain = str(tmp_path / "plain.npz")
  np.savez(plain, image_a=image_a, label=labels)
  argv = ["glow-manipulators", f"--saved_model={files['saved_model']}", f"--data={plain}"]
  assert manipulators_cli.main(argv + ["--attributes"]) == 1
