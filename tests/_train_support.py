"""Shared pieces of the tests/test_train_*.py files: tiny configs on the embedded mnist problem."""

import dataclasses
import os
import pathlib
import subprocess
import sys

from glow_tf2 import train_config as tc

# Two logical CPUs of a 2-core machine: every subprocess gets one thread pool per process only.
SUBPROCESS_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


def mnist_dir(tmp_path_factory) -> str:
  """Folder of the embedded 1-channel mnist problem, built once per test session."""
  root = pathlib.Path(tmp_path_factory.getbasetemp()) / "mnist_c1"
  if not (root / "meta.json").exists():
    from glow_tf2 import problems  # pylint: disable=g-import-not-at-top
    problems.get_problem("mnist", data_dir=str(root), channels=1)
  return str(root)


def tiny_config(logdir, data_dir, **overrides) -> tc.TrainConfig:
  """A joint mnist run of a few seconds: 32x32x1, 2 levels of 1 step, width 16, batch 16."""
  model = dict(n_levels=2, depth=1, width=16, gradient_checkpointing=False)
  model.update(overrides.pop("model", {}))
  optim = dict(epochs_warmup=1.0)
  optim.update(overrides.pop("optim", {}))
  loss = dict(joint_train=True)
  loss.update(overrides.pop("loss", {}))
  data = dict(problem="mnist", data_dir=data_dir, channels=1, n_train=160, n_test=64, dal=0)
  data.update(overrides.pop("data", {}))
  run = dict(logdir=str(logdir), n_batch_train=16, n_batch_test=32, n_batch_init=64, epochs=3,
             epochs_full_valid=1, epochs_full_sample=1, n_sample=16, log_steps=5)
  run.update(overrides)
  return tc.TrainConfig(model=tc.ModelConfig(**model), optim=tc.OptimConfig(**optim),
                        loss=tc.LossConfig(**loss), data=tc.DataConfig(**data), **run)


def tiny_flags(logdir, data_dir, *extra) -> list:
  """The command-line twin of tiny_config for `python -m glow_tf2.train`."""
  # --preset=none: the flags below and the original's defaults, whatever mnist's preset says.
  return [sys.executable, "-m", "glow_tf2.train", "--problem=mnist", "--preset=none",
          f"--data_dir={data_dir}",
          "--channels=1", f"--logdir={logdir}", "--joint_train", "--n_levels=2", "--depth=1",
          "--width=16", "--nogradient_checkpointing", "--n_train=160", "--n_test=64", "--dal=0",
          "--n_batch_train=16", "--n_batch_test=32", "--n_batch_init=64", "--epochs_warmup=1",
          "--epochs_full_valid=1", "--epochs_full_sample=1", "--n_sample=16", "--log_steps=5",
          *extra]


def run_python(args, timeout=480, **kwargs) -> subprocess.CompletedProcess:
  return subprocess.run(args, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=timeout,
                        **kwargs)


def replace(config: tc.TrainConfig, **changes) -> tc.TrainConfig:
  return dataclasses.replace(config, **changes)
