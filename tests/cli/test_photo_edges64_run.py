"""The 64-pixel path end to end on real photos: glow-train trains photo_edges64 (64x64x3) for 2
steps with the smallest model (2 levels of 1 step, width 8) and draws its grids, glow-export
writes its SavedModel, glow-translate translates a 100x80 JPEG and a grey 150x120 PNG into it,
and the glow-serve server answers translations of those pictures, codes and bits/dim: shapes,
finiteness, T = 0 the same in glow-translate and the server, and the 64x64 shape in what
glow-export, the server's metadata and glow-report read.

One TensorFlow start for all of it: glow-train's configuration and run, glow-export's and
glow-translate's mains and the server run in this process (each binary's own process is tested
at 32x32 in the other files of tests/cli and tests/serving). Tracing the graphs is most of the
time, so the run is as small as a run can be: a batch of 4 at 64x64 (the smoke preset's 16,
anchored), 8 training pairs, one epoch, 4 samples per grid, no validation (the evaluator is
tested at 32x32) and one SavedModel load per tool. 27 s of CPU in all (61 s of wall time beside
two other test runs and a training, on 2 cores).
"""

import contextlib
import io
import json
import math
import pathlib
import threading

import numpy as np
from PIL import Image
import pytest
import skimage.data
from skimage.feature import canny

from glow_tf2 import user_images
from glow_tf2.cli import export as export_main
from glow_tf2.cli import train
from glow_tf2.cli import translate
from glow_tf2.config import TEMPERATURES
from glow_tf2.input import photo_edges
from glow_tf2.serving import server as serve
from glow_tf2_tools import report
from tests import helpers
from tests.cli.test_export import parse
from tests.serving.test_server import predict
from tests.serving.test_server import request

SHAPE = (64, 64, 3)
CELL = 64 + 1  # a grid cell and its padding


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """{"logdir", "trainer", "export" (the SavedModel), "exported" (glow-export's stdout)}."""
  root = tmp_path_factory.mktemp("photo_edges64")
  values = parse(
    train.define_flags,
    "--problem=photo_edges64",
    "--preset=smoke",
    "--channels=3",
    f"--data_dir={root / 'data'}",
    f"--logdir={root / 'run'}",
    "--width=8",
    "--n_train=8",
    "--n_test=8",  # the translation grids' 8 fixed test pairs
    "--n_sample=4",
    "--epochs=1",
    "--epochs_full_valid=2",  # no validation: export takes the last checkpoint
  )
  trainer = train.train(train.config_from_flags(values))
  export_dir = str(root / "models" / "glow" / "1")  # TF Serving's <base>/<version>
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    export_main.export_from_flags(
      parse(export_main.define_flags, f"--logdir={root / 'run'}", f"--export_dir={export_dir}")
    )
  return dict(logdir=root / "run", trainer=trainer, export=export_dir, exported=out.getvalue())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
  """Two pictures of other sizes: a 100x80 colour JPEG of the cat, and a grey 150x120 PNG of the
  camera man's edges drawn black on white (a picture of domain A)."""
  root = tmp_path_factory.mktemp("photo_edges64_inputs")
  helpers.save(str(root / "photo.jpg"), skimage.data.chelsea()[60:140, 150:250], quality=90)
  camera = skimage.data.camera()[100:340:2, 120:420:2]
  drawing = np.where(canny(camera / 255, sigma=1.5), 0, 255).astype(np.uint8)
  helpers.save(str(root / "edges.png"), drawing[..., None])
  with Image.open(root / "photo.jpg") as photo, Image.open(root / "edges.png") as edges:
    assert (photo.size, photo.mode, edges.size, edges.mode) == ((100, 80), "RGB", (150, 120), "L")
  return root


@pytest.fixture(scope="module")
def validation():
  """(A, B) uint8 [200, 64, 64, 3]: the problem's validation pairs, in their order."""
  return photo_edges.pairs(photo_edges.splits()["validation"], 3)


def test_training_logs_finite_bits_and_draws_64x64_grids(run, validation):
  trainer, logdir = run["trainer"], run["logdir"]
  assert trainer.config.model.image_shape == SHAPE
  assert (trainer.batch_train, trainer.steps_per_epoch) == (4, 2)  # 16 anchored to 64x64
  for side in "AB":
    record = json.loads((logdir / f"train_{side}.txt").read_text().splitlines()[-1])
    bits, loss = float(record["bits_x"]), float(record["loss"])  # "{:.4f}" strings
    assert record["epoch"] == 1 and 0 < bits < 16 and math.isfinite(loss)
    grid = helpers.decode_file(str(logdir / f"{side}_samples_epoch_1.png"))
    cells = helpers.grid_cells(grid, len(TEMPERATURES), 4, 64)  # 4 draws of 64x64 per T
    assert cells.std(axis=(2, 3, 4))[1:].min() > 1  # pictures above T = 0, not a flat colour
  assert report.image_side(str(logdir)) == 64  # glow-report's cells, from config.json
  pairs = {helpers.key(a, b) for a, b in zip(*validation)}  # A alone repeats: blank skies
  for name in ("A2B", "B2A"):
    grid = helpers.decode_file(str(logdir / f"{name}_epoch_1.png"))
    cols = (grid.shape[1] - 1) // CELL
    cells = helpers.grid_cells(grid, 3, cols, 64)  # source, translation, truth
    assert cols == 8
    sources, truths = (cells[0], cells[2]) if name == "A2B" else (cells[2], cells[0])
    assert all(helpers.key(a, b) in pairs for a, b in zip(sources, truths))  # whole, at 64x64


def test_glow_export_reports_the_64x64_models(run):
  out = run["exported"]
  assert "glow-export: 2 model(s) (64, 64, 3)" in out and run["export"] in out
  export = pathlib.Path(run["export"])
  card = json.loads((export / "model_card.json").read_text())
  assert card["model"]["image_shape"] == card["data"]["image_shape"] == list(SHAPE)
  training = card["training"]
  # The batch it trained with: the flags' 16, anchored to 64x64.
  assert (training["steps"], training["global_batch"], training["images_seen"]) == (2, 4, 8)
  text = (export / "model_card.md").read_text()
  assert "- Steps: 2 of 4 images (images seen: 8, epochs: 1)" in text
  assert "64x64x3 uint8 images only" in text


def _read_png(path):
  with Image.open(path) as image:
    assert (image.mode, image.size) == ("RGB", (64, 64)), path
    return np.asarray(image)


def _fitted(inputs):
  files = user_images.find_images([str(inputs)])
  assert [f.stem for f in files] == ["edges", "photo"]
  return np.stack([user_images.fit(user_images.load(f.path), SHAPE, "crop") for f in files])


@pytest.fixture(scope="module")
def server(run):
  """glow-serve's server on the export's base folder, on a free port of 127.0.0.1."""
  base = pathlib.Path(run["export"]).parent  # TF Serving's base folder: the highest version
  model_server = serve.ModelServer(str(base), max_batch=8)
  httpd = serve.make_server(model_server, "127.0.0.1", 0)
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()
  yield httpd.server_address[1]
  httpd.shutdown()
  httpd.server_close()


def test_translate_and_serve_agree_at_t0_on_pictures_of_other_sizes(
  run, inputs, server, tmp_path, capsys
):
  code = translate.main(
    ["glow-translate", f"--model={run['export']}", f"--output={tmp_path}", str(inputs)]
  )
  out, err = capsys.readouterr()
  assert code == 0, err
  assert f"glow-translate: 2 image(s) -> {tmp_path}, a2b, T = 0" in out
  assert "scaled to 64x64, colour (grey repeated)" in out
  assert out.endswith("glow-translate: 2 translated, 0 failed\n")
  a2b = np.stack([_read_png(tmp_path / f"{stem}.png") for stem in ("edges", "photo")])
  fitted = _fitted(inputs)
  assert (a2b != fitted).mean() > 0.5  # a translation, not the input back
  # T = 0 is reproducible: the server, its own load of the SavedModel, draws the same pixels.
  status, body = predict(server, {"instances": fitted.tolist()})  # serving_default: a2b, T = 0
  assert status == 200, body
  np.testing.assert_array_equal(np.asarray(body["predictions"], np.uint8), a2b)
  status, body = predict(server, {"signature_name": "translate_b2a", "instances": fitted.tolist()})
  assert status == 200, body
  b2a = np.asarray(body["predictions"], np.uint8)
  assert b2a.shape == (2, *SHAPE) and np.abs(b2a.astype(int) - a2b).mean() > 1


def test_the_server_reports_64x64_and_its_codes_and_densities_are_finite(server, validation):
  status, body = request(server, "GET", "/v1/models/glow/metadata")
  assert status == 200
  defs = body["metadata"]["signature_def"]["signature_def"]
  for name in ("serving_default", "translate_a2b", "encode_a", "bits_per_dim_b"):
    dims = defs[name]["inputs"]["images"]["tensor_shape"]["dim"]
    assert [d["size"] for d in dims] == ["-1", "64", "64", "3"], name
  a, b = validation[0][:2], validation[1][:2]
  status, body = predict(server, {"signature_name": "encode_a", "instances": a.tolist()})
  assert status == 200, body
  eps = np.asarray(body["predictions"], np.float64)  # one output: its values, row by row
  assert eps.shape[0] == 2 and eps.size == 2 * 64 * 64 * 3 and np.isfinite(eps).all()
  assert 0.2 < eps.std() < 5
  status, body = predict(server, {"signature_name": "bits_per_dim_b", "instances": b.tolist()})
  assert status == 200, body
  bits = np.asarray(body["predictions"], np.float64)
  assert bits.shape == (2,) and np.isfinite(bits).all() and (bits > 0).all()
