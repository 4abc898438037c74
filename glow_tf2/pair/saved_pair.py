"""`SavedPair`: an exported pair (glow-export's SavedModel) behind `ImagePair`'s methods."""

import tensorflow as tf

from glow_tf2 import joint_losses
from glow_tf2 import seeds as seeds_lib
from glow_tf2.pair.common import NO_PRIOR
from glow_tf2.pair.common import PairDensities
from glow_tf2.pair.common import check_direction
from glow_tf2.pair.common import check_images
from glow_tf2.pair.common import check_labels
from glow_tf2.pair.common import check_side
from glow_tf2.pair.common import check_temperature


class SavedPair(PairDensities):
  """An exported pair (`serving/export.py`'s SavedModel) behind `ImagePair`'s methods.

  Each method calls the SavedModel's function of the same name (`encode_a`, `translate_a2b`,
  `sample_pairs`, `bits_per_dim_b`, `coupled_bits_per_dim`, ...; a translation at T > 0 calls
  `translate_<direction>_sample`) with TensorFlow alone, and a seed (an int, or one per row)
  draws what `ImagePair` draws for it. It has no `conditional_code` or `sample_codes`: the
  SavedModel's only function of codes is `decode_<side>`.

  An export older than per-row seeds (`info()` without `seed_per_row`) still encodes, decodes,
  measures and translates at T = 0; its draws (a translation at T > 0, `sample_pairs`) took one
  seed per call and cannot draw `ImagePair`'s rows, so they raise ValueError: re-export it.

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
    self._seed_per_row = bool(info.get("seed_per_row", 0))
    # Between the coupled prior and per-row seeds, translate_<d> took temperature and one seed.
    self._translate_takes_noise = "coupled" in info and not self._seed_per_row

  @property
  def coupled(self) -> bool:
    """Whether the codes are coupled by a learned rho (else rho = 1)."""
    return self._coupled

  def _call(self, name: str, *args, labels=None) -> dict[str, tf.Tensor]:
    labels = check_labels(labels, self.n_classes, name)
    function = getattr(self.module, name)  # a SavedModel's functions are found by their names
    return function(*args) if labels is None else function(*args, labels)

  def rho(self) -> tf.Tensor:
    """float32 `[D]`: the SavedModel's `rho` (ones for an export older than the coupled prior)."""
    if not hasattr(self.module, "rho"):
      return tf.ones([self.data_dim], tf.float32)
    return self.module.rho()["rho"]

  def encode(self, images, side: str, labels=None) -> tf.Tensor:
    """`ImagePair.encode`, by the SavedModel's `encode_<side>`."""
    side = check_side(side)
    images = check_images(images, f"encode_{side}")
    return self._call(f"encode_{side}", images, labels=labels)["eps"]

  def decode(self, eps, side: str, labels=None) -> tf.Tensor:
    """`ImagePair.decode`, by the SavedModel's `decode_<side>`."""
    side = check_side(side)
    eps = tf.convert_to_tensor(eps, tf.float32)
    return self._call(f"decode_{side}", eps, labels=labels)["images"]

  @property
  def seed_per_row(self) -> bool:
    """Whether its draws take a seed per row (False: exported before, it draws at T = 0 only)."""
    return self._seed_per_row

  def _check_draws(self, what: str) -> None:
    if not self._seed_per_row:
      raise ValueError(
        f"{what}: {self.path} was exported before per-row seeds (one seed per call); "
        "re-export it with glow-export to draw from it"
      )

  def translate(
    self, images, direction: str = "a2b", temperature: float = 0.0, seed=0, labels=None
  ) -> tf.Tensor:
    """`ImagePair.translate`, by the SavedModel's `translate_<direction>` (T = 0) or
    `translate_<direction>_sample` (T > 0, row seeds as `ImagePair`'s)."""
    source, target, _ = check_direction(direction)
    name = f"translate_{source}2{target}"
    images = check_images(images, name)
    temperature = check_temperature(temperature)
    n = int(images.shape[0])
    if temperature == 0 or not self._coupled:  # the conditional mean; rho = 1 ignores T
      if self._translate_takes_noise:
        zeros = tf.zeros([n], tf.float32)
        return self._call(name, images, zeros, tf.constant(0), labels=labels)["images"]
      return self._call(name, images, labels=labels)["images"]
    self._check_draws(f"translate at temperature {temperature:g}")
    t = tf.fill([n], temperature)
    seeds = tf.constant(seeds_lib.per_row(seed, n))
    return self._call(f"{name}_sample", images, t, seeds, labels=labels)["images"]

  def sample_pairs(
    self, n: int, temperature: float = 1.0, seed=0, labels=None
  ) -> tuple[tf.Tensor, tf.Tensor]:
    """`ImagePair.sample_pairs`, by the SavedModel's `sample_pairs`."""
    self._check_draws("sample_pairs")
    t = tf.fill([int(n)], check_temperature(temperature))
    seeds = tf.constant(seeds_lib.per_row(seed, int(n)))
    out = self._call("sample_pairs", t, seeds, labels=labels)
    return out["images_a"], out["images_b"]

  def bits_per_dim(self, images, side: str, labels=None, noise: bool = False, seed: int = 0):
    """`ImagePair.bits_per_dim`, by `bits_per_dim_<side>` (noise: `bits_per_dim_noise_<side>`)."""
    side = check_side(side)
    images = check_images(images, f"bits_per_dim_{side}")
    if noise:
      seed = tf.constant(int(seed), tf.int32)
      return self._call(f"bits_per_dim_noise_{side}", images, seed, labels=labels)["bits_per_dim"]
    return self._call(f"bits_per_dim_{side}", images, labels=labels)["bits_per_dim"]

  def _coupled_bits(self, images_a, images_b, labels, noise, seed, what):
    if not self._coupled:
      raise ValueError(f"{what}: {NO_PRIOR}")
    images_a, images_b = check_images(images_a, what), check_images(images_b, what)
    if noise:
      seed = tf.constant(int(seed), tf.int32)
      out = self._call("coupled_bits_per_dim_noise", images_a, images_b, seed, labels=labels)
    else:
      out = self._call("coupled_bits_per_dim", images_a, images_b, labels=labels)
    return joint_losses.CoupledBits(**{k: out[k] for k in joint_losses.CoupledBits._fields})


# -------------------------------------------------------------------------------------------------
# Loading.
