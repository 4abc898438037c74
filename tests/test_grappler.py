"""grappler.skip_on_cpu: Grappler off in a CPU process unless GLOW_TF2_GRAPPLER=1, and a glow
binary starting turns it off by itself (`glow_tf2/__init__.py`)."""

import os
import subprocess
import sys

import tensorflow as tf

from glow_tf2 import grappler


def test_skip_on_cpu_turns_the_meta_optimizer_off(monkeypatch):
  monkeypatch.delenv(grappler.ENV, raising=False)
  assert not tf.config.list_physical_devices("GPU")  # the test machines have no GPU
  assert grappler.skip_on_cpu() is True
  assert tf.config.optimizer.get_experimental_options()["disable_meta_optimizer"] is True


def _binary_options(env_value):
  # A process that looks like a glow binary (`python -m glow_tf2...`) reports its options.
  code = (
    "import sys; sys.argv = ['-m']; import glow_tf2, tensorflow as tf; "
    "print(tf.config.optimizer.get_experimental_options().get('disable_meta_optimizer', False))"
  )
  env = {k: v for k, v in os.environ.items() if k != grappler.ENV}
  if env_value is not None:
    env[grappler.ENV] = env_value
  out = subprocess.run(
    [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=120
  )
  return out.stdout.strip().splitlines()[-1]


def test_a_binary_starts_without_grappler_unless_the_environment_keeps_it():
  assert _binary_options(None) == "True"
  assert _binary_options("1") == "False"
