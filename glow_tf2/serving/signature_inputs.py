"""The inputs of the exported signatures: their typed specs and the checks each function runs.

A reloaded signature checks the dtype of its inputs but not their shape, so every exported
function validates its inputs itself, before any model op runs: shapes with `tf.ensure_shape`
(which survives Grappler's constant folding where asserts on `tf.shape` do not; the op's name
says what was expected, e.g. `encode_a_images_must_be_N_8_8_1`), values with asserts whose
message names the signature and the input. A bad request then fails with an
`InvalidArgumentError` naming both, and the process keeps working.

Inputs in range can still overflow inside the flow (a temperature of 3e38 times the noise, or a
code a coupling divides by a small scale), and NaN or infinity cast to uint8 is a silent black
image. So the flow's float output is checked too (`finite_images`, `finite_codes`), before the
cast, failing the same way and naming the input that made it overflow.
"""

import tensorflow as tf

from glow_tf2.config import GlowConfig

# In the message of every overflow check: how a caller (the demo) tells them from other errors.
OVERFLOW = "the flow overflowed"


class SignatureInputs:
  """The specs and checks of one model's signatures (`serving.export.GlowServingModule`).

  Args:
    config: the model's config (image shape, data_dim, classes). With classes, every function
      takes `labels` int32 `[N]` besides its own inputs.
  """

  def __init__(self, config: GlowConfig):
    self._config = config
    self.conditional = config.n_classes > 0

  # ---------------------------------------------------------------------------------------------
  # Specs.

  def with_labels(self, specs: list[tf.TensorSpec]) -> list[tf.TensorSpec]:
    """`specs` plus `labels` int32 `[N]` for a class-conditional model."""
    if self.conditional:
      return specs + [tf.TensorSpec([None], tf.int32, name="labels")]
    return specs

  def images_spec(self, name: str = "images") -> list[tf.TensorSpec]:
    """uint8 `[N, H, W, C]`."""
    return [tf.TensorSpec((None,) + self._config.image_shape, tf.uint8, name=name)]

  def eps_spec(self) -> list[tf.TensorSpec]:
    """float32 `[N, D]`."""
    return [tf.TensorSpec([None, self._config.data_dim], tf.float32, name="eps")]

  @staticmethod
  def sample_spec() -> list[tf.TensorSpec]:
    """temperature float32 `[N]` and seed int32 `[N]`: one of each per row, as every input."""
    return [
      tf.TensorSpec([None], tf.float32, name="temperature"),
      tf.TensorSpec([None], tf.int32, name="seed"),
    ]

  # ---------------------------------------------------------------------------------------------
  # Checks: each returns its input, to be used in its place.

  def images(self, images, where, name="images"):
    # ensure_shape runs in the graph even when the traced shape says it must hold.
    expected = [None] + list(self._config.image_shape)
    return tf.ensure_shape(images, expected, name=f"{where}_{name}_must_be_N_{_dims(expected)}")

  def eps(self, eps, where):
    data_dim = self._config.data_dim
    eps = tf.ensure_shape(eps, [None, data_dim], name=f"{where}_eps_must_be_N_{data_dim}")
    return tf.debugging.assert_all_finite(eps, f"{where}: `eps` must be finite")

  @staticmethod
  def finite_images(x, where, culprit):
    """The flow's float images `x`, which must be finite: `culprit` (an input) made them not."""
    return tf.debugging.assert_all_finite(
      x, f"{where}: `{culprit}` too large: {OVERFLOW} (its images are not finite)"
    )

  @staticmethod
  def finite_codes(eps, where, culprit):
    """Codes the flow computed from `culprit`, which must be finite before they go on."""
    return tf.debugging.assert_all_finite(
      eps, f"{where}: `{culprit}`: {OVERFLOW} (its codes are not finite)"
    )

  @staticmethod
  def batch(tensor, where, name):
    return tf.ensure_shape(tensor, [None], name=f"{where}_{name}_must_be_rank_1_N")

  @staticmethod
  def seed(seed, where):
    """The scalar seed of a function that is not a signature (`bits_per_dim_noise_d`)."""
    return tf.ensure_shape(seed, [], name=f"{where}_seed_must_be_a_scalar")

  def seeds(self, seeds, where, batch):
    """seed `[N]` of a signature: rank 1, one int32 seed per row of a batch of `batch`."""
    seeds = self.batch(seeds, where, "seed")
    same = tf.debugging.assert_equal(
      tf.shape(seeds)[0],
      batch,
      message=f"{where}: `seed` must have one entry per row (the batch size N)",
    )
    with tf.control_dependencies([same]):
      return tf.identity(seeds)

  def temperature(self, temperature, where, batch=None):
    """temperature `[N]`: rank 1, finite, >= 0 and (given `batch`) one entry per image."""
    temperature = self.batch(temperature, where, "temperature")
    temperature = tf.debugging.assert_all_finite(
      temperature, f"{where}: `temperature` must be finite"
    )
    checks = [
      tf.debugging.assert_non_negative(temperature, message=f"{where}: `temperature` must be >= 0")
    ]
    if batch is not None:
      checks.append(
        tf.debugging.assert_equal(
          tf.shape(temperature)[0],
          batch,
          message=f"{where}: `temperature` must have one entry per image (the batch size N)",
        )
      )
    with tf.control_dependencies(checks):
      return tf.identity(temperature)

  def labels(self, labels, batch, where):
    """labels `[N]` in [0, n_classes) for a class-conditional model; None for another."""
    if not self.conditional:
      return None
    labels = self.batch(labels, where, "labels")
    n_classes = self._config.n_classes
    checks = [
      tf.debugging.assert_equal(
        tf.shape(labels)[0],
        batch,
        message=f"{where}: `labels` must have one entry per example (the batch size N)",
      ),
      tf.debugging.assert_greater_equal(
        labels, 0, message=f"{where}: `labels` must be class indices in [0, {n_classes})"
      ),
      tf.debugging.assert_less(
        labels, n_classes, message=f"{where}: `labels` must be class indices in [0, {n_classes})"
      ),
    ]
    with tf.control_dependencies(checks):
      return tf.identity(labels)

  @staticmethod
  def partners(images_b, batch, where):
    """images_b with one partner per image of a batch of `batch` images_a."""
    same = tf.debugging.assert_equal(
      tf.shape(images_b)[0],
      batch,
      message=f"{where}: `images_b` must hold one partner per image of `images_a`",
    )
    with tf.control_dependencies([same]):
      return tf.identity(images_b)


def seed_spec() -> tf.TensorSpec:
  """seed int32 `[]`: the one seed of a call of a function that is not a signature."""
  return tf.TensorSpec([], tf.int32, name="seed")


def _dims(shape) -> str:
  return "_".join("N" if d is None else str(d) for d in shape[1:])
