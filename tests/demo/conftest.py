"""The demo's session fixtures: the tiny exported coupled pair (`test_demo.demo_files`), one
running glow-demo server on a free port of 127.0.0.1, with limits small enough to reach in a
test (12 connections, a 1.5 s request deadline), and a smaller pair that is not coupled."""

import threading

import pytest

import glow_tf2
from glow_tf2.demo import server as server_lib
from glow_tf2.serving import export
from tests import helpers
from tests.demo import test_demo

MAX_CONNECTIONS = 12
REQUEST_TIMEOUT = 1.5


@pytest.fixture(scope="session")
def files(tmp_path_factory):
  return test_demo.demo_files(tmp_path_factory)


@pytest.fixture(scope="session")
def served(files):
  """(Client, DemoAPI, the server) of a running demo."""
  api = server_lib.build_api(files["saved_model"])
  server = server_lib.make_server(
    api, "127.0.0.1", 0, max_connections=MAX_CONNECTIONS, request_timeout=REQUEST_TIMEOUT
  )
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield test_demo.Client(server.server_address[1]), api, server
  server.shutdown()
  server.server_close()


@pytest.fixture(scope="session")
def client(served):
  return served[0]


@pytest.fixture(scope="session")
def plain_files(tmp_path_factory):
  """{"saved_model", "images" uint8 [4, 8, 8, 1]}: an 8x8x1 pair exported without a prior."""
  config = glow_tf2.GlowConfig(
    image_shape=(8, 8, 1), n_levels=1, depth=1, width=8, permutation="lu", coupling="affine"
  )
  images = helpers.real_images(16, (8, 8, 1), seed=3)
  glows = []
  for seed, domain in ((1, images), (2, 255 - images)):
    glow = glow_tf2.Glow(config, seed=seed, name=f"plain_{seed}")
    glow.initialize(glow_tf2.preprocess(domain, 8, noise=False))
    helpers.perturb(glow, scale=0.05, seed=seed)
    glows.append(glow)
  path = str(tmp_path_factory.mktemp("plain_pair") / "glow")
  export.export_saved_model(export.build_serving_module(*glows), path)
  return {"saved_model": path, "images": images[:4]}
