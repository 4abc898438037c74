"""`--dequantization=variational`: glow-train trains each side's dequantizer with its model, logs
the bound apart from the uniform bits/dim, saves it in the checkpoints and resumes from them."""

import json
import os

import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2.config import ConfigError
from glow_tf2.config import GlowConfig
from tests.helpers import mnist_dir
from tests.helpers import run_python
from tests.helpers import tiny_flags

FLAG = "--dequantization=variational"


def _records(logdir, name):
  with open(os.path.join(logdir, name)) as f:
    return [json.loads(line) for line in f][1:]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  logdir = str(tmp_path_factory.mktemp("vd"))
  data = mnist_dir(tmp_path_factory)
  done = run_python(tiny_flags(logdir, data, FLAG, "--epochs=2", "--epochs_full_sample=100"))
  assert done.returncode == 0, done.stderr[-3000:]
  return logdir, data


def test_the_bound_is_logged_apart_from_the_uniform_bits(run):
  logdir, _ = run
  for side in ("A", "B"):
    test = _records(logdir, f"test_{side}.txt")
    assert [r["epoch"] for r in test] == [1, 2]
    last = test[-1]
    uniform, bound = float(last["bits_x"]), float(last["bits_x_vd"])
    # q starts as the uniform noise, so the bound starts at the uniform bits/dim (other draws);
    # 20 steps of this tiny run move it by less than the draws' spread (measured 7.9154 against
    # 7.9151 for A), so only closeness is asserted here.
    assert 1.0 < bound < 9.0 and abs(bound - uniform) < 0.05
    train = _records(logdir, f"train_{side}.txt")[-1]
    assert "bits_x" not in train  # training computes the bound only
    assert 1.0 < float(train["bits_x_vd"]) < 9.0
  with open(os.path.join(logdir, "config.json")) as f:
    assert json.load(f)["config"]["model"]["dequantization"] == "variational"


def test_the_dequantizers_are_saved_with_their_models(run):
  logdir, _ = run
  prefix = tf.train.latest_checkpoint(os.path.join(logdir, "checkpoints"))
  reader = tf.train.load_checkpoint(prefix)
  names = list(reader.get_variable_to_shape_map())
  for side in ("a", "b"):
    # A checkpoint names each variable once; the EMA's are under model_<x>/ema/ (the trained
    # model's, like its Glow's, under the optimizer that holds them).
    held = [n for n in names if n.startswith(f"model_{side}/ema/dequantizer/")]
    assert len(held) == 26, held
    # Trained: q's per-channel log-scale started at 0, and the EMA has followed it.
    log_scale = reader.get_tensor(
      f"model_{side}/ema/dequantizer/log_scale/.ATTRIBUTES/VARIABLE_VALUE"
    )
    assert float(log_scale[0]) != 0.0  # 20 steps move the EMA by about 1e-6


def test_a_resumed_run_continues(run):
  logdir, data = run
  done = run_python(tiny_flags(logdir, data, FLAG, "--epochs=3", "--epochs_full_sample=100"))
  assert done.returncode == 0, done.stderr[-3000:]
  test = _records(logdir, "test_A.txt")
  assert [r["epoch"] for r in test] == [1, 2, 3]
  assert abs(float(test[-1]["bits_x_vd"]) - float(test[-1]["bits_x"])) < 0.05


def test_a_run_cannot_change_its_dequantization(run):
  logdir, data = run
  done = run_python(tiny_flags(logdir, data, "--epochs=4"))
  assert done.returncode != 0
  assert "--dequantization=uniform" in done.stderr + done.stdout


def test_dequantization_is_checked():
  assert GlowConfig().dequantization == "uniform" and not GlowConfig().variational
  with pytest.raises(ValueError, match="dequantization must be one of"):
    GlowConfig(dequantization="learned")
  with pytest.raises(ConfigError, match="--dequantization=learned"):
    glow_tf2.config.build({"model.dequantization": "learned"})
  # A config written before the field existed reads as uniform.
  old = glow_tf2.config.to_dict(glow_tf2.config.TrainConfig())
  del old["model"]["dequantization"]
  assert glow_tf2.config.from_dict(old).model.dequantization == "uniform"
