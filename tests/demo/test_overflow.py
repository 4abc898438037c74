"""The demo refuses values that make the flow overflow, naming the field, instead of a black image.

The session's tiny pair decodes a code of 5 in every dimension to NaN pixels (its couplings
divide by small scales), well inside the demo's bound of 1e4: that request is in the corpus
(test_bad_requests.py, `overflow-decode-code`). Temperatures and strengths cannot overflow
within the demo's default limits, so here an API with wider limits reaches them.
"""

import numpy as np
import pytest

from glow_tf2.demo import api as api_lib
from glow_tf2.demo import model as model_lib
from tests.demo.demo_pair import SHAPE
from tests.demo.demo_pair import png


@pytest.fixture(scope="module")
def wide_api(served):
  """The session's model and directions behind an API whose limits let temperatures and
  strengths overflow."""
  _, api, _ = served
  limits = api_lib.Limits(max_temperature=3.4e38, max_strength=3e38)
  return api_lib.DemoAPI(api.model, directions=api.directions, limits=limits)


def _refused(api, endpoint, body):
  with pytest.raises(api_lib.RequestError) as error:
    api.handle("POST", endpoint, body)
  assert error.value.status == 400
  return error.value.message


@pytest.mark.parametrize(
  "endpoint, body",
  [
    ("sample", {"temperature": 3.4e38, "n": 2}),
    ("sample_pairs", {"temperature": 3.4e38, "n": 2}),
    ("translate", {"temperature": 3.4e38}),
    ("translations", {"temperature": 3.4e38, "n": 3}),
  ],
)
def test_an_overflowing_temperature_is_refused(wide_api, endpoint, body):
  if endpoint.startswith("translat"):
    body = dict(body, image=png(np.zeros(SHAPE, np.uint8)))
  message = _refused(wide_api, endpoint, body)
  assert message == (
    "`temperature` too large for this model: the flow overflowed (its output is not finite)"
  )


def test_an_overflowing_code_or_strength_is_refused(wide_api):
  assert _refused(wide_api, "decode", {"code": [1e4] * 256}).startswith("`code` too large")
  body = {"image": png(np.zeros(SHAPE, np.uint8)), "direction": "digit 1"}
  for strength in (1e3, 3e38):  # the decode overflows; the code itself overflows
    message = _refused(wide_api, "manipulate", dict(body, strength=strength))
    assert message.startswith("`strength` too large")


def test_values_short_of_overflow_still_answer(wide_api):
  assert len(wide_api.handle("POST", "sample", {"temperature": 1.0, "n": 2})["images"]) == 2
  assert "image" in wide_api.handle("POST", "decode", {"code": [1.0] * 256})


def test_the_model_raises_overflow_for_the_api_to_name(loaded):
  with pytest.raises(model_lib.Overflow, match="decode_a: the flow overflowed"):
    loaded.decode(np.full([1, 256], 1e4, np.float32), "a")
  with pytest.raises(model_lib.Overflow, match="sample_b: the flow overflowed"):
    loaded.sample("b", np.full([2], 3.4e38, np.float32), 0)
