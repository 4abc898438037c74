"""A real joint run on the embedded mnist problem, in this process: outputs, EMA, resume, inference."""

import json
import math
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2 import losses
from glow_tf2 import run_dir
from glow_tf2.config import TEMPERATURES
from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.train import loop as trainer_lib
from tests import helpers
from tests.helpers import mnist_dir
from tests.helpers import replace
from tests.helpers import tiny_config

EPOCHS = 4


def make_trainer(config):
  data = config.data
  problem = problems.get_problem(data.problem, data_dir=data.data_dir, channels=data.channels)
  return trainer_lib.Trainer(
    config, problem, tf.distribute.get_strategy(), input_pipeline.make_dataset
  )


# The original's ResultLogger records, key by key, in its order.
TRAIN_KEYS = ["epoch", "n_processed", "n_images", "train_time", "loss", "bits_x", "bits_y"]
TRAIN_KEYS += ["pred_loss", "code_loss"]
TEST_KEYS = [k for k in TRAIN_KEYS if k != "train_time"]
STAT = re.compile(r"-?\d+\.\d{4}")  # "{:.4f}".format(value)


def read_log(path):
  """A reader written to the original's format: the hyperparameters, then one record per epoch.

  Counts and seconds are ints; the statistics are strings of 4 decimals, returned as floats.
  """
  with open(path) as f:
    lines = f.read().splitlines()
  header = json.loads(lines[0])
  records = []
  for line in lines[1:]:
    record = json.loads(line)
    keys = TRAIN_KEYS if "train_time" in record else TEST_KEYS
    assert list(record)[: len(keys)] == keys, (path, list(record))
    for key in keys:
      if key in ("epoch", "n_processed", "n_images", "train_time"):
        assert type(record[key]) is int, (key, record)
      else:
        assert STAT.fullmatch(record[key]), (key, record[key])
        record[key] = float(record[key])
    records.append(record)
  return header, records


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  data_dir = mnist_dir(tmp_path_factory)
  logdir = tmp_path_factory.mktemp("run")
  config = tiny_config(logdir, data_dir, epochs=EPOCHS)
  trainer = make_trainer(config)
  trainer.fit()
  return trainer


def test_logs_hold_the_models_own_numbers(trained):
  # The last test record is the evaluation of the final EMA models: the trainer's own evaluate()
  # (deterministic noise) to the 4 logged decimals, and, written out here, the mid-bin bits/dim
  # of the EMA Glows on the test images (dequantisation noise moves the mean by a few 1e-3).
  evaluation = trained.evaluate()
  test = next(iter(trained.dataset("test", 64, shuffle=False, repeat=False)))  # --n_test=64
  for side, model in zip("AB", trained.sides):
    header, epochs = read_log(os.path.join(trained.logdir, f"test_{side}.txt"))
    assert header["problem"] == "mnist" and header["joint_train"] is True
    assert [e["epoch"] for e in epochs] == list(range(1, EPOCHS + 1))
    last = epochs[-1]
    for key, name in (("bits_x", "bits_per_dim"), ("loss", "loss")):
      assert last[key] == pytest.approx(evaluation[f"{name}_{side.lower()}"], abs=6e-5), key
    assert last["code_loss"] == pytest.approx(evaluation["code_loss"], abs=6e-5)
    images = test[f"image_{side.lower()}"].numpy()
    mid_bin = float(np.mean(losses.bits_per_dim(model.ema.glow, images, noise=False).numpy()))
    assert last["bits_x"] == pytest.approx(mid_bin, abs=0.02), (last, mid_bin)
    _, train_epochs = read_log(os.path.join(trained.logdir, f"train_{side}.txt"))
    assert [e["epoch"] for e in train_epochs] == list(range(1, EPOCHS + 1))
    for key in (
      "n_processed",
      "n_images",
      "train_time",
      "loss",
      "bits_x",
      "bits_y",
      "pred_loss",
      "code_loss",
    ):
      assert key in train_epochs[-1]
    assert train_epochs[-1]["n_processed"] == EPOCHS * 160
    # Cumulative, as the original's: images and whole training seconds so far.
    assert [e["n_images"] for e in train_epochs] == [160 * e for e in range(1, EPOCHS + 1)]
    assert [e["n_images"] for e in epochs] == [160 * e for e in range(1, EPOCHS + 1)]
    times = [e["train_time"] for e in train_epochs]
    assert times == sorted(times) and times[-1] >= 1, times


def test_logs_first_line_is_the_flags_by_name(trained):
  header, _ = read_log(os.path.join(trained.logdir, "train_A.txt"))
  # Keyed as the original's command line, in its order, not by dataclass field.
  assert list(header)[:5] == ["verbose", "restore_path_A", "restore_path_B", "inference", "logdir"]
  assert header["flow_permutation"] == "conv" and header["flow_coupling"] == "additive"
  assert header["n_levels"] == 2 and header["depth"] == 1 and header["width"] == 16
  assert "permutation" not in header and "restore_path_a" not in header
  with open(os.path.join(trained.logdir, "test_B.txt")) as f:
    assert json.loads(f.readline()) == header


def test_config_json_round_trips_the_run(trained):
  with open(os.path.join(trained.logdir, "config.json")) as f:
    payload = json.load(f)
  assert payload["format_version"] == run_dir.FORMAT_VERSION and payload["sides"] == ["A", "B"]
  assert payload["config"]["model"]["image_shape"] == [32, 32, 1]
  assert payload["config"]["model"]["depth"] == 1
  found = run_dir.read_config(trained.logdir)
  assert found.resolved and found.keys == ("A", "B")
  assert found.config == trained.config
  assert found.config.model.image_shape == (32, 32, 1)


def test_run_writes_every_output(trained):
  files = set(os.listdir(trained.logdir))
  # One sample grid per side and drawn epoch (the smoke preset draws every epoch), nothing else:
  # a row per temperature, a column per draw.
  assert {name for name in files if "sample" in name} == {
    f"{side}_samples_epoch_{e}.png" for side in "AB" for e in range(1, EPOCHS + 1)
  }
  n_sample = trained.config.n_sample
  for side in "AB":
    grid = helpers.decode_file(os.path.join(trained.logdir, f"{side}_samples_epoch_{EPOCHS}.png"))
    cells = helpers.grid_cells(grid, len(TEMPERATURES), n_sample, 32)
    assert np.all(cells[0] == cells[0][0])  # T = 0: every draw is the zero code's image
    assert len({c.tobytes() for c in cells[-1]}) == n_sample  # T = 1: every draw its own
    assert tf.train.latest_checkpoint(os.path.join(trained.logdir, f"best_{side}")).endswith(
      f"model_{side}_best_loss-{EPOCHS * 10}"
    )
  assert {"A2B_epoch_1.png", "B2A_epoch_1.png"} <= files
  assert tf.train.latest_checkpoint(os.path.join(trained.logdir, "checkpoints")).endswith(
    f"ckpt-{EPOCHS * 10}"
  )
  tags = set()
  for name in files:
    if name.startswith("events.out.tfevents"):
      for event in tf.compat.v1.train.summary_iterator(os.path.join(trained.logdir, name)):
        tags.update(v.tag for v in event.summary.value)
  for tag in (
    "train/bits_per_dim_a",
    "train/bits_per_dim_b",
    "train/code_loss",
    "train/loss_a",
    "train/loss_b",
    "learning_rate",
    "images_per_sec",
    "eval/bits_per_dim_a",
    "eval/bits_per_dim_b",
    "eval/code_loss",
    "eval/loss_a",
    "eval/loss_b",
    "samples/A_T0.7",
    "samples/B_T0",
    "translation/A2B",
    "translation/B2A",
    "_hparams_/session_start_info",
  ):
    assert tag in tags, (tag, sorted(tags))


def test_evaluation_samples_and_translation_use_the_ema_models(trained):
  side_a, side_b = trained.sides
  for side in trained.sides:
    differences = [
      np.max(np.abs(m.numpy() - e.numpy()))
      for m, e in zip(side.model.variables, side.ema.variables)
    ]
    assert max(differences) > 1e-4  # the EMA lags the trained weights
  before = trained.evaluate()
  assert trained.evaluate() == before  # deterministic validation noise
  saved = [[v.numpy() for v in side.ema.variables] for side in trained.sides]
  try:
    for side in trained.sides:
      side.polyak.reset()  # EMA := current weights
    assert trained.evaluate()["bits_per_dim_a"] != before["bits_per_dim_a"]
  finally:
    for side, values in zip(trained.sides, saved):
      for v, value in zip(side.ema.variables, values):
        v.assign(value)
  assert trained.evaluate() == before
  # Translation = decode_B(encode_A(x_A)) with the EMA models, as glow_tf2.translation computes it.
  images = trained.translation_pairs()["image_a"]
  got = trained.translate(images, side_a, side_b)
  x = losses.preprocess(images, 8, noise=False)
  bijector = glow_tf2.translation(side_a.ema.glow, side_b.ema.glow)
  expected = losses.postprocess(bijector.forward(tf.identity(x)), 8).numpy()
  assert np.mean(got.astype(int) == expected.astype(int)) > 0.999
  trained_b = losses.postprocess(side_b.model.glow.decode(side_a.model.glow.encode(x)[0])[0])
  assert np.any(trained_b.numpy() != got)


def test_resume_continues_from_the_checkpoint(trained):
  config = replace(trained.config, epochs=EPOCHS + 1)
  resumed = make_trainer(config)
  assert resumed.restore_or_initialize() == EPOCHS * 10
  for side, old in zip(resumed.sides, trained.sides):
    for v, w in zip(
      side.ema.variables + side.model.variables, old.ema.variables + old.model.variables
    ):
      np.testing.assert_array_equal(v.numpy(), w.numpy())
    assert int(side.optimizer.iterations.numpy()) == EPOCHS * 10
    assert float(side.best_loss.numpy()) == float(old.best_loss.numpy())
  resumed.fit()
  assert int(resumed.step.numpy()) == (EPOCHS + 1) * 10
  assert int(resumed.sides[0].optimizer.iterations.numpy()) == (EPOCHS + 1) * 10
  _, epochs = read_log(os.path.join(trained.logdir, "train_A.txt"))
  assert [e["epoch"] for e in epochs] == list(range(1, EPOCHS + 2))


def test_best_model_saves_after_the_resumed_checkpoint_rotated_away(trained, tmp_path):
  # A resumed run restores lazily; a best-model save that first touches an object after the
  # checkpoint it resumed from was rotated away must not go back to that file.
  logdir = tmp_path / "run"
  shutil.copytree(trained.logdir, logdir)
  resumed = make_trainer(replace(trained.config, logdir=str(logdir), keep_checkpoints=1))
  start = resumed.restore_or_initialize()
  for extra in (1, 2):  # two saves with keep_checkpoints=1: the restored file is deleted
    resumed.step.assign(start + extra)
    resumed.save()
  assert not os.path.exists(os.path.join(logdir, "checkpoints", f"ckpt-{start}.index"))
  for side in resumed.sides:
    path = resumed.best_managers[side.key].save(checkpoint_number=start + 2)
    assert os.path.exists(path + ".index")


def test_inference_writes_codes_and_grids_from_the_best_ema(trained, tmp_path):
  config = replace(trained.config, inference=True, logdir=trained.logdir)
  trainer = make_trainer(config)
  written = trainer.infer()
  assert set(written) == {"z_A", "z_B", "A2B", "B2A"}
  z_a, z_b = np.load(written["z_A"]), np.load(written["z_B"])
  assert z_a.shape == z_b.shape == (64, 32 * 32)
  best = tf.train.latest_checkpoint(os.path.join(trained.logdir, "best_A"))
  reference = make_trainer(replace(trained.config, logdir=str(tmp_path)))
  reference.restore_side(reference.sides[0], best)
  batch = next(iter(trainer.dataset("test", 8, shuffle=False, repeat=False)))
  np.testing.assert_allclose(
    z_a[:8], reference.sides[0].encode(batch["image_a"]).numpy(), atol=1e-5
  )
  # Trained jointly: a pair's two codes are closer than the codes of two different test images.
  # (A fixed bound such as 2.0 says nothing: the code loss shrinks both codes, so even unrelated
  # codes meet it. The tiny run aligns only a little: 0.37 against 0.42 when this was written;
  # the run is seeded, so the margin is stable.)
  paired = np.mean((z_a - z_b) ** 2)
  mismatched = np.mean((z_a - np.roll(z_b, 1, axis=0)) ** 2)
  assert paired < 0.92 * mismatched, (paired, mismatched)


def test_restore_path_restores_only_that_model(trained, tmp_path):
  best_a = os.path.join(trained.logdir, "best_A")
  config = replace(trained.config, logdir=str(tmp_path / "fresh"), restore_path_a=best_a)
  fresh = make_trainer(config)
  assert fresh.restore_or_initialize() == 0
  reference = make_trainer(replace(trained.config, logdir=str(tmp_path / "ref")))
  reference.restore_side(reference.sides[0], best_a)
  for v, w in zip(fresh.sides[0].ema.variables, reference.sides[0].ema.variables):
    np.testing.assert_array_equal(v.numpy(), w.numpy())
  # B was only initialised: its weights are not the trained ones.
  differences = [
    np.max(np.abs(v.numpy() - w.numpy()))
    for v, w in zip(fresh.sides[1].model.variables, trained.sides[1].model.variables)
  ]
  assert max(differences) > 1e-3
  with pytest.raises(FileNotFoundError, match="--restore_path_B"):
    fresh.restore_side(fresh.sides[1], str(tmp_path / "nothing_here"))


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path_factory, tmp_path):
  config = tiny_config(tmp_path, mnist_dir(tmp_path_factory), epochs=3)
  trainer = make_trainer(config)
  real_step = trainer.steps.train_step
  calls = []

  def poisoned(iterator):
    metrics = dict(real_step(iterator))
    calls.append(1)
    if len(calls) == 13:
      metrics["loss_b"] = tf.constant(math.nan)
    return metrics

  trainer.steps.train_step = poisoned
  with pytest.raises(
    trainer_lib.NonFiniteLossError, match=r"non-finite loss at step 13 \(epoch 2\)"
  ):
    trainer.fit()
  latest = tf.train.latest_checkpoint(os.path.join(tmp_path, "checkpoints"))
  assert latest.endswith("ckpt-10")
  reader = tf.train.load_checkpoint(latest)
  assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 10


def test_inference_without_a_checkpoint_says_so(tmp_path_factory, tmp_path):
  trainer = make_trainer(tiny_config(tmp_path, mnist_dir(tmp_path_factory), inference=True))
  with pytest.raises(FileNotFoundError, match="--inference: no checkpoint of model A"):
    trainer.infer()
