"""glow-serve: TF Serving's REST API with the official request formats, and a burst of malformed
and concurrent requests that must all get an answer while the server keeps serving."""

import concurrent.futures
import http.client
import json
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2.serving import export
from glow_tf2.serving import server as serve
from tests import helpers

SHAPE = (8, 8, 1)
MAX_BYTES = 200_000


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  config = glow_tf2.GlowConfig(
    image_shape=SHAPE,
    n_levels=1,
    depth=1,
    width=8,
    permutation="lu",
    coupling="affine",
    learntop=True,
  )
  images = helpers.real_images(32, SHAPE, seed=7)
  glows = []
  for seed, domain in ((1, images), (2, 255 - images)):
    glow = glow_tf2.Glow(config, seed=seed, name=f"glow_{seed}")
    glow.initialize(glow_tf2.preprocess(domain, 8, noise=False))
    helpers.perturb(glow, scale=0.05, seed=seed)
    glows.append(glow)
  base = tmp_path_factory.mktemp("serving") / "glow"
  # The TF Serving layout: <model_base_path>/<version>/.
  export.export_saved_model(export.build_serving_module(*glows), str(base / "3"))
  return str(base), images[:5]


@pytest.fixture(scope="module")
def server(exported):
  base, images = exported
  model_server = serve.ModelServer(base, model_name="glow", max_batch=64, max_concurrent=2)
  httpd = serve.make_server(model_server, "127.0.0.1", 0, max_request_bytes=MAX_BYTES)
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()
  yield dict(port=httpd.server_address[1], images=images, model=model_server)
  httpd.shutdown()
  httpd.server_close()


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


def test_row_format_translation_matches_the_saved_model(server):
  port, images = server["port"], server["images"]
  status, body = predict(port, {"instances": images.tolist()})  # serving_default = translate_a2b
  assert status == 200, body
  expected = (
    server["model"]._model.signatures["translate_a2b"](images=tf.constant(images))["images"].numpy()
  )
  np.testing.assert_array_equal(np.array(body["predictions"], np.uint8), expected)
  # Named inputs per instance, and the version in the URL.
  status, body2 = request(
    port,
    "POST",
    "/v1/models/glow/versions/3:predict",
    {"signature_name": "translate_a2b", "instances": [{"images": im} for im in images.tolist()]},
  )
  assert status == 200 and body2["predictions"] == body["predictions"]


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


def malformed_cases(images):
  good = images.tolist()
  big = b'{"instances": [' + b"0," * (MAX_BYTES // 2) + b"0]}"
  deep = b'{"instances": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
  return [
    # (method, path, body, expected status, expected words in the error)
    ("POST", "/v1/models/glow:predict", b"{not json", 400, "not valid JSON"),
    ("POST", "/v1/models/glow:predict", b"\x80\x04pickle", 400, "not valid JSON"),
    ("POST", "/v1/models/glow:predict", b"[1, 2]", 400, "JSON object"),
    ("POST", "/v1/models/glow:predict", {}, 400, "exactly one of"),
    ("POST", "/v1/models/glow:predict", {"instances": good, "inputs": good}, 400, "exactly one"),
    ("POST", "/v1/models/glow:predict", {"instances": []}, 400, "non-empty"),
    ("POST", "/v1/models/glow:predict", {"instances": good, "extra": 1}, 400, "unknown"),
    (
      "POST",
      "/v1/models/glow:predict",
      {"signature_name": "nope", "instances": good},
      400,
      "not found",
    ),
    ("POST", "/v1/models/glow:predict", {"signature_name": 3, "instances": good}, 400, "string"),
    ("POST", "/v1/models/other:predict", {"instances": good}, 404, "Servable not found"),
    ("POST", "/v1/models/glow/versions/9:predict", {"instances": good}, 404, "not found"),
    ("POST", "/v1/models/glow:classify", {"examples": []}, 400, "only :predict"),
    ("GET", "/v2/whatever", None, 404, "no such endpoint"),
    ("GET", "/v1/models/glow:predict", None, 405, "POST"),
    ("DELETE", "/v1/models/glow", None, 405, "not allowed"),
    # Wrong shapes: rank (refused by the server) and size (refused by the signature).
    ("POST", "/v1/models/glow:predict", {"instances": images[:, :, :, 0].tolist()}, 400, "shape"),
    (
      "POST",
      "/v1/models/glow:predict",
      {"instances": np.zeros((2, 16, 8, 1), int).tolist()},
      400,
      "not compatible",
    ),
    (
      "POST",
      "/v1/models/glow:predict",
      {"signature_name": "decode_a", "inputs": [[0.0] * 65]},
      400,
      "not compatible",
    ),
    # Wrong values and types.
    (
      "POST",
      "/v1/models/glow:predict",
      {"instances": (images.astype(int) + 300).tolist()},
      400,
      "[0, 255]",
    ),
    ("POST", "/v1/models/glow:predict", {"instances": (images / 2).tolist()}, 400, "integers"),
    ("POST", "/v1/models/glow:predict", {"instances": [[["a"] * 8] * 8]}, 400, "numbers"),
    ("POST", "/v1/models/glow:predict", {"instances": [[[[True]] * 8] * 8]}, 400, "booleans"),
    ("POST", "/v1/models/glow:predict", {"instances": [good[0], good[1][:3]]}, 400, "rectangular"),
    ("POST", "/v1/models/glow:predict", {"instances": [[[[10**30]] * 8] * 8]}, 400, "numbers"),
    (
      "POST",
      "/v1/models/glow:predict",
      b'{"signature_name": "decode_a", "inputs": [[NaN]]}',
      400,
      "not valid JSON",
    ),
    (
      "POST",
      "/v1/models/glow:predict",
      {"signature_name": "sample_a", "inputs": {"temperature": [-1.0], "seed": 1}},
      400,
      ">= 0",
    ),
    (
      "POST",
      "/v1/models/glow:predict",
      {"signature_name": "sample_a", "inputs": {"temperature": [1.0]}},
      400,
      "missing: seed",
    ),
    (
      "POST",
      "/v1/models/glow:predict",
      {"signature_name": "sample_a", "inputs": {"temperature": [1.0] * 65, "seed": 1}},
      413,
      "max_batch",
    ),
    (
      "POST",
      "/v1/models/glow:predict",
      {"signature_name": "encode_a", "inputs": {"images": good, "labels": [0] * 5}},
      400,
      "unknown: labels",
    ),
    ("POST", "/v1/models/glow:predict", big, 413, "larger than the limit"),
    ("POST", "/v1/models/glow:predict", deep, 400, ""),
  ]


def check_case(port, case):
  method, path, body, status, words = case
  got_status, got = request(port, method, path, body)
  assert got_status == status, (case[:2], got)
  assert isinstance(got, dict) and words in got["error"], (case[:2], got)


def test_malformed_requests_get_a_4xx_and_the_server_keeps_serving(server):
  port, images = server["port"], server["images"]
  for case in malformed_cases(images):
    check_case(port, case)
  status, body = predict(port, {"instances": images.tolist()})
  assert status == 200 and len(body["predictions"]) == 5


def raw(port, data: bytes) -> bytes:
  with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
    sock.sendall(data)
    chunks = []
    while True:
      chunk = sock.recv(65536)
      if not chunk:
        break
      chunks.append(chunk)
  return b"".join(chunks)


def test_requests_without_length_or_with_garbage_are_answered(server):
  port = server["port"]
  reply = raw(
    port, b"POST /v1/models/glow:predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
  )
  assert reply.startswith(b"HTTP/1.1 411") and b"Content-Length" in reply
  reply = raw(port, b"POST /v1/models/glow:predict HTTP/1.1\r\nContent-Length: -5\r\n\r\n")
  assert reply.startswith(b"HTTP/1.1 400")
  reply = raw(port, b"\x16\x03\x01 not http at all\r\n\r\n")
  assert b'{"error":"Bad request version' in reply
  # A body shorter than its Content-Length: the client gives up, the server must not hang.
  with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
    sock.sendall(b"POST /v1/models/glow:predict HTTP/1.1\r\nContent-Length: 100\r\n\r\n{}")
    sock.shutdown(socket.SHUT_WR)
    assert sock.recv(65536).startswith(b"HTTP/1.1 400")
  assert request(port, "GET", "/v1/models/glow")[0] == 200


def test_keep_alive_connection_survives_errors(server):
  port, images = server["port"], server["images"]
  conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
  for body, status in [
    ({"instances": images.tolist()}, 200),
    (b"{bad", 400),
    ({"signature_name": "nope", "instances": [1]}, 400),
    ({"instances": images.tolist()}, 200),
  ]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", "/v1/models/glow:predict", body=data)
    response = conn.getresponse()
    response.read()
    assert response.status == status
  conn.close()


def test_concurrent_burst_of_good_and_bad_requests(server):
  port, images = server["port"], server["images"]
  expected = predict(port, {"instances": images.tolist()})[1]["predictions"]
  cases = malformed_cases(images)

  def job(i):
    if i % 2 == 0:
      status, body = predict(port, {"instances": images.tolist()})
      assert status == 200 and body["predictions"] == expected
    else:
      check_case(port, cases[i % len(cases)])
    return i

  start = time.monotonic()
  with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
    done = list(pool.map(job, range(48)))
  assert done == list(range(48))
  assert time.monotonic() - start < 60
  assert request(port, "GET", "/v1/models/glow")[0] == 200


def test_glow_serve_binary(exported):
  base, images = exported
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
