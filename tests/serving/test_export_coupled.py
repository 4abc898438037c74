"""The SavedModel of a coupled pair: translations at a temperature, sampled pairs, rho
and the pair's bits/dim, each checked against the library's models and prior, before and after
a reload, and the refusal of bad temperatures and seeds."""

import math

import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2 import joint_losses
from glow_tf2 import seeds
from glow_tf2.flows import coupled_prior
from glow_tf2.serving import export
from tests import helpers

SHAPE = (8, 8, 1)
# One rho per channel of each level: 2 channels of the 4x4 level, 8 of the 2x2 top. Not
# constant, and of both signs, so a rho applied to the wrong dimensions shows.
RHO = np.array([0.9, -0.7, 0.5, 0.95, 0.3, -0.4, 0.8, 0.6, 0.99, 0.2], np.float32)
TEMPERATURE = np.array([0.0, 0.3, 0.7, 1.0, 0.5, 0.0], np.float32)
SALT_A2B, SALT_B2A, SALT_PAIR_B = 2, 3, 4


def _config():
  return helpers.tiny_glow_config(image_shape=SHAPE)


@pytest.fixture(scope="module")
def coupled(tmp_path_factory):
  config = _config()
  images = helpers.real_images(32, SHAPE, seed=3)
  glows = []
  for seed, domain in ((1, images), (2, 255 - images)):
    name = f"glow_{'ab'[seed - 1]}"
    glow = helpers.initialized_glow(config, domain, seed, name=name, perturb_scale=0.05)
    glows.append(glow)
  prior = coupled_prior.CoupledPrior(config, initial_rho=0.9)
  prior.r.assign(np.arctanh(RHO / prior.rho_max))
  module = export.build_serving_module(glows[0], glows[1], prior)
  export_dir = export.export_saved_model(module, str(tmp_path_factory.mktemp("c") / "m"))
  return dict(
    module=module,
    loaded=tf.saved_model.load(export_dir),
    glow_a=glows[0],
    glow_b=glows[1],
    prior=prior,
    images_a=images[:6],
    images_b=255 - images[:6],
  )


def _x(images):
  return glow_tf2.preprocess(images, 8, noise=False)


def _close(actual, expected):
  """uint8 images equal but for a float that flips a bin here and there."""
  actual, expected = np.asarray(actual).astype(int), np.asarray(expected).astype(int)
  assert np.abs(actual - expected).max() <= 1
  assert np.mean(actual != expected) < 0.01


def _expected_translation(source, target, prior, images, temperature, seeds, salt):
  """decode_target(rho eps + T sqrt(1 - rho^2) n) with the library, n_i from [seeds_i, salt]."""
  eps, _ = source.encode(_x(images))
  noise = helpers.row_noise(seeds, salt, eps.shape[1])
  sd = np.sqrt(1.0 - RHO.astype(np.float64) ** 2)[coupled_prior.channel_index(source.config)]
  code = prior.rho() * eps + temperature[:, None] * (sd.astype(np.float32) * noise)
  return glow_tf2.postprocess(target.decode(code)[0], 8).numpy()


def test_rho_is_the_priors_per_channel_correlation(coupled):
  for model in (coupled["module"], coupled["loaded"].signatures):
    rho = (model.rho() if hasattr(model, "rho") else model["rho"]())["rho"].numpy()
    # Level 1: [4, 4, 2] row-major, channel fastest; the top [2, 2, 8] after it.
    expected = np.concatenate([np.tile(RHO[:2], 16), np.tile(RHO[2:], 4)])
    np.testing.assert_allclose(rho, expected, rtol=1e-6)


def test_translation_at_temperature_0_is_the_conditional_mean_both_ways(coupled):
  module, prior = coupled["module"], coupled["prior"]
  zeros = tf.zeros([6])
  for source, target, name in (("a", "b", "translate_a2b"), ("b", "a", "translate_b2a")):
    images = coupled[f"images_{source}"]
    got = getattr(module, name)(tf.constant(images))["images"].numpy()
    # The sampling translation at T = 0 is the images-only one, whatever the seeds.
    sampled = getattr(module, f"{name}_sample")(tf.constant(images), zeros, tf.range(9, 15))
    np.testing.assert_array_equal(sampled["images"].numpy(), got)
    x = coupled_prior.translate(
      coupled[f"glow_{source}"], coupled[f"glow_{target}"], prior, _x(images)
    )
    _close(got, glow_tf2.postprocess(x, 8).numpy())
    # The same map as the T = 0 bijector (a diagonal scale between the flows).
    bijector = coupled_prior.coupled_translation(
      coupled[f"glow_{source}"], coupled[f"glow_{target}"], prior
    )
    _close(got, glow_tf2.postprocess(bijector.forward(_x(images)), 8).numpy())
    # Not the translation of rho = 1: the prior's rho is applied.
    plain = coupled[f"glow_{target}"].decode(coupled[f"glow_{source}"].encode(_x(images))[0])[0]
    assert np.mean(got != glow_tf2.postprocess(plain, 8).numpy()) > 0.3
  # serving_default is translate_a2b: T = 0, from images alone.
  default = module.signatures["serving_default"](tf.constant(coupled["images_a"]))["images"]
  a2b = module.translate_a2b(tf.constant(coupled["images_a"]))["images"]
  np.testing.assert_array_equal(default.numpy(), a2b.numpy())


@pytest.mark.parametrize(
  "source, target, salt", [("a", "b", SALT_A2B), ("b", "a", SALT_B2A)], ids=["a2b", "b2a"]
)
def test_translation_at_temperature_draws_the_documented_noise(coupled, source, target, salt):
  fn = getattr(coupled["module"], f"translate_{source}2{target}_sample")
  images = coupled[f"images_{source}"]

  def translate(seeds, rows=slice(None)):
    t = tf.constant(TEMPERATURE[rows])
    return fn(tf.constant(images[rows]), t, tf.constant(seeds, tf.int32))["images"].numpy()

  seeds = np.arange(11, 17)
  first, again, other = translate(seeds), translate(seeds), translate(seeds + 100)
  expected = _expected_translation(
    coupled[f"glow_{source}"], coupled[f"glow_{target}"], coupled["prior"], images,
    TEMPERATURE, seeds, salt,
  )  # fmt: skip
  _close(first, expected)
  np.testing.assert_array_equal(first, again)  # one seed repeats
  # Row i is its own seed's draw in any batch: rows 2..3 alone, and row 3 alone.
  np.testing.assert_array_equal(translate(seeds[2:4], slice(2, 4)), first[2:4])
  np.testing.assert_array_equal(translate(seeds[3:4], slice(3, 4)), first[3:4])
  hot = TEMPERATURE > 0
  for row in np.flatnonzero(hot):  # two seeds differ, row by row, where T > 0
    assert np.mean(first[row] != other[row]) > 0.2
  np.testing.assert_array_equal(first[~hot], other[~hot])  # and not where T = 0
  # A larger temperature moves further from the conditional mean.
  mean = getattr(coupled["module"], f"translate_{source}2{target}")(tf.constant(images))
  mean = mean["images"].numpy().astype(float)
  distance = np.abs(first.astype(float) - mean).mean(axis=(1, 2, 3))
  assert distance[3] > distance[1] > 0 and distance[0] == 0


def test_sample_pairs_decode_the_joint_draw_of_the_seed(coupled):
  module, prior = coupled["module"], coupled["prior"]
  temperature = tf.constant([1.0, 0.7, 0.5, 0.0])
  seeds = tf.constant([5, 6, 7, 8])
  out = module.sample_pairs(temperature, seeds)
  # A's side is sample_a's draw with the same seeds.
  np.testing.assert_array_equal(
    out["images_a"].numpy(), module.sample_a(temperature, seeds)["images"].numpy()
  )
  d = prior.data_dim
  eps_a = helpers.row_noise([5, 6, 7, 8], 0, d) * temperature[:, None]
  noise = helpers.row_noise([5, 6, 7, 8], SALT_PAIR_B, d)
  sd = tf.exp(0.5 * prior.log_variance())
  eps_b = prior.rho() * eps_a + temperature[:, None] * (sd * noise)
  _close(out["images_a"], glow_tf2.postprocess(coupled["glow_a"].decode(eps_a)[0], 8))
  _close(out["images_b"], glow_tf2.postprocess(coupled["glow_b"].decode(eps_b)[0], 8))
  # sqrt(1 - rho^2) is what the library computes, to float precision.
  np.testing.assert_allclose(sd.numpy(), np.sqrt(1 - prior.rho().numpy() ** 2), rtol=1e-5)
  again = module.sample_pairs(temperature, seeds)["images_b"].numpy()
  other = module.sample_pairs(temperature, seeds + 10)["images_b"].numpy()
  np.testing.assert_array_equal(out["images_b"].numpy(), again)
  assert np.mean(other[:3] != again[:3]) > 0.2
  # A pair is its own seed's draw in any batch: the second pair alone.
  alone = module.sample_pairs(temperature[1:2], seeds[1:2])
  for key in ("images_a", "images_b"):
    np.testing.assert_array_equal(alone[key].numpy()[0], out[key].numpy()[1])


def test_pairs_of_the_joint_draw_have_correlation_rho(coupled):
  """The codes behind sample_pairs (drawn as documented) correlate by rho, channel by channel."""
  prior, n = coupled["prior"], 400
  eps_a = seeds.row_normal(tf.range(n), 0, prior.data_dim).numpy()
  noise = seeds.row_normal(tf.range(n), SALT_PAIR_B, prior.data_dim).numpy()
  rho = prior.rho().numpy()
  eps_b = rho * eps_a + np.sqrt(1 - rho**2) * noise
  channel = coupled_prior.channel_index(prior.config)
  for k, expected in enumerate(RHO):
    a, b = eps_a[:, channel == k].ravel(), eps_b[:, channel == k].ravel()
    # At least 1,600 pairs per channel: the correlation's standard error is under 0.025.
    assert np.corrcoef(a, b)[0, 1] == pytest.approx(expected, abs=0.08)
    assert b.std() == pytest.approx(1.0, abs=0.06)


def test_coupled_bits_per_dim_is_the_librarys_and_numpys(coupled):
  module, prior = coupled["module"], coupled["prior"]
  images_a, images_b = coupled["images_a"], coupled["images_b"]
  got = {k: v.numpy() for k, v in module.coupled_bits_per_dim(images_a, images_b).items()}
  eps_a, ld_a = coupled["glow_a"].encode(_x(images_a))
  eps_b, ld_b = coupled["glow_b"].encode(_x(images_b))
  library = joint_losses.coupled_bits(prior, eps_a, ld_a, eps_b, ld_b, 8)
  for key in export.COUPLED_BITS_KEYS:
    np.testing.assert_allclose(got[key], getattr(library, key).numpy(), rtol=1e-5)
  # And from the bivariate normal written out in numpy, in float64.
  ea, eb = eps_a.numpy().astype(np.float64), eps_b.numpy().astype(np.float64)
  rho = prior.rho().numpy().astype(np.float64)
  d = ea.shape[1]

  def gauss(x, mean, var):
    return (-0.5 * (np.log(2 * np.pi * var) + (x - mean) ** 2 / var)).sum(axis=1)

  def bits(log_prob, dims):
    return -(log_prob - dims * math.log(256)) / (dims * math.log(2))

  b_given_a = gauss(eb, rho * ea, 1 - rho**2) + ld_b.numpy()
  a_given_b = gauss(ea, rho * eb, 1 - rho**2) + ld_a.numpy()
  marginal_a = gauss(ea, 0, 1) + ld_a.numpy()
  np.testing.assert_allclose(got["b_given_a"], bits(b_given_a, d), rtol=1e-4)
  np.testing.assert_allclose(got["a_given_b"], bits(a_given_b, d), rtol=1e-4)
  np.testing.assert_allclose(got["joint"], bits(marginal_a + b_given_a, 2 * d), rtol=1e-4)
  np.testing.assert_allclose(
    got["a"], glow_tf2.bits_per_dim(coupled["glow_a"], images_a, noise=False), rtol=1e-5
  )
  # Noisy: A's dequantisation noise is bits_per_dim_noise_a's, B's another draw.
  noisy = module.coupled_bits_per_dim_noise(images_a, images_b, tf.constant(4))
  np.testing.assert_allclose(
    noisy["a"].numpy(),
    module.bits_per_dim_noise_a(images_a, tf.constant(4))["bits_per_dim"].numpy(),
    rtol=1e-6,
  )
  assert not np.allclose(noisy["b"].numpy(), got["b"])
  assert not np.allclose(
    noisy["b"].numpy(), module.bits_per_dim_noise_b(images_b, tf.constant(4))["bits_per_dim"]
  )


def test_the_reloaded_savedmodel_gives_the_modules_values(coupled):
  module, sig = coupled["module"], coupled["loaded"].signatures
  images_a, images_b = tf.constant(coupled["images_a"]), tf.constant(coupled["images_b"])
  temperature, seed = tf.constant(TEMPERATURE), tf.range(21, 27)
  for name, images in (("translate_a2b", images_a), ("translate_b2a", images_b)):
    np.testing.assert_array_equal(
      sig[f"{name}_sample"](images=images, temperature=temperature, seed=seed)["images"].numpy(),
      getattr(module, f"{name}_sample")(images, temperature, seed)["images"].numpy(),
    )
    np.testing.assert_array_equal(
      sig[name](images=images)["images"].numpy(), getattr(module, name)(images)["images"].numpy()
    )
  pairs = sig["sample_pairs"](temperature=temperature, seed=seed)
  expected = module.sample_pairs(temperature, seed)
  for key in ("images_a", "images_b"):
    np.testing.assert_array_equal(pairs[key].numpy(), expected[key].numpy())
  bits = sig["coupled_bits_per_dim"](images_a=images_a, images_b=images_b)
  expected_bits = module.coupled_bits_per_dim(images_a, images_b)
  assert sorted(bits) == sorted(export.COUPLED_BITS_KEYS)
  for key in export.COUPLED_BITS_KEYS:
    np.testing.assert_allclose(bits[key].numpy(), expected_bits[key].numpy(), rtol=1e-6)
  info = coupled["loaded"].info()
  assert int(info["coupled"]) == 1 and int(info["seed_per_row"]) == 1


def _translate_inputs(**changes):
  inputs = dict(
    images=tf.zeros([2, *SHAPE], tf.uint8),
    temperature=tf.constant([0.5, 0.5]),
    seed=tf.constant([1, 2]),
  )
  return {**inputs, **changes}


def _pair_inputs(**changes):
  return {"temperature": tf.constant([0.5, 0.5]), "seed": tf.constant([1, 2]), **changes}


def _bits_inputs(**changes):
  images = tf.zeros([2, *SHAPE], tf.uint8)
  return {"images_a": images, "images_b": images, **changes}


BAD = {
  "nan": ("translate_a2b_sample", _translate_inputs(temperature=tf.constant([0.5, math.nan])),
          "translate_a2b_sample: `temperature` must be finite"),
  "inf": ("sample_pairs", _pair_inputs(temperature=tf.constant([math.inf, 1.0])),
          "sample_pairs: `temperature` must be finite"),
  "negative": ("translate_b2a_sample", _translate_inputs(temperature=tf.constant([0.5, -0.1])),
               "translate_b2a_sample: `temperature` must be >= 0"),
  "pairs_negative": ("sample_pairs", _pair_inputs(temperature=tf.constant([-1.0, 1.0])),
                     "sample_pairs: `temperature` must be >= 0"),
  "length": ("translate_a2b_sample", _translate_inputs(temperature=tf.constant([0.5])),
             "translate_a2b_sample: `temperature` must have one entry per image"),
  "rank": ("translate_b2a_sample", _translate_inputs(temperature=tf.constant([[0.5, 0.5]])),
           "translate_b2a_sample_temperature_must_be_rank_1_N"),
  "seed_rank": ("translate_a2b_sample", _translate_inputs(seed=tf.constant([[1, 2]])),
                "translate_a2b_sample_seed_must_be_rank_1_N"),
  "seed_scalar": ("translate_a2b_sample", _translate_inputs(seed=tf.constant(1)),
                  "translate_a2b_sample_seed_must_be_rank_1_N"),
  "seed_length": ("translate_b2a_sample", _translate_inputs(seed=tf.constant([1, 2, 3])),
                  "translate_b2a_sample: `seed` must have one entry per row"),
  "pairs_seed": ("sample_pairs", _pair_inputs(seed=tf.constant([1])),
                 "sample_pairs: `seed` must have one entry per row"),
  "seed_dtype": ("translate_b2a_sample", _translate_inputs(seed=tf.constant([1, 2], tf.int64)),
                 "int32"),
  "partners": ("coupled_bits_per_dim", _bits_inputs(images_b=tf.zeros([1, *SHAPE], tf.uint8)),
               "coupled_bits_per_dim: `images_b` must hold one partner per image"),
  "partner_size": ("coupled_bits_per_dim",
                   _bits_inputs(images_b=tf.zeros([2, 8, 4, 1], tf.uint8)),
                   "coupled_bits_per_dim_images_b_must_be_N_8_8_1"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_temperatures_seeds_and_partners_are_refused_by_name(coupled, case):
  name, kwargs, message = BAD[case]
  sig = coupled["loaded"].signatures
  with pytest.raises(tf.errors.InvalidArgumentError) as error:
    sig[name](**kwargs)
  assert message in error.value.message
  # The model keeps working after the bad call.
  good = sig["translate_a2b_sample"](**_translate_inputs())
  assert good["images"].shape == (2,) + SHAPE


def test_a_prior_needs_both_models_of_its_layout():
  config = _config()
  glow_a, glow_b = glow_tf2.Glow(config, seed=0), glow_tf2.Glow(config, seed=1)
  prior = coupled_prior.CoupledPrior(config)
  with pytest.raises(ValueError, match="needs both models"):
    export.build_serving_module(glow_a, None, prior)
  other = coupled_prior.CoupledPrior(glow_tf2.GlowConfig(image_shape=SHAPE, n_levels=1))
  with pytest.raises(ValueError, match="eps layout"):
    export.build_serving_module(glow_a, glow_b, other)


def test_a_class_conditional_coupled_pair_passes_its_labels_through():
  config = glow_tf2.GlowConfig(image_shape=SHAPE, n_levels=2, depth=1, width=8, n_classes=3)
  images_a = helpers.real_images(6, SHAPE, seed=8)
  images_b = 255 - images_a
  labels = np.array([0, 1, 2, 0, 1, 2], np.int32)
  glows = []
  for seed, images in ((3, images_a), (4, images_b)):
    glow = glow_tf2.Glow(config, seed=seed, name=f"glow_y{seed}")
    glow.initialize(_x(images), labels=labels)
    helpers.perturb(glow, scale=0.05, seed=seed)
    glows.append(glow)
  prior = coupled_prior.CoupledPrior(config, initial_rho=0.8)
  module = export.build_serving_module(*glows, prior)
  t = tf.constant([0.0, 0.0, 0.0, 0.6, 0.6, 0.6])
  got = module.translate_a2b_sample(images_a, t, tf.range(2, 8), labels)["images"].numpy()
  eps_a, _ = glows[0].encode(_x(images_a), labels=labels)
  noise = helpers.row_noise(range(2, 8), SALT_A2B, eps_a.shape[1])
  code = prior.rho() * eps_a + t[:, None] * (tf.exp(0.5 * prior.log_variance()) * noise)
  _close(got, glow_tf2.postprocess(glows[1].decode(code, labels=labels)[0], 8))
  bits = module.coupled_bits_per_dim(images_a, images_b, labels)
  eps_b, ld_b = glows[1].encode(_x(images_b), labels=labels)
  _, ld_a = glows[0].encode(_x(images_a), labels=labels)
  library = joint_losses.coupled_bits(prior, eps_a, ld_a, eps_b, ld_b, 8)
  np.testing.assert_allclose(bits["joint"].numpy(), library.joint.numpy(), rtol=1e-5)
  other = module.coupled_bits_per_dim(images_a, images_b, (labels + 1) % 3)["joint"].numpy()
  assert np.abs(other - library.joint.numpy()).max() > 1e-4  # the labels matter
  with pytest.raises(tf.errors.InvalidArgumentError, match="labels"):
    module.sample_pairs(tf.fill([2], 0.5), tf.constant([0, 1]), tf.constant([0, 5]))


def test_translate_codes_is_the_pairs_translation_of_codes(coupled):
  """translate_codes_<dir>(encode_<source>(x)) is translate_<dir>(x) at T = 0, and it is
  decode_<target>(rho * eps) computed by hand: the code is the pair's, with rho < 1."""
  sig = coupled["loaded"].signatures
  rho = sig["rho"]()["rho"].numpy()
  assert np.all(rho < 1)
  for source, target in (("a", "b"), ("b", "a")):
    images = tf.constant(coupled[f"images_{source}"])
    eps = sig[f"encode_{source}"](images=images)["eps"]
    got = sig[f"translate_codes_{source}2{target}"](eps=eps)["images"].numpy()
    translated = sig[f"translate_{source}2{target}"](images=images)["images"].numpy()
    np.testing.assert_array_equal(got, translated)
    by_hand = sig[f"decode_{target}"](eps=tf.constant(rho * eps.numpy()))["images"].numpy()
    assert np.abs(got.astype(int) - by_hand.astype(int)).max() <= 1
