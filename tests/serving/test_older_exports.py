"""A SavedModel exported before per-row seeds, served by glow-serve and glow-demo as it was.

Such an export's `sample_*` and `sample_pairs` take one scalar int32 `seed`, and its
`translate_a2b` / `translate_b2a` take `temperature` `[N]` and a scalar `seed` besides the images.
A stand-in with exactly those signatures (plain TF ops, no flow: saving it takes a second) is
written here: glow-serve must still fill a translation's left-out temperature and seed
(`predict_request.OPTIONAL_INPUTS`) and take the scalar seed in the columnar format only, and
glow-demo must pass one scalar seed per call.
"""

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2.demo.model import DemoModel
from glow_tf2.serving import server as serve
from glow_tf2.serving.predict_request import RequestError

SHAPE = (4, 4, 1)


class _OlderExport(tf.Module):
  """translate_d: images + seed where T > 0 (mod 256); sample_d: every pixel seed mod 256."""

  def __init__(self):
    super().__init__()
    images = tf.TensorSpec((None,) + SHAPE, tf.uint8, name="images")
    temperature = tf.TensorSpec([None], tf.float32, name="temperature")
    seed = tf.TensorSpec([], tf.int32, name="seed")

    def translate(images, temperature, seed):
      shift = tf.where(temperature > 0, seed, 0)[:, None, None, None]
      return {"images": tf.cast((tf.cast(images, tf.int32) + shift) % 256, tf.uint8)}

    def sample(temperature, seed):
      n = tf.shape(temperature)[0]
      return {"images": tf.cast(tf.fill(tf.concat([[n], SHAPE], 0), seed % 256), tf.uint8)}

    def sample_pairs(temperature, seed):
      return {
        "images_a": sample(temperature, seed)["images"],
        "images_b": 255 - sample(temperature, seed)["images"],
      }

    self.functions = {}
    for name, fn, specs in (
      ("translate_a2b", translate, [images, temperature, seed]),
      ("translate_b2a", translate, [images, temperature, seed]),
      ("sample_a", sample, [temperature, seed]),
      ("sample_b", sample, [temperature, seed]),
      ("sample_pairs", sample_pairs, [temperature, seed]),
    ):
      function = tf.function(fn, input_signature=specs, autograph=False)
      setattr(self, name, function)
      self.functions[name] = function
    self.functions["serving_default"] = self.functions["translate_a2b"]
    self.rho = tf.function(lambda: {"rho": tf.ones([16])}, input_signature=[])
    self.functions["rho"] = self.rho
    info = {
      "image_shape": tf.constant(SHAPE, tf.int32),
      "n_bits_x": tf.constant(8),
      "n_classes": tf.constant(0),
      "data_dim": tf.constant(16),
      "top_dim": tf.constant(4),
      "n_domains": tf.constant(2),
      "coupled": tf.constant(1),
    }
    self.info = tf.function(lambda: dict(info), input_signature=[])


@pytest.fixture(scope="module")
def older(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("older") / "1")
  module = _OlderExport()
  tf.saved_model.save(module, path, signatures=module.functions)
  images = np.arange(2 * 16, dtype=np.uint8).reshape((2,) + SHAPE)
  return path, images


def test_glow_serve_fills_an_older_translations_temperature_and_seed(older):
  path, images = older
  model = serve.ModelServer(path)
  rows = model.predict({"signature_name": "translate_a2b", "instances": images.tolist()})
  np.testing.assert_array_equal(rows["predictions"], images)  # T = 0, seed 0
  columns = {"images": images.tolist(), "temperature": [0.0, 1.0], "seed": 3}
  got = model.predict({"signature_name": "translate_b2a", "inputs": columns})["outputs"]
  np.testing.assert_array_equal(got, np.stack([images[0], images[1] + 3]))
  with pytest.raises(RequestError, match="send it in the columnar format"):
    model.predict(
      {"signature_name": "translate_a2b", "instances": [{"images": images[0].tolist(), "seed": 1}]}
    )


def test_glow_serve_takes_an_older_scalar_seed_in_the_columnar_format_only(older):
  model = serve.ModelServer(older[0])
  got = model.predict(
    {"signature_name": "sample_a", "inputs": {"temperature": [1.0] * 3, "seed": 7}}
  )
  np.testing.assert_array_equal(got["outputs"], np.full((3,) + SHAPE, 7))
  with pytest.raises(RequestError, match="non-batched input.*seed.*use the columnar format"):
    model.predict({"signature_name": "sample_a", "instances": [{"temperature": 1.0, "seed": 7}]})
  with pytest.raises(RequestError, match="missing: seed"):
    model.predict({"signature_name": "sample_a", "inputs": {"temperature": [1.0]}})


def test_glow_demo_passes_an_older_export_one_seed_per_call(older):
  path, images = older
  demo = DemoModel(path)
  assert demo.coupled
  np.testing.assert_array_equal(demo.translate(images, "a", 0.0, seed=5), images)
  np.testing.assert_array_equal(demo.translate(images, "b", [0.0, 1.0], seed=5)[1], images[1] + 5)
  np.testing.assert_array_equal(
    demo.sample("b", np.ones(2, np.float32), 9), np.full((2,) + SHAPE, 9)
  )
  a, b = demo.sample_pairs(np.ones(3, np.float32), 11)
  np.testing.assert_array_equal(a, np.full((3,) + SHAPE, 11))
  np.testing.assert_array_equal(b, np.full((3,) + SHAPE, 244))
