"""glow-train on a data set that tensorflow-datasets prepared locally (`--problem=tfds:NAME`)."""

import json
import sys

import numpy as np
import pytest

from glow_tf2 import losses
from glow_tf2 import run_dir
from tests.helpers import run_python
from tests.input.test_tfds import tfds_dir  # noqa: F401  (the module-scoped fixture: real photos)


def test_glow_train_trains_a_single_glow_from_a_tfds_set(tfds_dir, tmp_path):  # noqa: F811
  root, images = tfds_dir
  logdir = tmp_path / "run"
  command = [
    sys.executable,
    "-m",
    "glow_tf2.cli.train",
    "--problem=tfds:tiny_photos",
    f"--tfds_data_dir={root}",
    f"--logdir={logdir}",
    "--n_levels=2",
    "--depth=1",
    "--width=8",
    "--nogradient_checkpointing",
    "--n_train=24",
    "--n_test=8",
    "--n_batch_train=8",
    "--n_batch_test=8",
    "--n_batch_init=16",
    "--dal=0",
    "--epochs=4",
    "--epochs_warmup=1",
    "--epochs_full_valid=1",
    "--epochs_full_sample=4",
    "--n_sample=4",
    "--lr=0.003",
  ]
  result = run_python(command)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(logdir / "test_A.txt") as f:
    hyper, *epochs = [json.loads(line) for line in f]
  assert hyper["problem"] == "tfds:tiny_photos"
  assert len(epochs) == 4
  assert not (logdir / "test_B.txt").exists()  # one domain: plain Glow
  # Grids every 4 epochs, and (as Glow drew them) at epoch 1 too.
  grids = sorted(p.name for p in logdir.glob("A_*epoch_*.png"))
  assert grids == ["A_samples_epoch_1.png", "A_samples_epoch_4.png"]

  # --inference of a single Glow writes Glow's own x.npy (the test images) and z.npy.
  result = run_python(command + ["--inference"])
  assert result.returncode == 0, result.stderr[-3000:]
  x, z, z_a = (np.load(logdir / name) for name in ("x.npy", "z.npy", "z_A.npy"))
  # TFDS stores the split in its own order: the same 8 images, compared as a set.
  assert x.dtype == np.uint8
  assert sorted(i.tobytes() for i in x) == sorted(i.tobytes() for i in images["test"])
  assert z.shape == (8, 16 * 16 * 3)
  np.testing.assert_array_equal(z, z_a)
  # z holds the codes of x under the best-test-loss EMA model, and that model's logged test
  # bits/dim are its bits on x (the log's dequantisation noise against mid-bin: a few 1e-3).
  run = run_dir.read_config(str(logdir))
  (glow,), (prefix,) = run_dir.load_glows(run)
  assert prefix.startswith(str(logdir / "best_A"))
  eps = glow.encode(losses.preprocess(x, 8, noise=False))[0].numpy()
  np.testing.assert_allclose(z, eps, atol=1e-4)
  best = min(epochs, key=lambda e: float(e["loss"]))  # "{:.4f}" strings
  mid_bin = float(np.mean(losses.bits_per_dim(glow, x, noise=False).numpy()))
  assert float(best["bits_x"]) == pytest.approx(mid_bin, abs=0.02), (best, mid_bin)
