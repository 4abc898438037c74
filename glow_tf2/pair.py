"""A pair of image models: two Glows (domains A and B) and the prior between their codes.

pix2pix-flow trains two Glows, one per image domain, on paired images. `ImagePair` is that pair
as one object: the two flows and the joint density of their standardized codes,

  eps_A ~ N(0, I),    eps_B | eps_A ~ N(rho * eps_A, diag(1 - rho^2))   (and symmetrically),

the coupled prior (`flows.coupled_prior.CoupledPrior`, docs/coupled_prior.md) of a pair trained
as one density, or rho = 1 (eps_B = eps_A) for a pair trained with the code loss or without a
joint term. Images go in and come out as uint8 `[N, H, W, C]`; TFP's direction convention holds:
`decode` maps codes to images, `encode` images to codes.

Translation A -> B at temperature T, written here once (the trainer's grids, glow-eval, the
SavedModel and the tools all come through `ImagePair.conditional_code`):

  x_B = decode_B(rho * eps_A + T sqrt(1 - rho^2) n),   eps_A = encode_A(x_A),   n ~ N(0, I).

The random numbers are the SavedModel's (`serving/export.py`): an int `seed` draws n from the
stateless seed [seed, salt], one salt per use (the `SALT_*` constants), so a pair and its export
translate and sample alike for one seed.

`load_pair(path)` gives the pair of a glow-train run folder (its EMA weights) or of an exported
SavedModel (`SavedPair`, the same methods over the SavedModel's signatures).
"""

import dataclasses
import math
import os

import tensorflow as tf

from glow_tf2 import denoise
from glow_tf2 import joint_losses
from glow_tf2 import losses
from glow_tf2 import run_dir
from glow_tf2.flows.coupled_prior import CoupledPrior
from glow_tf2.flows.glow import Glow
from glow_tf2.input import problems

# The second word of each stateless seed [seed, salt]: one stream per use of the noise, so that
# no two uses of one request's seed share a draw (and sample_pairs' A side is sample_a's).
SALT_SAMPLE = 0
SALT_DEQUANTIZE_A = 1
SALT_A2B = 2
SALT_B2A = 3
SALT_PAIR_B = 4
SALT_DEQUANTIZE_B = 5

SIDES = ("a", "b")
# direction -> (source side, target side, salt of its noise)
DIRECTIONS = {"a2b": ("a", "b", SALT_A2B), "b2a": ("b", "a", SALT_B2A)}

NO_PRIOR = (
  "not defined for a pair without a coupled prior (rho = 1: eps_B = eps_A, a point mass given "
  "the other side); train with --code_loss_type=coupled"
)


def _side(side: str) -> str:
  if not isinstance(side, str) or side.lower() not in SIDES:
    raise ValueError(f"side must be 'a' or 'b', got {side!r}")
  return side.lower()


def _direction(direction: str) -> tuple[str, str, int]:
  if not isinstance(direction, str) or direction.lower() not in DIRECTIONS:
    raise ValueError(f"direction must be 'a2b' or 'b2a', got {direction!r}")
  return DIRECTIONS[direction.lower()]


def _temperature(temperature) -> float:
  temperature = float(temperature)
  if not (math.isfinite(temperature) and temperature >= 0):
    raise ValueError(f"temperature must be finite and >= 0, got {temperature!r}")
  return temperature


def _images(images, what: str) -> tf.Tensor:
  images = tf.convert_to_tensor(images)
  if images.dtype != tf.uint8:
    raise ValueError(f"{what}: images must be uint8 [N, H, W, C], got {images.dtype.name}")
  return images


def _labels(labels, n_classes: int, what: str) -> tf.Tensor | None:
  if labels is not None and not n_classes:
    raise ValueError(f"{what}: labels given, but the pair is not class-conditional")
  if labels is None and n_classes:
    raise ValueError(f"{what}: a class-conditional pair needs the images' labels")
  return None if labels is None else tf.cast(labels, tf.int32)


def _seed(seed: int, salt: int) -> tf.Tensor:
  return tf.constant([int(seed), salt], tf.int32)


def check_pair(glow_a: Glow, glow_b: Glow, prior: CoupledPrior | None) -> None:
  """Raises ValueError unless the two models (and the prior) can form a translating pair."""
  for field in ("image_shape", "n_bits_x", "n_classes"):
    value_a, value_b = getattr(glow_a.config, field), getattr(glow_b.config, field)
    if value_a != value_b:
      raise ValueError(
        f"ImagePair: models A and B differ in {field} ({value_a} vs {value_b}); a translating "
        "pair needs the same"
      )
  if glow_a.config.data_dim != glow_b.config.data_dim:
    raise ValueError(
      f"ImagePair: models of different data dims ({glow_a.config.data_dim} vs "
      f"{glow_b.config.data_dim})"
    )
  if prior is not None and prior.config.eps_shapes != glow_a.config.eps_shapes:
    raise ValueError(
      f"ImagePair: the coupled prior's eps layout {prior.config.eps_shapes} is not the models' "
      f"{glow_a.config.eps_shapes}"
    )


class _PairDensities:
  """The pair's densities, built on a subclass's `_coupled_bits` (`ImagePair`, `SavedPair`)."""

  def _coupled_bits(self, images_a, images_b, labels, noise, seed, what):
    raise NotImplementedError

  def coupled_bits(
    self, images_a, images_b, labels=None, noise: bool = False, seed: int = 0
  ) -> joint_losses.CoupledBits:
    """Every bits/dim `[N]` of image pairs under the coupled prior (`joint_losses.coupled_bits`:
    joint, b_given_a, a_given_b, a, b). Noise as `bits_per_dim`, B's from [seed,
    SALT_DEQUANTIZE_B] (the SavedModel's `coupled_bits_per_dim` and `coupled_bits_per_dim_noise`).

    Raises:
      ValueError: a pair without a coupled prior.
    """
    return self._coupled_bits(images_a, images_b, labels, noise, seed, "coupled_bits")

  def joint_bits_per_dim(self, images_a, images_b, labels=None, noise=False, seed=0):
    """`[N]`: bits per dimension of the pair (over its 2D dims) under the coupled prior.

    Raises:
      ValueError: a pair without a coupled prior (rho = 1 has no density of the pair).
    """
    return self._coupled_bits(images_a, images_b, labels, noise, seed, "joint_bits_per_dim").joint

  def conditional_bits_per_dim(
    self, images_a, images_b, direction: str = "a2b", labels=None, noise=False, seed=0
  ):
    """`[N]`: bits per dimension of the target side given the source ("a2b": B given A).

    Raises:
      ValueError: a pair without a coupled prior, or an unknown direction.
    """
    source, _, _ = _direction(direction)
    bits = self._coupled_bits(images_a, images_b, labels, noise, seed, "conditional_bits_per_dim")
    return bits.b_given_a if source == "a" else bits.a_given_b


class ImagePair(_PairDensities):
  """Two Glows of paired domains and the correlation rho of their codes.

  Example:
    pair = glow_tf2.load_pair("runs/quickstart")          # or ImagePair(glow_a, glow_b, prior)
    x_b = pair.translate(images_a)                         # uint8, the conditional mean (T = 0)
    draws = [pair.translate(images_a, temperature=0.7, seed=s) for s in range(4)]
    samples_a, samples_b = pair.sample_pairs(16, temperature=0.7, seed=0)
    bits = pair.conditional_bits_per_dim(images_a, images_b)   # B given A (a coupled pair)

  Args:
    glow_a: domain A's model.
    glow_b: domain B's model; the same image shape, n_bits_x, classes and eps layout as A's.
    prior: the `CoupledPrior` of a pair trained as one density; None: rho = 1 (eps_B = eps_A),
      the pair of a code-loss or independent run.

  Raises:
    ValueError: models of different data, or a prior of another eps layout.
  """

  def __init__(self, glow_a: Glow, glow_b: Glow, prior: CoupledPrior | None = None):
    check_pair(glow_a, glow_b, prior)
    self.glow_a, self.glow_b, self.prior = glow_a, glow_b, prior
    self.config = glow_a.config
    self._glows = {"a": glow_a, "b": glow_b}
    # Traced once per side (and batch shape class), as the trainer's own encode and decode are.
    self._encoders = {s: self._compiled(self._encode_fn(g)) for s, g in self._glows.items()}
    self._decoders = {s: self._compiled(self._decode_fn(g)) for s, g in self._glows.items()}

  @staticmethod
  def _compiled(fn):
    return tf.function(fn, reduce_retracing=True, autograph=False)

  def _encode_fn(self, glow):
    def encode(images, labels=None):
      x = losses.preprocess(images, glow.config.n_bits_x, noise=False)
      return glow.encode(x, labels=labels)[0]

    return encode

  def _decode_fn(self, glow):
    def decode(eps, labels=None):
      return losses.postprocess(denoise.decode(glow, eps, labels=labels), glow.config.n_bits_x)

    return decode

  @property
  def coupled(self) -> bool:
    """Whether the codes are coupled by a learned rho (else rho = 1)."""
    return self.prior is not None

  def glow(self, side: str) -> Glow:
    """The Glow of side "a" or "b"."""
    return self._glows[_side(side)]

  def rho(self) -> tf.Tensor:
    """float32 `[D]`: the correlation of each dimension pair of the codes (ones without a prior)."""
    if self.prior is None:
      return tf.ones([self.config.data_dim], tf.float32)
    return self.prior.rho()

  # ---------------------------------------------------------------------------------------------
  # Codes and images.

  def encode(self, images, side: str, labels=None) -> tf.Tensor:
    """eps float32 `[N, D]` of uint8 images `[N, H, W, C]` of `side`, at the centre of each bin
    (Glow's layout: every level's latent, finest first)."""
    side = _side(side)
    images = _images(images, f"encode_{side}")
    return self._encoders[side](images, _labels(labels, self.config.n_classes, f"encode_{side}"))

  def decode(self, eps, side: str, labels=None) -> tf.Tensor:
    """uint8 images `[N, H, W, C]` of codes eps `[N, D]` by `side`'s flow (one Tweedie step after
    it for a noise-augmented model, `denoise.decode`)."""
    side = _side(side)
    eps = tf.convert_to_tensor(eps, tf.float32)
    return self._decoders[side](eps, _labels(labels, self.config.n_classes, f"decode_{side}"))

  def conditional_code(self, given, temperature=0.0, seed=None) -> tf.Tensor:
    """`[N, D]`: rho * given + T sqrt(1 - rho^2) n, the code of one side given the other's.

    The one place of the translation's code. Without a prior (rho = 1) it is `given` itself at
    every temperature.

    Args:
      given: the other side's code `[N, D]`.
      temperature: T >= 0, a float or a tensor broadcasting against `[N, D]` (the SavedModel
        passes one T per row, `[N, 1]`); T = 0 is the conditional mean code rho * given.
      seed: the stateless seed `[2]` of n; needed when T may be > 0.
    """
    given = tf.convert_to_tensor(given, tf.float32)
    if self.prior is None:
      return given
    return self.prior.conditional_sample(given, temperature, seed)

  def sample_codes(self, n, temperature, seed) -> tuple[tf.Tensor, tf.Tensor]:
    """(eps_A, eps_B), each `[n, D]`: pairs of codes from the joint at temperature T.

    eps_A = T n_A with n_A = stateless_normal(seed=[seed, SALT_SAMPLE]) (so images_a are
    sample_a's of the seed) and eps_B = `conditional_code(eps_A, T, [seed, SALT_PAIR_B])`.

    Args:
      n: pairs (an int or a scalar tensor).
      temperature: T >= 0, a float or a tensor broadcasting against `[n, D]`.
      seed: an int32 scalar (int or tensor).
    """
    seed = tf.cast(seed, tf.int32)
    noise = tf.random.stateless_normal(
      tf.stack([n, self.config.data_dim]), seed=tf.stack([seed, SALT_SAMPLE])
    )
    eps_a = noise * temperature
    return eps_a, self.conditional_code(eps_a, temperature, tf.stack([seed, SALT_PAIR_B]))

  def translate(
    self, images, direction: str = "a2b", temperature: float = 0.0, seed: int = 0, labels=None
  ) -> tf.Tensor:
    """uint8 images of the target side: decode_B(rho * encode_A(x) + T sqrt(1 - rho^2) n).

    A draw of p(x_B | x_A) at temperature T (T = 0: the conditional mean code, the same for any
    seed); "b2a" swaps the sides. n is the SavedModel's `translate_<direction>` draw of `seed`.

    Args:
      images: uint8 `[N, H, W, C]` of the source side.
      direction: "a2b" or "b2a".
      temperature: T >= 0 (a pair without a coupled prior ignores it: rho = 1).
      seed: an int; n = stateless_normal(seed=[seed, SALT_A2B or SALT_B2A]).
      labels: int `[N]`, the images' classes, for a class-conditional pair.
    """
    source, target, salt = _direction(direction)
    temperature = _temperature(temperature)
    eps = self.encode(images, source, labels)
    code = self.conditional_code(eps, temperature, _seed(seed, salt))
    return self.decode(code, target, labels)

  def sample_pairs(
    self, n: int, temperature: float = 1.0, seed: int = 0, labels=None
  ) -> tuple[tf.Tensor, tf.Tensor]:
    """(images_a, images_b), uint8 `[n, H, W, C]` each: n matching pairs from the joint at T
    (`sample_codes`; the SavedModel's `sample_pairs` of the seed). `labels`: int `[n]`, the
    pairs' classes, for a class-conditional pair."""
    temperature = _temperature(temperature)
    eps_a, eps_b = self.sample_codes(int(n), temperature, int(seed))
    return self.decode(eps_a, "a", labels), self.decode(eps_b, "b", labels)

  # ---------------------------------------------------------------------------------------------
  # Densities, in bits per dimension.

  def _x(self, images, noise: bool, seed: int, salt: int, what: str) -> tf.Tensor:
    images = _images(images, what)
    stateless = _seed(seed, salt) if noise else None
    return losses.preprocess(images, self.config.n_bits_x, noise=noise, seed=stateless)

  def bits_per_dim(self, images, side: str, labels=None, noise: bool = False, seed: int = 0):
    """`[N]`: Glow's bits/dim of uint8 images under `side`'s model alone.

    Mid-bin by default (deterministic, the SavedModel's `bits_per_dim_<side>`); `noise=True`
    dequantizes with uniform noise from the stateless seed [seed, SALT_DEQUANTIZE_A], as Glow
    reported its figures (`bits_per_dim_noise_<side>`).
    """
    side = _side(side)
    where = f"bits_per_dim_{side}"
    x = self._x(images, noise, seed, SALT_DEQUANTIZE_A, where)
    glow = self._glows[side]
    log_prob, _ = losses.log_prob_and_eps(glow, x, _labels(labels, self.config.n_classes, where))
    return losses.bits_from_log_prob(log_prob, self.config.data_dim, self.config.n_bits_x)

  def _coupled_bits(self, images_a, images_b, labels, noise, seed, what):
    if self.prior is None:
      raise ValueError(f"{what}: {NO_PRIOR}")
    labels = _labels(labels, self.config.n_classes, what)
    x_a = self._x(images_a, noise, seed, SALT_DEQUANTIZE_A, what)
    x_b = self._x(images_b, noise, seed, SALT_DEQUANTIZE_B, what)
    eps_a, log_det_a = self.glow_a.encode(x_a, labels=labels)
    eps_b, log_det_b = self.glow_b.encode(x_b, labels=labels)
    return joint_losses.coupled_bits(
      self.prior, eps_a, log_det_a, eps_b, log_det_b, self.config.n_bits_x
    )


class SavedPair(_PairDensities):
  """An exported pair (`serving/export.py`'s SavedModel) behind `ImagePair`'s methods.

  Each method calls the SavedModel's function of the same name (`encode_a`, `translate_a2b`,
  `sample_pairs`, `bits_per_dim_b`, `coupled_bits_per_dim`, ...) with TensorFlow alone, and an
  int seed draws what `ImagePair` draws for it. It has no `conditional_code` or `sample_codes`:
  the SavedModel's only function of codes is `decode_<side>`.

  Args:
    module: the SavedModel, loaded (`tf.saved_model.load`).
    path: where it was loaded from, for messages.

  Raises:
    ValueError: the SavedModel of a single Glow.
  """

  def __init__(self, module, path: str = "SavedModel"):
    info = {k: v.numpy() for k, v in module.info().items()}
    if int(info["n_domains"]) != 2:
      raise ValueError(f"load_pair: {path} is the SavedModel of one Glow, not of a pair")
    self.module = module
    self.path = path
    self.image_shape = tuple(int(d) for d in info["image_shape"])
    self.data_dim = int(info["data_dim"])
    self.n_classes = int(info["n_classes"])
    # SavedModels exported before the coupled prior have no such key: rho = 1.
    self._coupled = bool(info.get("coupled", 0))

  @property
  def coupled(self) -> bool:
    """Whether the codes are coupled by a learned rho (else rho = 1)."""
    return self._coupled

  def _call(self, name: str, *args, labels=None) -> dict[str, tf.Tensor]:
    labels = _labels(labels, self.n_classes, name)
    function = getattr(self.module, name)  # a SavedModel's functions are found by their names
    return function(*args) if labels is None else function(*args, labels)

  def rho(self) -> tf.Tensor:
    """float32 `[D]`: the SavedModel's `rho` (ones for an export older than the coupled prior)."""
    if not hasattr(self.module, "rho"):
      return tf.ones([self.data_dim], tf.float32)
    return self.module.rho()["rho"]

  def encode(self, images, side: str, labels=None) -> tf.Tensor:
    """`ImagePair.encode`, by the SavedModel's `encode_<side>`."""
    side = _side(side)
    images = _images(images, f"encode_{side}")
    return self._call(f"encode_{side}", images, labels=labels)["eps"]

  def decode(self, eps, side: str, labels=None) -> tf.Tensor:
    """`ImagePair.decode`, by the SavedModel's `decode_<side>`."""
    side = _side(side)
    eps = tf.convert_to_tensor(eps, tf.float32)
    return self._call(f"decode_{side}", eps, labels=labels)["images"]

  def translate(
    self, images, direction: str = "a2b", temperature: float = 0.0, seed: int = 0, labels=None
  ) -> tf.Tensor:
    """`ImagePair.translate`, by the SavedModel's `translate_<direction>`."""
    source, target, _ = _direction(direction)
    name = f"translate_{source}2{target}"
    images = _images(images, name)
    t = tf.fill(tf.shape(images)[:1], _temperature(temperature))
    return self._call(name, images, t, tf.constant(int(seed), tf.int32), labels=labels)["images"]

  def sample_pairs(
    self, n: int, temperature: float = 1.0, seed: int = 0, labels=None
  ) -> tuple[tf.Tensor, tf.Tensor]:
    """`ImagePair.sample_pairs`, by the SavedModel's `sample_pairs`."""
    t = tf.fill([int(n)], _temperature(temperature))
    out = self._call("sample_pairs", t, tf.constant(int(seed), tf.int32), labels=labels)
    return out["images_a"], out["images_b"]

  def bits_per_dim(self, images, side: str, labels=None, noise: bool = False, seed: int = 0):
    """`ImagePair.bits_per_dim`, by `bits_per_dim_<side>` (noise: `bits_per_dim_noise_<side>`)."""
    side = _side(side)
    images = _images(images, f"bits_per_dim_{side}")
    if noise:
      seed = tf.constant(int(seed), tf.int32)
      return self._call(f"bits_per_dim_noise_{side}", images, seed, labels=labels)["bits_per_dim"]
    return self._call(f"bits_per_dim_{side}", images, labels=labels)["bits_per_dim"]

  def _coupled_bits(self, images_a, images_b, labels, noise, seed, what):
    if not self._coupled:
      raise ValueError(f"{what}: {NO_PRIOR}")
    images_a, images_b = _images(images_a, what), _images(images_b, what)
    if noise:
      seed = tf.constant(int(seed), tf.int32)
      out = self._call("coupled_bits_per_dim_noise", images_a, images_b, seed, labels=labels)
    else:
      out = self._call("coupled_bits_per_dim", images_a, images_b, labels=labels)
    return joint_losses.CoupledBits(**{k: out[k] for k in joint_losses.CoupledBits._fields})


# -------------------------------------------------------------------------------------------------
# Loading.


def read_run(logdir: str, data_dir: str | None = None) -> run_dir.RunConfig:
  """The run folder's configuration (`run_dir.read_config`), resolved: a folder written before
  config.json existed gets its image shape and classes from its data (`problems.for_data`).

  Args:
    logdir: the run's folder (glow-train's --logdir).
    data_dir: where the run's data is now, if it moved.
  """
  found = run_dir.read_config(logdir, data_dir=data_dir)
  if found.resolved:
    return found
  config = found.config.resolve(problems.for_data(found.config.data))
  return dataclasses.replace(found, config=config, resolved=True)


def from_run(logdir: str, checkpoint: str = "auto", data_dir: str | None = None) -> ImagePair:
  """The pair of a glow-train run folder: its EMA Glows and, of a coupled run, its EMA prior.

  Args:
    logdir: the run's folder.
    checkpoint: "auto" (each side's best-test-loss model, else the last training checkpoint),
      "last", or a checkpoint path (`run_dir.find_checkpoint`).
    data_dir: where the run's data is now, if it moved (read only for an older run folder).

  Raises:
    ValueError: a run of one Glow.
    FileNotFoundError: no checkpoint.
  """
  run = read_run(logdir, data_dir)
  if len(run.keys) != 2:
    raise ValueError(f"load_pair: {logdir} is a run of one Glow, not of a pair")
  (glow_a, glow_b), _ = run_dir.load_ema_glows(run, checkpoint)
  return ImagePair(glow_a, glow_b, run_dir.load_coupled_prior(run, checkpoint))


def load_pair(path: str, checkpoint: str = "auto", data_dir: str | None = None):
  """The pair of image models in `path`: a glow-train run folder's or an exported SavedModel's.

  Args:
    path: a glow-train --logdir (an `ImagePair` of its EMA weights, `from_run`) or a folder
      glow-export wrote (a `SavedPair`; in TF Serving's layout, the version folder).
    checkpoint: of a run folder: "auto" (the best-test-loss models, else the last checkpoint),
      "last" or a checkpoint path.
    data_dir: of a run folder written before config.json: where its data is now.

  Returns:
    An `ImagePair` or a `SavedPair`, with the same methods: encode, decode, translate,
    sample_pairs, bits_per_dim, coupled_bits, joint_bits_per_dim, conditional_bits_per_dim,
    rho, coupled.

  Raises:
    FileNotFoundError: `path` is neither a run folder nor a SavedModel, or the run has no
      checkpoint.
    ValueError: the run or SavedModel of one Glow.
  """
  path = os.fspath(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f"load_pair: {path} is not a folder")
  if any(os.path.exists(os.path.join(path, f)) for f in ("saved_model.pb", "saved_model.pbtxt")):
    return SavedPair(tf.saved_model.load(path), path)
  if any(os.path.exists(os.path.join(path, f)) for f in (run_dir.CONFIG_FILE, "train_A.txt")):
    return from_run(path, checkpoint, data_dir)
  raise FileNotFoundError(
    f"load_pair: {path} is neither a glow-train run folder ({run_dir.CONFIG_FILE} or "
    "train_A.txt) nor a SavedModel (saved_model.pb)"
  )
