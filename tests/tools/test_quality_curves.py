"""glow-report's sample-quality figure reads the judged scalars and places them at the logged
training minutes (wall or CPU) of their steps."""

import json

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from glow_tf2_tools import quality_curves


def _run(root, judged=True, batch=32):
  root.mkdir()
  (root / "config.json").write_text(
    json.dumps(
      {"config": {"n_batch_train": batch, "anchor_size": 32, "model": {"image_shape": [32, 32, 1]}}}
    )
  )
  for side in ("A", "B"):
    records = [
      {"epoch": e, "n_processed": e * 200 * batch, "train_time": 90 * e} for e in (1, 2, 3)
    ]
    # Epoch 1 logged before the CPU clock (a run begun on older code, resumed).
    for record in records[1:]:
      record["train_cpu_time"] = 150 * record["epoch"]
    (root / f"train_{side}.txt").write_text("\n".join(json.dumps(r) for r in [{}] + records))
  writer = tf.summary.create_file_writer(str(root))
  with writer.as_default():
    for epoch in (1, 2, 3):
      step = 200 * epoch
      tf.summary.scalar("eval/bits_per_dim_a", 3.0, step=step)
      if judged:
        for side, offset in (("a", 0.0), ("b", 0.05)):
          tf.summary.scalar(f"eval/sample_confident_{side}_T0.7", 0.1 * epoch + offset, step=step)
          tf.summary.scalar(f"eval/sample_frechet_{side}_T0.7", 500.0 / epoch, step=step)
          tf.summary.scalar(f"eval/sample_frechet_floor_{side}", 20.0, step=step)
  writer.close()
  return str(root)


def test_curves_put_each_validation_at_its_minutes(tmp_path):
  got = quality_curves.curves(_run(tmp_path / "run"))
  assert set(got) == {"a", "b"}
  np.testing.assert_allclose(got["a"]["minutes"], [1.5, 3.0, 4.5])
  np.testing.assert_allclose(got["b"]["cpu_minutes"], [np.nan, 5.0, 7.5])
  np.testing.assert_array_equal(got["a"]["steps"], [200, 400, 600])
  np.testing.assert_allclose(got["b"]["confident"], [0.15, 0.25, 0.35], rtol=1e-6)
  np.testing.assert_allclose(got["a"]["frechet"], [500.0, 250.0, 500.0 / 3], rtol=1e-6)
  np.testing.assert_allclose(got["a"]["floor"], [20.0] * 3)


def test_plot_writes_a_figure_only_for_judged_runs(tmp_path):
  judged, plain = _run(tmp_path / "judged"), _run(tmp_path / "plain", judged=False)
  assert quality_curves.curves(plain) == {}
  path = tmp_path / "q.png"
  assert quality_curves.plot([judged, plain], ["judged", "plain"], str(path), "t")
  with Image.open(path) as image:
    assert image.size == (1000, 360)
  assert not quality_curves.plot([plain], ["plain"], str(tmp_path / "none.png"), "t")
  assert not (tmp_path / "none.png").exists()


def test_plot_against_steps_draws_the_same_values_at_the_steps(tmp_path, monkeypatch):
  from matplotlib import axes

  judged = _run(tmp_path / "judged")
  drawn = []
  real_plot = axes.Axes.plot
  monkeypatch.setattr(
    axes.Axes,
    "plot",
    lambda ax, x, y, **kw: drawn.append((list(x), list(y))) or real_plot(ax, x, y, **kw),
  )
  assert quality_curves.plot([judged], ["r"], str(tmp_path / "s.png"), "t", x="steps")
  xs = {tuple(x) for x, _ in drawn}
  assert xs == {(200, 400, 600)}
  assert ([200, 400, 600], pytest.approx([0.1, 0.2, 0.3])) in drawn
  drawn.clear()
  assert quality_curves.plot([judged], ["r"], str(tmp_path / "c.png"), "t", x="cpu_minutes")
  np.testing.assert_allclose(drawn[0][0], [np.nan, 5.0, 7.5])
  with pytest.raises(ValueError, match="x must be one of"):
    quality_curves.plot([judged], ["r"], str(tmp_path / "e.png"), "t", x="hours")
