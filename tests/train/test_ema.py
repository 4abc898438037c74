"""The Polyak average (EMA) of the weights: its update formula and the decay the trainer gives it.

The tiny run configurations have 10 steps per epoch and polyak_epochs = 1, so
beta2 = 1 - 1 / (10 * 1) = 0.9 = beta1 and a trainer that averaged with beta1 (or gave the
optimizer beta2 for its first moment) passed every other test. Here polyak_epochs = 5 makes
beta2 = 0.98 against beta1 = 0.9, and ema_epochs = 2 gives the average a decay of its own, 0.95.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2.config import ConfigError
from glow_tf2.config import OptimConfig as optim_config
from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.train import loop as trainer_lib
from glow_tf2.train import optim
from tests import helpers


class _Weights(tf.Module):
  """Two trainable variables and a non-trainable one (like a fixed permutation)."""

  def __init__(self, seed: int):
    super().__init__()
    rng = np.random.default_rng(seed)
    self.kernel = tf.Variable(rng.normal(size=(3, 2)).astype(np.float32))
    self.bias = tf.Variable(rng.normal(size=(2,)).astype(np.float32))
    self.order = tf.Variable(rng.permutation(4).astype(np.int32), trainable=False)


def test_update_is_the_exponential_moving_average_with_the_given_decay():
  source, averaged = _Weights(0), _Weights(1)
  decay = 0.75  # far from 1 - decay, so a swapped formula shows
  polyak = optim.PolyakAverage(source, averaged, decay)
  expected = {
    name: getattr(averaged, name).numpy().astype(np.float64) for name in ("kernel", "bias")
  }
  rng = np.random.default_rng(2)
  for _ in range(3):
    for name in expected:
      var = getattr(source, name)
      var.assign(rng.normal(size=var.shape).astype(np.float32))
    polyak.update()
    for name in expected:
      # a_k = d a_(k-1) + (1 - d) s_k
      expected[name] = decay * expected[name] + (1 - decay) * getattr(source, name).numpy()
      np.testing.assert_allclose(getattr(averaged, name).numpy(), expected[name], rtol=1e-6)
    # A fixed permutation is copied, not averaged (an average of permutations is none).
    np.testing.assert_array_equal(averaged.order.numpy(), source.order.numpy())


def test_reset_copies_every_variable():
  source, averaged = _Weights(3), _Weights(4)
  polyak = optim.PolyakAverage(source, averaged, 0.9)
  polyak.reset()
  for a, s in zip(averaged.variables, source.variables):
    np.testing.assert_array_equal(a.numpy(), s.numpy())
  polyak.update()  # the average of equal weights stays put
  for a, s in zip(averaged.variables, source.variables):
    np.testing.assert_allclose(a.numpy(), s.numpy(), rtol=1e-6)


def test_mismatched_models_raise():
  class Other(tf.Module):
    def __init__(self, shapes):
      super().__init__()
      self.vs = [tf.Variable(tf.zeros(s)) for s in shapes]

  with pytest.raises(ValueError, match="2 source variables but 1 averaged"):
    optim.PolyakAverage(Other([(2,), (3,)]), Other([(2,)]), 0.9)
  with pytest.raises(ValueError, match=r"\(3,\) does not match .*\(4,\)"):
    optim.PolyakAverage(Other([(3,)]), Other([(4,)]), 0.9)


@pytest.fixture(scope="module")
def stepped(tmp_path_factory):
  """A tiny joint run with beta1 = 0.9, beta2 = 0.98 and an EMA decay of 0.95, before and after
  one training step."""
  config = helpers.tiny_config(
    tmp_path_factory.mktemp("ema_run"),
    helpers.mnist_dir(tmp_path_factory),
    # lr 0.01 without warmup: the first step moves weights by ~1e-2, so an average with the
    # wrong decay (0.9) would miss the expected one by ~1e-3, far outside the tolerance.
    optim=dict(polyak_epochs=5.0, ema_epochs=2.0, beta1=0.9, lr=0.01, epochs_warmup=0.0),
  )
  data = config.data
  problem = problems.get_problem(data.problem, data_dir=data.data_dir, channels=data.channels)
  trainer = trainer_lib.Trainer(
    config, problem, tf.distribute.get_strategy(), input_pipeline.make_dataset
  )
  trainer.restore_or_initialize()
  before = [
    ([v.numpy() for v in side.model.variables], [v.numpy() for v in side.ema.variables])
    for side in trainer.sides
  ]
  trainer.train_step(trainer.train_iterator(0))
  return trainer, before


def test_the_trainer_averages_with_the_decay_of_ema_epochs(stepped):
  trainer, before = stepped
  steps_per_epoch = 160 // 16  # n_train / n_batch_train of tiny_config
  decay = 1.0 - 1.0 / (steps_per_epoch * 2.0)
  assert decay == pytest.approx(0.95)
  moved = 0.0
  for side, (model_before, ema_before) in zip(trainer.sides, before):
    # Initialisation made the average equal to the model.
    for m, e in zip(model_before, ema_before):
      np.testing.assert_array_equal(m, e)
    for var, ema, ema_old, old in zip(
      side.model.variables, side.ema.variables, ema_before, model_before
    ):
      if not var.trainable:
        np.testing.assert_array_equal(ema.numpy(), var.numpy())
        continue
      expected = decay * ema_old.astype(np.float64) + (1.0 - decay) * var.numpy()
      np.testing.assert_allclose(ema.numpy(), expected, rtol=1e-5, atol=1e-7)
      moved = max(moved, float(np.abs(var.numpy() - old).max()))
  assert moved > 1e-3, "the step did not change the weights: the average was not tested"


def test_the_optimizer_gets_beta1_and_beta2(stepped):
  trainer, _ = stepped
  for side in trainer.sides:
    assert float(side.optimizer.beta_1) == pytest.approx(0.9)
    assert float(side.optimizer.beta_2) == pytest.approx(0.98)


@pytest.mark.parametrize(
  "polyak_epochs, ema_epochs, expected",
  [
    (5.0, None, 1.0 - 1.0 / 50.0),  # unset: Glow's tie, the EMA decays as beta2
    (5.0, 2.0, 1.0 - 1.0 / 20.0),
    (5.0, 0.0, 0.0),  # no averaging: the EMA model is a copy of the trained one
    (5.0, 0.05, 0.0),  # a horizon under one update is a copy too, never a negative decay
  ],
)
def test_ema_decay_of_the_config(polyak_epochs, ema_epochs, expected):
  config = optim_config(polyak_epochs=polyak_epochs, ema_epochs=ema_epochs)
  assert config.ema_decay(10) == pytest.approx(expected)
  assert config.beta2(10) == pytest.approx(1.0 - 1.0 / 50.0)  # the optimizer's is unchanged


@pytest.mark.parametrize("bad", [-0.5, math.inf, math.nan])
def test_a_bad_ema_horizon_is_refused(bad):
  with pytest.raises(ConfigError, match="ema_epochs"):
    optim_config(ema_epochs=bad)
