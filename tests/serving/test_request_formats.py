"""Every signature of an export through glow-serve in both of TF Serving's request formats.

Every input is batched (a temperature and a seed per row), so each signature takes the row
format (`"instances"`) as well as the columnar one (`"inputs"`), and the two must answer the same
numbers; a row of a sampling signature must be the same image whether it comes in a batch or
alone. The exported pair and the server are conftest.py's session fixtures.
"""

import numpy as np
import pytest

from tests.serving.test_server import predict

# The one signature without inputs: `{"inputs": {}}` only (a row of nothing is not a request).
NO_INPUTS = {"rho"}
SAMPLING = ["sample_a", "sample_b", "sample_pairs", "translate_a2b_sample", "translate_b2a_sample"]
WITH_INPUTS = SAMPLING + [
  "encode_a",
  "encode_b",
  "decode_a",
  "decode_b",
  "translate_a2b",
  "translate_b2a",
  "translate_codes_a2b",
  "translate_codes_b2a",
  "bits_per_dim_a",
  "bits_per_dim_b",
  "coupled_bits_per_dim",
  "serving_default",
]


def _values(images):
  """{input name: the 5 rows of it}: one value of every input the signatures take."""
  rng = np.random.default_rng(3)
  return {
    "images": images,
    "images_a": images,
    "images_b": 255 - images,
    "eps": (0.5 * rng.standard_normal([5, 64])).astype(np.float32),
    "temperature": np.array([0.0, 0.5, 0.7, 1.0, 0.3], np.float32),
    "seed": np.array([10, 11, 12, 2**31 - 1, 0], np.int32),
  }


def _columns(server, name):
  values = _values(server["images"])
  return {key: values[key].tolist() for key in server["model"].signatures[name].inputs}


def _as_columns(predictions, outputs):
  """The row format's predictions as the columnar outputs: {output: [N, ...]} or [N, ...]."""
  if isinstance(outputs, dict):
    return {key: [row[key] for row in predictions] for key in outputs}
  return predictions


def _both_formats(port, name, columns):
  status, columnar = predict(port, {"signature_name": name, "inputs": columns})
  assert status == 200, (name, columnar)
  n = len(next(iter(columns.values())))
  rows = [{key: value[i] for key, value in columns.items()} for i in range(n)]
  status, by_rows = predict(port, {"signature_name": name, "instances": rows})
  assert status == 200, (name, by_rows)
  return columnar["outputs"], by_rows["predictions"]


def test_every_signature_has_batched_inputs_only(server):
  for name, signature in server["model"].signatures.items():
    for key, spec in signature.inputs.items():
      assert spec.shape.rank and spec.shape[0] is None, f"{name}: {key} {spec.shape}"
  assert {n for n, s in server["model"].signatures.items() if not s.inputs} == NO_INPUTS


@pytest.mark.parametrize("name", WITH_INPUTS)
def test_row_and_columnar_formats_answer_the_same(server, name):
  outputs, predictions = _both_formats(server["port"], name, _columns(server, name))
  assert len(predictions) == 5
  assert _as_columns(predictions, outputs) == outputs


def test_the_formats_are_tested_for_every_signature_with_inputs(server):
  assert set(WITH_INPUTS) | NO_INPUTS == set(server["model"].signatures)


@pytest.mark.parametrize("name", SAMPLING)
def test_a_row_is_the_same_alone_as_in_its_batch(server, name):
  port, columns = server["port"], _columns(server, name)
  batch, _ = _both_formats(port, name, columns)
  for i in range(5):
    row = {key: value[i] for key, value in columns.items()}
    status, alone = predict(port, {"signature_name": name, "instances": [row]})
    assert status == 200, alone
    if isinstance(batch, dict):
      expected = {key: value[i] for key, value in batch.items()}
    else:
      expected = batch[i]
    assert alone["predictions"] == [expected], (name, i)
  # The seeds matter: the rows' seeds moved by one, row 1 (T = 0.5) is another image.
  moved = dict(columns, seed=columns["seed"][1:] + columns["seed"][:1])
  status, other = predict(port, {"signature_name": name, "inputs": moved})
  assert status == 200, other
  images, other_images = batch, other["outputs"]
  if isinstance(batch, dict):  # sample_pairs: B, drawn from both of its row's streams
    images, other_images = batch["images_b"], other_images["images_b"]
  assert np.mean(np.array(images[1]) != np.array(other_images[1])) > 0.2


def test_translate_sample_at_t_0_is_the_images_only_translate(server):
  port, images = server["port"], server["images"].tolist()
  for direction in ("a2b", "b2a"):
    status, mean = predict(port, {"signature_name": f"translate_{direction}", "instances": images})
    assert status == 200, mean
    rows = [{"images": im, "temperature": 0.0, "seed": 100 + i} for i, im in enumerate(images)]
    status, drawn = predict(
      port, {"signature_name": f"translate_{direction}_sample", "instances": rows}
    )
    assert status == 200, drawn
    assert drawn["predictions"] == mean["predictions"]
