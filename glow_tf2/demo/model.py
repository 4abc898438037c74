"""`DemoModel`: an exported SavedModel's signatures as numpy functions.

Needs TensorFlow only: the SavedModel written by `glow_tf2.export` holds plain TF ops, so the demo
never rebuilds a `Glow` (nor imports TensorFlow Probability for it).

A pair's translations follow its coupled prior (`flows.coupled_prior`): eps_B = rho * eps_A +
T sqrt(1 - rho^2) n at temperature T (`translate_<direction>_sample`; T = 0 is the images-only
`translate_<direction>`), so T = 0 is the conditional mean code and T > 0 gives different
translations of one input. Every draw takes one seed per row: a request's seed s gives row i
the seed (s + i) mod 2^31 (`glow_tf2.seeds.per_row`), so n draws of one image are n different
translations, and a row is the same image in any batch. A pair that was not trained with the
coupled prior has rho = 1: its translations are deterministic, whatever T.

Older SavedModels are served as they were: one exported before per-row seeds takes the request's
seed as one scalar per call (its translate_<direction> takes the temperature and the seed
itself); one exported before pairs had a coupled prior (translations of images alone, no `rho`
or `sample_pairs` signature) is served with rho = 1, and a sampled pair is sample_a and sample_b
of one seed.

Values in range can still overflow inside the flow (a large code into a coupling that divides
by a small scale). The signatures refuse NaN or infinite images themselves
(`serving.signature_inputs`), and `DemoModel` refuses non-finite codes; both become
`Overflow`, for the API to name the field that caused it.
"""

import os
import threading

import numpy as np

from glow_tf2 import seeds as seeds_lib
from glow_tf2.serving import signature_inputs

DOMAINS = ("a", "b")


class Overflow(ValueError):
  """The inputs of a call made the flow overflow: its output would be NaN or infinite."""


def extra_dir(saved_model: str) -> str:
  """`<saved_model>/assets.extra`, where the demo's files travel with the model they belong to."""
  return os.path.join(saved_model, "assets.extra")


def default_manipulators_path(saved_model: str) -> str:
  return os.path.join(extra_dir(saved_model), "manipulators.npz")


def default_examples_path(saved_model: str) -> str:
  return os.path.join(extra_dir(saved_model), "examples.npz")


def check_saved_model(path: str) -> str:
  """The absolute path of a SavedModel folder, or FileNotFoundError saying what is wrong."""
  if not os.path.isdir(path):
    raise FileNotFoundError(f"--saved_model={path}: no such folder")
  if not os.path.isfile(os.path.join(path, "saved_model.pb")):
    raise FileNotFoundError(
      f"--saved_model={path}: not a SavedModel (no saved_model.pb); write one with glow-export"
    )
  return os.path.abspath(path)


class DemoModel:
  """The signatures of one exported Glow or pix2pix-flow pair.

  Images are uint8 numpy `[N, H, W, C]`, codes float32 `[N, D]`, labels int32 `[N]` (only for a
  class-conditional model). At most `max_concurrent` calls run at a time.

  Attributes:
    image_shape: (H, W, C).
    data_dim: D, the size of a code.
    n_classes: 0, or the classes of a class-conditional model.
    n_bits_x: bits per channel of the model's images.
    domains: ("a",) for a single model, ("a", "b") for a pair.
    coupled: whether the pair was trained with the coupled prior (False for a single model).
    rho: float32 `[D]`, the correlation of each code dimension between the two models (ones for
      a pair that is not coupled); None for a single model.
  """

  def __init__(self, saved_model: str, max_concurrent: int = 2):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    self._tf = tf
    self.path = check_saved_model(saved_model)
    self._loaded = tf.saved_model.load(self.path)
    self._signatures = self._loaded.signatures
    info = {k: v.numpy() for k, v in self._loaded.info().items()}
    self.image_shape: tuple[int, int, int] = tuple(int(s) for s in info["image_shape"])
    self.data_dim = int(info["data_dim"])
    self.n_classes = int(info["n_classes"])
    self.n_bits_x = int(info["n_bits_x"])
    self.domains = DOMAINS[: int(info["n_domains"])]
    self.coupled = bool(info.get("coupled", 0))
    # An export older than per-row seeds takes one scalar seed per call.
    self._seed_per_row = bool(info.get("seed_per_row", 0))
    self._gate = threading.BoundedSemaphore(max_concurrent)
    self._inputs = {k: set(f.structured_input_signature[1]) for k, f in self._signatures.items()}
    self.rho: np.ndarray | None = None
    if len(self.domains) == 2:
      # rho is a constant of the SavedModel: read once (an export from before the coupled
      # prior has none).
      self.rho = (
        self._signatures["rho"]()["rho"].numpy().astype(np.float32)
        if "rho" in self._signatures
        else np.ones([self.data_dim], np.float32)
      )

  @property
  def signatures(self):
    """The SavedModel's signatures by name (tf.saved_model.load(path).signatures)."""
    return self._signatures

  def _call(self, name: str, labels: np.ndarray | None, **inputs) -> dict[str, np.ndarray]:
    tf = self._tf
    # Codes the demo computed itself (rho * z, z + strength * direction) can overflow too.
    for key, value in inputs.items():
      if np.asarray(value).dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise Overflow(f"{name}: {signature_inputs.OVERFLOW} (`{key}` is not finite)")
    kwargs = {k: tf.constant(v) for k, v in inputs.items()}
    if self.n_classes:
      n = len(next(iter(inputs.values())))
      kwargs["labels"] = tf.constant(
        np.zeros([n], np.int32) if labels is None else np.asarray(labels, np.int32)
      )
    with self._gate:
      try:
        outputs = {k: v.numpy() for k, v in self._signatures[name](**kwargs).items()}
      except tf.errors.InvalidArgumentError as error:
        if signature_inputs.OVERFLOW in error.message:
          raise Overflow(f"{name}: {signature_inputs.OVERFLOW}") from None
        raise
    for key, value in outputs.items():
      if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise Overflow(f"{name}: {signature_inputs.OVERFLOW} (`{key}` is not finite)")
    return outputs

  def _check_domain(self, domain: str) -> str:
    if domain not in self.domains:
      raise ValueError(f"domain must be one of {list(self.domains)}, got {domain!r}")
    return domain

  def encode(self, images: np.ndarray, domain: str, labels=None) -> np.ndarray:
    return self._call(
      f"encode_{self._check_domain(domain)}", labels, images=np.asarray(images, np.uint8)
    )["eps"]

  def decode(self, codes: np.ndarray, domain: str, labels=None) -> np.ndarray:
    return self._call(
      f"decode_{self._check_domain(domain)}", labels, eps=np.asarray(codes, np.float32)
    )["images"]

  def _check_pair(self) -> None:
    if len(self.domains) < 2:
      raise ValueError("this SavedModel holds one model: nothing to translate to")

  def _seeds(self, seed: int, n: int) -> np.ndarray:
    """A request's seed as the signature takes it: one per row (an older export: a scalar)."""
    return seeds_lib.per_row(seed, n) if self._seed_per_row else np.int32(seed)

  def translate(
    self, images: np.ndarray, source: str, temperature=0.0, seed: int = 0, labels=None
  ) -> np.ndarray:
    """Images of domain `source` `[N, H, W, C]` in the other domain, at temperature T.

    decode_other(rho * encode_source(images) + T_i sqrt(1 - rho^2) n_i), n_i = stateless normal
    noise of row i's seed (seed + i); `temperature` is one T or `[N]` of them. All T = 0: the
    images-only translation, which draws nothing.
    """
    self._check_domain(source)
    self._check_pair()
    images = np.asarray(images, np.uint8)
    name = "translate_a2b" if source == "a" else "translate_b2a"
    temperature = np.broadcast_to(np.float32(temperature), [len(images)]).copy()
    inputs = {"images": images}
    if "temperature" in self._inputs[name]:  # an export older than per-row seeds
      inputs.update(temperature=temperature, seed=np.int32(seed))
    elif np.any(temperature > 0) and f"{name}_sample" in self._signatures:
      name = f"{name}_sample"
      inputs.update(temperature=temperature, seed=self._seeds(seed, len(images)))
    return self._call(name, labels, **inputs)["images"]

  def translations(
    self, image: np.ndarray, source: str, temperature: float, n: int, seed: int = 0, labels=None
  ) -> np.ndarray:
    """`n` translations `[n, H, W, C]` of one image `[H, W, C]` at T: n draws of one request."""
    images = np.repeat(np.asarray(image, np.uint8)[None], n, axis=0)
    return self.translate(images, source, np.full([n], temperature, np.float32), seed, labels)

  def translate_codes(self, codes: np.ndarray, source: str, labels=None) -> np.ndarray:
    """Codes of domain `source` `[N, D]` decoded by the other model at T = 0: decode(rho * z),
    by the SavedModel's `translate_codes_<direction>` (the pair's own code)."""
    self._check_domain(source)
    self._check_pair()
    target = self.other(source)
    name = f"translate_codes_{source}2{target}"
    codes = np.asarray(codes, np.float32)
    if name in self._signatures:
      return self._call(name, labels, eps=codes)["images"]
    # An export from before that signature: its rho (ones before the coupled prior) by hand.
    return self.decode(self.rho * codes, target, labels)

  def sample_pairs(self, temperatures: np.ndarray, seed: int, labels=None):
    """(images_a, images_b), each `[N, H, W, C]`: N pairs drawn from the joint model at T_i."""
    self._check_pair()
    temperatures = np.asarray(temperatures, np.float32)
    if "sample_pairs" not in self._signatures:  # an export from before the coupled prior: rho = 1
      return (
        self.sample("a", temperatures, seed, labels),
        self.sample("b", temperatures, seed, labels),
      )
    seeds = self._seeds(seed, len(temperatures))
    out = self._call("sample_pairs", labels, temperature=temperatures, seed=seeds)
    return out["images_a"], out["images_b"]

  def sample(self, domain: str, temperatures: np.ndarray, seed: int, labels=None) -> np.ndarray:
    """`[N, H, W, C]` samples of `domain` at T_i, sample i from the row seed seed + i."""
    temperatures = np.asarray(temperatures, np.float32)
    return self._call(
      f"sample_{self._check_domain(domain)}",
      labels,
      temperature=temperatures,
      seed=self._seeds(seed, len(temperatures)),
    )["images"]

  def other(self, domain: str) -> str | None:
    """The other domain of a pair, or None for a single model."""
    if len(self.domains) < 2:
      return None
    return "b" if domain == "a" else "a"
