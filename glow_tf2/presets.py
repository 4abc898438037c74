"""Per-problem defaults of glow-train: the settings of the runs published in the README.

`glow-train --problem=mnist --logdir=runs/mnist` trains with the settings below for `mnist`;
any flag given on the command line (or in a --flagfile) wins over its preset, and
`--preset=none` gives the original train.py's defaults for every flag. Problems without an
entry here always start from the original's defaults.

Each preset finishes within an hour on 2 CPU cores (README, "Results"): the step budget is
`train_steps`, and `n_train` only sets how often the test set is evaluated and the grids drawn
(every `n_train` images); the data are shuffled and repeated, so every image is used.
"""

from collections.abc import Mapping
from typing import Any

# The architecture of the published runs: Glow's reference configuration (b) at 1 channel.
_GLOW_32 = dict(
  channels=1,
  n_levels=3,
  depth=8,
  width=128,
  flow_permutation="lu",
  flow_coupling="affine",
  learntop=True,
  gradient_checkpointing=False,
)

PRESETS: Mapping[str, Mapping[str, Any]] = {
  # pix2pix-flow on digit <-> inverted digit (4,500 training pairs). The code loss over every
  # dimension (code_all) at 10x: code_last aligns only the top level, and the translations
  # of the finer levels' mismatched codes are noise (README, "What was tried").
  "mnist": dict(
    _GLOW_32,
    joint_train=True,
    code_loss_type="code_all",
    code_loss_scale=10.0,
    n_batch_train=32,
    lr=1e-3,
    epochs_warmup=1.0,
    polyak_epochs=0.5,
    n_train=6400,
    n_test=-1,
    epochs=1000,
    train_steps=1200,
    epochs_full_valid=1,
    epochs_full_sample=1,
  ),
  # pix2pix-flow on Fashion-MNIST edges <-> shoes (18,000 training pairs). As mnist, plus the
  # translation loss: edges are nearly binary, and without it B -> A decodes to blotches.
  "fashion_edges2shoes": dict(
    _GLOW_32,
    joint_train=True,
    code_loss_type="code_all",
    code_loss_scale=10.0,
    translation_loss_scale=10.0,
    n_batch_train=32,
    lr=1e-3,
    epochs_warmup=1.0,
    polyak_epochs=0.5,
    n_train=6400,
    n_test=500,
    epochs=1000,
    train_steps=1000,
    epochs_full_valid=1,
    epochs_full_sample=1,
  ),
  # One Glow on all 60,000 Fashion-MNIST images, zero-padded to 32x32x1 (the setting);
  # the test set (10,000) every 2 epochs of 9,600 images, about every 2.5 minutes.
  "fashion_mnist": dict(
    _GLOW_32,
    n_batch_train=64,
    lr=1e-3,
    epochs_warmup=1.0,
    polyak_epochs=0.5,
    n_train=9600,
    n_test=-1,
    epochs=1000,
    train_steps=3000,
    epochs_full_valid=2,
    epochs_full_sample=2,
  ),
  # One Glow on the 4,500 training digits at their own 28x28 (2 levels: 28 -> 14 -> 7).
  "mnist_digits": dict(
    _GLOW_32,
    crop_size=28,
    n_levels=2,
    n_batch_train=64,
    lr=1e-3,
    epochs_warmup=1.0,
    polyak_epochs=0.5,
    n_train=6400,
    n_test=-1,
    epochs=1000,
    train_steps=2000,
    epochs_full_valid=1,
    epochs_full_sample=1,
  ),
}

NAMES = ("auto", "none", *PRESETS)


def preset(name: str, problem: str) -> dict[str, Any]:
  """The flag values of `--preset=name` for `--problem=problem` ({} for none).

  "auto" is the problem's own preset (or none); a problem name takes that problem's preset,
  e.g. to train a folder of MNIST-like pairs with the mnist settings.
  """
  if name not in NAMES:
    raise ValueError(f"--preset={name}: must be one of {', '.join(NAMES)}")
  if name == "none":
    return {}
  return dict(PRESETS.get(problem if name == "auto" else name, {}))
