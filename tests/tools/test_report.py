"""glow-report: curves against training time, grids and the results table from run folders."""

import json
import os
import sys

import numpy as np
from PIL import Image
import pytest

from glow_tf2 import image_grid
from glow_tf2.config import TEMPERATURES
from glow_tf2_tools import report
from tests import helpers


def _write_log(path, hyper, records):
  with open(path, "w") as handle:
    for line in [hyper, *records]:
      handle.write(json.dumps(line) + "\n")


def _eval_json(bits_a, bits_b=None):
  metrics = {"bits_per_dim": {"a": {"noise": {"mean": bits_a, "stderr": 0.01}}}}
  if bits_b is not None:
    metrics["bits_per_dim"]["b"] = {"noise": {"mean": bits_b, "stderr": 0.02}}
    metrics["code_mse"] = {"all": 0.5, "top": 0.25}
    metrics["translation"] = {
      d: {
        "model": {"mse": 0.01, "psnr": 20.0 + i, "ssim": 0.8},
        "identity": {"mse": 0.1, "psnr": 10.0, "ssim": 0.1},
        "nearest_neighbour": {"mse": 0.05, "psnr": 13.0, "ssim": 0.5},
      }
      for i, d in enumerate(("a2b", "b2a"))
    }
  return {"n_test": 40, "metrics": metrics}


def make_run(
  root,
  sides=("A", "B"),
  train_times=(60.0, 120.0, 90.0),
  test_bits=(5.0, 4.0, 3.5),
  resumed=False,
  hyper=None,
  size=32,
):
  """A finished run folder as glow-train + glow-eval leave it: 3 epochs, grids of epochs 1 and
  3 (per side a row per temperature of 64 grey `size` x `size` draws, 10 * row + epoch)."""
  os.makedirs(root)
  hyper = hyper or {"problem": "mnist", "crop_size": 0}
  for side in sides:
    train = [{"epoch": e + 1, "train_time": t, "bits_x": 9.0} for e, t in enumerate(train_times)]
    if resumed:  # a restart after epoch 2 logs epoch 2 again; the second record counts
      train.insert(2, {"epoch": 2, "train_time": 1000.0, "bits_x": 9.0})
      train[1]["train_time"] = 5000.0
    _write_log(os.path.join(root, f"train_{side}.txt"), hyper, train)
    _write_log(
      os.path.join(root, f"test_{side}.txt"),
      hyper,
      [{"epoch": e + 1, "bits_x": b + (side == "B")} for e, b in enumerate(test_bits)],
    )
    for epoch in (1, 3):
      rows = [
        np.full((64, size, size, 1), 10 * i + epoch, np.uint8) for i in range(len(TEMPERATURES))
      ]
      image_grid.save_png(
        os.path.join(root, f"{side}_samples_epoch_{epoch}.png"), image_grid.make_rows_grid(rows)
      )
  if len(sides) == 2:
    rows = [np.zeros((8, 32, 32, 1), np.uint8)] * 3
    for name in ("A2B", "B2A"):
      image_grid.save_png(
        os.path.join(root, f"{name}_epoch_3.png"), image_grid.make_rows_grid(rows)
      )
  with open(os.path.join(root, "eval.json"), "w") as handle:
    json.dump(_eval_json(3.5, 4.5 if len(sides) == 2 else None), handle)
  return str(root)


def test_curve_is_test_bits_against_summed_training_minutes(tmp_path):
  run = make_run(tmp_path / "run")
  curve = report.test_curve(run, "B")
  np.testing.assert_allclose(curve["minutes"], [1.0, 3.0, 4.5])
  np.testing.assert_allclose(curve["bits"], [6.0, 5.0, 4.5])


def test_a_resumed_epoch_counts_once(tmp_path):
  run = make_run(tmp_path / "run", resumed=True)
  np.testing.assert_allclose(
    report.test_curve(run, "A")["minutes"], [1.0, 1.0 + 1000 / 60, 1.0 + 1090 / 60]
  )


def test_last_epoch_grid_is_the_newest(tmp_path):
  run = make_run(tmp_path / "run")
  assert report.last_epoch_png(run, "A_samples_epoch_{epoch}.png").endswith("A_samples_epoch_3.png")
  with pytest.raises(report.ReportError, match="no A_epoch_N.png grid"):
    report.last_epoch_png(run, "A_epoch_{epoch}.png")


def test_report_writes_figures_and_a_table_of_every_run(tmp_path):
  joint = make_run(tmp_path / "joint")
  alone = make_run(tmp_path / "alone", test_bits=(6.0, 5.0, 4.0))
  out = report.write_report([joint, alone], ["joint", "no joint"], str(tmp_path / "docs"), "m")
  # Two paired runs: also their bits/dim-PSNR frontier (its values are checked in
  # tests/tools/test_coupled_figures.py).
  assert sorted(out) == ["curves", "frontier", "samples", "table", "translations"]
  for key in ("curves", "frontier", "samples", "translations"):
    with Image.open(out[key]) as image:
      assert image.size[0] > 200 and image.size[1] > 100
  lines = open(out["table"]).read().splitlines()
  assert len(lines) == 4 and lines[2].startswith(
    "| joint | 4.5 | 40 | 3.500 ± 0.010 | 4.500 ± 0.020"
  )
  assert "| 20.00 / 10.00 / 13.00 |" in lines[2] and "| 21.00 / 10.00 / 13.00 |" in lines[2]


def test_samples_show_the_last_epoch_at_four_temperatures(tmp_path, monkeypatch):
  run = make_run(tmp_path / "run", sides=("A",))
  shown = []
  monkeypatch.setattr(
    report, "_grid_panels", lambda panels, titles, path, scale: shown.append((panels, titles))
  )
  report.plot_samples(run, "unused.png", cell=32)
  ((panels, titles),) = shown
  assert titles == [["A, T = 0", "A, T = 0.5", "A, T = 0.7", "A, T = 1"]]
  # Pixel values 10 * (index in TEMPERATURES) + epoch 3; 3 of the 8 rows of 32 + 1 pixels kept.
  expected = [10 * TEMPERATURES.index(t) + 3 for t in (0.0, 0.5, 0.7, 1.0)]
  for panel, value in zip(panels[0], expected):
    cells = helpers.grid_cells(panel, 3, 8, 32)  # the first 24 draws, 3 rows of 8
    assert np.all(cells == value), (value, np.unique(cells))


def test_samples_of_a_run_folder_from_before_the_one_grid_per_side(tmp_path, monkeypatch):
  """An older run folder holds a grid per temperature (`A_epoch_E_sample_I.png`)."""
  root = tmp_path / "old"
  make_run(root, sides=("A",))
  for path in root.glob("A_samples_epoch_*.png"):
    path.unlink()
  for epoch in (1, 3):
    for i in range(len(TEMPERATURES)):
      images = np.full((64, 32, 32, 1), 10 * i + epoch, np.uint8)
      image_grid.save_png(
        str(root / f"A_epoch_{epoch}_sample_{i}.png"), image_grid.make_grid(images)
      )
  panels = report.sample_panels(str(root), "A", cell=32)
  expected = [10 * TEMPERATURES.index(t) + 3 for t in (0.0, 0.5, 0.7, 1.0)]
  for panel, value in zip(panels, expected):
    assert np.all(helpers.grid_cells(panel, 3, 8, 32) == value)
  with pytest.raises(report.ReportError, match="no B_samples_epoch_N.png grid"):
    report.sample_panels(str(root), "B", cell=32)


def test_the_samples_of_a_64x64_run_show_whole_64_pixel_images(tmp_path, monkeypatch):
  run = make_run(tmp_path / "run", sides=("A",), size=64)
  config = {"format_version": 1, "sides": ["A"], "config": {"model": {"image_shape": [64, 64, 3]}}}
  (tmp_path / "run" / "config.json").write_text(json.dumps(config))
  shown = []
  monkeypatch.setattr(
    report, "_grid_panels", lambda panels, titles, path, scale: shown.append((panels, titles))
  )
  report.write_report([run], ["photos"], str(tmp_path / "docs"), "p")
  ((panels, _),) = shown
  assert [p.shape[:2] for p in panels[0]] == [(1 + 3 * 65, 1 + 8 * 65)] * 4  # 3 whole rows


@pytest.mark.parametrize(
  "hyper, side",
  [
    ({"problem": "mnist", "crop_size": 0}, 32),  # the sets of runs before config.json
    ({"problem": "mnist", "crop_size": 28}, 28),
    ({"problem": "celeba", "crop_size": 0, "image_size": 64}, 64),
  ],
)
def test_the_image_side_of_a_run_without_config_json(tmp_path, hyper, side):
  assert report.image_side(make_run(tmp_path / "run", sides=("A",), hyper=hyper)) == side


def test_single_domain_runs_have_no_translations(tmp_path):
  run = make_run(tmp_path / "single", sides=("A",))
  out = report.write_report([run], ["fashion"], str(tmp_path / "docs"), "f")
  assert "translations" not in out
  assert (
    open(out["table"]).read().splitlines()[0] == "| run | train min | test images | bits/dim A |"
  )


def _main(*args) -> str:
  """glow-report's main in this process: what it exits with (sys.exit(message): status 1)."""
  argv = ["glow-report", *args]
  report.FLAGS(argv)
  try:
    with pytest.raises(SystemExit) as info:
      report.main(argv[:1])
  finally:
    report.FLAGS.unparse_flags()
  return info.value.code


def test_cli_names_what_is_missing(tmp_path):
  # In this process: the real binary's start-up is test_report_on_a_run_the_trainer_wrote's.
  run = make_run(tmp_path / "run")
  os.remove(os.path.join(run, "eval.json"))
  assert _main(f"--runs={run}", f"--output_dir={tmp_path / 'docs'}") == (
    f"glow-report: {run}/eval.json: missing; run glow-eval --logdir={run} first"
  )
  assert _main(f"--runs={run}", "--labels=a,b") == "glow-report: --labels: 2 labels for 1 runs"
  assert _main() == "glow-report: --runs is required"


def test_pixel_baseline_reads_the_runs_own_data(tmp_path):
  from glow_tf2.input import embedded
  from glow_tf2.serving import evaluation
  from glow_tf2_data import generate

  data_dir = str(tmp_path / "digits")
  generate.generate("mnist_digits", data_dir, channels=1)
  hyper = {
    "problem": "mnist_digits",
    "data_dir": data_dir,
    "channels": 1,
    "crop_size": 28,
    "n_bits_x": 8,
  }
  run = make_run(tmp_path / "run", sides=("A",), hyper=hyper, size=28)  # grids of 28x28 crops
  splits = embedded.mnist_splits()  # the 28x28 digits themselves: the crop undoes the padding
  expected = evaluation.independent_pixel_bits(splits["train"][0], splits["validation"][0])
  assert report.pixel_baseline(run) == pytest.approx(expected, rel=1e-9)
  assert 1.0 < expected < 4.0
  out = report.write_report([run], ["digits"], str(tmp_path / "docs"), "d", pixel_baselines=True)
  assert f"| {expected:.3f} |" in open(out["table"]).read()


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
  """A real run folder: 2 epochs of the tiny joint mnist run, then glow-eval on it."""
  logdir = tmp_path_factory.mktemp("real") / "run"
  trained = helpers.run_python(
    helpers.tiny_flags(logdir, helpers.mnist_dir(tmp_path_factory), "--epochs=2"), timeout=300
  )
  assert trained.returncode == 0, trained.stderr[-3000:]
  evaluated = helpers.run_python(
    # --nojudge: training the judges would take minutes; they are tested in tests/quality/ and
    # end to end in tests/cli/test_coupled_run.py.
    [sys.executable, "-m", "glow_tf2.cli.eval", f"--logdir={logdir}", "--nojudge"],
    timeout=300,
  )
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  return str(logdir)


def _records(path):
  with open(path) as handle:
    return [json.loads(line) for line in handle.read().splitlines()[1:]]


def test_report_on_a_run_the_trainer_wrote(real_run, tmp_path):
  out_dir = tmp_path / "docs"
  result = helpers.run_python(
    [
      sys.executable,
      "-m",
      "glow_tf2_tools.report",
      f"--runs={real_run}",
      "--labels=tiny",
      f"--output_dir={out_dir}",
      "--name=tiny",
    ],
    timeout=120,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  for key in ("curves", "samples", "translations"):
    with Image.open(out_dir / f"tiny_{key}.png") as image:
      assert image.size[0] > 200 and image.size[1] > 100, key
  # The table row, rebuilt here from the run's own files.
  with open(os.path.join(real_run, "eval.json")) as handle:
    evaluation = json.load(handle)
  metrics = evaluation["metrics"]
  train_a = _records(os.path.join(real_run, "train_A.txt"))
  assert [r["epoch"] for r in train_a] == [1, 2]
  # The original's log format: train_time is the training seconds elapsed so far.
  minutes = train_a[-1]["train_time"] / 60
  bits = metrics["bits_per_dim"]
  cells = [
    "tiny",
    f"{minutes:.1f}",
    str(evaluation["n_test"]),
    f"{bits['a']['noise']['mean']:.3f} ± {bits['a']['noise']['stderr']:.3f}",
    f"{bits['b']['noise']['mean']:.3f} ± {bits['b']['noise']['stderr']:.3f}",
    f"{metrics['code_mse']['all']:.3f} / {metrics['code_mse']['top']:.3f}",
  ]
  for direction in ("a2b", "b2a"):
    t = metrics["translation"][direction]
    kinds = ("model", "identity", "nearest_neighbour")
    cells.append(" / ".join(f"{t[k]['psnr']:.2f}" for k in kinds))
    cells.append(" / ".join(f"{t[k]['ssim']:.3f}" for k in kinds))
  table = (out_dir / "tiny_table.md").read_text().splitlines()
  assert table[2] == "| " + " | ".join(cells) + " |"
  assert table[2] in result.stdout
  # glow-eval measured the best-test-loss EMA weights on the same 64 test images as the run's own
  # validation of that epoch (another draw of the dequantisation noise: a few 1e-4 apart).
  best = min(_records(os.path.join(real_run, "test_A.txt")), key=lambda r: float(r["loss"]))
  assert bits["a"]["noise"]["mean"] == pytest.approx(float(best["bits_x"]), abs=5e-3)


def test_curve_and_samples_of_a_run_the_trainer_wrote(real_run, monkeypatch):
  train = _records(os.path.join(real_run, "train_B.txt"))
  test = _records(os.path.join(real_run, "test_B.txt"))
  curve = report.test_curve(real_run, "B")
  # The original's log format: cumulative training seconds, bits as "%.4f" strings.
  elapsed = [r["train_time"] for r in train]
  assert elapsed == sorted(elapsed) and elapsed[0] > 0
  np.testing.assert_allclose(curve["minutes"], np.array(elapsed) / 60)
  np.testing.assert_allclose(curve["bits"], [float(r["bits_x"]) for r in test])
  shown = []
  monkeypatch.setattr(
    report, "_grid_panels", lambda panels, titles, path, scale: shown.append(panels)
  )
  report.plot_samples(real_run, "unused.png", cell=32)
  ((panels_a, panels_b),) = shown
  files = sorted(name for name in os.listdir(real_run) if "sample" in name)
  assert files == [f"{side}_samples_epoch_{e}.png" for side in "AB" for e in (1, 2)]
  for side, panels in (("A", panels_a), ("B", panels_b)):
    grid = helpers.decode_file(os.path.join(real_run, f"{side}_samples_epoch_2.png"))
    n = 16  # the smoke preset's --n_sample: 16 draws a row, one row per temperature
    rows = helpers.grid_cells(grid, len(TEMPERATURES), n, 32)
    for t, panel in zip((0.0, 0.5, 0.7, 1.0), panels):
      # The panel: the row of T, its first 12 draws in 3 rows of 4, as make_grid lays them out.
      expected = image_grid.make_grid(rows[TEMPERATURES.index(t)][:12], n_cols=4)
      np.testing.assert_array_equal(panel, expected)
