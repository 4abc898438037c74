"""Value tests of glow_tf2.losses beyond tests/test_losses.py: dequantisation, the code and
translation distances, the side losses and the total, each against numpy written here.

Written to kill what mutation testing of losses.py left alive (docs/mutation.md); hypothesis draws
the shapes, bit depths and loss options.
"""

import math

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest
import tensorflow as tf

from glow_tf2 import losses

_SETTINGS = settings(max_examples=15, deadline=None, derandomize=True, database=None)


def _mean_error_np(diff: np.ndarray, fn: str) -> np.ndarray:
  diff = diff.reshape(diff.shape[0], -1).astype(np.float64)
  return (diff**2 if fn == "l2" else np.abs(diff)).mean(-1)


@_SETTINGS
@given(
  n_bits=st.integers(1, 8),
  shape=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.sampled_from((1, 3))),
  seed=st.integers(0, 2**16),
)
def test_dequantize_is_the_bin_plus_its_uniform(n_bits, shape, seed):
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, shape).astype(np.uint8)
  u = rng.uniform(0, 1, shape).astype(np.float32)
  x = losses.dequantize(images, n_bits, u).numpy()
  n_bins = 2**n_bits
  k = np.floor(images / 2 ** (8 - n_bits))
  np.testing.assert_allclose(x, k / n_bins - 0.5 + u / n_bins, atol=2e-7)
  # Every value stays inside its bin, so postprocess gives the quantised image back.
  expected = (k * (256 // n_bins)).astype(np.uint8)
  np.testing.assert_array_equal(losses.postprocess(x, n_bits).numpy(), expected)


def test_dequantize_with_noise_takes_its_rows_of_the_global_batch():
  images = np.random.default_rng(0).integers(0, 256, (6, 4, 4, 1)).astype(np.uint8)
  seed = tf.constant([3, 4])
  whole = losses.dequantize_with_noise(images, 5, seed).numpy()
  # The noise of the whole batch, drawn here with the same stateless generator.
  u = tf.random.stateless_uniform([6, 4, 4, 1], seed).numpy()
  np.testing.assert_allclose(whole, losses.dequantize(images, 5, u).numpy(), atol=1e-7)
  # A replica holding rows 2..3 of that global batch gets exactly those rows' noise.
  part = losses.dequantize_with_noise(images[2:4], 5, seed, row_offset=2, global_rows=6).numpy()
  np.testing.assert_array_equal(part, whole[2:4])
  assert not np.allclose(part, whole[0:2])


def test_preprocess_noise_bounds_and_bin_width_at_low_bits():
  images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
  x = losses.preprocess(images, 3, noise=True, seed=[5, 6]).numpy()
  low = np.floor(images / 32) / 8 - 0.5
  assert np.all(x >= low) and np.all(x < low + 1 / 8)
  # The noise fills the bin (not a narrower one): some draw lands in its top half.
  assert (x - low).max() > 1 / 16
  stateful = losses.preprocess(images, 3, noise=True).numpy()
  assert np.all(stateful >= low) and np.all(stateful < low + 1 / 8)


@_SETTINGS
@given(
  kind=st.sampled_from(("code_last", "code_all")),
  fn=st.sampled_from(("l2", "l1")),
  top_dim=st.integers(1, 6),
  seed=st.integers(0, 2**16),
)
def test_code_distance_by_definition(kind, fn, top_dim, seed):
  rng = np.random.default_rng(seed)
  a, b = rng.normal(size=(2, 3, 10)).astype(np.float32)
  got = losses.code_distance(a, b, top_dim, kind, fn).numpy()
  compared = (a - b)[:, -top_dim:] if kind == "code_last" else a - b
  np.testing.assert_allclose(got, _mean_error_np(compared, fn), rtol=1e-6)


@pytest.mark.parametrize(
  "kind,fn,message",
  [
    ("code_top", "l2", "code_loss_type must be code_last or code_all, got 'code_top'"),
    ("code_all", "l3", "code_loss_fn must be l2 or l1, got 'l3'"),
  ],
)
def test_code_distance_names_a_bad_option(kind, fn, message):
  with pytest.raises(ValueError, match=message):
    losses.code_distance(np.zeros((1, 4)), np.zeros((1, 4)), 2, kind, fn)


class _Decoder:
  """A stand-in model whose decoder is x = scale * eps reshaped to [N, 2, 2, 1], recording eps."""

  def __init__(self, scale):
    self.scale = scale
    self.seen = []

  def decode(self, eps, labels=None):
    self.seen.append((eps, labels))
    return tf.reshape(self.scale * eps, [-1, 2, 2, 1]), None


@pytest.mark.parametrize("fn", ["l2", "l1"])
def test_translation_distance_clips_codes_and_pixels(fn):
  eps_a = np.array([[0.1, -0.2, 9.0, 0.3], [0.0, 0.5, -0.5, 0.2]], np.float32)
  eps_b = np.array([[0.2, 0.1, -0.1, -7.0], [0.3, -0.3, 0.1, 0.0]], np.float32)
  target_a = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 2, 2, 1)).astype(np.float32)
  target_b = np.random.default_rng(2).uniform(-0.5, 0.5, (2, 2, 2, 1)).astype(np.float32)
  glow_a, glow_b = _Decoder(0.3), _Decoder(0.25)
  labels = tf.constant([1, 0])
  got = losses.translation_distance(
    glow_a, glow_b, eps_a, eps_b, target_a, target_b, fn, labels=labels
  ).numpy()
  # Codes clipped to +-5, then decoded, then pixels clipped to +-1.
  a2b = np.clip(0.25 * np.clip(eps_a, -5, 5), -1, 1).reshape(2, 2, 2, 1)
  b2a = np.clip(0.3 * np.clip(eps_b, -5, 5), -1, 1).reshape(2, 2, 2, 1)
  expected = _mean_error_np(a2b - target_b, fn) + _mean_error_np(b2a - target_a, fn)
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  # B decodes A's code and A decodes B's, each with the labels.
  np.testing.assert_allclose(glow_b.seen[0][0].numpy(), np.clip(eps_a, -5, 5))
  np.testing.assert_allclose(glow_a.seen[0][0].numpy(), np.clip(eps_b, -5, 5))
  assert glow_a.seen[0][1] is labels and glow_b.seen[0][1] is labels
  assert losses.EPS_CLIP == 5.0


def test_translation_distance_counts_nan_pixels_as_the_bound_and_trains_decoders_only():
  eps = tf.Variable(np.array([[0.1, 0.2, 0.3, 0.4]], np.float32))
  target = np.zeros((1, 2, 2, 1), np.float32)

  class NanDecoder(_Decoder):
    def decode(self, e, labels=None):
      x = tf.reshape(e * self.scale, [-1, 2, 2, 1])
      return tf.tensor_scatter_nd_update(x, [[0, 0, 0, 0]], [np.nan]), None

  with tf.GradientTape() as tape:
    got = losses.translation_distance(
      NanDecoder(1.0), NanDecoder(4.0), eps, eps, target, target, "l2"
    )
  # The NaN pixel counts as +1 (error 1 in l2); the others are clipped to +-1.
  a2b = np.array([1.0, 0.8, 1.0, 1.0])
  b2a = np.array([1.0, 0.2, 0.3, 0.4])
  np.testing.assert_allclose(got.numpy(), [np.mean(a2b**2) + np.mean(b2a**2)], rtol=1e-6)
  assert tape.gradient(got, eps) is None  # codes enter as constants


def test_bits_per_dim_is_the_density_in_bits():
  class Flat:
    """A 'flow' with eps = 2 x and log-det D log 2, i.e. a Gaussian of std 1/2 on x."""

    class config:  # noqa: N801
      n_bits_x = 5
      data_dim = 12

    def encode(self, x, labels=None):
      flat = tf.reshape(x, [tf.shape(x)[0], -1])
      return 2.0 * flat, tf.fill([tf.shape(x)[0]], 12 * math.log(2.0))

  images = np.random.default_rng(3).integers(0, 256, (2, 2, 2, 3)).astype(np.uint8)
  got = losses.bits_per_dim(Flat(), images, noise=False).numpy()
  x = (np.floor(images / 8) + 0.5) / 32 - 0.5
  log_p = (-0.5 * (2 * x) ** 2 - 0.5 * math.log(2 * math.pi)).reshape(2, -1).sum(-1)
  log_p += 12 * math.log(2.0)
  expected = -(log_p - 12 * math.log(32)) / (12 * math.log(2))
  np.testing.assert_allclose(got, expected, rtol=1e-5)


class _LossConfig:
  def __init__(self, **fields):
    self.mle_loss_scale = fields.get("mle_loss_scale", 1.0)
    self.weight_y = fields.get("weight_y", 0.0)
    self.code_loss_type = fields.get("code_loss_type", "code_all")
    self.code_loss_fn = fields.get("code_loss_fn", "l2")
    self.code_loss_scale = fields.get("code_loss_scale", 1.0)
    self.joint_train = fields.get("joint_train", True)
    self.translation_loss_scale = fields.get("translation_loss_scale", 0.0)


@pytest.mark.parametrize("joint", [True, False])
def test_side_losses_and_total_by_value_and_by_gradient(joint):
  rng = np.random.default_rng(4)
  eps_a = tf.Variable(rng.normal(size=(3, 8)).astype(np.float32))
  eps_b = tf.Variable(rng.normal(size=(3, 8)).astype(np.float32))
  bits = {k: rng.uniform(2, 6, 3).astype(np.float32) for k in ("xa", "ya", "xb", "yb")}
  translation = tf.constant(rng.uniform(0, 1, 3).astype(np.float32))
  config = _LossConfig(
    mle_loss_scale=0.7,
    weight_y=0.3,
    code_loss_type="code_last",
    code_loss_scale=2.5,
    joint_train=joint,
    translation_loss_scale=1.5,
  )
  with tf.GradientTape(persistent=True) as tape:
    terms = {
      "A": {
        "bits_x": tf.constant(bits["xa"]),
        "bits_y": tf.constant(bits["ya"]),
        "eps": eps_a * 1.0,
      },
      "B": {
        "bits_x": tf.constant(bits["xb"]),
        "bits_y": tf.constant(bits["yb"]),
        "eps": eps_b * 1.0,
      },
    }
    side, code, shared = losses.side_losses(terms, config, 3, translation=translation)
    total = losses.total_loss(
      {k: tf.reduce_mean(v) for k, v in side.items()},
      None if shared is None else tf.reduce_mean(shared),
    )
  code_np = ((eps_a.numpy() - eps_b.numpy())[:, -3:] ** 2).mean(-1)
  np.testing.assert_allclose(code.numpy(), code_np, rtol=1e-6)
  extra = 2.5 * code_np + 1.5 * translation.numpy() if joint else 0.0
  np.testing.assert_allclose(
    side["A"].numpy(), 0.7 * bits["xa"] + 0.3 * bits["ya"] + extra, rtol=1e-6
  )
  np.testing.assert_allclose(
    side["B"].numpy(), 0.7 * bits["xb"] + 0.3 * bits["yb"] + extra, rtol=1e-6
  )
  if not joint:
    assert shared is None
    np.testing.assert_allclose(
      total.numpy(), side["A"].numpy().mean() + side["B"].numpy().mean(), rtol=1e-6
    )
    return
  np.testing.assert_allclose(shared.numpy(), 1.5 * translation.numpy(), rtol=1e-6)
  # The shared term is counted once in the total.
  expected_total = (
    side["A"].numpy().mean() + side["B"].numpy().mean() - 1.5 * translation.numpy().mean()
  )
  np.testing.assert_allclose(total.numpy(), expected_total, rtol=1e-6)
  # d total / d eps_A = d loss_A / d eps_A: 2.5 * 2 (a - b) / 3 on the top block, over 3 examples.
  grad_a = tape.gradient(total, eps_a).numpy()
  expected = np.zeros((3, 8))
  expected[:, -3:] = 2.5 * 2 * (eps_a.numpy() - eps_b.numpy())[:, -3:] / 3 / 3
  np.testing.assert_allclose(grad_a, expected, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(tape.gradient(total, eps_b).numpy(), -expected, rtol=1e-5, atol=1e-7)


def test_one_domain_has_no_code_term():
  terms = {"A": {"bits_x": tf.constant([3.0, 4.0]), "bits_y": tf.constant([1.0, 2.0])}}
  side, code, shared = losses.side_losses(terms, _LossConfig(weight_y=0.5), 2)
  np.testing.assert_allclose(side["A"].numpy(), [3.5, 5.0])
  assert code is None and shared is None
  np.testing.assert_allclose(losses.total_loss({"A": tf.constant(2.0)}, None).numpy(), 2.0)


class _Recording:
  """A 'flow' with eps = x flattened and log-det 0 that records the labels it was given."""

  class config:  # noqa: N801
    n_bits_x = 8
    data_dim = 12

  def __init__(self):
    self.labels = []

  def encode(self, x, labels=None):
    self.labels.append(labels)
    n = tf.shape(x)[0]
    return tf.reshape(x, [n, -1]), tf.zeros([n])


def test_bits_per_dim_passes_labels_noise_and_seed_through():
  images = np.random.default_rng(5).integers(0, 256, (2, 2, 2, 3)).astype(np.uint8)
  labels = tf.constant([1, 0])
  glow = _Recording()
  got = losses.bits_per_dim(glow, images, labels=labels, seed=[7, 8]).numpy()
  assert glow.labels == [labels]
  # The default is Glow's training objective: dequantised with noise, from the given seed.
  x = losses.preprocess(images, 8, noise=True, seed=[7, 8]).numpy().astype(np.float64)
  log_p = (-0.5 * x**2 - 0.5 * math.log(2 * math.pi)).reshape(2, -1).sum(-1)
  expected = -(log_p - 12 * math.log(256)) / (12 * math.log(2))
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  mid = losses.bits_per_dim(glow, images, noise=False).numpy()
  assert np.abs(mid - got).max() > 1e-6
  _, eps = losses.log_prob_and_eps(glow, tf.constant(x, tf.float32), labels=labels)
  assert glow.labels[-1] is labels
  np.testing.assert_allclose(eps.numpy(), x.reshape(2, -1), rtol=1e-6)


def test_defaults_are_eight_bits_with_noise():
  images = np.random.default_rng(6).integers(0, 256, (2, 4, 4, 3)).astype(np.uint8)
  np.testing.assert_array_equal(
    losses.preprocess(images, seed=[1, 2]).numpy(),
    losses.preprocess(images, 8, noise=True, seed=[1, 2]).numpy(),
  )
  x = np.linspace(-0.5, 0.49, 97, dtype=np.float32)
  np.testing.assert_array_equal(losses.postprocess(x).numpy(), np.floor((x + 0.5) * 256))


def test_log_probs_and_errors_reduce_the_last_axis_of_any_batch_shape():
  eps = np.random.default_rng(7).normal(size=(2, 3, 5)).astype(np.float32)
  expected = (-0.5 * eps.astype(np.float64) ** 2 - 0.5 * math.log(2 * math.pi)).sum(-1)
  np.testing.assert_allclose(losses.standard_normal_log_prob(eps).numpy(), expected, rtol=1e-6)
  other = np.random.default_rng(8).normal(size=(2, 3, 5)).astype(np.float32)
  for fn, op in (("l2", np.square), ("l1", np.abs)):
    got = losses.code_distance(eps, other, 2, "code_last", fn).numpy()
    np.testing.assert_allclose(got, op(eps - other)[..., -2:].mean(-1), rtol=1e-6)


def test_bits_from_log_prob_is_float32_whatever_it_is_given():
  got = losses.bits_from_log_prob(np.array([-100.0, 50.0]), 4, 3)
  assert got.dtype == tf.float32
  np.testing.assert_allclose(
    got.numpy(), -(np.array([-100.0, 50.0]) - 4 * 3 * math.log(2)) / (4 * math.log(2)), rtol=1e-6
  )
