"""A whole training run (`TrainConfig`, its parts in `parts`) and glow-train's flags.

Their checks raise `ConfigError` with a message that starts with the flag at fault. `FLAG_FIELDS`
ties each glow-train flag to its field.
"""

import dataclasses
import math
from typing import Any

from glow_tf2.config.fields import ConfigError
from glow_tf2.config.fields import FlagSpec
from glow_tf2.config.fields import finite
from glow_tf2.config.fields import flag_specs
from glow_tf2.config.fields import require
from glow_tf2.config.fields import setting
from glow_tf2.config.model import TRAIN_MODEL
from glow_tf2.config.model import GlowConfig
from glow_tf2.config.parts import MAX_COUNT
from glow_tf2.config.parts import DataConfig
from glow_tf2.config.parts import LossConfig
from glow_tf2.config.parts import OptimConfig

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
# Sample grids are drawn at these temperatures (Glow's own choice).
TEMPERATURES = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


# glow-train's --seed: stateless seeds, tf.data's and NumPy's all take it (and seed * 1009 + 7000
# stays far inside int64).
MAX_SEED = 2**31


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """A whole run. Batch sizes are global (summed over every replica of every worker).

  `data`, `model`, `optim` and `loss` are the parts; `model` is the Glow of each side (both
  alike). Before `resolve`, its image_shape and n_classes are placeholders (the data decide them).
  With images larger than `anchor_size`, the batch sizes are scaled by (anchor_size /
  image_size)**2 as in the original.
  """

  data: DataConfig = DataConfig()
  model: GlowConfig = TRAIN_MODEL
  optim: OptimConfig = OptimConfig()
  loss: LossConfig = LossConfig()
  ycond: bool = setting(
    False, "Class-conditional models (problems with labels: model.n_classes is their count)."
  )
  gradient_checkpointing: bool = setting(
    True, "Recompute each step of flow in the backward pass (tf.recompute_grad): less memory."
  )
  logdir: str = setting("./logs", "Where every output goes; rerunning resumes from here.")
  seed: int = setting(0, "Seed of weights, data order and noise.")
  n_batch_train: int = setting(64, "Global training batch (summed over replicas).")
  n_batch_test: int = setting(50, "Global test batch.")
  n_batch_init: int = setting(256, "Images for the data-dependent initialisation.")
  anchor_size: int = setting(
    32, "Batches shrink by (anchor_size / image_size)**2 for larger images."
  )
  epochs: int = setting(1000000, "Stop after this many epochs.")
  train_steps: int = setting(0, "Stop after this many steps in total (0: only --epochs).")
  epochs_full_valid: int = setting(5, "Validate every so many epochs.")
  epochs_full_sample: int = setting(5, "Write sample grids every so many epochs.")
  n_sample: int = setting(64, "Images per sample grid.")
  inference: bool = setting(
    False, "Write z_A.npy, z_B.npy, A2B.png, B2A.png from the best weights instead of training."
  )
  restore_path_a: str = setting(
    "",
    "Checkpoint (a model file or a training checkpoint) to restore model A's weights from (only "
    "A's).",
    flag="restore_path_A",
  )
  restore_path_b: str = setting(
    "",
    "Checkpoint (a model file or a training checkpoint) to restore model B's weights from (only "
    "B's).",
    flag="restore_path_B",
  )
  strategy: str = setting("auto", "auto | one_device | mirrored | multi_worker (reads TF_CONFIG).")
  num_cpu_devices: int = setting(
    0,
    "Split the CPU into this many logical devices (mirrored training without GPUs; 0: leave it "
    "alone).",
  )
  jit_compile: bool = setting(False, "XLA-compile the forward and backward pass.")
  intra_op_threads: int = setting(
    0,
    "Threads per op (0 = TensorFlow's default, every core). On a CPU, 1 with "
    "--inter_op_threads=<cores> is faster (docs/train.md).",
  )
  inter_op_threads: int = setting(0, "Ops run at once (0 = TensorFlow's default).")
  pick_threads: bool = setting(
    True,
    "With both thread flags 0: time the step under a few thread settings on this machine and "
    "train with the fastest (CPU runs of 1,000+ steps; cached per machine and model, kept across "
    "resumes; docs/train.md).",
  )
  branches: int = setting(
    1,
    "Run each replica's batch as this many independent sub-batches (Glow(branches=...)), for "
    "more ops to run at once (docs/train.md).",
  )
  verbose: bool = setting(False, "Log more (TensorFlow's own messages too).")
  log_steps: int = setting(100, "Progress line and train summaries every so many steps.")
  keep_checkpoints: int = setting(3, "Training checkpoints to keep.")
  checkpoint_steps: int = setting(
    0, "Also save a training checkpoint every so many steps (0 = off)."
  )
  checkpoint_secs: float = setting(
    300.0,
    "Also save one when this many seconds passed since the last (0 = off): with the saves at "
    "epoch ends, what a kill can lose (plus one step).",
  )
  warm_start_steps: int = setting(
    0,
    "Train each model alone (its own bits/dim, as --nojoint_train) for this many steps, whole "
    "epochs, before the joint objective takes over: the marginals start the joint phase where "
    "single Glows are. 0 = joint from the first step.",
  )
  pick_precision: bool = setting(
    True,
    "With --precision=float32 on a CPU, time the run's step in float32 and mixed_bfloat16 at "
    "start (runs of 1,000+ steps, cached per machine and model, kept across resumes) and train "
    "in bfloat16 only where it is at least 5% faster (glow_tf2.train.precision_pick).",
  )
  judge_samples: int = setting(
    0,
    "At every validation, judge this many samples per side and temperature (0.5, 0.7, 1) and "
    "the T = 0 translations of as many test pairs by a classifier of each domain (problems with "
    "labels; trained on first use, cached beside the data): TensorBoard's eval/sample_* and "
    "eval/translation_labels_*. 0 = off.",
  )

  def __post_init__(self):
    require(bool(self.logdir), "logdir", self.logdir, "must not be empty")
    require(self.n_batch_train >= 1, "n_batch_train", self.n_batch_train, "must be >= 1")
    require(self.n_batch_test >= 1, "n_batch_test", self.n_batch_test, "must be >= 1")
    require(
      self.n_batch_init >= 2,
      "n_batch_init",
      self.n_batch_init,
      "must be >= 2 (ActNorm's init takes a standard deviation)",
    )
    require(self.anchor_size >= 1, "anchor_size", self.anchor_size, "must be >= 1")
    require(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
    require(self.train_steps >= 0, "train_steps", self.train_steps, "must be >= 0 (0 = no limit)")
    require(
      self.epochs_full_valid >= 1, "epochs_full_valid", self.epochs_full_valid, "must be >= 1"
    )
    require(
      self.epochs_full_sample >= 1, "epochs_full_sample", self.epochs_full_sample, "must be >= 1"
    )
    require(self.n_sample >= 1, "n_sample", self.n_sample, "must be >= 1")
    require(
      self.warm_start_steps == 0
      or (0 < self.warm_start_steps < MAX_COUNT and self.loss.joint_train),
      "warm_start_steps",
      self.warm_start_steps,
      "must be >= 0, and needs --joint_train (a run without it is warm all along)",
    )
    require(
      self.judge_samples == 0 or 4 <= self.judge_samples < MAX_COUNT,
      "judge_samples",
      self.judge_samples,
      "must be 0 (off) or >= 4 (a covariance)",
    )
    require(
      self.strategy in STRATEGIES,
      "strategy",
      self.strategy,
      f"must be one of {', '.join(STRATEGIES)}",
    )
    require(
      0 <= self.num_cpu_devices <= 256,
      "num_cpu_devices",
      self.num_cpu_devices,
      "must be in [0, 256]",
    )
    require(
      not (self.strategy == "one_device" and self.num_cpu_devices > 1),
      "num_cpu_devices",
      self.num_cpu_devices,
      "splits the CPU for --strategy=mirrored, not one_device",
    )
    require(
      self.intra_op_threads >= 0,
      "intra_op_threads",
      self.intra_op_threads,
      "must be >= 0 (0 = TensorFlow's default)",
    )
    require(
      self.inter_op_threads >= 0,
      "inter_op_threads",
      self.inter_op_threads,
      "must be >= 0 (0 = TensorFlow's default)",
    )
    require(self.branches >= 1, "branches", self.branches, "must be >= 1")
    require(self.log_steps >= 1, "log_steps", self.log_steps, "must be >= 1")
    require(self.keep_checkpoints >= 1, "keep_checkpoints", self.keep_checkpoints, "must be >= 1")
    require(
      self.checkpoint_steps >= 0,
      "checkpoint_steps",
      self.checkpoint_steps,
      "must be >= 0 (0 = only by time and at epoch ends)",
    )
    require(
      finite(self.checkpoint_secs) and self.checkpoint_secs >= 0,
      "checkpoint_secs",
      self.checkpoint_secs,
      "must be finite and >= 0 (0 = only by steps and at epoch ends)",
    )
    require(
      0 <= self.seed < MAX_SEED, "seed", self.seed, f"must be in [0, 2**31) = [0, {MAX_SEED})"
    )
    for flag, value in (
      ("n_batch_train", self.n_batch_train),
      ("n_batch_test", self.n_batch_test),
      ("n_batch_init", self.n_batch_init),
      ("train_steps", self.train_steps),
      ("epochs", self.epochs),
      ("checkpoint_steps", self.checkpoint_steps),
      ("n_sample", self.n_sample),
    ):
      require(value < MAX_COUNT, flag, value, "must be < 2**62 (step counts are int64)")
    if self.jit_compile and self.model.permutation == "conv":
      raise ConfigError(
        "--jit_compile: XLA has no log-determinant kernel for "
        "--flow_permutation=conv; use lu (the same 1x1 conv, LU-parameterised), "
        "reverse or shuffle"
      )
    if self.loss.weight_y > 0:
      require(
        self.ycond,
        "weight_y",
        self.loss.weight_y,
        "needs --ycond (the class-prediction head is only there in a class-conditional model)",
      )

  # ---------------------------------------------------------------------------------------------
  # Checks once the data set and the devices are known.

  def resolve(self, problem) -> "TrainConfig":
    """The run on `problem`: `model` gets its image shape and classes (checked against it)."""
    if self.loss.joint_train and not problem.paired:
      raise ConfigError(f"--joint_train: problem {problem.name!r} is not paired (no B images)")
    if self.ycond and not problem.n_classes:
      raise ConfigError(f"--ycond: problem {problem.name!r} has no class labels")
    if self.data.flip_color and not problem.paired:
      raise ConfigError(f"--flip_color: problem {problem.name!r} has no domain B to invert")
    try:
      model = dataclasses.replace(
        self.model,
        image_shape=tuple(problem.image_shape),
        n_classes=int(problem.n_classes or 0) if self.ycond else 0,
      )
    except ValueError as e:
      raise ConfigError(f"--image_size/--n_levels: {e}") from e
    return dataclasses.replace(self, model=model)

  def check_problem(self, problem) -> GlowConfig:
    """Checks the run against the problem's data; returns the model's GlowConfig."""
    return self.resolve(problem).model

  def batch_scale(self, image_size: int) -> float:
    """The original's anchoring: smaller batches for images larger than anchor_size."""
    return min(1.0, (self.anchor_size / image_size) ** 2)

  def global_batches(self, image_size: int) -> tuple[int, int, int]:
    """(train, test, init) global batch sizes after anchoring."""
    scale = self.batch_scale(image_size)
    return tuple(
      max(1, int(b * scale)) for b in (self.n_batch_train, self.n_batch_test, self.n_batch_init)
    )

  def check_replicas(self, n_replicas: int, image_size: int) -> None:
    """The training batch must split evenly; evaluation pads its batches to any replica count."""
    train, _, _ = self.global_batches(image_size)
    if train % n_replicas:
      raise ConfigError(
        f"--n_batch_train={self.n_batch_train}: the global batch {train} must be "
        f"divisible by the {n_replicas} replicas"
      )

  def steps_per_epoch(self, image_size: int) -> int:
    return max(1, math.ceil(self.data.n_train / self.global_batches(image_size)[0]))

  def alone(self) -> "TrainConfig":
    """This run with each model trained alone: no joint training, no translation loss (the
    code_all distance of the two codes is logged, as in --nojoint_train runs), no warm start."""
    loss = dataclasses.replace(
      self.loss,
      joint_train=False,
      code_loss_type="code_all" if self.loss.coupled else self.loss.code_loss_type,
      translation_loss_scale=0.0,
    )
    return dataclasses.replace(self, loss=loss, warm_start_steps=0)

  def hyperparameters(self) -> dict[str, Any]:
    """glow-train's flags and their values, in flag order: the first line of the JSON logs.

    Keyed as the original's (`flow_permutation`, `restore_path_A`, ...); choices as words.
    """
    return {flag: get_field(self, path) for flag, path in FLAG_FIELDS.items()}


# The first line of the JSON logs lists the flags in this order: the original train.py's, then this
# port's. Old run folders and their readers depend on it, so it is frozen: a new field's flag
# follows these in field order without a line here.
FLAG_ORDER = """
  verbose restore_path_A restore_path_B inference logdir problem category data_dir tfds_data_dir
  channels dal flip_color n_train n_test n_batch_train n_batch_test n_batch_init optimizer lr beta1
  polyak_epochs weight_decay epochs train_steps epochs_warmup epochs_full_valid
  gradient_checkpointing image_size crop_size anchor_size width depth weight_y n_bits_x n_levels
  n_sample epochs_full_sample learntop ycond seed flow_permutation flow_coupling precision
  joint_train code_loss_type code_loss_fn code_loss_scale mle_loss_scale translation_loss_scale
  coupled_rho_init coupled_per_dimension strategy num_cpu_devices jit_compile intra_op_threads
  inter_op_threads pick_threads branches log_steps keep_checkpoints checkpoint_steps checkpoint_secs
""".split()
# glow-train's flags, one per field of a TrainConfig, in FLAG_ORDER.
TRAIN_FLAGS: tuple[FlagSpec, ...] = flag_specs(TrainConfig, FLAG_ORDER)
# Each flag's field (a dotted path from TrainConfig): what ties flags to fields for the CLI, the
# presets, the JSON logs and the reader of old run folders.
FLAG_FIELDS: dict[str, str] = {spec.flag: spec.path for spec in TRAIN_FLAGS}
FIELD_FLAGS: dict[str, str] = {path: flag for flag, path in FLAG_FIELDS.items()}


def get_field(config: TrainConfig, path: str):
  """The value at a dotted path ("model.depth") of a TrainConfig."""
  value = config
  for name in path.split("."):
    value = getattr(value, name)
  return value
