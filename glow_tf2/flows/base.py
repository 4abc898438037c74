"""The base class of every Glow layer: one pass gives a value and its log-det.

Direction, as everywhere in glow_tf2 and TFP: `forward` maps latent -> data (decoding, sampling),
`inverse` maps data -> latent (encoding). A subclass implements two methods,

    _forward_and_log_det(z, **kwargs) -> (x, fldj)      # fldj = log|det dx/dz|
    _inverse_and_log_det(x, **kwargs) -> (z, ildj)      # ildj = log|det dz/dx| = -fldj

and TFP's public `forward`, `inverse`, `forward_log_det_jacobian` and `inverse_log_det_jacobian`
are derived from them. TFP would otherwise evaluate a coupling network once for the value and
again for the log-det; `BijectorCacheWithGreedyAttrs` (the mechanism of TFP's FFJORD) stores
the log-det of a call next to its value so the second request is a cache hit.

Two more things every layer needs:
- TFP's cache identifies a bijector by its parameters, so two layers built from equal arguments
  (model A and model B!) would share cache entries and one would answer for the other:
  `glow_b.forward(glow_a.inverse(x))` could return `x`. Each instance is identified by itself.
- `_parameter_properties` is empty: layers hold `tf.Variable`s, not batchable parameters
  (without it, `experimental_batch_shape()` fails).
"""

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import cache_util

tfb = tfp.bijectors


class GlowBijector(tfb.Bijector):
  """A bijector on images `[N, H, W, C]` (event_ndims 3) computing value and log-det together."""

  _cache = cache_util.BijectorCacheWithGreedyAttrs(
    forward_name="_augmented_forward", inverse_name="_augmented_inverse"
  )

  def __init__(self, *, parameters, name, forward_min_event_ndims=3, inverse_min_event_ndims=None):
    super().__init__(
      forward_min_event_ndims=forward_min_event_ndims,
      inverse_min_event_ndims=(
        forward_min_event_ndims if inverse_min_event_ndims is None else inverse_min_event_ndims
      ),
      is_constant_jacobian=False,
      validate_args=False,
      parameters=parameters,
      name=name,
    )

  @classmethod
  def _parameter_properties(cls, dtype):
    return dict()

  def _get_parameterization(self):
    # Identity, not equal arguments, decides whether two bijectors are the same to TFP's cache.
    return id(self)

  # Subclasses implement these two.
  def _forward_and_log_det(self, z, **kwargs):
    raise NotImplementedError

  def _inverse_and_log_det(self, x, **kwargs):
    raise NotImplementedError

  # TFP plumbing: value and both log-dets from a single pass.
  def _augmented_forward(self, z, **kwargs):
    x, fldj = self._forward_and_log_det(z, **kwargs)
    return x, {"fldj": fldj, "ildj": -fldj}

  def _augmented_inverse(self, x, **kwargs):
    z, ildj = self._inverse_and_log_det(x, **kwargs)
    return z, {"ildj": ildj, "fldj": -ildj}

  def _forward(self, z, **kwargs):
    return self._forward_and_log_det(z, **kwargs)[0]

  def _inverse(self, x, **kwargs):
    return self._inverse_and_log_det(x, **kwargs)[0]

  def _forward_log_det_jacobian(self, z, **kwargs):
    attrs = self._cache.forward_attributes(z, **kwargs)
    if "fldj" not in attrs:
      _, extra = self._augmented_forward(z, **kwargs)
      attrs.update(extra)
    return attrs["fldj"]

  def _inverse_log_det_jacobian(self, x, **kwargs):
    attrs = self._cache.inverse_attributes(x, **kwargs)
    if "ildj" not in attrs:
      _, extra = self._augmented_inverse(x, **kwargs)
      attrs.update(extra)
    return attrs["ildj"]


def split_channels(x: tf.Tensor, first: int):
  """(x[..., :first], x[..., first:]) as one Split op.

  Slicing the channel axis of NHWC activations is a strided copy whose gradient materialises a
  zero tensor of the full input per slice; `tf.split`'s gradient is a single concat (about 11%
  of a training step here, measured with a step trace).
  """
  return tf.split(x, [first, x.shape[-1] - first], axis=-1)


def spatial_size(x: tf.Tensor) -> tf.Tensor:
  """H * W of an `[N, H, W, C]` tensor, as float32: per-channel log-dets are counted this often."""
  shape = tf.shape(x)
  return tf.cast(shape[-3] * shape[-2], x.dtype)
