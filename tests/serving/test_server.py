"""glow-serve: TF Serving's REST API with the official request formats, values checked against
the library's Glow objects and coupled prior (translations at temperatures, sampled pairs, each
row from its own seed), and a burst of malformed and concurrent requests that must all get an
answer while the server keeps serving (the corpus itself is test_bad_requests.py; both request
formats of every signature, test_request_formats.py; the exported pair and the server are
session fixtures of conftest.py)."""

import concurrent.futures
import http.client
import json
import os
import signal
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2.cli import serve as serve_cli
from glow_tf2.flows import coupled_prior
from glow_tf2.serving import export
from tests import helpers
from tests.serving import conftest
from tests.serving import test_bad_requests as bad_requests
from tests.serving.raw_http import assert_refused


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
    "translate_a2b_sample",
    "translate_b2a_sample",
    "translate_codes_a2b",
    "translate_codes_b2a",
    "sample_a",
    "sample_b",
    "sample_pairs",
    "rho",
    "coupled_bits_per_dim",
    "bits_per_dim_a",
    "bits_per_dim_b",
    "serving_default",
  }
  assert set(defs["translate_a2b"]["inputs"]) == {"images"}  # T = 0, a bijection
  assert set(defs["translate_a2b_sample"]["inputs"]) == {"images", "temperature", "seed"}
  assert set(defs["translate_codes_a2b"]["inputs"]) == {"eps"}
  assert set(defs["serving_default"]["inputs"]) == {"images"}  # T = 0: a plain TF Serving call
  images = defs["translate_a2b"]["inputs"]["images"]
  assert images["dtype"] == "DT_UINT8"
  assert [d["size"] for d in images["tensor_shape"]["dim"]] == ["-1", "8", "8", "1"]
  seed = defs["sample_a"]["inputs"]["seed"]
  assert seed["dtype"] == "DT_INT32"
  assert [d["size"] for d in seed["tensor_shape"]["dim"]] == ["-1"]  # one seed per row
  assert defs["encode_a"]["outputs"]["eps"]["dtype"] == "DT_FLOAT"
  assert defs["serving_default"]["method_name"] == "tensorflow/serving/predict"


def translated(server, images, source, temperature=0.0, seeds=None):
  """The library's translation of `images`: decode(rho eps + T sqrt(1 - rho^2) n), row i's n
  drawn alone from [seeds_i, the exported salt]; T = 0 is `coupled_prior.translate`'s."""
  glow_a, glow_b = server["glows"]
  encoder, decoder = (glow_a, glow_b) if source == "a" else (glow_b, glow_a)
  prior, x = server["prior"], glow_tf2.preprocess(images, 8, noise=False)
  if temperature == 0:
    x = coupled_prior.translate(encoder, decoder, prior, x)
    return glow_tf2.postprocess(x, 8).numpy().astype(int)
  salt = export.SALT_A2B if source == "a" else export.SALT_B2A
  eps, _ = encoder.encode(x)
  noise = helpers.row_noise(seeds, salt, eps.shape[1])
  code = prior.rho() * eps + temperature * tf.exp(0.5 * prior.log_variance()) * noise
  return glow_tf2.postprocess(decoder.decode(code)[0], 8).numpy().astype(int)


def assert_translation(got, expected):
  """A float can flip a quantization bin between two graphs: at most 1 level, on few pixels."""
  got = np.asarray(got, int)
  assert got.shape == expected.shape
  assert np.abs(got - expected).max() <= 1 and np.mean(got != expected) < 0.02


def test_row_format_translation_matches_the_models(server):
  port, images = server["port"], server["images"]
  status, body = predict(port, {"instances": images.tolist()})  # serving_default = translate_a2b
  assert status == 200, body
  expected = translated(server, images, "a")
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
  expected = translated(server, images_b, "b")
  assert_translation(got, expected)
  assert np.mean(expected != translated(server, images_b, "a")) > 0.5


def test_row_format_batch_limit_by_value(server):
  """Exactly --max_batch rows are served (each the right translation); one more is refused."""
  port, limit = server["port"], server["model"].max_batch
  rng = np.random.default_rng(5)
  batch = server["images"][rng.integers(0, len(server["images"]), limit)]
  batch = np.clip(batch.astype(int) + rng.integers(-3, 4, batch.shape), 0, 255).astype(np.uint8)
  status, body = predict(port, {"instances": batch.tolist()})
  assert status == 200, body
  assert_translation(body["predictions"], translated(server, batch, "a"))
  status, body = predict(port, {"instances": batch.tolist() + batch[:1].tolist()})
  assert status == 413
  assert body["error"] == (
    f"batch of {limit + 1} examples is larger than this server's limit --max_batch={limit}"
  )


def test_translation_at_a_temperature_and_seeds_equals_the_library(server):
  """translate_a2b_sample: one temperature and one seed per row, every input required."""
  port, images = server["port"], server["images"]
  seeds = [7, 8, 9, 10, 11]
  body = {
    "signature_name": "translate_a2b_sample",
    "inputs": {"images": images.tolist(), "temperature": [0.8] * 5, "seed": seeds},
  }
  status, warm = predict(port, body)
  assert status == 200, warm
  expected = translated(server, images, "a", 0.8, seeds)
  assert_translation(warm["outputs"], expected)
  cold = translated(server, images, "a")
  assert np.mean(expected != cold) > 0.3  # the temperature matters: the check can fail
  assert predict(port, body)[1] == warm  # the same seeds, the same draws
  other = [s + 100 for s in seeds]
  other_seed = predict(port, {**body, "inputs": {**body["inputs"], "seed": other}})[1]
  assert np.mean(np.array(other_seed["outputs"]) != np.array(warm["outputs"])) > 0.3
  # The same in the row format: a temperature and a seed in every instance.
  rows = [{"images": im, "temperature": 0.8, "seed": s} for im, s in zip(images.tolist(), seeds)]
  status, by_rows = predict(port, {"signature_name": "translate_a2b_sample", "instances": rows})
  assert status == 200, by_rows
  assert by_rows["predictions"] == warm["outputs"]
  # At T = 0 it is translate_a2b, the images-only translation.
  status, at_0 = predict(port, {**body, "inputs": {**body["inputs"], "temperature": [0.0] * 5}})
  assert status == 200, at_0
  status, plain = predict(
    port, {"signature_name": "translate_a2b", "inputs": {"images": images.tolist()}}
  )
  assert status == 200, plain
  assert at_0["outputs"] == plain["outputs"]
  assert_translation(plain["outputs"], cold)
  # B -> A at a temperature: its own salt.
  status, b2a = predict(
    port,
    {
      "signature_name": "translate_b2a_sample",
      "inputs": {"images": (255 - images).tolist(), "temperature": [1.2] * 5, "seed": seeds},
    },
  )
  assert status == 200, b2a
  assert_translation(b2a["outputs"], translated(server, 255 - images, "b", 1.2, seeds))


def test_sample_pairs_and_rho_equal_the_library(server):
  port, prior = server["port"], server["prior"]
  glow_a, glow_b = server["glows"]
  temperature = np.array([0.7, 1.0, 0.0], np.float32)
  seeds = [11, 12, 13]
  body = {
    "signature_name": "sample_pairs",
    "inputs": {"temperature": temperature.tolist(), "seed": seeds},
  }
  status, pairs = predict(port, body)
  assert status == 200, pairs
  got_a, got_b = np.array(pairs["outputs"]["images_a"]), np.array(pairs["outputs"]["images_b"])
  # A is sample_a of the same seeds; B is drawn given A: rho eps_A + T sqrt(1 - rho^2) n_B.
  status, alone = predict(
    port,
    {"signature_name": "sample_a", "inputs": {"temperature": temperature.tolist(), "seed": seeds}},
  )
  np.testing.assert_array_equal(got_a, np.array(alone["outputs"]))
  t = temperature[:, None]
  eps_a = t * helpers.row_noise(seeds, export.SALT_SAMPLE, 64)
  noise = helpers.row_noise(seeds, export.SALT_PAIR_B, 64)
  rho = prior.rho().numpy()
  eps_b = rho * eps_a + t * np.sqrt(1.0 - rho.astype(np.float64) ** 2).astype(np.float32) * noise
  expected_a = glow_tf2.postprocess(glow_a.decode(eps_a)[0], 8).numpy().astype(int)
  expected_b = glow_tf2.postprocess(glow_b.decode(eps_b)[0], 8).numpy().astype(int)
  assert_translation(got_a, expected_a)
  assert_translation(got_b, expected_b)
  unpaired = glow_tf2.postprocess(glow_b.decode(eps_a)[0], 8).numpy().astype(int)
  assert np.mean(unpaired[:2] != expected_b[:2]) > 0.3  # B is not decode_b(eps_A) itself
  status, out = predict(port, {"signature_name": "rho", "inputs": {}})
  assert status == 200, out
  # Per channel of the one 4x4x4 level, channel fastest in eps's layout.
  np.testing.assert_allclose(out["outputs"], np.tile(conftest.RHO, 16), rtol=1e-5)


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
  inputs = {"temperature": [0.7, 0.7, 1.0], "seed": [11, 12, 13]}
  body = {"signature_name": "sample_a", "inputs": inputs}
  first, second = predict(port, body), predict(port, body)
  assert first[0] == 200 and first == second
  assert np.array(first[1]["outputs"]).shape == (3, 8, 8, 1)
  other = predict(port, {**body, "inputs": {**inputs, "seed": [21, 22, 23]}})
  assert other[1]["outputs"] != first[1]["outputs"]
  # Every input is batched, so the row format takes the same request.
  rows = [{"temperature": t, "seed": s} for t, s in zip(inputs["temperature"], inputs["seed"])]
  status, by_rows = predict(port, {"signature_name": "sample_a", "instances": rows})
  assert status == 200 and by_rows["predictions"] == first[1]["outputs"]


def test_concurrent_burst_of_good_and_bad_requests(server):
  port, images = server["port"], server["images"]
  expected = predict(port, {"instances": images.tolist()})[1]["predictions"]
  cases = bad_requests.cases(images)

  def job(i):
    if i % 2 == 0:
      status, body = predict(port, {"instances": images.tolist()})
      assert status == 200 and body["predictions"] == expected
    else:
      assert_refused(port, cases[i % len(cases)])
    return i

  start = time.monotonic()
  with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
    done = list(pool.map(job, range(48)))
  assert done == list(range(48))
  assert time.monotonic() - start < 60
  assert request(port, "GET", "/v1/models/glow")[0] == 200


def test_glow_serve_main_serves_until_sigterm(exported, monkeypatch, capsys):
  """glow-serve's main() with a command line: it serves, and SIGTERM ends it with status 0.

  In this process rather than a child (a child imports TensorFlow and loads the model again, the
  slowest part of this file); test_browser.py runs glow-demo, which shares the serving loop, as a
  real process.
  """
  base, images, _, _ = exported
  servers, replies = [], []
  make_server = serve_cli.serve_lib.make_server

  def keep(*args, **kwargs):
    servers.append(make_server(*args, **kwargs))
    return servers[-1]

  monkeypatch.setattr(serve_cli.serve_lib, "make_server", keep)

  previous = signal.getsignal(signal.SIGTERM)
  finished = threading.Event()

  def client():
    while not servers and not finished.wait(0.05):
      pass
    if not servers:
      return  # main() ended before serving: its status fails the test below
    try:
      port = servers[0].server_address[1]
      replies.append(
        request(
          port,
          "POST",
          "/v1/models/shoes:predict",
          {"signature_name": "encode_a", "instances": images.tolist()},
        )
      )
      replies.append(request(port, "POST", "/v1/models/shoes:predict", b"nope"))
    finally:
      # SIGTERM only once main() has put its handler in place (pytest's default would end the
      # whole session); otherwise stop the server directly.
      deadline = time.monotonic() + 30
      while signal.getsignal(signal.SIGTERM) is previous and time.monotonic() < deadline:
        time.sleep(0.05)
      if signal.getsignal(signal.SIGTERM) is previous:
        servers[0].shutdown()
      else:
        os.kill(os.getpid(), signal.SIGTERM)

  thread = threading.Thread(target=client, daemon=True)
  thread.start()
  try:
    status = serve_cli.main(
      ["glow-serve", f"--saved_model={base}", "--model_name=shoes", "--port=0"]
    )
  finally:
    finished.set()
    signal.signal(signal.SIGTERM, previous)
  thread.join(timeout=30)
  assert status == 0
  (ok, body), (bad, _) = replies
  assert ok == 200 and np.array(body["predictions"]).shape == (5, 64)
  assert bad == 400
  out = capsys.readouterr().out
  assert f"model 'shoes' version 3 from {base}/3" in out
  assert "listening on http://127.0.0.1:" in out and "/v1/models/shoes" in out
