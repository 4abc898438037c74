"""A SavedModel of one Glow model or a pix2pix-flow pair that serves with TensorFlow alone.

`build_serving_module(glow_a, glow_b, prior)` wraps the models (and, for a pair trained as one
density, its `flows.coupled_prior.CoupledPrior`) in a `tf.Module` whose `tf.function`s have
typed input signatures; `export_saved_model(module, export_dir)` writes it atomically. The
SavedModel holds plain TensorFlow ops and variables only: it loads with `tf.saved_model.load`
(or TF Serving) in a process where neither tensorflow_probability nor glow_tf2 is importable.

Signatures (images are always uint8 `[N, H, W, C]`, named `images`; `labels` int32 `[N]` is an
extra input wherever a class-conditional model needs it; `d` is `a` or `b`). Every input is
batched, one entry per row, so TF Serving takes every signature in its row format
(`"instances"`) as in its columnar one (`"inputs"`): `temperature` is float32 `[N]`, one
T_i >= 0 per row, and `seed` int32 `[N]`, one seed per row. Row i's noise is drawn from its own
seed, n_i = stateless_normal([D], seed=[seed_i, salt]) (`glow_tf2.seeds.row_normal`), so a row
draws the same whatever batch it comes in:

  encode_d        images -> eps float32 `[N, D]`: the standardized latent of every level,
                  finest level first (`Glow.encode` layout), at the centre of each bin.
  decode_d        eps -> images, quantized to n_bits_x and scaled back to 0..255.
  translate_a2b   images of A -> images of B at T = 0: decode_b(rho * encode_a(images)), the
                  conditional mean code; a bijection (a diagonal scale between the two flows,
                  `coupled_prior.coupled_translation`).
  translate_b2a   the other way: decode_a(rho * encode_b(images)).
  translate_a2b_sample
                  images of A, temperature, seed -> images of B: decode_b(eps_B) with
                    eps_B = rho * eps_A + T_i sqrt(1 - rho^2) n_i,   eps_A = encode_a(images),
                  n_i from [seed_i, 2]. At T_i = 0 row i is translate_a2b's. sqrt(1 - rho^2) is
                  the prior's floored exp(log_variance / 2).
  translate_b2a_sample
                  the other way: eps_A = rho * eps_B + T_i sqrt(1 - rho^2) n_i, salt 3.
  serving_default translate_a2b, so that a plain TF Serving request of images translates.
  sample_d        temperature, seed -> images; eps_i = T_i n_i, n_i from [seed_i, 0]. The same
                  seed gives the same image, and sample_a and sample_b with the same seeds
                  decode the same eps.
  sample_pairs    temperature, seed -> images_a, images_b: a pair drawn from the joint model,
                  eps_A,i = T_i n_A,i (n_A as sample_a's, so images_a = sample_a's images) and
                  eps_B,i = rho * eps_A,i + T_i sqrt(1 - rho^2) n_B,i, n_B,i from [seed_i, 4].
  rho             () -> rho float32 `[D]`: the correlation of each dimension pair (eps layout).
  bits_per_dim_d  images -> bits_per_dim float32 `[N]`, with the deterministic mid-bin value.
  coupled_bits_per_dim
                  images_a, images_b -> joint, b_given_a, a_given_b, a, b, each float32 `[N]`
                  (`joint_losses.coupled_bits`, mid-bin): the pair's bits/dim under the coupled
                  prior. Only in the SavedModel of a coupled pair.
  translate_codes_a2b, translate_codes_b2a
                  eps of the source side -> images of the target side at T = 0:
                  decode(rho * eps) (the demo's moved codes).

The codes of the translations and of sample_pairs are the pair's own (`glow_tf2.pair`:
`ImagePair.conditional_code` and `sample_codes`, with its salts `SALT_*`), so an `ImagePair` and
its SavedModel draw alike for the same row seeds.

A pair that was not trained with the coupled prior (code_last / code_all, or no joint term) is
served as the coupled model with rho = 1: eps_B = eps_A exactly, `rho` returns ones, and the
temperature and seed of a sampling translation have no effect (they are still checked). A
single-domain (plain Glow) export has the `encode_a`, `decode_a`, `sample_a` and
`bits_per_dim_a` signatures only, with `serving_default` = `encode_a`.
`decode_d(encode_d(images))` returns exactly the images quantized to n_bits_x.

A reloaded signature checks the dtype of its inputs but not their shape, so every function
validates its inputs itself (`serving/signature_inputs.py`). A bad request then fails with an
`InvalidArgumentError` naming the signature and the input, and the process keeps working. An
input that passes its checks can still make the flow overflow (a temperature of 3e38, a code of
1e4 into a model whose couplings divide by a small scale): the images would be NaN and infinity
cast to uint8, a silent black picture, so every image-making function checks its float images
before the cast and fails naming the input instead (`SignatureInputs.finite_images`).
`export_saved_model` writes atomically with `glow_tf2.atomic_dir`, and overwrites only a
SavedModel of glow-export or an empty folder (`serving/export_dir.py`).

More functions are saved but are not signatures: `info()` (shapes and sizes as constants,
`coupled` 1 for a coupled pair, `seed_per_row` 1: an export older than per-row seeds has no such
key, and its translate_a2b / translate_b2a take temperature `[N]` and one scalar seed),
`bits_per_dim_noise_d(images, seed[, labels])` (Glow's reported bits/dim, with uniform
dequantization noise from the stateless seed [seed, 1]; `seed` a scalar, one per call) and, for
a coupled pair, `coupled_bits_per_dim_noise(images_a, images_b, seed[, labels])` (A's noise from
[seed, 1], as bits_per_dim_noise_a, B's independent of it from [seed, 5]) for glow-eval.
"""

from collections.abc import Callable
import json
import os

import tensorflow as tf

from glow_tf2 import atomic_dir
from glow_tf2 import denoise
from glow_tf2 import joint_losses
from glow_tf2 import losses
from glow_tf2 import seeds as seeds_lib
from glow_tf2.flows.coupled_prior import CoupledPrior
from glow_tf2.flows.glow import Glow
from glow_tf2.pair import SALT_A2B
from glow_tf2.pair import SALT_B2A
from glow_tf2.pair import SALT_DEQUANTIZE_A
from glow_tf2.pair import SALT_DEQUANTIZE_B
from glow_tf2.pair import SALT_PAIR_B  # noqa: F401  (a documented salt of the signatures)
from glow_tf2.pair import SALT_SAMPLE
from glow_tf2.pair import ImagePair
from glow_tf2.serving import export_dir as export_dir_lib
from glow_tf2.serving.signature_inputs import SignatureInputs
from glow_tf2.serving.signature_inputs import seed_spec

COUPLED_BITS_KEYS = ("joint", "b_given_a", "a_given_b", "a", "b")
# The atomic writing of `export_saved_model` (glow_tf2.atomic_dir), importable from here too.
STALE_AFTER_SECONDS = atomic_dir.STALE_AFTER_SECONDS
remove_stale_temporaries = atomic_dir.remove_stale_temporaries


class GlowServingModule(tf.Module):
  """The exported functions of one Glow (`_a`) or of a translating pair (`_a` and `_b`).

  Args:
    glow_a: domain A's model (or the only one).
    glow_b: domain B's model of a pair; same image shape, n_bits_x and classes as A.
    prior: the `CoupledPrior` of a pair trained as one density (None: rho = 1, eps_B = eps_A).
    name: the module's name.

  Attributes:
    glow_a, glow_b, prior: the wrapped objects (not part of the saved object graph).
    variables_a, variables_b, variables_prior: their variables, which the SavedModel stores.
    signatures: the dict to pass to `tf.saved_model.save`, `serving_default` included.

  Raises:
    ValueError: models of different data, or a prior without B or of another eps layout.
  """

  def __init__(
    self,
    glow_a: Glow,
    glow_b: Glow | None = None,
    prior: CoupledPrior | None = None,
    name: str = "glow_serving",
  ):
    super().__init__(name=name)
    if prior is not None and glow_b is None:
      raise ValueError("build_serving_module: a coupled prior needs both models (glow_b is None)")
    # The models are kept out of the object graph: saving would otherwise walk every attribute
    # of every TFP bijector (slow, and nothing of them is needed). Their variables are tracked.
    # A pair's translations and sampled pairs draw their codes as its ImagePair does.
    object.__setattr__(self, "_glows", {"a": glow_a, "b": glow_b})
    object.__setattr__(self, "_prior", prior)
    object.__setattr__(self, "_pair", None if glow_b is None else ImagePair(glow_a, glow_b, prior))
    self.variables_a = list(glow_a.variables)
    if glow_b is not None:
      self.variables_b = list(glow_b.variables)
    if prior is not None:
      self.variables_prior = list(prior.variables)
    config = glow_a.config
    self._config = config
    inputs = self._inputs = SignatureInputs(config)
    models = {"a": glow_a} if glow_b is None else {"a": glow_a, "b": glow_b}
    # Signatures are traced when first asked for (export), not when only some are called.
    self._signature_functions: dict[str, tf.types.experimental.GenericFunction] = {}
    seed = [seed_spec()]
    for domain, glow in models.items():
      self._add(f"encode_{domain}", self._encode_fn(glow, domain), inputs.images_spec())
      self._add(f"decode_{domain}", self._decode_fn(glow, domain), inputs.eps_spec())
      self._add(f"sample_{domain}", self._sample_fn(glow, domain), inputs.sample_spec())
      self._add(
        f"bits_per_dim_{domain}", self._bits_fn(glow, domain, noise=False), inputs.images_spec()
      )
      self._add(
        f"bits_per_dim_noise_{domain}",
        self._bits_fn(glow, domain, noise=True),
        inputs.images_spec() + seed,
        signature=False,
      )
    if glow_b is not None:
      for source, target, salt in (("a", "b", SALT_A2B), ("b", "a", SALT_B2A)):
        where = f"translate_{source}2{target}"
        self._add(
          where, self._translate_fn(models[source], models[target], where), inputs.images_spec()
        )
        self._add(
          f"{where}_sample",
          self._translate_sample_fn(models[source], models[target], f"{where}_sample", salt),
          inputs.images_spec() + inputs.sample_spec(),
        )
        self._add(
          f"translate_codes_{source}2{target}",
          self._translate_codes_fn(models[target], f"translate_codes_{source}2{target}"),
          inputs.eps_spec(),
        )
      self._add("sample_pairs", self._sample_pairs_fn(), inputs.sample_spec())
      self._add("rho", self._rho_fn(), [])
      self._default = "translate_a2b"
    else:
      self._default = "encode_a"
    if prior is not None:
      pair_spec = inputs.images_spec("images_a") + inputs.images_spec("images_b")
      self._add("coupled_bits_per_dim", self._coupled_bits_fn(noise=False), pair_spec)
      self._add(
        "coupled_bits_per_dim_noise",
        self._coupled_bits_fn(noise=True),
        pair_spec + seed,
        signature=False,
      )
    info = {
      "image_shape": tf.constant(config.image_shape, tf.int32),
      "n_bits_x": tf.constant(config.n_bits_x, tf.int32),
      "n_classes": tf.constant(config.n_classes, tf.int32),
      "data_dim": tf.constant(config.data_dim, tf.int32),
      "top_dim": tf.constant(config.top_dim, tf.int32),
      "n_domains": tf.constant(len(models), tf.int32),
      "coupled": tf.constant(int(prior is not None), tf.int32),
      # Every draw takes a seed per row (`glow_tf2.seeds`); older exports have no such key.
      "seed_per_row": tf.constant(1, tf.int32),
      # > 0: a noise-augmented model; its samples and translations come denoised.
      "noise_sigma": tf.constant(config.noise_sigma, tf.float32),
    }
    self.info = tf.function(lambda: dict(info), input_signature=[], autograph=False)

  @property
  def signatures(self) -> dict[str, tf.types.experimental.GenericFunction]:
    """{key: tf.function} for `tf.saved_model.save`, `serving_default` included.

    The functions, not concrete functions: `save` traces them itself, in its own context, and a
    trace made here first would be thrown away and done again.
    """
    signatures = dict(self._signature_functions)
    signatures["serving_default"] = getattr(self, self._default)
    return signatures

  @property
  def config(self):
    return self._config

  @property
  def glow_a(self) -> Glow:
    return self._glows["a"]

  @property
  def glow_b(self) -> Glow | None:
    return self._glows["b"]

  @property
  def prior(self) -> CoupledPrior | None:
    return self._prior

  @property
  def coupled(self) -> bool:
    return self._prior is not None

  def _add(self, key, fn, specs, signature=True):
    # autograph=False: nothing here branches on tensors, and converting the model code is slow.
    # An empty spec list (`rho`) takes no labels either: it reads only the prior.
    specs = self._inputs.with_labels(specs) if specs else specs
    function = tf.function(fn, input_signature=specs, autograph=False)
    setattr(self, key, function)
    if signature:
      self._signature_functions[key] = function

  def _x(self, images):
    return losses.preprocess(images, self._config.n_bits_x, noise=False)

  def _images(self, x, where, culprit):
    """uint8 images of the flow's output `x`, which must be finite (`culprit` made it not)."""
    x = self._inputs.finite_images(x, where, culprit)
    return losses.postprocess(x, self._config.n_bits_x)

  # ---------------------------------------------------------------------------------------------
  # The functions. Each validates its inputs before any model op runs.

  def _encode_fn(self, glow, domain):
    where = f"encode_{domain}"

    def encode(images, labels=None):
      images = self._inputs.images(images, where)
      labels = self._inputs.labels(labels, tf.shape(images)[0], where)
      eps, _ = glow.encode(self._x(images), labels=labels)
      return {"eps": eps}

    return encode

  def _decode_fn(self, glow, domain):
    where = f"decode_{domain}"

    def decode(eps, labels=None):
      eps = self._inputs.eps(eps, where)
      labels = self._inputs.labels(labels, tf.shape(eps)[0], where)
      x = denoise.decode(glow, eps, labels=labels)
      return {"images": self._images(x, where, "eps")}

    return decode

  def _sample_fn(self, glow, domain):
    where = f"sample_{domain}"

    def sample(temperature, seed, labels=None):
      temperature = self._inputs.temperature(temperature, where)
      batch = tf.shape(temperature)[0]
      seed = self._inputs.seeds(seed, where, batch)
      labels = self._inputs.labels(labels, batch, where)
      # Not salted by domain: sample_a and sample_b with one seed decode the same eps.
      eps = seeds_lib.row_normal(seed, SALT_SAMPLE, self._config.data_dim)
      x = denoise.decode(glow, eps * temperature[:, None], labels=labels)
      return {"images": self._images(x, where, "temperature")}

    return sample

  def _sample_pairs_fn(self):
    where = "sample_pairs"
    glow_a, glow_b = self._glows["a"], self._glows["b"]

    def sample_pairs(temperature, seed, labels=None):
      temperature = self._inputs.temperature(temperature, where)
      batch = tf.shape(temperature)[0]
      seed = self._inputs.seeds(seed, where, batch)
      labels = self._inputs.labels(labels, batch, where)
      eps_a, eps_b = self._pair.sample_codes(seed, temperature[:, None])
      x_a = denoise.decode(glow_a, eps_a, labels=labels)
      x_b = denoise.decode(glow_b, eps_b, labels=labels)
      return {
        "images_a": self._images(x_a, where, "temperature"),
        "images_b": self._images(x_b, where, "temperature"),
      }

    return sample_pairs

  def _rho_fn(self):
    def rho():
      return {"rho": self._pair.rho()}

    return rho

  def _bits_fn(self, glow, domain, noise):
    where = f"bits_per_dim_noise_{domain}" if noise else f"bits_per_dim_{domain}"
    config = self._config

    def bits(images, labels=None):
      images = self._inputs.images(images, where)
      labels = self._inputs.labels(labels, tf.shape(images)[0], where)
      x = losses.preprocess(images, config.n_bits_x, noise=False)
      log_prob, _ = losses.log_prob_and_eps(glow, x, labels=labels)
      return {"bits_per_dim": losses.bits_from_log_prob(log_prob, config.data_dim, config.n_bits_x)}

    def noisy_bits(images, seed, labels=None):
      images = self._inputs.images(images, where)
      seed = self._inputs.seed(seed, where)
      labels = self._inputs.labels(labels, tf.shape(images)[0], where)
      x = losses.preprocess(
        images, config.n_bits_x, noise=True, seed=tf.stack([seed, SALT_DEQUANTIZE_A])
      )
      log_prob, _ = losses.log_prob_and_eps(glow, x, labels=labels)
      return {"bits_per_dim": losses.bits_from_log_prob(log_prob, config.data_dim, config.n_bits_x)}

    return noisy_bits if noise else bits

  def _translate_fn(self, source, target, where):
    """images -> the target side's images at T = 0: decode(rho * encode(images)), no noise."""

    def translate(images, labels=None):
      images = self._inputs.images(images, where)
      labels = self._inputs.labels(labels, tf.shape(images)[0], where)
      eps, _ = source.encode(self._x(images), labels=labels)
      eps = self._inputs.finite_codes(eps, where, "images")
      x = denoise.decode(target, self._pair.conditional_code(eps), labels=labels)
      return {"images": self._images(x, where, "images")}

    return translate

  def _translate_sample_fn(self, source, target, where, salt):
    """images, temperature `[N]`, seed `[N]` -> a draw of the target side given each image."""

    def translate_sample(images, temperature, seed, labels=None):
      images = self._inputs.images(images, where)
      batch = tf.shape(images)[0]
      temperature = self._inputs.temperature(temperature, where, batch)
      seed = self._inputs.seeds(seed, where, batch)
      labels = self._inputs.labels(labels, batch, where)
      eps, _ = source.encode(self._x(images), labels=labels)
      eps = self._inputs.finite_codes(eps, where, "images")
      eps = self._pair.conditional_code(eps, temperature[:, None], seed, salt)
      x = denoise.decode(target, eps, labels=labels)
      return {"images": self._images(x, where, "temperature")}

    return translate_sample

  def _translate_codes_fn(self, target, where):
    """Codes of the source side `[N, D]` (its encode's eps, moved as the demo's manipulators
    move them) decoded by the target side at T = 0: decode(rho * eps), the pair's code."""

    def translate_codes(eps, labels=None):
      eps = self._inputs.eps(eps, where)
      labels = self._inputs.labels(labels, tf.shape(eps)[0], where)
      code = self._pair.conditional_code(eps)
      x = denoise.decode(target, code, labels=labels)
      return {"images": self._images(x, where, "eps")}

    return translate_codes

  def _coupled_bits_fn(self, noise):
    where = "coupled_bits_per_dim_noise" if noise else "coupled_bits_per_dim"
    glow_a, glow_b, prior = self._glows["a"], self._glows["b"], self._prior
    n_bits_x = self._config.n_bits_x

    def pair_bits(images_a, images_b, seed, labels):
      images_a = self._inputs.images(images_a, where, "images_a")
      images_b = self._inputs.images(images_b, where, "images_b")
      batch = tf.shape(images_a)[0]
      images_b = self._inputs.partners(images_b, batch, where)
      labels = self._inputs.labels(labels, batch, where)
      if seed is None:
        x_a = losses.preprocess(images_a, n_bits_x, noise=False)
        x_b = losses.preprocess(images_b, n_bits_x, noise=False)
      else:
        seed = self._inputs.seed(seed, where)
        x_a = losses.preprocess(
          images_a, n_bits_x, noise=True, seed=tf.stack([seed, SALT_DEQUANTIZE_A])
        )
        x_b = losses.preprocess(
          images_b, n_bits_x, noise=True, seed=tf.stack([seed, SALT_DEQUANTIZE_B])
        )
      eps_a, log_det_a = glow_a.encode(x_a, labels=labels)
      eps_b, log_det_b = glow_b.encode(x_b, labels=labels)
      bits = joint_losses.coupled_bits(prior, eps_a, log_det_a, eps_b, log_det_b, n_bits_x)
      return bits._asdict()

    def mid_bin(images_a, images_b, labels=None):
      return pair_bits(images_a, images_b, None, labels)

    def noisy(images_a, images_b, seed, labels=None):
      return pair_bits(images_a, images_b, seed, labels)

    return noisy if noise else mid_bin


def build_serving_module(
  glow_a: Glow, glow_b: Glow | None = None, prior: CoupledPrior | None = None
) -> GlowServingModule:
  """The `tf.Module` to export: signatures of model A, and of B and the translations if given.

  Args:
    glow_a: the model of domain A (or the only model of a plain Glow run), with the weights to
      serve already in its variables (for a trained run: the EMA weights).
    glow_b: the model of domain B of a pix2pix-flow pair; same image shape, n_bits_x and classes.
    prior: the coupled prior of a pair trained as one density (`run_dir.load_coupled_prior`);
      None serves the pair with rho = 1 (translations ignore their temperature).

  Returns:
    A `GlowServingModule`; its functions are callable directly (`module.encode_a(images)`) and
    `export_saved_model` writes it.
  """
  return GlowServingModule(glow_a, glow_b, prior)


def export_saved_model(
  module: GlowServingModule,
  export_dir: str,
  overwrite: bool = False,
  extra_files: Callable[[str], None] | None = None,
) -> str:
  """Writes `module` as a SavedModel at `export_dir`, atomically.

  The SavedModel is written to a temporary folder next to `export_dir` and renamed into place,
  so a reader never sees half a model. A human-readable `assets.extra/glow_config.json` goes
  with it (TF Serving ignores `assets.extra`). The result has the permissions of any new folder
  (0755 folders and 0644 files under the usual umask 022), so that a serving process of another
  user can read it. What an export killed earlier left next to `export_dir` is removed first
  (`remove_stale_temporaries`).

  Args:
    module: from `build_serving_module`.
    export_dir: the folder to create. For TF Serving, use `<model_base_path>/<version>`.
    overwrite: replace an existing `export_dir` if it is a SavedModel of glow-export or an
      empty folder (`export_dir.check_replaceable`); otherwise an existing one raises.
    extra_files: called with the temporary folder after the SavedModel is in it, to add files
      that must appear with the model in the same rename (glow-export's model card).

  Returns:
    export_dir.

  Raises:
    FileExistsError: `export_dir` exists and may not be replaced; the message says what it holds.
  """
  export_dir = export_dir_lib.check_export_dir(export_dir, overwrite)

  def fill(folder: str) -> None:
    # Serving needs no gradients; leaving them out saves time and keeps the graph small.
    tf.saved_model.save(
      module,
      folder,
      signatures=module.signatures,
      options=tf.saved_model.SaveOptions(experimental_custom_gradients=False),
    )
    config_file = os.path.join(folder, export_dir_lib.CONFIG_FILE)
    os.makedirs(os.path.dirname(config_file), exist_ok=True)
    with open(config_file, "w") as f:
      json.dump(_config_json(module), f, indent=2)
    if extra_files:
      extra_files(folder)

  return atomic_dir.write_directory(export_dir, fill, export_dir_lib.check_replaceable)


def _config_json(module: GlowServingModule) -> dict:
  """assets.extra/glow_config.json: the model's settings and signatures, for people."""
  config = module.config
  return {
    "image_shape": list(config.image_shape),
    "n_levels": config.n_levels,
    "depth": config.depth,
    "width": config.width,
    "permutation": config.permutation,
    "coupling": config.coupling,
    "learntop": config.learntop,
    "n_classes": config.n_classes,
    "n_bits_x": config.n_bits_x,
    "data_dim": config.data_dim,
    "top_dim": config.top_dim,
    "domains": ["a", "b"] if module.glow_b is not None else ["a"],
    "coupled": module.coupled,
    "rho_per_dimension": module.prior.per_dimension if module.coupled else None,
    "signatures": sorted(module.signatures),
  }
