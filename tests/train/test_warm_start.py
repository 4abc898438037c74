"""--warm_start_steps: each model trains alone (its own bits/dim) for whole epochs, then the
pair's joint objective takes over with the same optimizers and step counter."""

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2.config import ConfigError
from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.train import loop as trainer_lib
from tests.helpers import mnist_dir
from tests.helpers import tiny_config

COUPLED = {"code_loss_type": "coupled", "coupled_rho_init": 0.9, "translation_loss_scale": 1.0}


def _trainer(logdir, data_dir, **overrides):
  config = tiny_config(logdir, data_dir, **overrides)
  data = config.data
  problem = problems.get_problem(data.problem, data_dir=data.data_dir, channels=data.channels)
  return trainer_lib.Trainer(
    config, problem, tf.distribute.get_strategy(), input_pipeline.make_dataset
  )


def _weights(trainer):
  return [v.numpy() for side in trainer.sides for v in side.model.trainable_variables]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  data_dir = mnist_dir(tmp_path_factory)
  # The smoke run: 10 steps an epoch. Warm for one epoch, then coupled for one.
  warm = _trainer(
    tmp_path_factory.mktemp("warm"), data_dir, loss=COUPLED, warm_start_steps=10, train_steps=10
  )
  warm.fit()
  alone = _trainer(
    tmp_path_factory.mktemp("alone"),
    data_dir,
    loss={**COUPLED, "code_loss_type": "code_all", "joint_train": False},
    train_steps=10,
  )
  alone.fit()
  return dict(warm=warm, alone=alone, rho_after_warm=warm.coupling.prior.rho().numpy())


def test_the_warm_phase_is_training_alone(runs):
  for got, want in zip(_weights(runs["warm"]), _weights(runs["alone"])):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
  # The coupled prior waited: rho is still its initial value.
  np.testing.assert_allclose(runs["rho_after_warm"], 0.9, rtol=1e-6)


def test_the_joint_phase_follows(runs, tmp_path):
  warm = runs["warm"]
  before = _weights(warm)
  iterator = warm.train_iterator(10)
  metrics = warm.train_step(iterator)
  assert "joint_bits_per_dim" in metrics and "translation_loss" in metrics
  assert np.abs(warm.coupling.prior.rho().numpy() - runs["rho_after_warm"]).max() > 0
  assert any(np.abs(a - b).max() > 0 for a, b in zip(_weights(warm), before))


def test_bad_warm_starts(tmp_path_factory):
  data_dir = mnist_dir(tmp_path_factory)
  with pytest.raises(ConfigError, match="--warm_start_steps=15: must be whole epochs of 10"):
    _trainer(tmp_path_factory.mktemp("bad"), data_dir, loss=COUPLED, warm_start_steps=15)
  with pytest.raises(ConfigError, match="--warm_start_steps=10: .*needs --joint_train"):
    tiny_config("x", data_dir, loss={"joint_train": False}, warm_start_steps=10)
