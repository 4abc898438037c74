"""The demo's session fixtures: the tiny exported coupled pair (`demo_pair.demo_files`), one
running glow-demo server on a free port of 127.0.0.1, with limits small enough to reach in a
test (12 connections, a 1.5 s request deadline), and its loaded SavedModel; the pair's example
strip and rho, and the good request the bad-request corpora check after each case."""

import json
import threading

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2.demo import images as image_io
from glow_tf2.demo import model as model_lib
from glow_tf2.demo import server as server_lib
from tests.demo import demo_pair
from tests.demo.raw_api import post
from tests.serving.raw_http import exchange

MAX_CONNECTIONS = 12
REQUEST_TIMEOUT = 1.5


@pytest.fixture(scope="session")
def files(tmp_path_factory):
  return demo_pair.demo_files(tmp_path_factory)


@pytest.fixture(scope="session")
def served(files):
  """(Client, DemoAPI, the server) of a running demo."""
  api = server_lib.build_api(files["saved_model"], model=files.get("model"))
  server = server_lib.make_server(
    api, "127.0.0.1", 0, max_connections=MAX_CONNECTIONS, request_timeout=REQUEST_TIMEOUT
  )
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield demo_pair.Client(server.server_address[1]), api, server
  server.shutdown()
  server.server_close()


@pytest.fixture(scope="session")
def client(served):
  return served[0]


@pytest.fixture(scope="session")
def loaded(served):
  """The demo's SavedModel, to call its signatures directly (`.signatures[name](**tensors)`).

  The server's own loaded copy: loading (and optimising each signature's graph) once more for
  the tests would double that cost and check nothing more.
  """
  return served[1].model


@pytest.fixture(scope="module")
def examples(files):
  with np.load(model_lib.default_examples_path(files["saved_model"])) as data:
    return data["image_a"], data["image_b"], data["label"]


@pytest.fixture(scope="module")
def rho(files):
  """float32 [256]: the prior's rho as the library computed it before the export."""
  return np.load(files["rho"])


@pytest.fixture(scope="module")
def check(served, loaded):
  """A good translation after each case: equal to the SavedModel's translate_a2b at T = 0."""
  client = served[0]
  image = (np.arange(256, dtype=np.int64).reshape(demo_pair.SHAPE) * 7 % 256).astype(np.uint8)
  expected = loaded.signatures["translate_a2b"](images=tf.constant(image[None]))["images"]
  expected = expected.numpy()[0]

  def still_serving():
    status, _, body, _ = exchange(
      client.port, post("translate", {"image": image_io.to_png_base64(image)})
    )
    assert status == 200, body
    np.testing.assert_array_equal(image_io.from_png_base64(json.loads(body)["output"]), expected)

  return still_serving
