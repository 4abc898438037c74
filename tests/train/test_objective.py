"""The training objective and optimisation pieces against independent computations."""

import math

import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2 import config as tc
from glow_tf2 import losses as losses_lib
from glow_tf2.train import model as model_lib
from glow_tf2.train import optim
from tests.helpers import perturb
from tests.helpers import real_images

CONFIG = glow_tf2.GlowConfig(
  image_shape=(8, 8, 1), n_levels=2, depth=1, width=8, permutation="conv", coupling="affine"
)


def two_models(seed=0):
  models = []
  for i, side in enumerate("ab"):
    glow = glow_tf2.Glow(CONFIG, seed=seed + i, name=f"glow_{side}")
    perturb(glow, 0.05, seed=seed + 10 + i)
    models.append(model_lib.FlowModel(glow))
  return models


def test_dequantize_matches_the_formula():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (4, 8, 8, 1)).astype(np.uint8)
  u = rng.uniform(size=images.shape).astype(np.float32)
  for n_bits in (8, 5):
    n_bins = 2**n_bits
    k = np.floor(images / 2 ** (8 - n_bits))
    expected = k / n_bins - 0.5 + u / n_bins
    got = losses_lib.dequantize(images, n_bits, u).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert got.min() >= -0.5 and got.max() <= 0.5


def test_code_distance():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(2, 3, 10)).astype(np.float32)
  d = a - b
  np.testing.assert_allclose(
    losses_lib.code_distance(a, b, 4, "code_last", "l2"), np.mean(d[:, -4:] ** 2, axis=1), rtol=1e-6
  )
  np.testing.assert_allclose(
    losses_lib.code_distance(a, b, 4, "code_all", "l2"), np.mean(d**2, axis=1), rtol=1e-6
  )
  np.testing.assert_allclose(
    losses_lib.code_distance(a, b, 4, "code_last", "l1"),
    np.mean(np.abs(d[:, -4:]), axis=1),
    rtol=1e-6,
  )
  with pytest.raises(ValueError, match="code_loss_type"):
    losses_lib.code_distance(a, b, 4, "B_all", "l2")


def test_objective_is_glows_bits_per_dim():
  model_a, _ = two_models()
  x = tf.constant(real_images(6, (8, 8, 1)).astype(np.float32) / 256.0 - 0.5 + 1.0 / 512)
  out = model_a.objective(x)
  eps, log_det = model_a.glow.encode(x)
  d = CONFIG.data_dim
  log_p = (
    -0.5 * np.sum(eps.numpy().astype(np.float64) ** 2, axis=1)
    - 0.5 * d * math.log(2 * math.pi)
    + log_det.numpy()
  )
  expected = -(log_p - d * math.log(256.0)) / (d * math.log(2.0))
  np.testing.assert_allclose(out["bits_x"].numpy(), expected, rtol=1e-5)
  np.testing.assert_allclose(out["eps"].numpy(), eps.numpy(), atol=1e-6)
  assert np.all(out["bits_y"].numpy() == 0)


@pytest.mark.parametrize("kind, fn", [("code_last", "l2"), ("code_all", "l1")])
def test_joint_losses_and_gradients_go_to_their_own_model(kind, fn):
  model_a, model_b = two_models()
  loss_config = tc.LossConfig(
    joint_train=True, code_loss_type=kind, code_loss_fn=fn, code_loss_scale=0.7, mle_loss_scale=1.3
  )
  images = real_images(6, (8, 8, 1))
  xa = tf.constant(images.astype(np.float32) / 256.0 - 0.5 + 1.0 / 512)
  xb = tf.constant((255 - images).astype(np.float32) / 256.0 - 0.5 + 1.0 / 512)
  va, vb = model_a.trainable_variables, model_b.trainable_variables
  with tf.GradientTape(persistent=True) as tape:
    ta, tb = model_a.objective(xa), model_b.objective(xb)
    losses, code, shared = losses_lib.side_losses({"A": ta, "B": tb}, loss_config, CONFIG.top_dim)
    assert shared is None
    total = tf.reduce_mean(losses["A"]) + tf.reduce_mean(losses["B"])
    # Independent: the formula of the paper, each model's own loss, no stop_gradient.
    dims = slice(-CONFIG.top_dim, None) if kind == "code_last" else slice(None)
    diff = ta["eps"][:, dims] - tb["eps"][:, dims]
    code_ref = tf.reduce_mean(tf.square(diff) if fn == "l2" else tf.abs(diff), axis=1)
    loss_a_ref = tf.reduce_mean(1.3 * ta["bits_x"] + 0.7 * code_ref)
    loss_b_ref = tf.reduce_mean(1.3 * tb["bits_x"] + 0.7 * code_ref)
    naive_total = loss_a_ref + loss_b_ref
  np.testing.assert_allclose(code.numpy(), code_ref.numpy(), rtol=1e-5)
  np.testing.assert_allclose(tf.reduce_mean(losses["A"]).numpy(), loss_a_ref.numpy(), rtol=1e-5)
  np.testing.assert_allclose(tf.reduce_mean(losses["B"]).numpy(), loss_b_ref.numpy(), rtol=1e-5)
  assert code_ref.numpy().mean() > 0.1  # the two models really disagree: the test can fail
  for variables, own in ((va, loss_a_ref), (vb, loss_b_ref)):
    got = tape.gradient(total, variables)
    expected = tape.gradient(own, variables)
    naive = tape.gradient(naive_total, variables)
    worst = max(np.max(np.abs(g.numpy() - e.numpy())) for g, e in zip(got, expected))
    scale = max(np.max(np.abs(e.numpy())) for e in expected)
    assert worst <= 1e-5 * scale + 1e-7, (worst, scale)
    # Without the split, the other model's code term would double this model's code gradient.
    assert (
      max(np.max(np.abs(n.numpy() - e.numpy())) for n, e in zip(naive, expected)) > 1e-3 * scale
    )


def test_without_joint_train_the_code_loss_is_only_reported():
  model_a, model_b = two_models()
  x = tf.constant(real_images(4, (8, 8, 1)).astype(np.float32) / 256.0 - 0.5 + 1.0 / 512)
  ta, tb = model_a.objective(x), model_b.objective(x)
  translation = tf.ones([4])  # reported by the trainer, never part of a loss without joint_train
  losses, code, shared = losses_lib.side_losses(
    {"A": ta, "B": tb},
    tc.LossConfig(mle_loss_scale=2.0, translation_loss_scale=3.0),
    CONFIG.top_dim,
    translation,
  )
  assert shared is None
  np.testing.assert_allclose(losses["A"].numpy(), 2.0 * ta["bits_x"].numpy(), rtol=1e-6)
  np.testing.assert_allclose(losses["B"].numpy(), 2.0 * tb["bits_x"].numpy(), rtol=1e-6)
  # The code distance is still reported: the defaults' code_last l2, the top block's mean square.
  top = CONFIG.top_dim
  diff = ta["eps"].numpy()[:, -top:] - tb["eps"].numpy()[:, -top:]
  np.testing.assert_allclose(code.numpy(), np.mean(diff.astype(np.float64) ** 2, 1), rtol=1e-5)
  assert diff.std() > 0.1  # two different models: the comparison means something
  single, none, no_shared = losses_lib.side_losses(
    {"A": ta}, tc.LossConfig(joint_train=True), CONFIG.top_dim
  )
  assert none is None and no_shared is None and set(single) == {"A"}


def _pair(n=6):
  images = real_images(n, (8, 8, 1))
  xa = tf.constant(images.astype(np.float32) / 256.0 - 0.5 + 1.0 / 512)
  xb = tf.constant((255 - images).astype(np.float32) / 256.0 - 0.5 + 1.0 / 512)
  return xa, xb


@pytest.mark.parametrize("fn", ["l2", "l1"])
def test_translation_distance_is_the_pixel_error_of_both_translations(fn):
  model_a, model_b = two_models()
  xa, xb = _pair()
  eps_a, _ = model_a.glow.encode(xa)
  eps_b, _ = model_b.glow.encode(xb)
  got = losses_lib.translation_distance(model_a.glow, model_b.glow, eps_a, eps_b, xa, xb, fn)
  # Independent: the translations through the bijector API, A -> B = B.forward(A.inverse(x)).
  a2b = glow_tf2.translation(model_a.glow, model_b.glow).forward(xa).numpy()
  b2a = glow_tf2.translation(model_b.glow, model_a.glow).forward(xb).numpy()
  err = (lambda d: d**2) if fn == "l2" else np.abs
  # The documented guards: codes clipped to +-5 (not binding here) and pixels to +-1 (binding:
  # untrained models translate far outside the image range).
  assert max(np.abs(eps_a.numpy()).max(), np.abs(eps_b.numpy()).max()) < losses_lib.EPS_CLIP
  assert np.abs(a2b).max() > 1.0
  a2b, b2a = np.clip(a2b, -1.0, 1.0), np.clip(b2a, -1.0, 1.0)
  expected = err(a2b - xb.numpy()).reshape(6, -1).mean(1) + err(b2a - xa.numpy()).reshape(
    6, -1
  ).mean(1)
  np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4)
  assert expected.min() > 1e-3  # untrained models translate badly: the comparison means something


def test_translation_loss_gradient_reaches_each_model_once():
  model_a, model_b = two_models()
  loss_config = tc.LossConfig(
    joint_train=True, code_loss_type="code_all", code_loss_scale=0.5, translation_loss_scale=2.0
  )
  xa, xb = _pair()
  va, vb = model_a.trainable_variables, model_b.trainable_variables
  with tf.GradientTape(persistent=True) as tape:
    ta, tb = model_a.objective(xa), model_b.objective(xb)
    translation = losses_lib.translation_distance(
      model_a.glow, model_b.glow, ta["eps"], tb["eps"], xa, xb, "l2"
    )
    losses, _, shared = losses_lib.side_losses(
      {"A": ta, "B": tb}, loss_config, CONFIG.top_dim, translation
    )
    means = {k: tf.reduce_mean(v) for k, v in losses.items()}
    total = losses_lib.total_loss(means, tf.reduce_mean(shared))
    # Independent: each model's own loss as the paper writes it (both hold the translation term).
    code_ref = tf.reduce_mean(tf.square(ta["eps"] - tb["eps"]), axis=1)
    loss_a_ref = tf.reduce_mean(ta["bits_x"] + 0.5 * code_ref + 2.0 * translation)
    loss_b_ref = tf.reduce_mean(tb["bits_x"] + 0.5 * code_ref + 2.0 * translation)
  np.testing.assert_allclose(means["A"].numpy(), loss_a_ref.numpy(), rtol=1e-5)
  np.testing.assert_allclose(means["B"].numpy(), loss_b_ref.numpy(), rtol=1e-5)
  for variables, own in ((va, loss_a_ref), (vb, loss_b_ref)):
    got = tape.gradient(total, variables)
    expected = tape.gradient(own, variables)
    worst = max(np.max(np.abs(g.numpy() - e.numpy())) for g, e in zip(got, expected))
    scale = max(np.max(np.abs(e.numpy())) for e in expected)
    assert worst <= 1e-5 * scale + 1e-7, (worst, scale)
  # The translation term really moves both models (the decoder of one, the encoder of the other).
  for variables in (va, vb):
    grads = tape.gradient(translation, variables)
    assert max(np.max(np.abs(g.numpy())) for g in grads if g is not None) > 1e-4


def test_class_head_bits_y():
  config = glow_tf2.GlowConfig(image_shape=(8, 8, 1), n_levels=2, depth=1, width=8, n_classes=3)
  model = model_lib.FlowModel(glow_tf2.Glow(config, seed=0), class_head=True)
  model.head_kernel.assign(np.random.default_rng(0).normal(size=model.head_kernel.shape))
  x = tf.constant(real_images(4, (8, 8, 1)).astype(np.float32) / 256.0 - 0.5 + 1.0 / 512)
  labels = tf.constant([0, 1, 2, 1])
  out = model.objective(x, labels)
  logits = model.class_logits(out["eps"], labels).numpy().astype(np.float64)
  log_softmax = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
  expected = -log_softmax[np.arange(4), labels.numpy()] / math.log(2.0)
  np.testing.assert_allclose(out["bits_y"].numpy(), expected, rtol=1e-5)
  np.testing.assert_array_equal(out["pred_loss"].numpy(), np.argmax(logits, 1) != labels.numpy())
  assert len(model.trainable_variables) == len(model.glow.trainable_variables) + 2


def test_linear_warmup():
  schedule = optim.LinearWarmup(1e-3, 10)
  np.testing.assert_allclose(
    [float(schedule(s)) for s in (0, 4, 9, 50)], [1e-4, 5e-4, 1e-3, 1e-3], rtol=1e-6
  )
  assert float(optim.LinearWarmup(1e-3, 0)(0)) == pytest.approx(1e-3)


def test_optimizers_are_keras_with_glows_betas():
  adamax = optim.make_optimizer("adamax", 1e-3, 0.9, 0.99)
  adam = optim.make_optimizer("adam", 1e-3, 0.8, 0.95)
  assert type(adamax).__name__ == "Adamax" and adamax.beta_2 == 0.99
  assert type(adam).__name__ == "Adam" and (adam.beta_1, adam.beta_2) == (0.8, 0.95)


def test_polyak_average_and_weight_decay():
  source, averaged = two_models(seed=3)
  averaged = model_lib.FlowModel(glow_tf2.Glow(CONFIG, seed=3, name="ema"))
  polyak = optim.PolyakAverage(source, averaged, decay=0.9)
  polyak.reset()
  expected = [v.numpy() for v in source.variables]
  rng = np.random.default_rng(0)
  for _ in range(3):
    for v in source.trainable_variables:
      v.assign_add(rng.normal(size=v.shape).astype(np.float32))
    polyak.update()
    expected = [0.9 * e + 0.1 * v.numpy() for e, v in zip(expected, source.variables)]
  for e, a in zip(expected, averaged.variables):
    np.testing.assert_allclose(a.numpy(), e, rtol=1e-5, atol=1e-6)
  before = [v.numpy() for v in source.trainable_variables]
  optim.decay_weights(source.trainable_variables, 0.5)
  for b, v in zip(before, source.trainable_variables):
    np.testing.assert_allclose(v.numpy(), 0.5 * b, rtol=1e-6)
  with pytest.raises(ValueError, match="PolyakAverage"):
    optim.PolyakAverage(
      source,
      model_lib.FlowModel(
        glow_tf2.Glow(glow_tf2.GlowConfig(image_shape=(8, 8, 1), n_levels=1, depth=1, width=8))
      ),
      0.9,
    )


def test_a_non_finite_translation_term_drops_only_itself(tmp_path_factory, monkeypatch):
  """One step with an always-NaN translation term updates the weights exactly as a step
  without the term, and reports it dropped; with a finite term the step differs."""
  from glow_tf2.input import pipeline as input_pipeline
  from glow_tf2.input import problems
  from glow_tf2.train import loop as trainer_lib
  from tests.helpers import mnist_dir
  from tests.helpers import tiny_config

  data_dir = mnist_dir(tmp_path_factory)
  real = losses_lib.translation_distance

  def one_step(scale, poison):
    config = tiny_config(
      tmp_path_factory.mktemp("run"),
      data_dir,
      loss=dict(joint_train=True, translation_loss_scale=scale),
    )
    data = config.data
    problem = problems.get_problem(data.problem, data_dir=data.data_dir, channels=data.channels)
    monkeypatch.setattr(
      losses_lib,
      "translation_distance",
      (lambda *a, **k: real(*a, **k) * np.nan) if poison else real,
    )
    trainer = trainer_lib.Trainer(
      config, problem, tf.distribute.get_strategy(), input_pipeline.make_dataset
    )
    trainer.restore_or_initialize()
    metrics = trainer.train_step(trainer.train_iterator(0))
    weights = [v.numpy() for side in trainer.sides for v in side.model.trainable_variables]
    return metrics, weights

  plain, plain_weights = one_step(0.0, poison=False)
  dropped, dropped_weights = one_step(1.0, poison=True)
  kept, kept_weights = one_step(1.0, poison=False)
  assert dropped["translation_dropped"] == 1.0 and kept["translation_dropped"] == 0.0
  assert "translation_loss" not in plain and kept["translation_loss"] > 0
  assert all(np.isfinite(v) for v in dropped.values())
  np.testing.assert_allclose(dropped["loss_a"], plain["loss_a"], rtol=1e-6)
  for got, expected in zip(dropped_weights, plain_weights):
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
  assert max(np.max(np.abs(k - p)) for k, p in zip(kept_weights, plain_weights)) > 1e-6
