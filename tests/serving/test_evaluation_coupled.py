"""glow-eval's metrics of a coupled pair against the library and numpy: the pair's
bits/dim, the translations at T = 0 through rho, and the best / mean PSNR and spread of k draws."""

import math

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2 import joint_losses
from glow_tf2.flows import coupled_prior
from glow_tf2.serving import eval_report
from glow_tf2.serving import evaluation
from glow_tf2.serving import export
from tests import helpers

SHAPE = (8, 8, 1)
BATCH = 8  # 20 test pairs: batches of 8, 8 and 4
DRAWS = 3
TEMPERATURE = 0.8
SEED = 5


def _glow(seed, images):
  config = helpers.tiny_glow_config(image_shape=SHAPE)
  return helpers.initialized_glow(config, images, seed, name=f"glow_{seed}", perturb_scale=0.05)


@pytest.fixture(scope="module")
def setup():
  images = helpers.real_images(20, SHAPE, seed=11)
  test_a, test_b = images, 255 - images
  glow_a, glow_b = _glow(1, test_a), _glow(2, test_b)
  prior = coupled_prior.CoupledPrior(glow_a.config, initial_rho=0.9)
  # rho of both signs and several sizes, one per channel (2 + 8 channels).
  prior.r.assign(np.arctanh(np.linspace(-0.6, 0.97, 10) / prior.rho_max).astype(np.float32))
  module = export.build_serving_module(glow_a, glow_b, prior)
  report = evaluation.evaluate(
    module,
    test_a,
    test_b,
    batch_size=BATCH,
    seed=SEED,
    temperature=TEMPERATURE,
    draws=DRAWS,
  )
  return dict(
    module=module,
    glow_a=glow_a,
    glow_b=glow_b,
    prior=prior,
    test_a=test_a,
    test_b=test_b,
    report=report,
  )


def _np_psnr(pred, target):
  return helpers.psnr_per_image(pred, target)[1]


def test_pair_bits_are_the_librarys_coupled_bits(setup):
  bits = setup["report"]["metrics"]["coupled_bits_per_dim"]
  assert set(bits) == {"joint", "b_given_a", "a_given_b"}
  x_a = glow_tf2.preprocess(setup["test_a"], 8, noise=False)
  x_b = glow_tf2.preprocess(setup["test_b"], 8, noise=False)
  eps_a, ld_a = setup["glow_a"].encode(x_a)
  eps_b, ld_b = setup["glow_b"].encode(x_b)
  library = joint_losses.coupled_bits(setup["prior"], eps_a, ld_a, eps_b, ld_b, 8)
  for key in bits:
    per_image = getattr(library, key).numpy().astype(np.float64)
    assert bits[key]["mid_bin"]["mean"] == pytest.approx(per_image.mean(), rel=1e-5)
    stderr = per_image.std(ddof=1) / math.sqrt(len(per_image))
    assert bits[key]["mid_bin"]["stderr"] == pytest.approx(stderr, rel=1e-3)
    # One draw of dequantisation noise: near the mid-bin value, not equal to it.
    assert bits[key]["noise"]["mean"] != bits[key]["mid_bin"]["mean"]
    assert abs(bits[key]["noise"]["mean"] - per_image.mean()) < 0.3
  # The joint is the mean of a marginal and the other side's conditional, image by image.
  marginal = setup["report"]["metrics"]["bits_per_dim"]
  for given, other in (("b_given_a", "a"), ("a_given_b", "b")):
    expected = (bits[given]["mid_bin"]["mean"] + marginal[other]["mid_bin"]["mean"]) / 2
    assert bits["joint"]["mid_bin"]["mean"] == pytest.approx(expected, rel=1e-5)
  # Noisy: A's noise is that of bits_per_dim.a.noise, so (joint - b_given_a / 2) * 2 is it.
  joint_noise = bits["joint"]["noise"]["mean"]
  a_noise = 2 * joint_noise - bits["b_given_a"]["noise"]["mean"]
  assert a_noise == pytest.approx(marginal["a"]["noise"]["mean"], rel=1e-5)


def test_translations_at_temperature_0_go_through_rho(setup):
  translation = setup["report"]["metrics"]["translation"]
  for source, target in (("a", "b"), ("b", "a")):
    x = glow_tf2.preprocess(setup[f"test_{source}"], 8, noise=False)
    glows = setup[f"glow_{source}"], setup[f"glow_{target}"]
    mean = coupled_prior.translate(*glows, setup["prior"], x, temperature=0.0)
    expected = glow_tf2.postprocess(mean, 8).numpy()
    # PSNR of the library's conditional-mean translation, in numpy (a bin may flip: 0.05 dB).
    psnr = _np_psnr(expected, setup[f"test_{target}"]).mean()
    assert translation[f"{source}2{target}"]["model"]["psnr"] == pytest.approx(psnr, abs=0.05)
    # rho = 1 (the old translation decode(encode(x))) scores otherwise.
    plain = glow_tf2.postprocess(glows[1].decode(glows[0].encode(x)[0])[0], 8).numpy()
    plain_psnr = _np_psnr(plain, setup[f"test_{target}"]).mean()
    assert abs(translation[f"{source}2{target}"]["model"]["psnr"] - plain_psnr) > 0.1


def _draws(module, name, images, seed, temperature, draws):
  """k translations with the documented row seeds: draw j of test image k gets the seed
  seed + (j + 1) N + k, N the test images; each draw in one call (glow-eval's batches of 8 must
  not matter)."""
  n, out = len(images), []
  t = tf.fill([n], float(temperature))
  for j in range(draws):
    seeds = tf.range(n) + seed + (j + 1) * n
    out.append(getattr(module, name)(tf.constant(images), t, seeds)["images"].numpy())
  return np.stack(out)


def test_best_and_mean_psnr_and_spread_of_the_draws(setup):
  sampled = setup["report"]["metrics"]["translation_sampled"]
  assert sampled["temperature"] == TEMPERATURE and sampled["draws"] == DRAWS
  for source, target in (("a", "b"), ("b", "a")):
    draws = _draws(
      setup["module"], f"translate_{source}2{target}_sample", setup[f"test_{source}"], SEED,
      TEMPERATURE, DRAWS,
    )  # fmt: skip
    truth = setup[f"test_{target}"]
    psnr = np.stack([_np_psnr(d, truth) for d in draws])  # [k, N]
    pixels = draws.astype(np.float64) / 255
    spread = np.sqrt(((pixels - pixels.mean(axis=0)) ** 2).mean(axis=0)).mean()
    got = sampled[f"{source}2{target}"]
    assert got["psnr_best"] == pytest.approx(psnr.max(axis=0).mean(), rel=1e-9)
    assert got["psnr_mean"] == pytest.approx(psnr.mean(), rel=1e-9)
    assert got["spread"] == pytest.approx(spread, rel=1e-9)
    # Draws differ (T > 0, rho < 1), so the best of k beats their mean.
    assert got["spread"] > 0.01 and got["psnr_best"] > got["psnr_mean"]
    # The figure's rows for this direction: input, T = 0, the k draws, the partner.
    rows = setup["report"]["figure_images"][f"{source}2{target}"]
    assert len(rows) == 3 + DRAWS
    np.testing.assert_array_equal(np.stack(rows[2:-1]), draws[:, :8])
    np.testing.assert_array_equal(rows[-1], truth[:8])
  table = eval_report.format_table(setup["report"])
  assert "B given A" in table and f"{sampled['a2b']['spread']:.5f}" in table


def test_figure_of_a_coupled_run_has_a_row_per_draw(setup, tmp_path):
  path = eval_report.save_figure(setup["report"], str(tmp_path / "eval.png"))
  image = np.asarray(Image.open(path))
  # Per direction 3 + k rows of 8 images 8x8, and a blank row between the directions.
  rows = 2 * (3 + DRAWS) + 1
  assert image.shape == (rows * 9 + 1, 8 * 9 + 1, 3)


def test_spread_is_0_at_temperature_0_and_near_rho_1(setup):
  module = setup["module"]
  cold = evaluation.evaluate(
    module, setup["test_a"], setup["test_b"], batch_size=BATCH, temperature=0.0, draws=2
  )
  sampled, translation = cold["metrics"]["translation_sampled"], cold["metrics"]["translation"]
  for direction in ("a2b", "b2a"):
    assert sampled[direction]["spread"] == 0.0
    assert sampled[direction]["psnr_best"] == pytest.approx(
      sampled[direction]["psnr_mean"], rel=1e-12
    )
    assert sampled[direction]["psnr_mean"] == pytest.approx(
      translation[direction]["model"]["psnr"], rel=1e-12
    )
  # |rho| at its ceiling sqrt(1 - floor) with a floor of 1e-12: the noise scale is 1e-6.
  prior = coupled_prior.CoupledPrior(setup["glow_a"].config, initial_rho=0.5, floor=1e-12)
  prior.r.assign(tf.fill(prior.r.shape, 30.0))
  tight = export.build_serving_module(setup["glow_a"], setup["glow_b"], prior)
  draws = _draws(tight, "translate_a2b_sample", setup["test_a"][:8], SEED, 1.0, 2)
  assert evaluation.draw_metrics(draws, setup["test_b"][:8])["spread"] < 1e-3


@pytest.fixture(scope="module")
def plain(setup):
  """(The same models served as a pair that is not coupled, its report on 8 test pairs)."""
  module = export.build_serving_module(setup["glow_a"], setup["glow_b"])
  report = evaluation.evaluate(module, setup["test_a"][:8], setup["test_b"][:8], batch_size=BATCH)
  return module, report


def test_a_pair_that_is_not_coupled_has_no_coupled_keys(setup, plain):
  report = plain[1]
  assert "coupled_bits_per_dim" not in report["metrics"]
  assert "translation_sampled" not in report["metrics"]
  assert report["model"]["coupled"] == 0 and setup["report"]["model"]["coupled"] == 1
  assert "B given A" not in eval_report.format_table(report)


class _EarlierExport:
  """A SavedModel as glow-export wrote it before the coupled prior: translate_d(images), and no
  `coupled` (nor `seed_per_row`) in info(); every other function is the module's."""

  def __init__(self, module):
    self._module = module

  def __getattr__(self, name):
    return getattr(self._module, name)

  def info(self):
    older = ("coupled", "seed_per_row")
    return {k: v for k, v in self._module.info().items() if k not in older}


def test_an_earlier_export_is_evaluated_without_temperature_or_seed(setup, plain):
  module, now = plain
  images_a, images_b = setup["test_a"][:8], setup["test_b"][:8]
  earlier = evaluation.evaluate(_EarlierExport(module), images_a, images_b, batch_size=BATCH)
  assert earlier["model"]["coupled"] == 0
  assert earlier["metrics"]["translation"] == now["metrics"]["translation"]


class _ScalarSeedExport:
  """A coupled SavedModel as glow-export wrote it before per-row seeds: translate_d(images,
  temperature, seed) with one scalar seed per call (its rows drew from [seed, salt] as one
  [N, D] block; here each row from the seed itself, which is enough to see which seed came),
  and no `seed_per_row` in info()."""

  def __init__(self, module):
    self._module = module
    self.seeds = []

  def __getattr__(self, name):
    return getattr(self._module, name)

  def info(self):
    return {k: v for k, v in self._module.info().items() if k != "seed_per_row"}

  def _translate(self, name, images, temperature, seed):
    assert seed.shape == ()  # one seed per call
    self.seeds.append(int(seed))
    fn = getattr(self._module, f"{name}_sample")
    return fn(images, temperature, tf.fill(tf.shape(images)[:1], seed))

  def translate_a2b(self, images, temperature, seed):
    return self._translate("translate_a2b", images, temperature, seed)

  def translate_b2a(self, images, temperature, seed):
    return self._translate("translate_b2a", images, temperature, seed)


def test_an_export_with_one_seed_per_call_is_still_evaluated(setup):
  older = _ScalarSeedExport(setup["module"])
  report = evaluation.evaluate(
    older, setup["test_a"], setup["test_b"], batch_size=BATCH, seed=SEED, draws=2
  )
  # T = 0 is the same translation; every call takes one seed: batch b at T = 0 gets SEED + b,
  # draw j of batch b SEED + (j + 1) * 3 + b (3 batches), in each direction.
  assert report["metrics"]["translation"] == setup["report"]["metrics"]["translation"]
  at_0 = [SEED + b for b in range(3)]
  drawn = [SEED + (j + 1) * 3 + b for j in (0, 1) for b in range(3)]
  assert older.seeds == at_0 + at_0 + drawn + drawn
  assert report["metrics"]["translation_sampled"]["a2b"]["spread"] > 0.01


@pytest.mark.parametrize(
  "kwargs, message",
  [
    (dict(temperature=-0.1), "temperature must be finite and >= 0"),
    (dict(temperature=math.nan), "temperature must be finite and >= 0"),
    (dict(draws=0), "draws must be an integer >= 1"),
    (dict(draws=2.5), "draws must be an integer >= 1"),
  ],
)
def test_bad_temperature_or_draws_are_refused(setup, kwargs, message):
  with pytest.raises(ValueError, match=message):
    evaluation.evaluate(setup["module"], setup["test_a"][:2], setup["test_b"][:2], **kwargs)


def test_draw_metrics_by_hand():
  target = np.zeros((1, 1, 2, 1), np.uint8)
  draws = np.array([[[[[0], [0]]]], [[[[255], [0]]]]], np.uint8)  # [2, 1, 1, 2, 1]
  metrics = evaluation.draw_metrics(draws, target)
  # Draw 0 is exact (100 dB, the floor), draw 1 has mse 1/2 (3.0103 dB).
  assert metrics["psnr_best"] == pytest.approx(100.0)
  assert metrics["psnr_mean"] == pytest.approx((100.0 + 10 * math.log10(2)) / 2)
  # Pixel 0 is 0 or 1 (std 1/2), pixel 1 always 0.
  assert metrics["spread"] == pytest.approx(0.25)
  with pytest.raises(ValueError, match="not k x"):
    evaluation.draw_metrics(draws[0], target)
