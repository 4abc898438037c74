"""glow_tf2.pair: the pair of image models against its Glows and prior computed by hand, against
its own SavedModel, and loaded back from a trained run folder."""

import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2 import joint_losses
from glow_tf2 import pair as pair_lib
from glow_tf2.flows.coupled_prior import CoupledPrior
from glow_tf2.serving import export
from tests import helpers

SHAPE = (8, 8, 1)
# One rho per channel of each level (2 channels of the 4x4 level, 8 of the 2x2 top): not
# constant and of both signs, so a rho applied to the wrong dimensions shows.
RHO = np.array([0.9, -0.7, 0.5, 0.95, 0.3, -0.4, 0.8, 0.6, 0.99, 0.2], np.float32)


def _x(images):
  return glow_tf2.preprocess(images, 8, noise=False)


def _images(x):
  return glow_tf2.postprocess(x, 8).numpy()


def _rows(first_seed, n, salt):
  """`[n, 64]`: row i is stateless_normal([64], seed=[first_seed + i, salt]), drawn alone."""
  return helpers.row_noise(range(first_seed, first_seed + n), salt, 64)


def _close(actual, expected):
  """uint8 images equal but for a float that flips a bin here and there."""
  actual, expected = np.asarray(actual).astype(int), np.asarray(expected).astype(int)
  assert np.abs(actual - expected).max() <= 1
  assert np.mean(actual != expected) < 0.01


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  config = helpers.tiny_glow_config(image_shape=SHAPE)
  images = helpers.real_images(32, SHAPE, seed=3)
  glow_a = helpers.initialized_glow(config, images, 1, name="glow_a", perturb_scale=0.05)
  glow_b = helpers.initialized_glow(config, 255 - images, 2, name="glow_b", perturb_scale=0.05)
  prior = CoupledPrior(config, initial_rho=0.9)
  prior.r.assign(np.arctanh(RHO / prior.rho_max))
  export_dir = str(tmp_path_factory.mktemp("pair") / "model")
  export.export_saved_model(export.build_serving_module(glow_a, glow_b, prior), export_dir)
  return dict(
    glow_a=glow_a,
    glow_b=glow_b,
    prior=prior,
    pair=glow_tf2.ImagePair(glow_a, glow_b, prior),
    plain=glow_tf2.ImagePair(glow_a, glow_b),
    saved=glow_tf2.load_pair(export_dir),
    export_dir=export_dir,
    images_a=images[:6],
    images_b=255 - images[:6],
  )


def test_translation_at_temperature_0_is_decode_b_of_rho_times_encode_a(setup):
  pair, prior = setup["pair"], setup["prior"]
  for source, target, direction in (("a", "b", "a2b"), ("b", "a", "b2a")):
    images = setup[f"images_{source}"]
    eps = setup[f"glow_{source}"].encode(_x(images))[0]
    expected = _images(setup[f"glow_{target}"].decode(prior.rho() * eps)[0])
    got = pair.translate(images, direction).numpy()
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)
    # At T = 0 the seed does not matter; and rho does: rho = 1 gives other images.
    np.testing.assert_array_equal(pair.translate(images, direction, seed=5).numpy(), expected)
    plain = _images(setup[f"glow_{target}"].decode(eps)[0])
    assert np.mean(got != plain) > 0.3
  np.testing.assert_allclose(
    pair.rho().numpy()[:4], [0.9, -0.7, 0.9, -0.7], rtol=1e-6
  )  # level 1: [4, 4, 2], channel fastest


def test_translation_at_temperature_draws_the_savedmodels_noise_of_the_seed(setup):
  pair, prior, images = setup["pair"], setup["prior"], setup["images_a"]

  def translate(seed):
    return pair.translate(images, "a2b", temperature=0.7, seed=seed).numpy()

  first, again, other = translate(11), translate(11), translate(12)
  np.testing.assert_array_equal(first, again)  # reproducible per seed
  assert all(np.mean(first[i] != other[i]) > 0.2 for i in range(len(images)))  # seeds differ
  # By hand: rho eps_A + T sqrt(1 - rho^2) n, row i's n from its own seed [11 + i, SALT_A2B = 2].
  eps_a = setup["glow_a"].encode(_x(images))[0]
  noise = _rows(11, 6, 2)
  sd = np.sqrt(1.0 - prior.rho().numpy().astype(np.float64) ** 2).astype(np.float32)
  expected = _images(setup["glow_b"].decode(prior.rho() * eps_a + 0.7 * sd * noise)[0])
  _close(first, expected)
  # A row's draw is its own seed's, whatever the batch: row 2 alone (seed 13), or as an array.
  np.testing.assert_array_equal(
    pair.translate(images[2:3], "a2b", temperature=0.7, seed=13).numpy()[0], first[2]
  )
  np.testing.assert_array_equal(
    pair.translate(images, "a2b", temperature=0.7, seed=np.arange(11, 17)).numpy(), first
  )
  # The SavedModel's translate_a2b_sample of the same row seeds, through its signature and
  # through load_pair; at T = 0 it is the images-only translate_a2b.
  loaded = tf.saved_model.load(setup["export_dir"])
  saved = loaded.signatures["translate_a2b_sample"](
    images=tf.constant(images), temperature=tf.fill([6], 0.7), seed=tf.range(11, 17)
  )["images"].numpy()
  _close(first, saved)
  np.testing.assert_array_equal(setup["saved"].translate(images, "a2b", 0.7, 11).numpy(), saved)
  at_0 = loaded.signatures["translate_a2b_sample"](
    images=tf.constant(images), temperature=tf.zeros([6]), seed=tf.range(11, 17)
  )["images"].numpy()
  mean = loaded.signatures["translate_a2b"](images=tf.constant(images))["images"].numpy()
  np.testing.assert_array_equal(at_0, mean)
  np.testing.assert_array_equal(mean, setup["saved"].translate(images, "a2b").numpy())
  _close(mean, pair.translate(images, "a2b").numpy())
  # B -> A draws its own noise ([seed_i, SALT_B2A]) and the SavedModel agrees.
  b2a = pair.translate(setup["images_b"], "b2a", temperature=0.7, seed=11).numpy()
  _close(b2a, setup["saved"].translate(setup["images_b"], "b2a", 0.7, 11).numpy())


def test_a_pair_without_a_prior_translates_with_rho_1_at_any_temperature(setup):
  plain, images = setup["plain"], setup["images_a"]
  assert not plain.coupled and setup["pair"].coupled and setup["saved"].coupled
  np.testing.assert_array_equal(plain.rho().numpy(), np.ones(SHAPE[0] * SHAPE[1]))
  expected = _images(setup["glow_b"].decode(setup["glow_a"].encode(_x(images))[0])[0])
  np.testing.assert_array_equal(plain.translate(images).numpy(), expected)
  np.testing.assert_array_equal(plain.translate(images, temperature=1.0, seed=4).numpy(), expected)
  # Sampled pairs: eps_B = eps_A.
  a, b = plain.sample_pairs(3, 0.7, seed=2)
  eps = 0.7 * _rows(2, 3, 0)
  np.testing.assert_array_equal(a.numpy(), _images(setup["glow_a"].decode(eps)[0]))
  np.testing.assert_array_equal(b.numpy(), _images(setup["glow_b"].decode(eps)[0]))
  for method in (plain.joint_bits_per_dim, plain.conditional_bits_per_dim):
    with pytest.raises(ValueError, match="not defined for a pair without a coupled prior"):
      method(images, setup["images_b"])


def test_sample_pairs_are_the_savedmodels_draw_of_the_seed(setup):
  pair, prior = setup["pair"], setup["prior"]
  a, b = pair.sample_pairs(4, temperature=0.8, seed=5)
  # Pair i from its own seed 5 + i: A's noise salted SALT_SAMPLE = 0, B's SALT_PAIR_B = 4.
  eps_a = 0.8 * _rows(5, 4, 0)
  noise = _rows(5, 4, 4)
  eps_b = prior.rho() * eps_a + 0.8 * tf.exp(0.5 * prior.log_variance()) * noise
  np.testing.assert_array_equal(a.numpy(), _images(setup["glow_a"].decode(eps_a)[0]))
  np.testing.assert_array_equal(b.numpy(), _images(setup["glow_b"].decode(eps_b)[0]))
  saved_a, saved_b = setup["saved"].sample_pairs(4, temperature=0.8, seed=5)
  _close(a, saved_a)
  _close(b, saved_b)
  other_a, _ = pair.sample_pairs(4, temperature=0.8, seed=6)
  assert np.mean(a.numpy() != other_a.numpy()) > 0.2
  # A pair drawn alone is the same pair: the last one, seed 8.
  last_a, last_b = pair.sample_pairs(1, temperature=0.8, seed=[8])
  np.testing.assert_array_equal(last_a.numpy()[0], a.numpy()[3])
  np.testing.assert_array_equal(last_b.numpy()[0], b.numpy()[3])


def test_encode_then_decode_gives_the_images_back_within_one_level(setup):
  for model in (setup["pair"], setup["saved"]):
    for side in ("a", "b"):
      images = setup[f"images_{side}"]
      eps = model.encode(images, side)
      assert eps.shape == (6, 64)
      back = model.decode(eps, side).numpy()
      assert back.dtype == np.uint8 and np.abs(back.astype(int) - images).max() <= 1
  np.testing.assert_allclose(
    setup["saved"].encode(setup["images_a"], "a").numpy(),
    setup["pair"].encode(setup["images_a"], "a").numpy(),
    rtol=1e-5,
    atol=1e-5,
  )


def test_bits_per_dim_are_glows_objective(setup):
  pair, images = setup["pair"], setup["images_b"]
  glow = setup["glow_b"]
  mid = glow_tf2.bits_per_dim(glow, images, noise=False).numpy()
  np.testing.assert_allclose(pair.bits_per_dim(images, "b").numpy(), mid, rtol=1e-6)
  noisy = glow_tf2.bits_per_dim(glow, images, noise=True, seed=[7, 1]).numpy()
  np.testing.assert_allclose(pair.bits_per_dim(images, "b", noise=True, seed=7), noisy, rtol=1e-6)
  assert np.abs(noisy - mid).max() > 1e-4  # the noise is there
  saved = setup["saved"]
  np.testing.assert_allclose(saved.bits_per_dim(images, "b").numpy(), mid, rtol=1e-5)
  np.testing.assert_allclose(saved.bits_per_dim(images, "b", noise=True, seed=7), noisy, rtol=1e-5)


def test_joint_and_conditional_bits_are_joint_losses(setup):
  pair, prior = setup["pair"], setup["prior"]
  images_a, images_b = setup["images_a"], setup["images_b"]
  eps_a, ld_a = setup["glow_a"].encode(_x(images_a))
  eps_b, ld_b = setup["glow_b"].encode(_x(images_b))
  library = joint_losses.coupled_bits(prior, eps_a, ld_a, eps_b, ld_b, 8)
  for model, rtol in ((pair, 1e-6), (setup["saved"], 1e-5)):
    np.testing.assert_allclose(
      model.joint_bits_per_dim(images_a, images_b), library.joint, rtol=rtol
    )
    np.testing.assert_allclose(
      model.conditional_bits_per_dim(images_a, images_b), library.b_given_a, rtol=rtol
    )
    np.testing.assert_allclose(
      model.conditional_bits_per_dim(images_a, images_b, "b2a"), library.a_given_b, rtol=rtol
    )
  # Mid-bin by default; noise=True dequantizes (A from [seed, 1], B from [seed, 5]).
  noisy = pair.coupled_bits(images_a, images_b, noise=True, seed=3)
  saved_noisy = setup["saved"].coupled_bits(images_a, images_b, noise=True, seed=3)
  np.testing.assert_allclose(noisy.joint, saved_noisy.joint, rtol=1e-5)
  assert np.abs(noisy.joint.numpy() - library.joint.numpy()).max() > 1e-4
  whole = joint_losses.coupled_bits_per_dim(
    setup["glow_a"], setup["glow_b"], prior, images_a, images_b, noise=False
  )
  np.testing.assert_allclose(pair.coupled_bits(images_a, images_b).joint, whole.joint, rtol=1e-6)
  np.testing.assert_allclose(setup["saved"].rho(), pair.rho(), rtol=1e-6)


def _one_line(error) -> str:
  message = str(error.value)
  assert "\n" not in message
  return message


def test_bad_arguments_are_refused_with_one_line(setup, tmp_path):
  images = setup["images_a"]
  for model in (setup["pair"], setup["saved"]):
    with pytest.raises(ValueError, match=r"direction must be 'a2b' or 'b2a', got 'a2c'") as e:
      model.translate(images, "a2c")
    _one_line(e)
    with pytest.raises(ValueError, match=r"side must be 'a' or 'b', got 'c'") as e:
      model.encode(images, "c")
    _one_line(e)
    with pytest.raises(ValueError, match=r"temperature must be finite and >= 0, got -0.5"):
      model.translate(images, temperature=-0.5)
    with pytest.raises(ValueError, match=r"encode_a: images must be uint8 .*, got float32"):
      model.encode(images.astype(np.float32), "a")
    with pytest.raises(ValueError, match="labels given, but the pair is not class-conditional"):
      model.translate(images, labels=np.zeros(6, np.int32))
  with pytest.raises(FileNotFoundError, match="is neither a glow-train run folder") as e:
    glow_tf2.load_pair(tmp_path)
  _one_line(e)
  with pytest.raises(FileNotFoundError, match="is not a folder"):
    glow_tf2.load_pair(tmp_path / "missing")
  other = CoupledPrior(helpers.tiny_glow_config(image_shape=SHAPE, n_levels=1))
  with pytest.raises(ValueError, match="eps layout"):
    glow_tf2.ImagePair(setup["glow_a"], setup["glow_b"], other)


class _ScalarSeedExport:
  """A coupled pair's SavedModel as exported before per-row seeds: translate_<d>(images,
  temperature, seed) with one scalar seed per call, and no `seed_per_row` in info()."""

  def __init__(self):
    self.calls = []

  def info(self):
    return {
      "n_domains": tf.constant(2),
      "image_shape": tf.constant(SHAPE),
      "data_dim": tf.constant(64),
      "n_classes": tf.constant(0),
      "coupled": tf.constant(1),
    }

  def translate_a2b(self, images, temperature, seed):
    self.calls.append((temperature.numpy().tolist(), int(seed)))
    return {"images": 255 - images}


def test_an_export_from_before_per_row_seeds_translates_at_t_0_and_refuses_draws(setup):
  older = _ScalarSeedExport()
  saved = pair_lib.SavedPair(older, "old/1")
  images = setup["images_a"][:2]
  assert saved.coupled and not saved.seed_per_row and setup["saved"].seed_per_row
  np.testing.assert_array_equal(saved.translate(images).numpy(), 255 - images)
  assert older.calls == [([0.0, 0.0], 0)]  # T = 0 and its seed, which draws nothing
  for draw in (
    lambda: saved.translate(images, temperature=0.5),
    lambda: saved.sample_pairs(2, 0.7),
  ):
    with pytest.raises(ValueError, match="old/1 was exported before per-row seeds") as e:
      draw()
    assert "re-export it with glow-export" in _one_line(e)


@pytest.fixture(scope="module")
def coupled_run(tmp_path_factory):
  """One epoch (2 steps) of a coupled pair trained here: rho from 0.9, 32 mnist pairs."""
  return helpers.tiny_pair_run(
    tmp_path_factory,
    "pair_run",
    {
      "data.n_test": 8,
      "optim.lr": 0.01,
      "loss.code_loss_type": "coupled",
      "loss.coupled_rho_init": 0.9,
      "n_batch_test": 8,
      "epochs_full_sample": 10,
    },
  )


def test_load_pair_of_a_run_is_the_trainers_ema_pair_and_so_is_its_savedmodel(
  coupled_run, tmp_path
):
  trainer = coupled_run["trainer"]
  batch = next(iter(trainer.dataset("test", 8, shuffle=False, repeat=False, dal=0)))
  images_a, images_b = batch["image_a"].numpy(), batch["image_b"].numpy()
  pair = glow_tf2.load_pair(coupled_run["logdir"])
  assert isinstance(pair, pair_lib.ImagePair) and pair.coupled
  glow_a, glow_b = (side.ema.glow for side in trainer.sides)
  ema = trainer.coupling.ema
  np.testing.assert_array_equal(pair.rho().numpy(), ema.rho().numpy())
  assert np.abs(trainer.coupling.prior.rho().numpy() - ema.rho().numpy()).max() > 1e-6
  expected = _images(glow_b.decode(ema.rho() * glow_a.encode(_x(images_a))[0])[0])
  np.testing.assert_array_equal(pair.translate(images_a).numpy(), expected)
  np.testing.assert_allclose(
    pair.bits_per_dim(images_a, "a"), glow_tf2.bits_per_dim(glow_a, images_a, noise=False), 1e-6
  )
  eps_a, ld_a = glow_a.encode(_x(images_a))
  eps_b, ld_b = glow_b.encode(_x(images_b))
  library = joint_losses.coupled_bits(ema, eps_a, ld_a, eps_b, ld_b, 8)
  np.testing.assert_allclose(
    pair.conditional_bits_per_dim(images_a, images_b), library.b_given_a, rtol=1e-6
  )
  # Its SavedModel translates alike, at T = 0 and at a temperature of one seed.
  export_dir = str(tmp_path / "model")
  export.export_saved_model(
    export.build_serving_module(pair.glow_a, pair.glow_b, pair.prior), export_dir
  )
  saved = glow_tf2.load_pair(export_dir)
  assert isinstance(saved, pair_lib.SavedPair) and saved.coupled
  for temperature in (0.0, 0.7):
    for direction, images in (("a2b", images_a), ("b2a", images_b)):
      _close(
        saved.translate(images, direction, temperature, seed=3),
        pair.translate(images, direction, temperature, seed=3),
      )
  # "last" reads the training checkpoint (here the same step as the best models).
  last = glow_tf2.load_pair(coupled_run["logdir"], checkpoint="last")
  np.testing.assert_array_equal(last.translate(images_a).numpy(), expected)
