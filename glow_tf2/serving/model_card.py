"""The model card glow-export writes beside a SavedModel: `model_card.md` for people,
`model_card.json` for programs.

What a user of an exported model needs before trusting it (Mitchell et al. 2019, "Model Cards
for Model Reporting"): what it was trained on, how and for how long, how it did on held-out
data, and where its numbers stop meaning what they seem to. Everything comes from the run
folder's own files, never from memory of the run: the resolved configuration (config.json, or
for an older folder the first line of train_A.txt), the last record of each side's training
log (the images seen, the training seconds), the step of every training checkpoint and of each
exported model, and glow-eval's `eval.json` when the folder has one (copied whole; without it
the card says the model was not evaluated).

Both files are written into the export's temporary folder (`export.export_saved_model`'s
`extra_files`), so they appear with the SavedModel in one rename: an export without its card is
never seen complete.
"""

import dataclasses
import json
import os
import re
from typing import Any

from glow_tf2 import run_dir
from glow_tf2.config import TEMPERATURE
from glow_tf2.config import TrainConfig
from glow_tf2.config import values as config_values

FORMAT_VERSION = 1
JSON_NAME = "model_card.json"
MARKDOWN_NAME = "model_card.md"
EVAL_FILE = "eval.json"  # glow-eval's default report in a run folder


@dataclasses.dataclass(frozen=True)
class RunFacts:
  """What the card says about the run, read from its folder (`read_run_facts`).

  Attributes:
    logdir: the run folder (absolute).
    config: the run's resolved configuration.
    keys: its sides, ("A",) or ("A", "B").
    checkpoints: the checkpoint each exported side was restored from, A first.
    n_train: examples in the problem's training split, or None when the data is not where
      the run left it (an epoch is --n_train images drawn from them: `images_per_epoch`).
  """

  logdir: str
  config: TrainConfig
  keys: tuple[str, ...]
  checkpoints: tuple[str, ...]
  n_train: int | None = None


def checkpoint_step(prefix: str) -> int | None:
  """The step in a checkpoint prefix (`ckpt-30`, `model_A_best_loss-20`), None if it has none."""
  match = re.search(r"-(\d+)$", prefix)
  return int(match.group(1)) if match else None


def last_record(path: str) -> dict | None:
  """The last epoch record of a glow-train JSON log (its first line is the flags), or None."""
  if not os.path.isfile(path):
    return None
  last = None
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        break  # a torn last line
      if isinstance(record, dict) and "epoch" in record:
        last = record
  return last


def training_steps(logdir: str) -> int | None:
  """The step of the run's newest training checkpoint (`checkpoints/ckpt-<step>`), or None."""
  try:
    names = os.listdir(run_dir.checkpoint_dir(logdir))
  except FileNotFoundError:
    return None
  steps = [checkpoint_step(n[: -len(".index")]) for n in names if n.endswith(".index")]
  steps = [s for s in steps if s is not None]
  return max(steps) if steps else None


def _training(facts: RunFacts) -> dict[str, Any]:
  """Steps, epochs, images and seconds of training, from the logs and the checkpoints."""
  record = last_record(os.path.join(facts.logdir, f"train_{facts.keys[0]}.txt")) or {}
  return {
    "steps": training_steps(facts.logdir),
    "epochs": record.get("epoch"),
    "images_seen": record.get("n_images"),
    "train_seconds": record.get("train_time"),
    # The batch the run trained with: --n_batch_train shrunk for images above --anchor_size
    # (a 64x64 run with --n_batch_train=16 took 4 images a step).
    "global_batch": facts.config.global_batches(facts.config.model.image_shape[0])[0],
    "exported_checkpoints": [
      {"side": key, "path": path, "step": checkpoint_step(path)}
      for key, path in zip(facts.keys, facts.checkpoints)
    ],
  }


def _evaluation(logdir: str) -> dict | None:
  path = os.path.join(logdir, EVAL_FILE)
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


def limits(config: TrainConfig, paired: bool) -> list[str]:
  """What the model's numbers do and do not mean (the card's "Limits" section)."""
  h, w, c = config.model.image_shape
  out = [
    f"Resolution: the model takes and makes {h}x{w}x{c} uint8 images only; anything else must "
    "be resized or cropped first (the serving signatures refuse other shapes).",
    f"Bits per dimension are of dequantized data: each {config.model.n_bits_x}-bit pixel is "
    "spread uniformly over its quantization bin before the density is taken, so they bound the "
    "code length of the discrete images from above rather than give it; they compare only "
    "between models of the same resolution and bit depth.",
    "Temperature T scales the Gaussian latent draw (eps = T * n, n ~ N(0, I)): T = 0 gives each "
    "level's mean (one image per code), T = 1 the model's own distribution; lower T trades "
    f"variety for cleaner images. The SavedModel's sampling signatures take T per row; "
    f"glow-eval and the demo default to T = {TEMPERATURE:g}, glow-translate to T = 0.",
    "The weights exported are the training run's EMA (Polyak-averaged) weights.",
  ]
  if paired:
    out.append(
      "Translation A -> B decodes B's model at A's code (scaled by rho for a coupled pair): it "
      "was trained and measured only on pairs like the run's data; it has no meaning for images "
      "outside that domain."
    )
  out.append(
    "Measured only on the run's own test split; nothing here says how it does on other data."
  )
  return out


def build(
  facts: RunFacts, signatures, coupled: bool, evaluation: dict | None = None
) -> dict[str, Any]:
  """The card as a JSON-ready dict (`model_card.json`).

  Args:
    facts: the run (`read_run_facts`).
    signatures: the SavedModel's signature names.
    coupled: whether the export holds a coupled prior.
    evaluation: glow-eval's report; default: the run folder's eval.json, if any.
  """
  config = facts.config
  paired = len(facts.keys) == 2
  model = config.model
  if evaluation is None:
    evaluation = _evaluation(facts.logdir)
  return {
    "format_version": FORMAT_VERSION,
    "model": {
      "kind": "pix2pix-flow: two Glows, one per domain" if paired else "Glow",
      "domains": list(facts.keys),
      "coupled_prior": bool(coupled),
      "image_shape": list(model.image_shape),
      "n_bits_x": model.n_bits_x,
      "n_levels": model.n_levels,
      "depth": model.depth,
      "width": model.width,
      "precision": model.precision,
      "signatures": sorted(signatures),
    },
    "data": {
      "problem": config.data.problem,
      "image_shape": list(model.image_shape),
      "n_train": facts.n_train,
      "images_per_epoch": config.data.n_train,
      "paired": paired,
      "n_classes": model.n_classes,
    },
    "training": _training(facts),
    "evaluation": evaluation,
    "evaluation_file": os.path.join(facts.logdir, EVAL_FILE) if evaluation else None,
    "limits": limits(config, paired),
    "run": facts.logdir,
    "config": config_values.to_dict(config),
  }


def _number(value) -> str:
  if value is None:
    return "unknown"
  return f"{value:.4f}" if isinstance(value, float) else str(value)


def _eval_lines(evaluation: dict | None) -> list[str]:
  """The headline metrics of eval.json as list items."""
  if not evaluation:
    return ["Not evaluated: the run folder had no eval.json (run glow-eval, then export again)."]
  metrics = evaluation.get("metrics", {})
  lines = []
  for side, kinds in sorted(metrics.get("bits_per_dim", {}).items()):
    noise = kinds.get("noise", {})
    lines.append(
      f"Test bits/dim, domain {side.upper()}: {_number(noise.get('mean'))} "
      f"(standard error {_number(noise.get('stderr'))}; dequantization noise)"
    )
  for direction, baselines in sorted(metrics.get("translation", {}).items()):
    model = baselines.get("model", {})
    nearest = baselines.get("nearest_neighbour", {})
    lines.append(
      f"Translation {direction.upper().replace('2', ' -> ')}: PSNR {_number(model.get('psnr'))} "
      f"dB, SSIM {_number(model.get('ssim'))} (nearest-neighbour baseline PSNR "
      f"{_number(nearest.get('psnr'))} dB)"
    )
  if "n_test" in evaluation:
    lines.append(f"On {evaluation['n_test']} test examples; every figure is in model_card.json.")
  return lines or ["eval.json holds no bits/dim or translation metrics."]


def markdown(card: dict[str, Any]) -> str:
  """`model_card.md`: the card for people."""
  model, data, training = card["model"], card["data"], card["training"]
  shape = "x".join(str(v) for v in model["image_shape"])
  seconds = training["train_seconds"]
  time = "unknown" if seconds is None else f"{seconds} s ({seconds / 3600:.2f} h)"
  lines = [
    f"# Model card: {model['kind']}",
    "",
    f"Exported by glow-export from the run folder `{card['run']}`.",
    "",
    "## Data",
    "",
    f"- Problem: `{data['problem']}`" + (" (paired domains A and B)" if data["paired"] else ""),
    f"- Image shape: {shape}, {model['n_bits_x']} bits per channel",
    f"- Training examples: {_number(data['n_train'])} ({data['images_per_epoch']} images an epoch)",
    "",
    "## Model",
    "",
    f"- {model['n_levels']} levels of {model['depth']} steps, coupling networks of width "
    f"{model['width']}, {model['precision']}"
    + (", coupled prior between the codes" if model["coupled_prior"] else ""),
    f"- Signatures: {', '.join(model['signatures'])}",
    "",
    "## Training",
    "",
    f"- Steps: {_number(training['steps'])} of {training['global_batch']} images (images seen: "
    f"{_number(training['images_seen'])}, epochs: {_number(training['epochs'])})",
    f"- Training time: {time} (validation, grids and checkpoints not counted)",
  ]
  for checkpoint in training["exported_checkpoints"]:
    lines.append(
      f"- Domain {checkpoint['side']}: EMA weights of `{checkpoint['path']}` (step "
      f"{_number(checkpoint['step'])})"
    )
  lines += ["", "## Evaluation (glow-eval)", ""]
  lines += [f"- {line}" for line in _eval_lines(card["evaluation"])]
  lines += ["", "## Limits", ""]
  lines += [f"- {line}" for line in card["limits"]]
  lines += ["", "The run's whole configuration is in model_card.json (`config`).", ""]
  return "\n".join(lines)


def write(folder: str, card: dict[str, Any]) -> list[str]:
  """Writes `model_card.json` and `model_card.md` into `folder`; returns their paths.

  Call it on the export's temporary folder (`export_saved_model(..., extra_files=...)`), whose
  rename makes the files appear together with the model.
  """
  paths = [os.path.join(folder, JSON_NAME), os.path.join(folder, MARKDOWN_NAME)]
  with open(paths[0], "w") as f:
    json.dump(card, f, indent=1)
    f.write("\n")
  with open(paths[1], "w") as f:
    f.write(markdown(card))
  return paths
