"""glow-export and glow-eval on a real (tiny) glow-train run: the run's flags, its EMA weights."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

from absl import flags
import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2 import config as config_lib
from glow_tf2 import run_dir
from glow_tf2.cli import _run
from glow_tf2.cli import eval as eval_main
from glow_tf2.cli import export as export_main
from glow_tf2.train import loop
from tests import helpers


def bin_path(name):
  return os.path.join(os.path.dirname(sys.executable), name)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  return helpers.tiny_pair_run(
    tmp_path_factory,
    "run",
    {
      "data.n_test": 40,
      "model.permutation": "lu",
      "model.coupling": "affine",
      "model.learntop": True,
      "optim.lr": 0.005,
      "n_batch_test": 20,
      "epochs_full_sample": 1,
    },
  )


# The first line of train_A.txt as glow_tf2 wrote it before config.json (flat, keyed by the
# config's field names), for the run of the fixture; written out here, not by the library.
def _old_first_line(logdir, data_dir):
  return {
    "problem": "mnist",
    "data_dir": data_dir,
    "tfds_data_dir": None,
    "category": "",
    "channels": 1,
    "image_size": -1,
    "crop_size": 0,
    "dal": 0,
    "n_train": 32,
    "n_test": 40,
    "flip_color": False,
    "n_levels": 2,
    "depth": 1,
    "width": 8,
    "permutation": "lu",
    "coupling": "affine",
    "learntop": True,
    "ycond": False,
    "n_bits_x": 8,
    "gradient_checkpointing": False,
    "optimizer": "adamax",
    "lr": 0.005,
    "beta1": 0.9,
    "polyak_epochs": 1.0,
    "weight_decay": 1.0,
    "epochs_warmup": 1.0,
    "joint_train": True,
    "code_loss_type": "code_last",
    "code_loss_fn": "l2",
    "code_loss_scale": 1.0,
    "mle_loss_scale": 1.0,
    "translation_loss_scale": 0.0,
    "weight_y": 0.0,
    "logdir": "/somewhere/else",
    "seed": 0,
    "n_batch_train": 16,
    "n_batch_test": 20,
    "n_batch_init": 32,
    "anchor_size": 32,
    "epochs": 1,
    "train_steps": 0,
    "epochs_full_valid": 1,
    "epochs_full_sample": 1,
    "n_sample": 4,
    "inference": False,
    "restore_path_a": "",
    "restore_path_b": "",
    "strategy": "auto",
    "num_cpu_devices": 0,
    "jit_compile": False,
    "intra_op_threads": 0,
    "inter_op_threads": 0,
    "branches": 1,
    "verbose": False,
    "log_steps": 100,
    "keep_checkpoints": 3,
  }


def _legacy_copy(run, tmp_path, first_line=None):
  """The fixture's run folder as an older version left it: no config.json."""
  logdir = tmp_path / "legacy_run"
  shutil.copytree(run["logdir"], logdir)
  os.remove(logdir / "config.json")
  if first_line is not None:
    for name in ("train_A.txt", "train_B.txt", "test_A.txt", "test_B.txt"):
      lines = (logdir / name).read_text().splitlines(keepends=True)
      (logdir / name).write_text(json.dumps(first_line) + "\n" + "".join(lines[1:]))
  return str(logdir)


@pytest.fixture
def no_trainer(monkeypatch):
  """Building a Trainer fails: eval and export must not need one."""

  def refuse(*args, **kwargs):
    raise AssertionError("a Trainer was built")

  monkeypatch.setattr(loop.Trainer, "__init__", refuse)


@pytest.mark.parametrize("first_line", ["fields", "flags"])
def test_a_run_without_config_json_loads_from_its_first_log_line(
  run, tmp_path, first_line, no_trainer
):
  old = _old_first_line(run["logdir"], run["data_dir"]) if first_line == "fields" else None
  logdir = _legacy_copy(run, tmp_path, old)
  found = run_dir.read_config(logdir)
  assert not found.resolved and found.keys == ("A", "B")
  loaded = _run.load_run(logdir)
  trained = run["trainer"].config
  assert loaded.config == dataclasses.replace(trained, logdir=logdir)
  assert loaded.config.model.image_shape == (32, 32, 1)
  _assert_ema_weights(loaded, run["trainer"])


def test_eval_and_export_of_a_legacy_run_without_a_trainer(run, tmp_path, capsys, no_trainer):
  logdir = _legacy_copy(run, tmp_path, _old_first_line(run["logdir"], run["data_dir"]))
  export_dir = str(tmp_path / "export")
  export_main.export_from_flags(
    parse(export_main.define_flags, f"--logdir={logdir}", f"--export_dir={export_dir}")
  )
  model = tf.saved_model.load(export_dir)
  images = _first_pairs(run["trainer"], "test", 8)[0]
  eps = model.signatures["encode_a"](images=tf.constant(images))["eps"].numpy()
  x = glow_tf2.preprocess(images, 8, noise=False)
  np.testing.assert_allclose(eps, run["trainer"].sides[0].ema.glow.encode(x)[0], atol=1e-4)
  report = eval_main.evaluate_run(
    logdir, settings=config_lib.EvalConfig(n_train_reference=0, batch_size=20, judge=False)
  )
  assert report["n_test"] == 40 and "best_A" in report["source"]


def _assert_ema_weights(loaded, trainer):
  """The loaded Glows hold the run's best EMA weights (what export and eval use)."""
  for glow, side, prefix in zip(loaded.glows, trainer.sides, loaded.checkpoints):
    assert f"best_{side.key}" in prefix
    restored = tf.train.load_checkpoint(prefix)
    best = {name for name, _ in tf.train.list_variables(prefix) if name.startswith("ema/glow/")}
    assert len(best) == len(glow.variables) > 0
    got = sorted(float(np.sum(v.numpy())) for v in glow.variables)
    want = sorted(float(np.sum(restored.get_tensor(n))) for n in best)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_config_json_run_loads_without_a_trainer(run, no_trainer):
  loaded = _run.load_run(run["logdir"], "last")
  assert loaded.config == run["trainer"].config
  assert all(p.endswith("ckpt-2") and "checkpoints" in p for p in loaded.checkpoints)
  for key in "AB":
    assert run_dir.find_checkpoint(run["logdir"], key) == tf.train.latest_checkpoint(
      os.path.join(run["logdir"], f"best_{key}")
    )
  with pytest.raises(FileNotFoundError, match="no checkpoint of model A"):
    run_dir.find_checkpoint(str(run["logdir"]) + "_nowhere", "A", "last")


def parse(define, *args):
  """A binary's flags parsed into a private FlagValues (the global FLAGS stay untouched)."""
  values = flags.FlagValues()
  define(values)
  values(["binary", *args])
  return values


def test_glow_export_writes_the_ema_weights_and_glow_eval_reads_the_run(run, tmp_path, capsys):
  export_dir = str(tmp_path / "models" / "glow" / "1")
  path = export_main.export_from_flags(
    parse(export_main.define_flags, f"--logdir={run['logdir']}", f"--export_dir={export_dir}")
  )
  assert path == export_dir
  out = capsys.readouterr().out
  assert "wrote " + export_dir in out and "translate_a2b" in out and "best_A" in out
  with pytest.raises(SystemExit, match="exists"):
    export_main.export_from_flags(
      parse(export_main.define_flags, f"--logdir={run['logdir']}", f"--export_dir={export_dir}")
    )

  trainer = run["trainer"]
  test = next(iter(trainer.dataset("test", 8, shuffle=False, repeat=False)))
  images = test["image_a"]
  model = tf.saved_model.load(export_dir)
  eps = model.signatures["encode_a"](images=images)["eps"].numpy()
  side = trainer.sides[0]
  x = glow_tf2.preprocess(images, 8, noise=False)
  ema_eps = side.ema.glow.encode(x)[0].numpy()
  raw_eps = side.model.glow.encode(x)[0].numpy()
  np.testing.assert_allclose(eps, ema_eps, atol=1e-4)
  assert np.abs(raw_eps - ema_eps).max() > 1e-3  # the EMA weights, not the raw ones

  # glow-eval on the SavedModel, and the same metrics from the checkpoint's EMA models.
  report_path = tmp_path / "eval" / "report.json"
  saved = eval_main.eval_from_flags(
    parse(
      eval_main.define_flags,
      f"--logdir={run['logdir']}",
      f"--saved_model={export_dir}",
      f"--report={report_path}",
      "--batch_size=16",
      "--n_train_reference=200",
      "--nojudge",  # the judges are tested on the coupled run (tests/cli/test_coupled_run.py)
    )
  )
  out = capsys.readouterr().out
  assert "nearest neighbour" in out and "bits/dim A" in out and f"wrote {report_path}" in out
  assert json.loads(report_path.read_text())["metrics"] == json.loads(json.dumps(saved["metrics"]))
  assert (tmp_path / "eval" / "report.png").exists()
  assert saved["n_test"] == 40 and saved["n_train_reference"] == 200
  # The report's values themselves are checked against numpy in test_evaluation.py; here, that
  # glow-eval read the run's test split and the first 200 training pairs.
  test_a, _ = _first_pairs(trainer, "test", 40)
  bits = model.signatures["bits_per_dim_a"](images=tf.constant(test_a))["bits_per_dim"].numpy()
  assert saved["metrics"]["bits_per_dim"]["a"]["mid_bin"]["mean"] == pytest.approx(
    bits.astype(np.float64).mean(), rel=1e-5
  )
  assert set(saved["metrics"]["translation"]["a2b"]) == {"model", "identity", "nearest_neighbour"}
  # Not a coupled run: no coupled keys at all (not zeros), and rho = 1 in its SavedModel.
  assert "coupled_bits_per_dim" not in saved["metrics"]
  assert "translation_sampled" not in saved["metrics"] and saved["model"]["coupled"] == 0
  np.testing.assert_array_equal(model.signatures["rho"]()["rho"].numpy(), np.ones(eps.shape[1]))


def test_glow_export_overwrite_refuses_a_model_base_folder(run, tmp_path):
  """`--export_dir=notamodel --overwrite` where notamodel holds a model version and a file of
  the user's: refused in one line naming them, exit status 1, everything kept; the version
  folder itself is overwritten."""
  base = tmp_path / "notamodel"
  args = [f"--logdir={run['logdir']}", f"--export_dir={base / '1'}"]
  export_main.export_from_flags(parse(export_main.define_flags, *args))
  (base / "important.txt").write_text("keep me")
  first_model = (base / "1" / "saved_model.pb").read_bytes()
  with pytest.raises(SystemExit) as exited:
    export_main.export_from_flags(
      parse(
        export_main.define_flags,
        f"--logdir={run['logdir']}",
        f"--export_dir={base}",
        "--overwrite",
      )
    )
  message = str(exited.value.code)
  assert message.startswith(f"glow-export: {base} is not a SavedModel of glow-export")
  assert "it holds 1/, important.txt" in message and f"export to {base / '2'}" in message
  assert "\n" not in message
  assert (base / "important.txt").read_text() == "keep me"
  assert (base / "1" / "saved_model.pb").read_bytes() == first_model
  # The console script: the same line on stderr, a non-zero exit status.
  proc = helpers.run_python(
    [
      sys.executable,
      bin_path("glow-export"),
      f"--logdir={run['logdir']}",
      f"--export_dir={base}",
      "--overwrite",
    ],
    timeout=120,
  )
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines() == [message]
  assert sorted(os.listdir(base)) == ["1", "important.txt"]
  # The version folder itself is a SavedModel of glow-export: --overwrite replaces it.
  export_main.export_from_flags(parse(export_main.define_flags, *args, "--overwrite"))
  assert (base / "important.txt").read_text() == "keep me"
  assert tf.saved_model.load(str(base / "1")).signatures["encode_a"] is not None


def _first_pairs(trainer, split, n):
  """The first n pairs of a split, unshuffled (what glow-eval reads)."""
  batch = next(iter(trainer.dataset(split, n, shuffle=False, repeat=False, dal=0)))
  return batch["image_a"].numpy(), batch["image_b"].numpy()


def test_glow_eval_code_mse_of_inference_codes(tmp_path, capsys):
  rng = np.random.default_rng(0)
  z_a = rng.normal(size=(6, 1024)).astype(np.float32)
  z_b = z_a + rng.normal(scale=0.5, size=z_a.shape).astype(np.float32)
  np.save(tmp_path / "z_A.npy", z_a)
  np.save(tmp_path / "z_B.npy", z_b)
  diff = (z_a.astype(np.float64) - z_b) ** 2
  report = eval_main.eval_from_flags(
    parse(
      eval_main.define_flags,
      f"--z_a={tmp_path / 'z_A.npy'}",
      f"--z_b={tmp_path / 'z_B.npy'}",
      "--n_levels=2",
      f"--report={tmp_path / 'z.json'}",
    )
  )
  assert report["top_dim"] == 512
  assert report["metrics"]["code_mse"]["all"] == pytest.approx(diff.mean())
  assert report["metrics"]["code_mse"]["top"] == pytest.approx(diff[:, 512:].mean())
  assert f"top block {diff[:, 512:].mean():.6f}" in capsys.readouterr().out
  assert json.load(open(tmp_path / "z.json"))["metrics"]["code_mse"]["all"] == pytest.approx(
    diff.mean(), rel=1e-6
  )
  top = eval_main.eval_from_flags(
    parse(
      eval_main.define_flags,
      f"--z_a={tmp_path / 'z_A.npy'}",
      f"--z_b={tmp_path / 'z_B.npy'}",
      "--top_dim=100",
    )
  )
  assert top["metrics"]["code_mse"]["top"] == pytest.approx(diff[:, -100:].mean())
  with pytest.raises(SystemExit, match="glow-eval: .*nope.npy"):
    eval_main.eval_from_flags(
      parse(
        eval_main.define_flags, f"--z_a={tmp_path / 'nope.npy'}", f"--z_b={tmp_path / 'z_B.npy'}"
      )
    )


def test_glow_eval_console_script(tmp_path):
  """The installed console script itself (z mode: no model to build)."""
  z = np.arange(24, dtype=np.float32).reshape(3, 8)
  np.save(tmp_path / "z_A.npy", z)
  np.save(tmp_path / "z_B.npy", z + 1)
  proc = subprocess.run(
    [
      bin_path("glow-eval"),
      f"--z_a={tmp_path / 'z_A.npy'}",
      f"--z_b={tmp_path / 'z_B.npy'}",
      "--n_levels=2",
    ],
    capture_output=True,
    text=True,
    timeout=120,
    env=helpers.SUBPROCESS_ENV,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "code MSE: all dims 1.000000   top block 1.000000" in proc.stdout


def test_glow_eval_refuses_a_text_file_as_codes(tmp_path):
  """A text file as --z_a: "<path>: not a .npy array file", not numpy's advice to unpickle it;
  one line on stderr and exit status 1 (the console script)."""
  np.save(tmp_path / "z_B.npy", np.zeros((3, 8), np.float32))
  text = tmp_path / "z_A.txt"
  text.write_text("0.1 0.2 0.3\n")
  args = [f"--z_a={text}", f"--z_b={tmp_path / 'z_B.npy'}"]
  with pytest.raises(SystemExit) as exited:
    eval_main.eval_from_flags(parse(eval_main.define_flags, *args))
  assert exited.value.code == f"glow-eval: {text}: not a .npy array file"
  proc = helpers.run_python([sys.executable, bin_path("glow-eval"), *args], timeout=120)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines() == [f"glow-eval: {text}: not a .npy array file"]
