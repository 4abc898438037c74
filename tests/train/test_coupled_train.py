"""Training a pair under the coupled prior (--code_loss_type=coupled).

The joint bits/dim the trainer logs is checked against the prior's own densities and the
models' log-dets, the gradient against reaching every variable (both Glows and rho), the
checkpoint against carrying rho (training file, best-model files, resume), and --inference's
translation against decode_B(rho * encode_A(x)) computed by hand.
"""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2 import config as tc
from glow_tf2 import joint_losses
from glow_tf2 import losses
from glow_tf2 import run_dir
from glow_tf2.flows.coupled_prior import CoupledPrior
from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.train import loop as trainer_lib
from glow_tf2.train import streams
from tests import helpers

RHO0 = 0.9


def _coupled_config(logdir, data_dir, **overrides):
  return helpers.tiny_config(
    logdir,
    data_dir,
    loss={"code_loss_type": "coupled", "coupled_rho_init": RHO0, **overrides.pop("loss", {})},
    **overrides,
  )


def _trainer(config):
  data = config.data
  problem = problems.get_problem(data.problem, data_dir=data.data_dir, channels=data.channels)
  return trainer_lib.Trainer(
    config, problem, tf.distribute.get_strategy(), input_pipeline.make_dataset
  )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return helpers.mnist_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
  """A coupled tiny run of 30 steps (3 epochs), lr 3e-3: (its config, its trainer)."""
  logdir = tmp_path_factory.mktemp("coupled_run")
  config = _coupled_config(logdir, data_dir, train_steps=30, optim=dict(lr=3e-3))
  trainer = _trainer(config)
  trainer.fit()
  return config, trainer


def _records(logdir, name):
  with open(os.path.join(logdir, name)) as f:
    return [json.loads(line) for line in f.read().splitlines()[1:]]


def test_joint_from_marginals_equals_the_density_of_the_pair():
  """joint_from_marginals (bits and codes only) against coupled_bits (codes and log-dets)."""
  config = tc.GlowConfig(image_shape=(4, 4, 3), n_levels=2, depth=1, width=4)
  prior = CoupledPrior(config, initial_rho=0.6)
  prior.r.assign(prior.r + tf.linspace(-1.5, 1.5, prior.r.shape[0]))  # rho differs by channel
  rng = np.random.default_rng(0)
  d = config.data_dim
  eps_a = tf.constant(rng.normal(size=(5, d)), tf.float32)
  eps_b = tf.constant(0.6 * eps_a.numpy() + 0.8 * rng.normal(size=(5, d)), tf.float32)
  log_det_a = tf.constant(rng.normal(size=5) * 10, tf.float32)
  log_det_b = tf.constant(rng.normal(size=5) * 10, tf.float32)
  bits = joint_losses.coupled_bits(prior, eps_a, log_det_a, eps_b, log_det_b, 8)
  joint, b_given_a, a_given_b = joint_losses.joint_from_marginals(
    prior, bits.a, bits.b, eps_a, eps_b
  )
  np.testing.assert_allclose(joint, bits.joint, rtol=1e-5)
  np.testing.assert_allclose(b_given_a, bits.b_given_a, rtol=1e-5)
  np.testing.assert_allclose(a_given_b, bits.a_given_b, rtol=1e-5)
  # And the joint by hand: the pair's log-density over 2D dims, -2 D log 256.
  rho = prior.rho().numpy()
  var = 1.0 - rho**2
  log_p = (
    -0.5 * np.sum(eps_a.numpy() ** 2 + np.log(2 * np.pi), axis=1)
    - 0.5 * np.sum(np.log(2 * np.pi * var) + (eps_b.numpy() - rho * eps_a.numpy()) ** 2 / var, 1)
    + log_det_a.numpy()
    + log_det_b.numpy()
  )
  expected = -(log_p - 2 * d * math.log(256.0)) / (2 * d * math.log(2.0))
  np.testing.assert_allclose(joint, expected, rtol=1e-4)


def test_a_coupled_run_needs_joint_training_and_a_valid_rho(data_dir, tmp_path):
  with pytest.raises(tc.ConfigError, match=r"--code_loss_type=coupled: needs --joint_train"):
    helpers.tiny_config(tmp_path, data_dir, loss=dict(code_loss_type="coupled", joint_train=False))
  for rho in (1.0, -1.0, math.nan, 0.99995):
    with pytest.raises(tc.ConfigError, match=r"--coupled_rho_init=.*: must be finite with \|rho\|"):
      _coupled_config(tmp_path, data_dir, loss=dict(coupled_rho_init=rho))


def test_every_variable_gets_the_gradient_of_the_joint_likelihood(data_dir, tmp_path):
  """Both Glows and rho get gradient, and it is the gradient of the logged joint bits/dim."""
  trainer = _trainer(_coupled_config(tmp_path, data_dir))
  trainer.restore_or_initialize()
  batch = next(iter(trainer.dataset("train", 16, shuffle=False, repeat=False, dal=0)))
  grads, metrics, finite = trainer.steps._losses_and_grads(batch, tf.constant(0, tf.int64), 0)
  assert finite is None  # float32: no loss scale, nothing to check
  groups = trainer.steps._trainables()
  assert len(groups) == 3 and groups[2] == trainer.coupling.prior.trainable_variables
  start = 0
  for variables in groups:
    norm = tf.linalg.global_norm(grads[start : start + len(variables)])
    assert np.isfinite(norm) and norm > 1e-6
    start += len(variables)
  # The logged loss of each side is the joint; recompute it from the models and the prior.
  terms = {}
  for i, side in enumerate(trainer.sides):
    x = trainer.steps.noisy(batch[side.image_key], streams.Stream.TRAIN_NOISE, i, 0, 0, 16)
    log_prob, eps = losses.log_prob_and_eps(side.model.glow, x)
    terms[side.key] = (log_prob, eps)
  prior = trainer.coupling.prior
  (lp_a, eps_a), (lp_b, eps_b) = terms["A"], terms["B"]
  log_det_b = lp_b - prior.marginal_log_prob(eps_b)
  log_det_a = lp_a - prior.marginal_log_prob(eps_a)
  bits = joint_losses.coupled_bits(prior, eps_a, log_det_a, eps_b, log_det_b, 8)
  for key in ("loss_a", "loss_b", "joint_bits_per_dim"):
    assert float(metrics[key]) == pytest.approx(float(tf.reduce_mean(bits.joint)), rel=1e-5)
  assert float(metrics["bits_b_given_a"]) == pytest.approx(
    float(tf.reduce_mean(bits.b_given_a)), rel=1e-5
  )
  # rho's gradient has the sign the data asks for: the codes of untrained models of a pair
  # correlate positively (B is the inverted A, but the two inits see the same digit shapes)
  # or not; whichever, a step of gradient descent on r lowers the joint bits/dim.
  r_grad = grads[-1]
  r0 = prior.r.numpy()
  joint0 = float(tf.reduce_mean(bits.joint))
  prior.r.assign(r0 - 1e-2 * r_grad / (tf.norm(r_grad) + 1e-12))
  lowered = joint_losses.coupled_bits(prior, eps_a, log_det_a, eps_b, log_det_b, 8).joint
  prior.r.assign(r0)
  assert float(tf.reduce_mean(lowered)) < joint0


def test_the_logged_joint_is_the_mean_of_marginal_and_conditional(trained):
  config, _ = trained
  for split in ("train", "test"):
    a, b = _records(config.logdir, f"{split}_A.txt"), _records(config.logdir, f"{split}_B.txt")
    assert len(a) == len(b) == 3
    for ra, rb in zip(a, b):
      joint = float(ra["joint_bits_per_dim"])
      # Each side's loss is the joint; joint = (bits_A + bits_B|A) / 2 = (bits_B + bits_A|B) / 2.
      assert float(ra["loss"]) == float(rb["loss"]) == joint
      assert joint == pytest.approx((float(ra["bits_x"]) + float(ra["bits_b_given_a"])) / 2, 2e-4)
      assert joint == pytest.approx((float(rb["bits_x"]) + float(ra["bits_a_given_b"])) / 2, 2e-4)


def test_training_lowers_the_joint_bits_and_moves_rho(trained):
  config, trainer = trained
  test = [float(r["joint_bits_per_dim"]) for r in _records(config.logdir, "test_A.txt")]
  # 30 steps at lr 3e-3 take the untrained pair from ~8.9 to ~7.6 bits/dim (seeded, CPU).
  assert test[-1] < test[0] - 0.5, test
  rho = trainer.coupling.prior.rho().numpy()
  assert np.all(np.abs(rho) < trainer.coupling.prior.rho_max)
  assert np.abs(rho - RHO0).max() > 1e-3  # rho is trained, not left at its init


def test_rho_travels_with_every_checkpoint(trained, data_dir):
  config, trainer = trained
  latest = tf.train.latest_checkpoint(run_dir.checkpoint_dir(config.logdir))
  ema_r = tf.train.load_variable(latest, "coupled/ema/r/.ATTRIBUTES/VARIABLE_VALUE")
  np.testing.assert_array_equal(ema_r, trainer.coupling.ema.r.numpy())
  # Each best-model file holds the prior too (so that file alone translates).
  for key in ("A", "B"):
    best = tf.train.latest_checkpoint(run_dir.best_dir(config.logdir, key))
    names = [n for n, _ in tf.train.list_variables(best)]
    assert "coupled/ema/r/.ATTRIBUTES/VARIABLE_VALUE" in names
  # What export/eval/serve load: the EMA prior of the checkpoint A's EMA model comes from.
  run = run_dir.read_config(config.logdir)
  prior = run_dir.load_coupled_prior(run, "last")
  np.testing.assert_array_equal(prior.r.numpy(), ema_r)
  # A resumed trainer restores rho, its EMA and its optimizer state exactly.
  resumed = _trainer(config)
  assert resumed.restore_or_initialize() == 30
  for a, b in zip(resumed.coupling.checkpoint.prior.variables, trainer.coupling.prior.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  for a, b in zip(resumed.coupling.optimizer.variables, trainer.coupling.optimizer.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_run_that_is_not_coupled_has_no_prior(data_dir, tmp_path):
  config = helpers.tiny_config(tmp_path, data_dir, train_steps=1)
  trainer = _trainer(config)
  assert trainer.coupling is None and len(trainer.steps._trainables()) == 2
  run_dir.write_config(str(tmp_path), trainer.config, trainer.keys)
  assert run_dir.load_coupled_prior(run_dir.read_config(str(tmp_path))) is None


def test_resuming_with_another_coupling_is_refused(trained):
  config, _ = trained
  plain = helpers.replace(config, loss=helpers.replace(config.loss, code_loss_type="code_all"))
  with pytest.raises(tc.ConfigError, match=r"--code_loss_type=code_all: .* --code_loss_type"):
    _trainer(plain).restore_or_initialize()
  per_dim = helpers.replace(config, loss=helpers.replace(config.loss, coupled_per_dimension=True))
  with pytest.raises(
    tc.ConfigError,
    match=r"--coupled_per_dimension=true: .* trained with --coupled_per_dimension=false",
  ):
    _trainer(per_dim).restore_or_initialize()


def test_the_translation_decodes_the_conditional_mean_code(trained):
  """Trainer.translate (grids, --inference) is decode_B(rho * encode_A(x)) of the EMA models."""
  _, trainer = trained
  a, b = trainer.sides
  images = trainer.translation_pairs()["image_a"][:4]
  x = losses.preprocess(images, 8, noise=False)
  eps_a, _ = a.ema.glow.encode(x)
  rho = trainer.coupling.ema.rho()
  expected = losses.postprocess(b.ema.glow.decode(rho * eps_a)[0], 8).numpy()
  np.testing.assert_array_equal(trainer.translate(images, a, b), expected)
  # rho matters: decoding eps_A itself (what a code-loss run does) gives other images.
  assert not np.array_equal(losses.postprocess(b.ema.glow.decode(eps_a)[0], 8).numpy(), expected)
