"""glow-eval's metrics against values computed independently here, in numpy."""

import json
import math

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2.serving import eval_report
from glow_tf2.serving import evaluation
from glow_tf2.serving import export
from tests import helpers

SHAPE = (8, 8, 1)


def tiny_glow(seed, images):
  config = helpers.tiny_glow_config(image_shape=SHAPE)
  return helpers.initialized_glow(config, images, seed, name=f"glow_{seed}", perturb_scale=0.05)


@pytest.fixture(scope="module")
def setup():
  images = helpers.real_images(60, SHAPE, seed=11)
  pairs_a, pairs_b = images, 255 - images
  glow_a, glow_b = tiny_glow(1, pairs_a), tiny_glow(2, pairs_b)
  module = export.build_serving_module(glow_a, glow_b)
  test_a, test_b = pairs_a[:20], pairs_b[:20]
  train_a, train_b = pairs_a[20:], pairs_b[20:]
  # batch_size 8 leaves a last batch of 4: the batching must not drop or repeat images.
  report = evaluation.evaluate(
    module, test_a, test_b, train_a=train_a, train_b=train_b, batch_size=8, seed=3
  )
  return dict(
    module=module,
    glow_a=glow_a,
    glow_b=glow_b,
    test_a=test_a,
    test_b=test_b,
    train_a=train_a,
    train_b=train_b,
    report=report,
  )


# ---- Independent numpy versions of the metrics. ----


def np_mse_psnr(pred, target):
  mse, psnr = helpers.psnr_per_image(pred, target)
  return mse.mean(), psnr.mean()


def np_ssim(pred, target, size, sigma=1.5):
  """Gaussian-window SSIM (Wang et al. 2004) with 'valid' windows, per image, averaged."""
  coords = np.arange(size) - (size - 1) / 2
  g = np.exp(-(coords[:, None] ** 2 + coords[None, :] ** 2) / (2 * sigma**2))
  g /= g.sum()
  c1, c2 = 0.01**2, 0.03**2

  def filt(img):  # img [H, W] -> [H-size+1, W-size+1]
    h, w = img.shape
    out = np.zeros((h - size + 1, w - size + 1))
    for i in range(out.shape[0]):
      for j in range(out.shape[1]):
        out[i, j] = (img[i : i + size, j : j + size] * g).sum()
    return out

  values = []
  for x_img, y_img in zip(pred.astype(np.float64) / 255, target.astype(np.float64) / 255):
    per_channel = []
    for c in range(x_img.shape[-1]):
      x, y = x_img[..., c], y_img[..., c]
      mx, my = filt(x), filt(y)
      vx, vy, cov = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
      ssim_map = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
      per_channel.append(ssim_map.mean())
    values.append(np.mean(per_channel))
  return float(np.mean(values))


def np_nearest_partner(queries, train_in, train_out):
  out = []
  for q in queries.astype(np.int64):
    d = ((train_in.astype(np.int64) - q) ** 2).reshape(len(train_in), -1).sum(axis=1)
    out.append(train_out[int(np.argmin(d))])
  return np.stack(out)


def check_image_metrics(metrics, pred, target):
  mse, psnr = np_mse_psnr(pred, target)
  assert metrics["mse"] == pytest.approx(mse, rel=1e-9)
  assert metrics["psnr"] == pytest.approx(psnr, rel=1e-9)
  assert metrics["ssim"] == pytest.approx(np_ssim(pred, target, size=8), abs=1e-4)


# ---- Tests. ----


def test_bits_per_dim_mean_and_standard_error(setup):
  bits = setup["report"]["metrics"]["bits_per_dim"]
  for d, glow, images in (
    ("a", setup["glow_a"], setup["test_a"]),
    ("b", setup["glow_b"], setup["test_b"]),
  ):
    x = glow_tf2.preprocess(images, 8, noise=False).numpy().astype(np.float64)
    eps, log_det = glow.encode(tf.constant(x, tf.float32))
    eps, log_det = eps.numpy().astype(np.float64), log_det.numpy().astype(np.float64)
    log_prob = -0.5 * (eps**2 + math.log(2 * math.pi)).sum(axis=1) + log_det
    dims = np.prod(SHAPE)
    per_image = -(log_prob - dims * math.log(256)) / (dims * math.log(2))
    assert bits[d]["mid_bin"]["mean"] == pytest.approx(per_image.mean(), rel=1e-5)
    stderr = per_image.std(ddof=1) / math.sqrt(len(per_image))
    assert bits[d]["mid_bin"]["stderr"] == pytest.approx(stderr, rel=1e-3)
    # One draw of dequantisation noise: close to the mid-bin value, but not equal to it.
    assert abs(bits[d]["noise"]["mean"] - per_image.mean()) < 0.2
    assert bits[d]["noise"]["mean"] != bits[d]["mid_bin"]["mean"]
    assert bits[d]["noise"]["stderr"] > 0


def test_noisy_bits_are_reproducible_per_seed(setup):
  again = evaluation.evaluate(setup["module"], setup["test_a"], batch_size=8, seed=3)
  other = evaluation.evaluate(setup["module"], setup["test_a"], batch_size=8, seed=4)
  noise = setup["report"]["metrics"]["bits_per_dim"]["a"]["noise"]["mean"]
  assert again["metrics"]["bits_per_dim"]["a"]["noise"]["mean"] == noise
  assert other["metrics"]["bits_per_dim"]["a"]["noise"]["mean"] != noise
  # Only images A: no codes and no translations.
  assert set(again["metrics"]) == {"bits_per_dim"}


def test_code_mse_all_dims_and_top_block(setup):
  x_a = glow_tf2.preprocess(setup["test_a"], 8, noise=False)
  x_b = glow_tf2.preprocess(setup["test_b"], 8, noise=False)
  eps_a = setup["glow_a"].encode(x_a)[0].numpy().astype(np.float64)
  eps_b = setup["glow_b"].encode(x_b)[0].numpy().astype(np.float64)
  top = setup["glow_a"].config.top_dim
  code = setup["report"]["metrics"]["code_mse"]
  assert code["all"] == pytest.approx(((eps_a - eps_b) ** 2).mean(), rel=1e-4)
  assert code["top"] == pytest.approx(((eps_a[:, -top:] - eps_b[:, -top:]) ** 2).mean(), rel=1e-4)
  assert code["all"] != pytest.approx(code["top"])


def test_code_mse_on_training_pairs_is_the_first_n_training_pairs(setup):
  n = len(setup["test_a"])  # the test-set size: 20 of the 40 training pairs
  x_a = glow_tf2.preprocess(setup["train_a"][:n], 8, noise=False)
  x_b = glow_tf2.preprocess(setup["train_b"][:n], 8, noise=False)
  eps_a = setup["glow_a"].encode(x_a)[0].numpy().astype(np.float64)
  eps_b = setup["glow_b"].encode(x_b)[0].numpy().astype(np.float64)
  top = setup["glow_a"].config.top_dim
  code = setup["report"]["metrics"]["code_mse_train"]
  assert code["all"] == pytest.approx(((eps_a - eps_b) ** 2).mean(), rel=1e-4)
  assert code["top"] == pytest.approx(((eps_a[:, -top:] - eps_b[:, -top:]) ** 2).mean(), rel=1e-4)
  assert code["all"] != pytest.approx(setup["report"]["metrics"]["code_mse"]["all"])
  assert "code MSE on training pairs" in eval_report.format_table(setup["report"])


def test_translation_metrics_and_baselines(setup):
  module = setup["module"]
  translation = setup["report"]["metrics"]["translation"]
  domains = {"a": setup["test_a"], "b": setup["test_b"]}
  train = {"a": setup["train_a"], "b": setup["train_b"]}
  for source, target in (("a", "b"), ("b", "a")):
    results = translation[f"{source}2{target}"]
    translate = getattr(module, f"translate_{source}2{target}")
    images = tf.constant(domains[source])
    translated = translate(images)["images"].numpy()
    check_image_metrics(results["model"], translated, domains[target])
    check_image_metrics(results["identity"], domains[source], domains[target])
    neighbour = np_nearest_partner(domains[source], train[source], train[target])
    check_image_metrics(results["nearest_neighbour"], neighbour, domains[target])
  # B = 255 - A: the identity is a poor translation, the nearest neighbour a better one.
  assert translation["a2b"]["identity"]["mse"] > translation["a2b"]["nearest_neighbour"]["mse"]


def test_nearest_neighbour_takes_the_first_of_tied_training_inputs():
  queries = np.array([[[[10]]], [[[30]]]], np.uint8)
  train_in = np.array([[[[0]]], [[[20]]], [[[20]]], [[[40]]]], np.uint8)
  train_out = np.arange(4)
  # 10 is as far from 0 as from 20, 30 as far from 20 as from 40: the first index wins.
  np.testing.assert_array_equal(
    evaluation.nearest_neighbour_partner(queries, train_in, train_out), [0, 1]
  )


def test_psnr_of_an_exact_match_is_capped():
  images = helpers.real_images(3, SHAPE)
  metrics = evaluation.image_metrics(images, images)
  assert metrics["mse"] == 0 and metrics["psnr"] == pytest.approx(100.0)
  assert metrics["ssim"] == pytest.approx(1.0, abs=1e-6)


def test_code_mse_of_arrays_and_top_dim_of_levels():
  rng = np.random.default_rng(0)
  z_a, z_b = rng.normal(size=(5, 3072)), rng.normal(size=(5, 3072))
  top = evaluation.top_dim_of(3072, 3)
  assert top == 768
  result = evaluation.code_mse(z_a, z_b, top)
  assert result["all"] == pytest.approx(np.mean((z_a - z_b) ** 2))
  assert result["top"] == pytest.approx(np.mean((z_a[:, 2304:] - z_b[:, 2304:]) ** 2))
  with pytest.raises(ValueError, match="differ in shape"):
    evaluation.code_mse(z_a, z_b[:4], top)
  with pytest.raises(ValueError, match="top_dim"):
    evaluation.code_mse(z_a, z_b, 0)


def test_report_figure_and_table(setup, tmp_path):
  report = setup["report"]
  path = tmp_path / "report.json"
  eval_report.write_report(report, str(path))
  loaded = json.loads(path.read_text())
  assert loaded["n_test"] == 20
  assert loaded["metrics"] == json.loads(json.dumps(report["metrics"]))
  figure = eval_report.save_figure(report, str(tmp_path / "eval.png"))
  image = np.asarray(Image.open(figure))
  # 7 rows (input / translation / partner, a blank row, the same for B -> A) of 8 images 8x8.
  assert image.shape == (7 * 9 + 1, 8 * 9 + 1, 3)
  table = eval_report.format_table(report)
  a2b_model = report["metrics"]["translation"]["a2b"]["model"]
  assert f"{a2b_model['mse']:.5f}" in table and "nearest neighbour" in table
  assert f"{report['metrics']['code_mse']['top']:.5f}" in table


def test_class_conditional_model_gets_its_labels():
  config = glow_tf2.GlowConfig(image_shape=SHAPE, n_levels=1, depth=1, width=8, n_classes=3)
  images = helpers.real_images(12, SHAPE, seed=2)
  labels = np.arange(12) % 3
  glow = glow_tf2.Glow(config, seed=0)
  glow.initialize(glow_tf2.preprocess(images, 8, noise=False))
  helpers.perturb(glow, scale=0.05, seed=0)
  module = export.build_serving_module(glow)
  with pytest.raises(ValueError, match="needs labels"):
    evaluation.evaluate(module, images)
  report = evaluation.evaluate(module, images, labels=labels, batch_size=5)
  expected = glow_tf2.bits_per_dim(glow, images, labels=labels, noise=False).numpy()
  assert report["metrics"]["bits_per_dim"]["a"]["mid_bin"]["mean"] == pytest.approx(
    expected.astype(np.float64).mean(), rel=1e-5
  )
  shuffled = evaluation.evaluate(module, images, labels=(labels + 1) % 3, batch_size=5)
  assert shuffled["metrics"]["bits_per_dim"]["a"]["mid_bin"]["mean"] != pytest.approx(
    report["metrics"]["bits_per_dim"]["a"]["mid_bin"]["mean"], rel=1e-6
  )


def test_independent_pixel_bits_by_hand():
  # Two positions, 2 levels (1 bit): train column 0 = [0, 0, 1], column 1 = [1, 1, 1].
  train = np.array([[0, 128], [0, 128], [128, 128]], np.uint8)
  test = np.array([[0, 0]], np.uint8)
  # Add-one: p_0(0) = 3/5, p_1(0) = 1/5.
  expected = -(math.log2(3 / 5) + math.log2(1 / 5)) / 2
  assert evaluation.independent_pixel_bits(train, test, n_bits=1) == pytest.approx(expected)
  with pytest.raises(ValueError, match="train images have 2 values each, test images 3"):
    evaluation.independent_pixel_bits(train, np.zeros((1, 3), np.uint8), n_bits=1)


def test_independent_pixel_bits_is_the_entropy_of_a_known_source():
  # i.i.d. uniform 8-bit pixels: the smoothed histogram's cross-entropy is close to 8 bits.
  rng = np.random.default_rng(0)
  train = rng.integers(0, 256, (20000, 4)).astype(np.uint8)
  test = rng.integers(0, 256, (2000, 4)).astype(np.uint8)
  assert evaluation.independent_pixel_bits(train, test) == pytest.approx(8.0, abs=0.02)
