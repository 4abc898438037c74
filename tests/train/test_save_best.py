"""SaveBestModels: a side's best_<X>/ follows its test loss, and in a warm-started run the
joint phase's first validation replaces a best of the warm phase (their losses do not compare)."""

import math
import types

import pytest
import tensorflow as tf

from glow_tf2 import run_dir
from glow_tf2.train import controller


def _side(key):
  return types.SimpleNamespace(
    key=key,
    lower=key.lower(),
    best_loss=tf.Variable(math.inf),
    checkpoint=tf.train.Checkpoint(w=tf.Variable(1.0)),
  )


def _best_step(save, side):
  return int(save.managers[side.key].latest_checkpoint.rsplit("-", 1)[1])


def test_the_best_model_of_each_phase(tmp_path):
  side = _side("A")
  saves = []
  save = controller.SaveBestModels(
    [side], str(tmp_path), lambda step: None, lambda: saves.append(1), warm_start_steps=200
  )
  # (step, test loss): the warm phase's bits/dim alone, then the joint loss (larger).
  for step, loss in ((100, 2.0), (200, 1.6), (300, 2.9), (400, 3.0), (500, 2.5)):
    save({"loss_a": loss}, step)
  assert _best_step(save, side) == 500 and float(side.best_loss.numpy()) == pytest.approx(2.5)
  assert len(saves) == 4  # steps 100, 200 (warm), 300 (the switch's first), 500
  assert run_dir.best_dir(str(tmp_path), "A").endswith("best_A")


def test_without_a_warm_start_the_lowest_loss_stays(tmp_path):
  side = _side("B")
  save = controller.SaveBestModels([side], str(tmp_path), lambda step: None, lambda: None)
  for step, loss in ((100, 2.0), (200, 1.6), (300, 2.9), (400, 3.0)):
    save({"loss_b": loss}, step)
  assert _best_step(save, side) == 200 and float(side.best_loss.numpy()) == pytest.approx(1.6)
