"""Inputs within their dtype's range that overflow inside the flow are refused, naming the input.

A temperature of 3.4e38 passes every input check and multiplies the noise to infinity; uint8
made the NaN images a black picture, answered 200. The exported signatures now check their float
images before the cast (for TF Serving too), and glow-serve checks every float output. The HTTP
requests themselves are in the corpus (test_bad_requests.py: the `overflow-*` cases).
"""

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2.serving import predict_request
from tests.serving import conftest

HUGE_T = np.float32(3.4e38)


def _call(server, name, **inputs):
  function = server["model"].signatures[name].function
  return function(**{k: tf.constant(v) for k, v in inputs.items()})


@pytest.mark.parametrize(
  "name, inputs, words",
  [
    ("sample_a", dict(temperature=[HUGE_T], seed=[1]), "sample_a: `temperature` too large"),
    ("sample_b", dict(temperature=[HUGE_T], seed=[1]), "sample_b: `temperature` too large"),
    (
      "sample_pairs",
      dict(temperature=[0.5, HUGE_T], seed=[1, 2]),
      "sample_pairs: `temperature` too large",
    ),
    ("decode_a", dict(eps=np.full([1, 64], 3e38, np.float32)), "decode_a: `eps` too large"),
    ("decode_b", dict(eps=np.full([2, 64], -3e38, np.float32)), "decode_b: `eps` too large"),
  ],
)
def test_the_reloaded_signature_refuses_an_overflow(server, name, inputs, words):
  """The SavedModel refuses it itself, so TF Serving answers an error too, not a black image."""
  with pytest.raises(tf.errors.InvalidArgumentError, match="the flow overflowed") as error:
    _call(server, name, **inputs)
  assert words in error.value.message


@pytest.mark.parametrize("name", ["translate_a2b_sample", "translate_b2a_sample"])
def test_a_translation_at_an_overflowing_temperature_is_refused(server, name):
  images = server["images"]
  temperature = np.full([len(images)], HUGE_T, np.float32)
  seeds = np.arange(3, 3 + len(images), dtype=np.int32)
  with pytest.raises(tf.errors.InvalidArgumentError, match=f"{name}: `temperature` too large"):
    _call(server, name, images=images, temperature=temperature, seed=seeds)


def test_values_short_of_overflow_still_answer(server):
  """The check refuses overflow, not large values: T = 8 and codes of 50 decode to images."""
  out = _call(server, "sample_a", temperature=[8.0, 0.0], seed=np.int32([1, 2]))["images"]
  assert out.shape == (2,) + conftest.SHAPE
  out = _call(server, "decode_a", eps=np.full([1, 64], 50.0, np.float32))["images"]
  assert out.shape == (1,) + conftest.SHAPE


def test_non_finite_float_outputs_are_refused_naming_inputs_and_examples(server):
  """glow-serve's own check of float outputs: codes and bits/dim have no uint8 cast to hide in."""
  signatures = server["model"].signatures
  eps = np.zeros([4, 64], np.float32)
  eps[2, 5] = np.inf
  with pytest.raises(predict_request.RequestError) as error:
    predict_request.check_finite_outputs("encode_a", signatures["encode_a"], {"eps": eps})
  assert error.value.status == 400
  assert error.value.message == (
    "signature 'encode_a': 'images' too large: the flow overflowed "
    "(output 'eps' is not finite (example 2))"
  )
  bits = np.array([1.0, np.nan, np.nan], np.float32)
  with pytest.raises(predict_request.RequestError, match=r"\(examples 1, 2\)"):
    predict_request.check_finite_outputs(
      "bits_per_dim_a", signatures["bits_per_dim_a"], {"bits_per_dim": bits}
    )
  # The float inputs are the ones blamed when there are some.
  images = np.full([1, 8, 8, 1], np.nan, np.float32)
  with pytest.raises(predict_request.RequestError, match="'eps' too large"):
    predict_request.check_finite_outputs("decode_a", signatures["decode_a"], {"images": images})
  # Finite outputs and integer outputs pass.
  predict_request.check_finite_outputs("encode_a", signatures["encode_a"], {"eps": eps[:2]})
  predict_request.check_finite_outputs(
    "decode_a", signatures["decode_a"], {"images": np.zeros([1, 8, 8, 1], np.uint8)}
  )
  # Without inputs to blame (rho), it is the model's fault: 500.
  with pytest.raises(predict_request.RequestError) as error:
    predict_request.check_finite_outputs(
      "rho", signatures["rho"], {"rho": np.array([np.nan], np.float32)}
    )
  assert error.value.status == 500
