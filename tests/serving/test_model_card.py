"""glow-export's model card: model_card.md / .json beside the SavedModel, from the run's files."""

import json
import os
import shutil

from absl import flags
import pytest
import tensorflow as tf

from glow_tf2 import run_dir
from glow_tf2.cli import eval as eval_main
from glow_tf2.cli import export as export_main
from glow_tf2.input import problems
from glow_tf2.serving import export
from glow_tf2.serving import model_card
from tests import helpers


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  return helpers.tiny_pair_run(tmp_path_factory, "card_run", {"data.n_test": 20})


def parse(define, *args):
  values = flags.FlagValues()
  define(values)
  values(["binary", *args])
  return values


def export_run(logdir, export_dir) -> tuple[dict, str]:
  """glow-export's work on `logdir`; the card's JSON and markdown."""
  export_main.export_from_flags(
    parse(export_main.define_flags, f"--logdir={logdir}", f"--export_dir={export_dir}")
  )
  with open(os.path.join(export_dir, model_card.JSON_NAME)) as f:
    card = json.load(f)
  with open(os.path.join(export_dir, model_card.MARKDOWN_NAME)) as f:
    return card, f.read()


def last_train_record(logdir) -> dict:
  with open(os.path.join(logdir, "train_A.txt")) as f:
    return [json.loads(line) for line in f][-1]


def test_the_card_holds_the_runs_own_data_config_and_training(run, tmp_path, capsys):
  logdir = run["logdir"]
  card, text = export_run(logdir, str(tmp_path / "model"))
  assert "model card model_card.md, model_card.json (not evaluated" in capsys.readouterr().out
  with open(os.path.join(logdir, "config.json")) as f:
    saved = json.load(f)
  # The configuration is the run's config.json, value for value.
  assert card["config"] == saved["config"]
  assert card["run"] == os.path.abspath(logdir)
  assert card["data"] == {
    "problem": "mnist",
    "image_shape": [32, 32, 1],
    "n_train": problems.get_problem("mnist", data_dir=run["data_dir"], channels=1).n_train,
    "images_per_epoch": 32,
    "paired": True,
    "n_classes": 0,
  }
  assert card["model"]["domains"] == ["A", "B"] and card["model"]["image_shape"] == [32, 32, 1]
  # Training: the steps of the newest checkpoint, the last record of the training log.
  record = last_train_record(logdir)
  latest = tf.train.latest_checkpoint(run_dir.checkpoint_dir(logdir))
  training = card["training"]
  assert training["steps"] == model_card.checkpoint_step(latest) == 2  # 32 pairs, batch 16
  assert (training["epochs"], training["images_seen"], training["train_seconds"]) == (
    record["epoch"],
    record["n_images"],
    record["train_time"],
  )
  assert [c["side"] for c in training["exported_checkpoints"]] == ["A", "B"]
  for checkpoint in training["exported_checkpoints"]:
    assert checkpoint["path"] == run_dir.find_checkpoint(logdir, checkpoint["side"])
    assert checkpoint["step"] == 2
  assert card["evaluation"] is None and card["evaluation_file"] is None
  # The markdown says the same for people.
  assert "- Image shape: 32x32x1, 8 bits per channel" in text
  assert f"- Steps: 2 of 16 images (images seen: {record['n_images']}, epochs: 1)" in text
  assert f"- Training time: {record['train_time']} s" in text
  assert "- Not evaluated: the run folder had no eval.json" in text
  # The limits: the resolution, what T means, that bits/dim are of dequantized data.
  limits = "\n".join(card["limits"])
  assert "32x32x1 uint8 images only" in limits
  assert "Temperature T scales the Gaussian latent draw" in limits and "T = 0.7" in limits
  assert "Bits per dimension are of dequantized data" in limits
  assert all(line in text for line in card["limits"])


def test_the_card_carries_glow_evals_report(run, tmp_path):
  logdir = str(tmp_path / "run")
  shutil.copytree(run["logdir"], logdir)
  eval_main.eval_from_flags(
    parse(
      eval_main.define_flags,
      f"--logdir={logdir}",
      "--batch_size=10",
      "--n_train_reference=20",
      "--nojudge",
    )
  )
  with open(os.path.join(logdir, "eval.json")) as f:
    report = json.load(f)
  card, text = export_run(logdir, str(tmp_path / "model"))
  assert card["evaluation"] == report
  assert card["evaluation_file"] == os.path.join(logdir, "eval.json")
  bits = report["metrics"]["bits_per_dim"]["a"]["noise"]
  assert f"- Test bits/dim, domain A: {bits['mean']:.4f} (standard error {bits['stderr']:.4f}" in (
    text
  )
  psnr = report["metrics"]["translation"]["a2b"]["model"]["psnr"]
  assert f"- Translation A -> B: PSNR {psnr:.4f} dB" in text
  assert f"- On {report['n_test']} test examples" in text and report["n_test"] == 20


def test_the_card_is_written_inside_the_atomic_export(run, tmp_path):
  """The hook sees the SavedModel already in the temporary folder, before the rename; a failing
  card leaves no export at all."""
  trainer = run["trainer"]
  module = export.build_serving_module(*(side.ema.glow for side in trainer.sides))
  target = str(tmp_path / "model")
  seen = {}

  def extra(folder):
    seen["folder"] = folder
    seen["model_there"] = os.path.isfile(os.path.join(folder, "saved_model.pb"))
    seen["target_there"] = os.path.exists(target)
    with open(os.path.join(folder, "note.txt"), "w") as f:
      f.write("x")

  assert export.export_saved_model(module, target, extra_files=extra) == target
  assert seen["model_there"] and not seen["target_there"] and seen["folder"] != target
  assert open(os.path.join(target, "note.txt")).read() == "x"

  def broken(folder):
    raise OSError("disk full while writing the card")

  failed = str(tmp_path / "failed")
  with pytest.raises(OSError, match="disk full"):
    export.export_saved_model(module, failed, extra_files=broken)
  assert not os.path.exists(failed)
  assert not [n for n in os.listdir(tmp_path) if n.startswith("failed")]  # no half export
