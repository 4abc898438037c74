"""Per-problem run configurations of glow-train: the settings of the runs in docs/results.md.

A preset is a partial run configuration keyed by `TrainConfig` FIELD (dotted paths such as
"model.depth", see `glow_tf2.config.FLAG_FIELDS` for their flags), applied over the defaults:

    config = presets.apply("mnist", TrainConfig())          # or config.build(values, base=...)

`glow-train --problem=mnist --logdir=runs/mnist` trains with the `mnist` preset: a flag given
on the command line wins over the preset, the preset wins over the defaults, and
`--preset=none` gives the original train.py's defaults. Problems without an entry here always
start from the original's defaults.

Each published preset finishes within an hour on 2 CPU cores (docs/results.md): the step
budget is `train_steps`, and `data.n_train` only sets how often the test set is evaluated and
the grids drawn (every `n_train` images); the data are shuffled and repeated, so every image is
used.
"""

from collections.abc import Collection
from collections.abc import Mapping
from typing import Any

from glow_tf2.config import TrainConfig
from glow_tf2.config import build

# The architecture of the published runs: Glow's reference configuration (b) at 1 channel.
_GLOW_32 = {
  "data.channels": 1,
  "model.n_levels": 3,
  "model.depth": 8,
  "model.width": 128,
  "model.permutation": "lu",
  "model.coupling": "affine",
  "model.learntop": True,
  "gradient_checkpointing": False,
}
# Short schedules: warm up over one epoch, average over half of one, evaluate every epoch, and
# judge 500 samples per side and temperature at each evaluation (docs/quality.md). The epoch's
# sample grids hold 16 draws per temperature: 64 (the original's) made a 2,113-pixel-wide PNG
# that had to be zoomed to see a digit.
_SHORT = {
  "optim.lr": 1e-3,
  "optim.epochs_warmup": 1.0,
  "optim.polyak_epochs": 0.5,
  "epochs": 1000,
  "epochs_full_valid": 1,
  "epochs_full_sample": 1,
  "judge_samples": 500,
  "n_sample": 16,
  # The published figures are float32's. bfloat16 ran 1.24x float32's steps on AMD EPYC, but
  # after mnist's 800 steps it stood 0.14 / 0.09 bits/dim higher with Frechet distances 130 /
  # 50 worse (docs/results.md, "Noise augmentation and bfloat16 at the preset"), so a
  # 1,000-step preset does not time it.
  "pick_precision": False,
}


def mnist() -> dict[str, Any]:
  """pix2pix-flow on digit <-> inverted digit (4,500 training pairs), 800 steps of 32 pairs.

  The pair is one density under the coupled prior (`flows.coupled_prior`, rho initialised at
  0.70), plus the translation loss at 10x on the conditional mean codes rho * eps; Adamax at
  a peak rate of 3e-3, no shift augmentation, the weights averaged over 20 steps, and each flow
  trained on its images plus 0.01 * N(0, I) (about 2.5 of 256 levels; every decoded image
  denoised by one Tweedie step). After 800 steps (docs/results.md, 2026-12-08, session 22,
  glow-eval): 59% (A) / 44% (B) of the samples at T = 0.7 confidently a digit (real test
  digits: 95% / 93%), Frechet distance 218 / 220 (floor 28 / 19); A -> B / B -> A 26.33 / 24.92
  dB PSNR (nearest neighbour 16.66); the digit kept in 96% of the translations at T = 0. A
  model of noised digits, its bits/dim of the clean test digits are 3.47 / 3.48. Without the
  noise (the preset of session 20): 53% / 28%, Frechet 279 / 381, 25.29 / 25.15 dB, and
  1.80 / 1.75 bits/dim, the lowest density figures of any preset run; at sigma 0.025: 57% /
  40%, 212 / 209, 23.19 / 22.65 dB, 4.56 / 4.54 bits/dim. The steps before (each a measured
  change, docs/results.md): Adamax 3e-3 over 2e-3 and 1e-3, the 20-step average over a 100-step
  one, rho from 0.70 without `--dal=1` shifts over rho from 0.90 with them (29.2 / 29.5 dB but
  2.37 / 2.33 bits/dim and samples that were noise), the coupled prior over code_all.
  """
  return {
    **_GLOW_32,
    **_SHORT,
    "data.dal": 0,
    "loss.joint_train": True,
    "loss.code_loss_type": "coupled",
    "loss.coupled_rho_init": 0.70,
    "loss.translation_loss_scale": 10.0,
    "loss.code_loss_scale": 10.0,
    "optim.lr": 3e-3,
    # An average over 20 steps, not 100: the weights improve faster than a longer one follows.
    "optim.ema_epochs": 0.1,
    # Noise augmentation, every decoded image denoised by one Tweedie step (docs/quality.md).
    "model.noise_sigma": 0.01,
    "n_batch_train": 32,
    "data.n_train": 6400,
    "data.n_test": -1,
    "train_steps": 800,
  }


def fashion_edges2shoes() -> dict[str, Any]:
  """pix2pix-flow on Fashion-MNIST edges <-> shoes (18,000 training pairs), 1,000 steps of 32.

  mnist's preset (the translation loss at 10x: edges are nearly binary, and without a pixel loss
  B -> A decodes to blotches; no shifts, Adamax at 3e-3, the weights averaged over 20 steps)
  with the coupled prior's correlation started at 0.90 instead of 0.70 and no noise
  augmentation, on 500 test pairs. Its run (docs/results.md, 2026-12-08, session 22, one run):
  test bits/dim 2.32 (A) / 2.65 (B); A -> B 19.09 dB PSNR (nearest neighbour 17.15), B -> A
  13.45 dB (nearest neighbour 11.18); the class kept in 87% / 79% of translations at T = 0;
  54% of the shoe samples at T = 0.7 confidently a shoe class (real test shoes: 90%), Frechet
  17.3 (floor 0.8). From rho 0.70 two runs gave 2.11 / 2.52 and 2.08 / 2.52 bits/dim but
  translations of 18.59 / 12.85 dB and of 16.43 / 11.32 dB (the second one grey shoe for every
  input): the lower start let the codes drift apart in one run of two. Noise at sigma 0.025
  (from rho 0.70) broke A -> B (12.65 dB). No edge sample of any of them is an edge map the
  edge judge recognises (0-5% confident at T = 0.7).
  """
  return {
    **mnist(),
    "loss.coupled_rho_init": 0.90,
    "model.noise_sigma": 0.0,
    "data.n_test": 500,
    "train_steps": 1000,
  }


def fashion_mnist() -> dict[str, Any]:
  """One Glow on all 60,000 Fashion-MNIST images zero-padded to 32x32x1, 3,000 steps of 64.

  The test set (10,000) every 2 epochs of 9,600 images, about every 2.5 minutes. Reaches
  (docs/results.md, 23.9 training minutes): test bits/dim 2.857 +- 0.007 (independent pixels:
  3.514); 3.09 after 10 minutes and 2.89 after 20.
  """
  return {
    **_GLOW_32,
    **_SHORT,
    "n_batch_train": 64,
    "data.n_train": 9600,
    "data.n_test": -1,
    "train_steps": 3000,
    "epochs_full_valid": 2,
    "epochs_full_sample": 2,
  }


def mnist_digits() -> dict[str, Any]:
  """One Glow on the 4,500 training digits at their own 28x28 (2 levels: 28 -> 14 -> 7).

  2,000 steps of 64. Reaches (docs/results.md, 16.9 training minutes): test bits/dim 1.884 +-
  0.017 (independent pixels: 1.768; Glow's published 1.05 took 60,000 digits and long GPU runs).
  """
  return {
    **_GLOW_32,
    **_SHORT,
    "data.crop_size": 28,
    "model.n_levels": 2,
    "n_batch_train": 64,
    "data.n_train": 6400,
    "data.n_test": -1,
    "train_steps": 2000,
  }


def smoke() -> dict[str, Any]:
  """A joint mnist run of a few seconds (the tests' shared run): 2 levels of 1 step, width 16.

  Batches of 16, 160 training and 64 test images per epoch, 3 epochs; it checks that every part
  of training runs, not what a model reaches.
  """
  return {
    "data.channels": 1,
    "data.n_train": 160,
    "data.n_test": 64,
    "data.dal": 0,
    "model.n_levels": 2,
    "model.depth": 1,
    "model.width": 16,
    "gradient_checkpointing": False,
    "optim.epochs_warmup": 1.0,
    "loss.joint_train": True,
    "n_batch_train": 16,
    "n_batch_test": 32,
    "n_batch_init": 64,
    "epochs": 3,
    "epochs_full_valid": 1,
    "epochs_full_sample": 1,
    "n_sample": 16,
    "log_steps": 5,
  }


# The problems' own presets (`--preset=auto`); `smoke` is only taken by name.
PRESETS: Mapping[str, Mapping[str, Any]] = {
  "mnist": mnist(),
  "fashion_edges2shoes": fashion_edges2shoes(),
  "fashion_mnist": fashion_mnist(),
  "mnist_digits": mnist_digits(),
}
NAMED: Mapping[str, Mapping[str, Any]] = {**PRESETS, "smoke": smoke()}
NAMES = ("auto", "none", *NAMED)


def preset(name: str, problem: str) -> dict[str, Any]:
  """The field values of `--preset=name` for `--problem=problem` ({} for none).

  "auto" is the problem's own preset (or none); a preset name takes that preset, e.g. to train
  a folder of MNIST-like pairs with the mnist settings.
  """
  if name not in NAMES:
    raise ValueError(f"--preset={name}: must be one of {', '.join(NAMES)}")
  if name == "none":
    return {}
  if name == "auto":
    return dict(PRESETS.get(problem, {}))
  return dict(NAMED[name])


def without_joint_training(values: Mapping[str, Any]) -> dict[str, Any]:
  """A preset's values for a run that keeps joint training off (`--nojoint_train`).

  The coupled prior is the joint model of a pair, so it needs joint training; such a run takes
  the code_all distance instead, logged and not trained (the no-joint runs of docs/results.md).
  A code loss type given by the run itself is not a preset value and is left alone.
  """
  values = dict(values)
  if values.get("loss.code_loss_type") == "coupled":
    values["loss.code_loss_type"] = "code_all"
  return values


def chosen(name: str, problem: str, given: Collection[str], joint_train: bool) -> dict[str, Any]:
  """The fields preset `name` sets for `problem` in a run that gave the fields in `given` itself.

  The one precedence rule: a field the run gave (a flag on the command line, a key the caller
  keeps) wins over the preset, the preset wins over the defaults. A run that keeps joint
  training off gets the preset without the coupled prior (`without_joint_training`).
  """
  values = preset(name, problem)
  if "loss.joint_train" in given and not joint_train:
    values = without_joint_training(values)
  return {path: value for path, value in values.items() if path not in given}


def apply(name: str, config: TrainConfig, keep: frozenset[str] = frozenset()) -> TrainConfig:
  """`config` with preset `name` (for its problem) over it, except the fields in `keep`."""
  values = chosen(name, config.data.problem, keep, config.loss.joint_train)
  return build(values, base=config)
