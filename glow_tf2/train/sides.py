"""One image domain of a run: its model, EMA model, optimizer and best-test-loss record.

A joint run has two sides (A and B), a plain Glow run one: always instances of `Side`, made by
`make_sides`, never two copies of code. The EMA (Polyak-averaged) model is what validation,
samples, inference and export use.

A coupled pair (`--code_loss_type=coupled`) also has a `Coupling`: the correlation rho of the
two codes (`flows.coupled_prior.CoupledPrior`), its EMA copy and its optimizer. It belongs to
the pair, not to a side, but each side's best-model file carries it, so that file alone
translates.

Checkpoint layout (what `glow_tf2.run_dir` reads back without building a side):
  training checkpoint  step, model_<x>/{model, ema}, optimizer_<x>, best_loss_<x>
                       coupled run: also coupled/{prior, ema}, optimizer_coupled
  best model file      model, ema (this side only: best_<X>/model_<X>_best_loss-<step>)
                       coupled run: also coupled/{prior, ema}
"""

import math
import os

from absl import logging
import tensorflow as tf

from glow_tf2 import denoise
from glow_tf2 import losses as losses_lib
from glow_tf2.config import COUPLED_FLOOR
from glow_tf2.config import GlowConfig
from glow_tf2.config import TrainConfig
from glow_tf2.flows.coupled_prior import CoupledPrior
from glow_tf2.flows.glow import Glow
from glow_tf2.train import model as model_lib
from glow_tf2.train import optim


class Coupling:
  """The coupled prior of a pair, trained like a side: variable, EMA copy, optimizer.

  rho has no weight decay (it is not a weight of a network, and decay would pull it to 0, the
  point where the codes decouple). Create it under `strategy.scope()`.

  Args:
    glow_config: the architecture both sides share (the layout of rho).
    config: the run (`loss.coupled_rho_init`, `loss.coupled_per_dimension`, the optimizer).
    learning_rate: a Keras learning-rate schedule (the sides').
    beta2: second-moment decay of the optimizer.
    ema_decay: decay of the EMA (`OptimConfig.ema_decay`).
  """

  def __init__(
    self,
    glow_config: GlowConfig,
    config: TrainConfig,
    learning_rate,
    beta2: float,
    ema_decay: float,
  ):
    loss = config.loss

    def prior(name):
      return CoupledPrior(
        glow_config, loss.coupled_rho_init, loss.coupled_per_dimension, COUPLED_FLOOR, name=name
      )

    self.prior = prior("coupled_prior")
    self.ema = prior("coupled_prior_ema")
    self.optimizer = optim.make_optimizer(
      config.optim.optimizer, learning_rate, config.optim.beta1, beta2, label="optimizer_coupled"
    )
    self.optimizer.build(self.prior.trainable_variables)
    self.polyak = optim.PolyakAverage(self.prior, self.ema, ema_decay)
    self.checkpoint = tf.train.Checkpoint(prior=self.prior, ema=self.ema)


class Side:
  """One image domain. Create it under `strategy.scope()`.

  Args:
    key: "A" or "B".
    glow_config: the architecture.
    config: the run's configuration.
    seed: seeds the initial weights; model and EMA model get the same ones.
    learning_rate: a Keras learning-rate schedule.
    beta2: second-moment decay of the optimizer.
    ema_decay: decay of the EMA (`OptimConfig.ema_decay`).
    coupling: the pair's `Coupling` (a coupled run), saved with this side's model files.
  """

  def __init__(
    self,
    key: str,
    glow_config: GlowConfig,
    config: TrainConfig,
    seed: int,
    learning_rate,
    beta2: float,
    ema_decay: float,
    coupling: Coupling | None = None,
  ):
    self.key = key
    self.lower = key.lower()
    self.image_key = f"image_{self.lower}"
    class_head = config.loss.weight_y > 0
    glow = Glow(
      glow_config,
      seed=seed,
      gradient_checkpointing=config.gradient_checkpointing,
      branches=config.branches,
      name=f"glow_{self.lower}",
    )
    self.model = model_lib.FlowModel(
      glow, class_head=class_head, name=f"model_{self.lower}", seed=seed
    )
    ema_glow = Glow(glow_config, seed=seed, branches=config.branches, name=f"glow_{self.lower}_ema")
    self.ema = model_lib.FlowModel(
      ema_glow, class_head=class_head, name=f"ema_{self.lower}", seed=seed
    )
    self.optimizer = optim.make_optimizer(
      config.optim.optimizer,
      learning_rate,
      config.optim.beta1,
      beta2,
      label=f"optimizer_{self.lower}",
    )
    self.optimizer.build(self.model.trainable_variables)
    self.polyak = optim.PolyakAverage(self.model, self.ema, ema_decay)
    self.best_loss = tf.Variable(math.inf, trainable=False, name=f"best_loss_{self.lower}")
    # What a per-model file (best checkpoint, --restore_path_X) holds: this side only.
    self.coupling = coupling
    parts = {"coupled": coupling.checkpoint} if coupling else {}
    self.checkpoint = tf.train.Checkpoint(model=self.model, ema=self.ema, **parts)
    # Create its save counter now. Made lazily at the first best-model save, it would be restored
    # then from the training checkpoint the run resumed from, which may be rotated away by then.
    _ = self.checkpoint.save_counter
    self.encode = tf.function(self._encode, reduce_retracing=True, autograph=False)
    self.decode = tf.function(self._decode, reduce_retracing=True, autograph=False)

  def _encode(self, images, labels=None):
    """EMA model: uint8 images -> eps `[N, D]`, at the centre of each quantisation bin."""
    x = losses_lib.preprocess(images, self.ema.config.n_bits_x, noise=False)
    return self.ema.glow.encode(x, labels=labels)[0]

  def _decode(self, eps, labels=None):
    """EMA model: eps `[N, D]` -> uint8 images (denoised, for a noise-augmented model)."""
    x = denoise.decode(self.ema.glow, eps, labels=labels)
    return losses_lib.postprocess(x, self.ema.config.n_bits_x)

  def restore(self, path: str, strategy: tf.distribute.Strategy) -> str:
    """Restores model and EMA model from a per-model file or a training checkpoint.

    Args:
      path: a checkpoint prefix or a folder holding checkpoints (the newest is taken).
      strategy: the strategy the side was made under.

    Returns:
      the checkpoint prefix restored from.
    """
    prefix = tf.train.latest_checkpoint(path) if os.path.isdir(path) else path
    if not prefix:
      raise FileNotFoundError(f"--restore_path_{self.key}={path}: no checkpoint there")
    try:
      names = [name for name, _ in tf.train.list_variables(prefix)]
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
      raise FileNotFoundError(
        f"--restore_path_{self.key}={path}: not a readable checkpoint ({e})"
      ) from e
    # A plain model's file warm-starts a coupled side too: rho then keeps its initial value.
    if self.coupling and any("coupled/prior/" in n for n in names):
      files = self.checkpoint
    else:
      files = tf.train.Checkpoint(model=self.model, ema=self.ema)
    if any(n.startswith("model/") for n in names):
      root = files
    else:
      own = f"model_{self.lower}/"
      if not any(n.startswith(own) for n in names):
        raise ValueError(
          f"--restore_path_{self.key}={path}: holds neither a single model nor "
          f"model {self.key} of a training checkpoint"
        )
      root = tf.train.Checkpoint(**{f"model_{self.lower}": files})
    with strategy.scope():
      root.restore(prefix).expect_partial().assert_existing_objects_matched()
    logging.info("model %s restored from %s", self.key, prefix)
    return prefix


def make_sides(
  keys,
  glow_config: GlowConfig,
  config: TrainConfig,
  learning_rate,
  beta2: float,
  ema_decay: float,
  coupling: Coupling | None = None,
) -> list[Side]:
  """One `Side` per key ("A", then "B"); side i's weights are seeded with 2 * seed + i + 1."""
  return [
    Side(
      key, glow_config, config, config.seed * 2 + i + 1, learning_rate, beta2, ema_decay, coupling
    )
    for i, key in enumerate(keys)
  ]
