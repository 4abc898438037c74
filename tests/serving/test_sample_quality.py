"""glow-eval's sample-quality metrics of a pair, recomputed here from the module's own samples
and translations with numpy and scipy, under a judge whose outputs are known in closed form."""

import json
import math

import numpy as np
from PIL import Image
import pytest
import scipy.linalg

from glow_tf2.flows import coupled_prior
from glow_tf2.serving import eval_report
from glow_tf2.serving import evaluation
from glow_tf2.serving import export
from glow_tf2.serving import sample_quality
from tests import helpers

SHAPE = (8, 8, 1)
N_SAMPLES = 12
TEMPERATURES = (0.5, 1.0)


class BrightnessJudge:
  """Two classes, dark (0) and light (1): p(light) = sigmoid((mean - 128) / 8); features are the
  image's mean, standard deviation and the mean of its top half."""

  def features_and_probabilities(self, images):
    x = np.asarray(images, np.float64).reshape(len(images), -1)
    mean = x.mean(1)
    top = np.asarray(images, np.float64)[:, : SHAPE[0] // 2].reshape(len(images), -1).mean(1)
    light = 1.0 / (1.0 + np.exp(-(mean - 128.0) / 8.0))
    return np.stack([mean, x.std(1), top], 1), np.stack([1.0 - light, light], 1)

  def features(self, images):
    return self.features_and_probabilities(images)[0]

  def probabilities(self, images):
    return self.features_and_probabilities(images)[1]

  def info(self):
    return {"kind": "brightness", "test_accuracy": 1.0}


def _np_frechet(f1, f2):
  s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
  d = np.sum((f1.mean(0) - f2.mean(0)) ** 2) + np.trace(s1 + s2)
  return d - 2.0 * np.trace(np.real(scipy.linalg.sqrtm(s1 @ s2)))


def _np_scores(judge, images, real):
  feats, probs = judge.features_and_probabilities(images)
  counts = np.bincount(probs.argmax(1), minlength=2) / len(images)
  entropy = -sum(c * math.log(c) for c in counts if c > 0)
  return {
    "confident": np.mean(probs.max(1) >= 0.9),
    "class_entropy": entropy,
    "class_entropy_ratio": entropy / math.log(2),
    "frechet": _np_frechet(feats, judge.features(real)),
    "saturated": np.mean([np.mean((x == 0) | (x == 255)) > 0.97 for x in np.asarray(images)]),
    "n": len(images),
  }


@pytest.fixture(scope="module")
def setup():
  images = helpers.real_images(20, SHAPE, seed=11)
  test_a, test_b = images, 255 - images
  config = helpers.tiny_glow_config(image_shape=SHAPE)
  glows = [
    helpers.initialized_glow(config, x, s, name=f"glow_{s}", perturb_scale=0.05)
    for s, x in ((1, test_a), (2, test_b))
  ]
  prior = coupled_prior.CoupledPrior(config, initial_rho=0.9)
  module = export.build_serving_module(*glows, prior)
  judges = {"a": BrightnessJudge(), "b": BrightnessJudge()}
  classes = (test_a.reshape(20, -1).mean(1) > 128).astype(int)
  report = evaluation.evaluate(
    module,
    test_a,
    test_b,
    batch_size=5,
    seed=3,
    temperature=0.8,
    draws=2,
    judges=judges,
    feature_nets={"a": judges["a"]},
    classes=classes,
    n_samples=N_SAMPLES,
    sample_temperatures=TEMPERATURES,
  )
  return dict(module=module, judges=judges, classes=classes, a=test_a, b=test_b, report=report)


def test_samples_are_the_modules_and_their_scores_numpys(setup):
  module, judge = setup["module"], setup["judges"]["a"]
  for side in ("a", "b"):
    for t in TEMPERATURES:
      # Sample k from the row seed 3 + k: glow-eval's batches of 5 do not matter.
      sample = getattr(module, f"sample_{side}")
      t_rows = np.full([N_SAMPLES], t, np.float32)
      samples = sample(t_rows, np.arange(3, 3 + N_SAMPLES, dtype=np.int32))["images"].numpy()
      got = setup["report"]["metrics"]["sample_quality"][side][f"T{t:g}"]
      want = _np_scores(judge, samples, setup[side])
      assert got["n"] == N_SAMPLES
      for key in ("confident", "class_entropy", "class_entropy_ratio", "saturated"):
        assert got[key] == pytest.approx(want[key], abs=1e-12)
      assert got["frechet"] == pytest.approx(want["frechet"], rel=1e-6)


def test_the_real_images_floor_is_even_against_odd(setup):
  real = setup["report"]["metrics"]["sample_quality"]["a"]["real"]
  feats = setup["judges"]["a"].features(setup["a"])
  assert real["frechet"] == pytest.approx(_np_frechet(feats[0::2], feats[1::2]), rel=1e-6)
  assert real["n"] == 20
  assert setup["report"]["metrics"]["sample_quality"]["a"]["judge"]["kind"] == "brightness"
  # The feature network's section: the same samples, the Frechet distance alone would be the
  # same number for this judge.
  assert setup["report"]["metrics"]["feature_model"]["a"]["T1"]["frechet"] == pytest.approx(
    setup["report"]["metrics"]["sample_quality"]["a"]["T1"]["frechet"]
  )


def test_translations_keep_their_label(setup):
  module, judge, classes = setup["module"], setup["judges"]["b"], setup["classes"]
  got = setup["report"]["metrics"]["translation_labels"]
  assert set(got) == {"a2b", "b2a"} and set(got["a2b"]) == {"T0", "T0.8"}
  t0 = module.translate_a2b(setup["a"])["images"].numpy()
  assert got["a2b"]["T0"] == pytest.approx(np.mean(judge.probabilities(t0).argmax(1) == classes))
  # T = 0.8: both draws of every input, against its label (draw j of input k: seed
  # 3 + (j + 1) * 20 + k, 20 inputs).
  agree = []
  for j in range(2):
    seeds = np.arange(20, dtype=np.int32) + 3 + (j + 1) * 20
    drawn = module.translate_b2a_sample(setup["b"], np.full([20], 0.8, np.float32), seeds)
    agree += list(judge.probabilities(drawn["images"].numpy()).argmax(1) == classes)
  assert got["b2a"]["T0.8"] == pytest.approx(np.mean(agree))


def test_report_table_and_samples_figure(setup, tmp_path):
  report = setup["report"]
  eval_report.write_report(report, str(tmp_path / "r.json"))
  loaded = json.loads((tmp_path / "r.json").read_text())
  assert loaded["metrics"]["sample_quality"]["b"]["T0.5"]["n"] == N_SAMPLES
  assert "sample_images" not in loaded
  table = eval_report.format_table(report)
  assert "samples judged by the classifier" in table and "real test images (floor)" in table
  s = report["metrics"]["sample_quality"]["a"]["T0.5"]
  assert f"{s['confident']:7.3f}{s['class_entropy_ratio']:8.3f}{s['frechet']:10.2f}" in table
  path = sample_quality.save_samples_figure(report, str(tmp_path / "s.png"))
  grid = np.asarray(Image.open(path))
  # 2 temperatures per side, a blank row between the sides: 5 rows of 8 cells, 1-pixel padding.
  assert grid.shape[:2] == (5 * (SHAPE[0] + 1) + 1, 8 * (SHAPE[1] + 1) + 1)
  cells = helpers.grid_cells(grid, 5, 8, SHAPE[0])
  np.testing.assert_array_equal(cells[0][..., :1], report["sample_images"]["a"][0])
  np.testing.assert_array_equal(cells[4][..., :1], report["sample_images"]["b"][1])
  assert sample_quality.save_samples_figure({"metrics": {}}, str(tmp_path / "none.png")) is None


def test_a_class_conditional_model_samples_every_class_in_turn():
  calls = []

  class Module:
    def sample_a(self, temperature, seed, labels):
      calls.append((len(temperature), list(np.asarray(seed)), list(np.asarray(labels))))
      return {"images": np.zeros([len(temperature), *SHAPE], np.uint8)}

    def info(self):
      return {"seed_per_row": 1}

  out = sample_quality.draw_samples(Module(), "a", 7, 0.7, seed=10, batch_size=3, n_classes=3)
  assert out.shape == (7, *SHAPE)
  assert calls == [(3, [10, 11, 12], [0, 1, 2]), (3, [13, 14, 15], [0, 1, 2]), (1, [16], [0])]
