"""glow-export and glow-eval on a real (tiny) coupled glow-train run: the EMA prior goes with the
EMA models into the SavedModel, and glow-eval's coupled metrics read the same run."""

import contextlib
import io

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2 import joint_losses
from glow_tf2.cli import _run
from glow_tf2.cli import eval as eval_main
from glow_tf2.cli import export as export_main
from glow_tf2_tools import latent_strips
from tests import helpers
from tests.cli.test_export import parse


@pytest.fixture(scope="module")
def coupled_run(tmp_path_factory):
  """One epoch (2 steps) of a coupled pair (rho from 0.9) on 32 mnist pairs, 32x32x1, 2 levels, width 8."""
  return helpers.tiny_pair_run(
    tmp_path_factory,
    "coupled_run",
    {
      "data.n_test": 24,
      "optim.lr": 0.01,
      "loss.code_loss_type": "coupled",
      "loss.coupled_rho_init": 0.9,
      "n_batch_test": 24,
      "epochs_full_sample": 10,
    },
  )


@contextlib.contextmanager
def capture():
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    yield out


def _test_images(trainer, n):
  batch = next(iter(trainer.dataset("test", n, shuffle=False, repeat=False, dal=0)))
  return batch["image_a"].numpy(), batch["image_b"].numpy()


@pytest.fixture(scope="module")
def exported(coupled_run, tmp_path_factory):
  """(glow-export's SavedModel folder of the run's last checkpoint, what it printed)."""
  export_dir = str(tmp_path_factory.mktemp("export") / "model")
  with capture() as out:
    export_main.export_from_flags(
      parse(
        export_main.define_flags,
        f"--logdir={coupled_run['logdir']}",
        f"--export_dir={export_dir}",
        "--checkpoint=last",
      )
    )
  return export_dir, out.getvalue()


def test_glow_export_of_a_coupled_run_carries_its_ema_prior(coupled_run, exported):
  export_dir, out = exported
  assert "coupled prior" in out and "coupled_bits_per_dim" in out and "sample_pairs" in out
  model = tf.saved_model.load(export_dir)
  trainer = coupled_run["trainer"]
  ema, raw = trainer.coupling.ema, trainer.coupling.prior
  rho = model.signatures["rho"]()["rho"].numpy()
  np.testing.assert_allclose(rho, ema.rho().numpy(), rtol=1e-6)
  assert np.abs(raw.rho().numpy() - ema.rho().numpy()).max() > 1e-6  # the EMA, not the raw rho
  assert abs(rho.mean() - 0.9) < 0.1  # moved a little from its start in 2 steps
  # T = 0: decode_B(rho * encode_A(x)) with the trainer's own EMA models and EMA prior.
  images_a, images_b = _test_images(trainer, 8)
  glow_a, glow_b = (side.ema.glow for side in trainer.sides)
  x_a = glow_tf2.preprocess(images_a, 8, noise=False)
  expected = glow_tf2.postprocess(glow_b.decode(ema.rho() * glow_a.encode(x_a)[0])[0], 8).numpy()
  got = model.signatures["translate_a2b"](images=tf.constant(images_a))["images"].numpy()
  assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
  assert np.mean(got != expected) < 0.01
  bits = model.signatures["coupled_bits_per_dim"](
    images_a=tf.constant(images_a), images_b=tf.constant(images_b)
  )
  np.testing.assert_allclose(
    bits["a"].numpy(), glow_tf2.bits_per_dim(glow_a, images_a, noise=False).numpy(), rtol=1e-5
  )


@pytest.mark.parametrize("weights", ["ema", "trained"])
def test_load_run_restores_the_weights_asked_for(coupled_run, weights):
  trainer = coupled_run["trainer"]
  run = _run.load_run(coupled_run["logdir"], "last", weights=weights)
  models = [side.ema if weights == "ema" else side.model for side in trainer.sides]
  prior = trainer.coupling.ema if weights == "ema" else trainer.coupling.prior
  for glow, model in zip(run.glows, models):
    assert len(glow.variables) == len(model.glow.variables) > 10
    for got, want in zip(glow.variables, model.glow.variables):
      np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=want.name)
  np.testing.assert_array_equal(run.prior.rho().numpy(), prior.rho().numpy())
  # The two sets differ after two steps of lr 0.01: the test tells them apart.
  other = trainer.sides[0].model if weights == "ema" else trainer.sides[0].ema
  assert any(
    not np.array_equal(a.numpy(), b.numpy())
    for a, b in zip(run.glows[0].variables, other.glow.variables)
  )


def test_load_run_refuses_unknown_weights(coupled_run):
  with pytest.raises(ValueError, match="weights must be one of ema, trained, got 'raw'"):
    _run.load_run(coupled_run["logdir"], "last", weights="raw")


def _eval(coupled_run, tmp_path, *extra):
  return eval_main.eval_from_flags(
    parse(
      eval_main.define_flags,
      f"--logdir={coupled_run['logdir']}",
      f"--report={tmp_path / 'report.json'}",
      "--checkpoint=last",
      "--batch_size=24",
      "--n_train_reference=0",
      "--draws=3",
      "--temperature=0.9",
      "--judge_epochs=1",
      "--n_samples=16",
      "--sample_temperatures=0.7",
      *extra,
    )
  )


def test_glow_eval_of_a_coupled_run_from_its_checkpoint_and_its_savedmodel(
  coupled_run, exported, tmp_path, capsys
):
  report = _eval(coupled_run, tmp_path)
  out = capsys.readouterr().out
  assert "coupled prior" in report["source"]
  assert "bits/dim B given A" in out and "3 draws per input" in out
  assert "samples judged by the classifier" in out and (tmp_path / "report_samples.png").exists()
  metrics = report["metrics"]
  # The judges: one classifier per domain, trained on the run's training pairs and cached
  # beside its data; 16 samples per side at T = 0.7; the label agreement of the translations.
  judges = []
  for side in ("a", "b"):
    quality = metrics["sample_quality"][side]
    assert quality["T0.7"]["n"] == 16 and quality["real"]["n"] == 24
    assert 0.0 <= quality["T0.7"]["confident"] <= 1.0 and quality["T0.7"]["frechet"] > 0
    assert quality["judge"]["kind"] == "classifier" and 0.5 < quality["judge"]["test_accuracy"]
    judges.append(quality["judge"]["path"])
  assert all(p.startswith(coupled_run["data_dir"]) for p in judges) and judges[0] != judges[1]
  assert set(metrics["translation_labels"]["a2b"]) == {"T0", "T0.9"}
  # The conditional bits/dim: the library's coupled_bits_per_dim of the trainer's EMA pair.
  trainer = coupled_run["trainer"]
  images_a, images_b = _test_images(trainer, 24)
  glow_a, glow_b = (side.ema.glow for side in trainer.sides)
  bits = joint_losses.coupled_bits_per_dim(
    glow_a, glow_b, trainer.coupling.ema, images_a, images_b, noise=False
  )
  for key in ("joint", "b_given_a", "a_given_b"):
    expected = getattr(bits, key).numpy().astype(np.float64).mean()
    assert metrics["coupled_bits_per_dim"][key]["mid_bin"]["mean"] == pytest.approx(
      expected, rel=1e-5
    )
  sampled = metrics["translation_sampled"]
  assert sampled["temperature"] == 0.9 and sampled["draws"] == 3
  for direction in ("a2b", "b2a"):
    assert sampled[direction]["spread"] > 0
    assert sampled[direction]["psnr_best"] >= sampled[direction]["psnr_mean"]
  # The SavedModel gives the same report as the checkpoint.
  saved = _eval(coupled_run, tmp_path, f"--saved_model={exported[0]}")
  assert saved["model"]["coupled"] == 1

  def flat(tree, prefix=""):
    if isinstance(tree, dict):
      return {k: v for key in tree for k, v in flat(tree[key], f"{prefix}{key}.").items()}
    return {prefix: tree}

  expected = flat(metrics)
  got = flat(saved["metrics"])
  assert got.keys() == expected.keys()
  for key, value in expected.items():
    if isinstance(value, str):
      assert got[key] == value, key
    else:
      assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-4), key


@pytest.mark.parametrize(
  "flag, message",
  [
    ("--temperature=0", "--temperature must be in (0, 2], got 0.0"),
    ("--temperature=-0.5", "--temperature must be in (0, 2], got -0.5"),
    ("--temperature=nan", "--temperature must be in (0, 2], got nan"),
    ("--temperature=2.5", "--temperature must be in (0, 2], got 2.5"),
    ("--draws=1", "--draws must be in [2, 100], got 1"),
    ("--draws=101", "--draws must be in [2, 100], got 101"),
    ("--n_test=-5", "--n_test=-5: must be -1 (the whole split), 0 or more"),
    ("--n_samples=3", "--n_samples must be >= 4 (a covariance), got 3"),
    (
      "--sample_temperatures=0.5,warm",
      "--sample_temperatures must be numbers, got ['0.5', 'warm']",
    ),
    ("--sample_temperatures=0.5,3", "--sample_temperatures must be in [0, 2], got [0.5, 3.0]"),
    (
      "--weights=trained --saved_model=/nowhere",
      "--weights=trained reads a run's checkpoint; a SavedModel holds only the EMA weights",
    ),
  ],
)
def test_glow_eval_refuses_a_bad_setting(tmp_path, flag, message):
  # Checked before the run is read: the folder need not exist.
  values = parse(eval_main.define_flags, f"--logdir={tmp_path / 'nowhere'}", *flag.split())
  with pytest.raises(SystemExit) as exit_info:
    eval_main.eval_from_flags(values)
  assert str(exit_info.value) == f"glow-eval: {message}"


def _png_cells(path, n_rows, n_cols, cell=32):
  """The [n_rows, n_cols, cell, cell, 1] cells of a grayscale image_grid PNG."""
  with Image.open(path) as image:
    return helpers.grid_cells(np.asarray(image)[..., None], n_rows, n_cols, cell)


def test_latent_strips_of_a_coupled_run_start_from_its_test_images(coupled_run, tmp_path):
  out = latent_strips.write_latent_strips(coupled_run["logdir"], str(tmp_path / "m"))
  trainer = coupled_run["trainer"]
  batch = next(iter(trainer.dataset("test", 24, shuffle=False, repeat=False, dal=0)))
  images, labels = batch["image_a"].numpy(), batch["label"].numpy()
  glow_a, glow_b = (side.ema.glow for side in trainer.sides)
  rho = trainer.coupling.ema.rho()

  def translated(x):
    codes = glow_a.encode(glow_tf2.preprocess(x, 8, noise=False))[0]
    return glow_tf2.postprocess(glow_b.decode(rho * codes)[0], 8).numpy()

  def close(got, expected):  # the same images, up to a rare one-level rounding difference
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert np.mean(got != expected) < 0.01

  # Interpolations join test images 0-2 to 3-5: 8 frames, rows A and its T = 0 translation.
  cells = _png_cells(out["interpolation"], 6, 8)
  close(cells[0::2, 0], images[:3])
  close(cells[0::2, -1], images[3:6])
  close(cells[1::2, 0], translated(images[:3]))
  # The manipulation moves the first 3 test images not of the highest label; strength 0 is the
  # third column.
  others = images[labels != labels.max()][:3]
  cells = _png_cells(out["manipulation"], 6, len(latent_strips.STRENGTHS))
  zero = latent_strips.STRENGTHS.index(0.0)
  close(cells[0::2, zero], others)
  close(cells[1::2, zero], translated(others))
  assert not np.array_equal(cells[0, 0], cells[0, -1])
  # The first test image's label: other inputs (the first 3 not of it, test image 0 left out).
  first = int(labels[0])
  assert first != labels.max()
  out = latent_strips.write_latent_strips(coupled_run["logdir"], str(tmp_path / "z"), label=first)
  cells = _png_cells(out["manipulation"], 6, len(latent_strips.STRENGTHS))
  close(cells[0::2, zero], images[labels != first][:3])
  assert not np.array_equal(images[labels != first][:3], others)
  with pytest.raises(ValueError, match=r"no direction for label 99 \(labels: \[0, 1,"):
    latent_strips.write_latent_strips(coupled_run["logdir"], str(tmp_path / "x"), label=99)


def test_glow_eval_with_a_feature_model_on_disk(coupled_run, exported, tmp_path, capsys):
  """--feature_model: the Frechet distance of the samples in a Keras network's feature space."""
  import keras  # pylint: disable=g-import-not-at-top

  inputs = keras.Input((16, 16, 3))
  features = keras.layers.GlobalAveragePooling2D()(
    keras.layers.Conv2D(4, 3, kernel_initializer=keras.initializers.GlorotUniform(seed=0))(inputs)
  )
  path = tmp_path / "features.keras"
  keras.Model(inputs, features).save(path)
  report = _eval(
    coupled_run, tmp_path, f"--saved_model={exported[0]}", "--nojudge", f"--feature_model={path}"
  )
  metrics = report["metrics"]
  assert "sample_quality" not in metrics and "translation_labels" not in metrics
  for side in ("a", "b"):
    got = metrics["feature_model"][side]
    assert got["judge"]["kind"] == "feature_model" and got["T0.7"]["n"] == 16
    assert (
      set(got["T0.7"]) == {"frechet", "saturated", "n"}
      and got["T0.7"]["frechet"] > got["real"]["frechet"]
    )
  assert "samples judged by the feature model" in capsys.readouterr().out
  with pytest.raises(SystemExit, match="--feature_model=.*no such file"):
    _eval(coupled_run, tmp_path, "--nojudge", f"--feature_model={tmp_path / 'missing.keras'}")
