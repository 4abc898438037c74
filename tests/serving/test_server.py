"""glow-serve: TF Serving's REST API with the official request formats, values checked against
the library's Glow objects, and a burst of malformed and concurrent requests that must all get an
answer while the server keeps serving (the corpus itself is test_bad_requests.py; the exported
pair and the server are session fixtures of conftest.py)."""

import concurrent.futures
import http.client
import json
import subprocess
import sys
import time

import numpy as np
import pytest

import glow_tf2
from tests.serving import test_bad_requests as bad_requests


def request(port, method, path, body=None, headers=None, timeout=30):
  conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
  data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
  conn.request(method, path, body=data, headers=headers or {})
  response = conn.getresponse()
  payload = response.read()
  conn.close()
  try:
    return response.status, json.loads(payload)
  except ValueError:
    return response.status, payload


def predict(port, body, name="glow"):
  return request(port, "POST", f"/v1/models/{name}:predict", body)


def test_status_and_metadata_like_tf_serving(server):
  port = server["port"]
  status, body = request(port, "GET", "/v1/models/glow")
  assert status == 200
  assert body == {
    "model_version_status": [
      {"version": "3", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
  }
  assert request(port, "GET", "/v1/models/glow/versions/3")[0] == 200
  status, body = request(port, "GET", "/v1/models/glow/metadata")
  assert status == 200
  assert body["model_spec"] == {"name": "glow", "signature_name": "", "version": "3"}
  defs = body["metadata"]["signature_def"]["signature_def"]
  assert set(defs) == {
    "encode_a",
    "encode_b",
    "decode_a",
    "decode_b",
    "translate_a2b",
    "translate_b2a",
    "sample_a",
    "sample_b",
    "bits_per_dim_a",
    "bits_per_dim_b",
    "serving_default",
  }
  images = defs["translate_a2b"]["inputs"]["images"]
  assert images["dtype"] == "DT_UINT8"
  assert [d["size"] for d in images["tensor_shape"]["dim"]] == ["-1", "8", "8", "1"]
  assert defs["sample_a"]["inputs"]["seed"]["dtype"] == "DT_INT32"
  assert defs["encode_a"]["outputs"]["eps"]["dtype"] == "DT_FLOAT"
  assert defs["serving_default"]["method_name"] == "tensorflow/serving/predict"


def translated(glows, images, source):
  """decode_target(encode_source(images)) with the library's Glow objects, as ints."""
  glow_a, glow_b = glows
  encoder, decoder = (glow_a, glow_b) if source == "a" else (glow_b, glow_a)
  eps, _ = encoder.encode(glow_tf2.preprocess(images, 8, noise=False))
  x, _ = decoder.decode(eps)
  return glow_tf2.postprocess(x, 8).numpy().astype(int)


def assert_translation(got, expected):
  """A float can flip a quantization bin between two graphs: at most 1 level, on few pixels."""
  got = np.asarray(got, int)
  assert got.shape == expected.shape
  assert np.abs(got - expected).max() <= 1 and np.mean(got != expected) < 0.02


def test_row_format_translation_matches_the_models(server):
  port, images = server["port"], server["images"]
  status, body = predict(port, {"instances": images.tolist()})  # serving_default = translate_a2b
  assert status == 200, body
  expected = translated(server["glows"], images, "a")
  assert_translation(body["predictions"], expected)
  assert np.mean(expected != images) > 0.5  # not the identity: the check can fail
  # Named inputs per instance, and the version in the URL.
  status, body2 = request(
    port,
    "POST",
    "/v1/models/glow/versions/3:predict",
    {"signature_name": "translate_a2b", "instances": [{"images": im} for im in images.tolist()]},
  )
  assert status == 200 and body2["predictions"] == body["predictions"]


@pytest.mark.parametrize("layout", ["instances", "inputs"])
def test_translate_b2a_matches_the_models(server, layout):
  port, images_b = server["port"], 255 - server["images"]
  status, body = predict(port, {"signature_name": "translate_b2a", layout: images_b.tolist()})
  assert status == 200, body
  got = body["predictions"] if layout == "instances" else body["outputs"]
  expected = translated(server["glows"], images_b, "b")
  assert_translation(got, expected)
  assert np.mean(expected != translated(server["glows"], images_b, "a")) > 0.5


def test_row_format_batch_limit_by_value(server):
  """Exactly --max_batch rows are served (each the right translation); one more is refused."""
  port, limit = server["port"], server["model"].max_batch
  rng = np.random.default_rng(5)
  batch = server["images"][rng.integers(0, len(server["images"]), limit)]
  batch = np.clip(batch.astype(int) + rng.integers(-3, 4, batch.shape), 0, 255).astype(np.uint8)
  status, body = predict(port, {"instances": batch.tolist()})
  assert status == 200, body
  assert_translation(body["predictions"], translated(server["glows"], batch, "a"))
  status, body = predict(port, {"instances": batch.tolist() + batch[:1].tolist()})
  assert status == 413
  assert body["error"] == (
    f"batch of {limit + 1} examples is larger than this server's limit --max_batch={limit}"
  )


def test_request_byte_limit_is_derived_from_the_batch_and_the_inputs(server):
  """The default body limit fits max_batch of the widest signature's JSON, and not much more."""
  model = server["model"]
  limit = model.request_byte_limit()
  widest = json.dumps(
    {"signature_name": "decode_a", "inputs": {"eps": [[-1.2345678901234567e-05] * 64] * 64}}
  )
  assert len(widest) <= limit < 2 * len(widest) + 64 * 1024


def test_columnar_round_trip_through_json_is_bit_exact(server):
  port, images = server["port"], server["images"]
  status, body = predict(
    port, {"signature_name": "encode_b", "inputs": {"images": images.tolist()}}
  )
  assert status == 200, body
  eps = body["outputs"]
  assert np.array(eps).shape == (5, 64)
  status, body = predict(port, {"signature_name": "decode_b", "inputs": {"eps": eps}})
  assert status == 200, body
  np.testing.assert_array_equal(np.array(body["outputs"], np.uint8), images)
  status, body = predict(port, {"signature_name": "bits_per_dim_a", "inputs": images.tolist()})
  assert status == 200 and len(body["outputs"]) == 5 and 0 < min(body["outputs"])


def test_sampling_by_seed(server):
  port = server["port"]
  body = {"signature_name": "sample_a", "inputs": {"temperature": [0.7, 0.7, 1.0], "seed": 11}}
  first, second = predict(port, body), predict(port, body)
  assert first[0] == 200 and first == second
  assert np.array(first[1]["outputs"]).shape == (3, 8, 8, 1)
  other = predict(port, {**body, "inputs": {"temperature": [0.7, 0.7, 1.0], "seed": 12}})
  assert other[1]["outputs"] != first[1]["outputs"]
  # A scalar input does not fit the row format: a clear 400, not a crash.
  status, error = predict(
    port, {"signature_name": "sample_a", "instances": [{"temperature": 0.7, "seed": 1}]}
  )
  assert status == 400 and "columnar" in error["error"]


def test_concurrent_burst_of_good_and_bad_requests(server):
  port, images = server["port"], server["images"]
  expected = predict(port, {"instances": images.tolist()})[1]["predictions"]
  cases = bad_requests.cases(images)

  def job(i):
    if i % 2 == 0:
      status, body = predict(port, {"instances": images.tolist()})
      assert status == 200 and body["predictions"] == expected
    else:
      _, data, status, words = cases[i % len(cases)]
      got_status, _, body, _ = bad_requests.exchange(
        port, data[0] if isinstance(data, tuple) else data, half_close=isinstance(data, tuple)
      )
      assert got_status == status and words in bad_requests.error_of(body)
    return i

  start = time.monotonic()
  with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
    done = list(pool.map(job, range(48)))
  assert done == list(range(48))
  assert time.monotonic() - start < 60
  assert request(port, "GET", "/v1/models/glow")[0] == 200


def test_glow_serve_binary(exported):
  base, images, _ = exported
  proc = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "glow_tf2.cli.serve",
      f"--saved_model={base}",
      "--model_name=shoes",
      "--port=0",
    ],
    stdout=subprocess.PIPE,
    stderr=subprocess.DEVNULL,
    text=True,
  )
  try:
    url = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and url is None:
      line = proc.stdout.readline()
      if not line:
        break
      if "listening on" in line:
        url = line.split("listening on ")[1].strip()
    assert url, "glow-serve did not start"
    port = int(url.split(":")[2].split("/")[0])
    status, body = request(
      port,
      "POST",
      "/v1/models/shoes:predict",
      {"signature_name": "encode_a", "instances": images.tolist()},
    )
    assert status == 200 and np.array(body["predictions"]).shape == (5, 64)
    assert request(port, "POST", "/v1/models/shoes:predict", b"nope")[0] == 400
  finally:
    proc.terminate()
    proc.wait(timeout=30)
  assert proc.returncode == 0
