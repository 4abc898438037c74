"""What glow-demo serves around the model: its page, /api/info, the example strip and the
manipulation directions, made by glow-manipulators (checked against numpy), and the messages
it shows when they are missing. The endpoints' values are test_demo.py's.
"""

import os
import shutil

import numpy as np
import pytest

from glow_tf2.cli import manipulators as manipulators_cli
from glow_tf2.demo import api as api_lib
from glow_tf2.demo import manipulators
from glow_tf2.demo import model as model_lib
from glow_tf2.demo import server as server_lib
from tests.demo.demo_pair import SHAPE
from tests.demo.demo_pair import png
from tests.demo.demo_pair import sig
from tests.demo.demo_pair import unpng


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


def test_missing_optional_files_become_messages(files, served, tmp_path):
  bare = tmp_path / "bare"
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
