"""The exported test pair and a running glow-serve, built once per session for the serving tests.

The pair is two 8x8x1 Glows (A on real patches, B on their negatives, every weight perturbed so
that no layer is the identity) coupled by a `CoupledPrior` whose 4 channels have different
correlations (one negative), so that a translation depends on rho and, at T > 0, on the seed;
exported in the TF Serving layout `<base>/3/`. The server is the
library's, on a free port of 127.0.0.1, with limits small enough to reach in a test: --max_batch
64, a body limit of 200 000 bytes, 12 connections and a 1.5 s request deadline.
"""

import threading

import numpy as np
import pytest

from glow_tf2.flows.coupled_prior import CoupledPrior
from glow_tf2.serving import export
from glow_tf2.serving import server as serve
from tests import helpers

SHAPE = (8, 8, 1)
MAX_BYTES = 200_000
MAX_BATCH = 64
MAX_CONNECTIONS = 12
REQUEST_TIMEOUT = 1.5
RHO = (0.9, 0.6, -0.75, 0.3)  # per channel of the one level (8x8x1 squeezes to 4x4x4)


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
  """(TF Serving base folder, 5 test images uint8 [5, 8, 8, 1], [glow_a, glow_b], the prior)."""
  config = helpers.tiny_glow_config(image_shape=SHAPE, n_levels=1)
  images = helpers.real_images(32, SHAPE, seed=7)
  glows = []
  for seed, domain in ((1, images), (2, 255 - images)):
    glow = helpers.initialized_glow(config, domain, seed, name=f"glow_{seed}", perturb_scale=0.05)
    glows.append(glow)
  prior = CoupledPrior(config, initial_rho=0.9)
  prior.r.assign(np.arctanh(np.asarray(RHO, np.float32) / prior.rho_max))
  base = tmp_path_factory.mktemp("serving") / "glow"
  # The TF Serving layout: <model_base_path>/<version>/.
  export.export_saved_model(export.build_serving_module(*glows, prior), str(base / "3"))
  return str(base), images[:5], glows, prior


@pytest.fixture(scope="session")
def server(exported):
  """A running server: {"port", "images", "model" (the ModelServer), "glows", "prior", "httpd"}."""
  base, images, glows, prior = exported
  model_server = serve.ModelServer(base, model_name="glow", max_batch=MAX_BATCH, max_concurrent=2)
  httpd = serve.make_server(
    model_server,
    "127.0.0.1",
    0,
    max_request_bytes=MAX_BYTES,
    max_connections=MAX_CONNECTIONS,
    request_timeout=REQUEST_TIMEOUT,
  )
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()
  yield dict(
    port=httpd.server_address[1],
    images=images,
    model=model_server,
    glows=glows,
    prior=prior,
    httpd=httpd,
  )
  httpd.shutdown()
  httpd.server_close()


@pytest.fixture(scope="module")
def expected(server):
  """The predictions of the good request, from the library's objects: decode_b(rho encode_a)."""
  import glow_tf2  # pylint: disable=g-import-not-at-top

  glow_a, glow_b = server["glows"]
  eps, _ = glow_a.encode(glow_tf2.preprocess(server["images"], 8, noise=False))
  x, _ = glow_b.decode(server["prior"].rho() * eps)
  return glow_tf2.postprocess(x, 8).numpy().astype(int)
