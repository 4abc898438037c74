"""--inference: a trained run's test codes and translation grids, a job over its loaded models.

`glow-train --inference` trains nothing. `run` restores each side of the run's models
(`restore_sides`: --restore_path_X, else the side's best checkpoint, else the last training
one), then writes into the run folder, from the EMA weights:

  pair (two domains):  z_A.npy, z_B.npy   codes `[N_test, D]` of the test set (`write_pair`)
                       A2B.png, B2A.png   translation grids of the fixed test pairs
  one Glow:            z_A.npy, and Glow's own x.npy (the test images, uint8) and z.npy
                       (their codes, the same array as z_A.npy) (`write_single`)

Each file is written to a temporary name and renamed, so a killed job leaves no torn array.
"""

import os

import numpy as np

from glow_tf2 import image_grid
from glow_tf2 import run_dir
from glow_tf2.train import outputs


def restore_sides(sides, restore_paths: dict[str, str], logdir: str, strategy) -> list[str]:
  """Each side from its --restore_path_X (`restore_paths[key]`), else its best checkpoint in
  `logdir`, else the last training one. Returns the checkpoint prefixes restored from."""
  restored = []
  for side in sides:
    path = restore_paths.get(side.key)
    if not path:
      try:
        path = run_dir.find_checkpoint(logdir, side.key, "auto")
      except FileNotFoundError:
        raise FileNotFoundError(
          f"--inference: no checkpoint of model {side.key} in {logdir} (best_{side.key}/ "
          f"or checkpoints/); train first or pass --restore_path_{side.key}"
        ) from None
    restored.append(side.restore(path, strategy))
  return restored


def write_pair(pair, test, grid_batch: dict, logdir: str) -> dict[str, str]:
  """Writes z_A.npy, z_B.npy and A2B.png, B2A.png of a pair; returns {name: path}.

  Args:
    pair: the loaded `glow_tf2.ImagePair` (a run's EMA models and EMA prior).
    test: the test split, batches of uint8 "image_a", "image_b" (and "label").
    grid_batch: the fixed test pairs of the translation grids.
    logdir: the folder written to.
  """
  labeled = pair.config.n_classes > 0
  codes = {"a": [], "b": []}
  for batch in test:
    labels = batch["label"] if labeled else None
    for side, parts in codes.items():
      parts.append(pair.encode(batch[f"image_{side}"], side, labels).numpy())
  os.makedirs(logdir, exist_ok=True)
  written = {}
  for side, parts in codes.items():
    name = f"z_{side.upper()}"
    written[name] = save_npy(os.path.join(logdir, f"{name}.npy"), np.concatenate(parts, axis=0))
  labels = grid_batch["label"] if labeled else None
  for name, grid in outputs.translation_grids(pair, grid_batch, labels).items():
    path = os.path.join(logdir, f"{name}.png")
    image_grid.save_png(path, grid)
    written[name] = path
  return written


def write_single(encode, test, logdir: str, labeled: bool) -> dict[str, str]:
  """Writes Glow's --inference of one model: z_A.npy, x.npy and z.npy; returns {name: path}.

  Args:
    encode: the EMA model's encoder, (uint8 images, labels or None) -> eps `[N, D]`
      (`sides.Side.encode`).
    test: the test split, batches of uint8 "image_a" (and "label").
    logdir: the folder written to.
    labeled: whether the model is class-conditional (the batches' labels are passed).
  """
  codes, images = [], []
  for batch in test:
    codes.append(encode(batch["image_a"], batch["label"] if labeled else None).numpy())
    images.append(batch["image_a"].numpy())
  os.makedirs(logdir, exist_ok=True)
  codes = np.concatenate(codes, axis=0)
  written = {"z_A": save_npy(os.path.join(logdir, "z_A.npy"), codes)}
  for name, array in (("x", np.concatenate(images, axis=0)), ("z", codes)):
    written[name] = save_npy(os.path.join(logdir, f"{name}.npy"), array)
  return written


def run(trainer) -> dict[str, str]:
  """The job of `glow-train --inference`: the models of `trainer` (a `loop.Trainer` of the run,
  nothing trained) restored by `restore_sides`, then their files; returns {name: path}."""
  trainer.load_for_inference()
  test = trainer.test_dataset(trainer.batch_test)
  if trainer.ema_pair is not None:
    return write_pair(trainer.ema_pair, test, trainer.translation_pairs(), trainer.logdir)
  return write_single(trainer.sides[0].encode, test, trainer.logdir, trainer.ycond)


def save_npy(path: str, array: np.ndarray) -> str:
  """Writes `array` to `path` through a temporary file and a rename; returns `path`."""
  tmp = f"{path}.tmp{os.getpid()}.npy"
  np.save(tmp, array)
  os.replace(tmp, path)
  return path
