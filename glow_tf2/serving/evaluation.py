"""Evaluation of a Glow model or a pix2pix-flow pair on a paired test set.

Everything here goes through the functions of the serving module (`export.build_serving_module`)
or of a reloaded SavedModel, which have the same names (`encode_a`, `translate_a2b`, ...), so
a checkpoint and its export are measured by the same code.

Metrics (nested under `metrics` in the report):

  bits_per_dim.{a,b}.{noise,mid_bin}.{mean,stderr}
      Glow's objective -(log p(x) - D log n_bins) / (D ln 2) per image, with one draw of uniform
      dequantization noise (as Glow reported test bits/dim) and with the deterministic centre of
      each bin; mean over images and its standard error std / sqrt(N) (ddof = 1).
  code_mse.{all,top}
      mean over images and dims of (eps_A - eps_B)^2 between the mid-bin codes of a pair, over
      all D dims and over the top block alone (the last `top_dim` dims: pix2pix-flow's code_last).
  code_mse_train.{all,top}
      the same on training pairs (the first N of the training reference set, N the test-set
      size): the original eval.py's train-split figure; with the test figure it tells an
      alignment that generalises from one learnt by heart.
  translation.{a2b,b2a}.{model,identity,nearest_neighbour}.{mse,psnr,ssim}
      images against the true partner, in [0, 1] pixel scale: MSE; PSNR = mean over images of
      10 log10(1 / mse_i) with mse_i floored at 1e-10 (so an exact match counts 100 dB, not inf);
      SSIM = mean over images of `tf.image.ssim(max_val=1, filter_size=min(11, H, W))`.
      `model` is the translation; `identity` outputs the input itself; `nearest_neighbour`
      outputs the training partner of the training input nearest to the input in pixel space
      (squared L2, exact in float64; the first index wins ties). Baselines give the numbers a
      scale: a useful model beats both. For a coupled pair `model` is the translation at
      T = 0, the conditional mean code rho * eps (`export`); for any other pair rho = 1.

Only for a coupled pair (a SavedModel whose `info()["coupled"]` is 1; otherwise the keys are
absent, not zero):

  coupled_bits_per_dim.{joint,b_given_a,a_given_b}.{noise,mid_bin}.{mean,stderr}
      the pair's bits/dim under the coupled prior (`joint_losses.coupled_bits`): `joint` per
      dimension of the pair (2D), `b_given_a` = -log p(x_B | x_A) in bits per dimension of B,
      `a_given_b` likewise; dequantization noise (A's the draw of bits_per_dim.a.noise, B's an
      independent one) and mid-bin, as bits_per_dim. Per image joint = (a + b_given_a) / 2.
  translation_sampled.{temperature,draws}
      T and k of the draws below (glow-eval's --temperature and --draws).
  translation_sampled.{a2b,b2a}.{psnr_best,psnr_mean,spread}
      k translations of every test input at temperature T (eps_B = rho eps_A +
      T sqrt(1 - rho^2) n, fresh n per draw): `psnr_best` = mean over images of the best PSNR of
      the k draws against the true partner (in dB, as above); `psnr_mean` = mean over images and
      draws; `spread` = the per-pixel standard deviation over the k draws (ddof = 0, [0, 1]
      pixel scale), averaged over pixels and images: 0 for a deterministic translator.
      Draw j (0-based) of test image k uses the row seed (seed + (j + 1) N + k) mod 2^31, N
      the test images (`glow_tf2.seeds`): no draw depends on the batch size. (A SavedModel
      exported before per-row seeds takes one seed per call: batch b of draw j gets
      seed + (j + 1) * n_batches + b.)
"""

import functools
import math
from typing import Any

import numpy as np
import tensorflow as tf

from glow_tf2 import config as config_lib
from glow_tf2 import seeds as seeds_lib
from glow_tf2.serving import sample_quality
from glow_tf2.serving import signature_inputs

PSNR_MSE_FLOOR = 1e-10
# Rows of sampled translations in glow-eval's figure (of a coupled run), per direction.
FIGURE_DRAWS = 8


# -------------------------------------------------------------------------------------------------
# Pure metrics on numpy arrays.


def mean_and_stderr(values) -> dict[str, float]:
  """{"mean", "stderr"} of a 1-D sample; stderr = std(ddof=1) / sqrt(N) (0 for N = 1)."""
  values = np.asarray(values, np.float64).reshape(-1)
  if values.size == 0:
    raise ValueError("mean_and_stderr: no values")
  stderr = values.std(ddof=1) / math.sqrt(values.size) if values.size > 1 else 0.0
  return {"mean": float(values.mean()), "stderr": float(stderr)}


def code_mse(z_a, z_b, top_dim: int) -> dict[str, float]:
  """Mean squared difference of paired codes `[N, D]`, over all dims and over the last top_dim."""
  z_a = np.asarray(z_a, np.float64)
  z_b = np.asarray(z_b, np.float64)
  if z_a.shape != z_b.shape:
    raise ValueError(f"code_mse: z_A {z_a.shape} and z_B {z_b.shape} differ in shape")
  z_a = z_a.reshape(len(z_a), -1)
  z_b = z_b.reshape(len(z_b), -1)
  if not 0 < top_dim <= z_a.shape[1]:
    raise ValueError(f"code_mse: top_dim={top_dim} must be in [1, D={z_a.shape[1]}]")
  diff = np.square(z_a - z_b)
  return {"all": float(diff.mean()), "top": float(diff[:, -top_dim:].mean())}


def independent_pixel_bits(train_images, test_images, n_bits: int = 8) -> float:
  """Test bits/dim of the simplest density model: every pixel (and channel) independent.

  Each position d gets its own categorical over the 2**n_bits levels, fitted on the training
  images with add-one (Laplace) smoothing: p_d(k) = (count_d(k) + 1) / (N + 2**n_bits). The
  result is the mean over test images and positions of -log2 p_d(x_d): a floor that any image
  model should beat (Fashion-MNIST zero-padded to 32x32: 3.51).
  """
  levels = 2**n_bits
  shift = 8 - n_bits
  train = (np.asarray(train_images, np.int64) >> shift).reshape(len(train_images), -1)
  test = (np.asarray(test_images, np.int64) >> shift).reshape(len(test_images), -1)
  if train.shape[1] != test.shape[1]:
    raise ValueError(
      f"independent_pixel_bits: train images have {train.shape[1]} values each, "
      f"test images {test.shape[1]}"
    )
  positions = np.arange(train.shape[1])
  counts = np.ones((train.shape[1], levels))
  np.add.at(counts, (np.broadcast_to(positions, train.shape), train), 1.0)
  log_p = np.log2(counts / counts.sum(axis=1, keepdims=True))
  return float(-log_p[positions[None, :], test].mean())


def top_dim_of(data_dim: int, n_levels: int) -> int:
  """The top block's size: every split but the last level halves what goes up, D / 2**(L-1)."""
  if data_dim % 2 ** (n_levels - 1):
    raise ValueError(
      f"top_dim_of: D={data_dim} is not divisible by 2**(n_levels-1) with n_levels={n_levels}"
    )
  return data_dim // 2 ** (n_levels - 1)


def ssim_filter_size(image_shape) -> int:
  """tf.image.ssim's 11x11 window, shrunk for images smaller than it."""
  return int(min(11, image_shape[0], image_shape[1]))


def psnr_per_image(predicted, target) -> np.ndarray:
  """10 log10(1 / mse_i) `[N]` of uint8 images in [0, 1] scale, mse_i floored at 1e-10."""
  p = np.asarray(predicted, np.float64) / 255.0
  t = np.asarray(target, np.float64) / 255.0
  mse = np.square(p - t).reshape(len(p), -1).mean(axis=1)
  return 10.0 * np.log10(1.0 / np.maximum(mse, PSNR_MSE_FLOOR))


def image_metrics(predicted, target) -> dict[str, float]:
  """MSE, PSNR and SSIM of uint8 images `[N, H, W, C]` in [0, 1] scale, means over images."""
  predicted = np.asarray(predicted)
  target = np.asarray(target)
  if predicted.shape != target.shape:
    raise ValueError(f"image_metrics: shapes {predicted.shape} and {target.shape} differ")
  p = predicted.astype(np.float64) / 255.0
  t = target.astype(np.float64) / 255.0
  per_image_mse = np.square(p - t).reshape(len(p), -1).mean(axis=1)
  psnr = psnr_per_image(predicted, target)
  ssim = tf.image.ssim(
    tf.constant(p, tf.float32),
    tf.constant(t, tf.float32),
    max_val=1.0,
    filter_size=ssim_filter_size(predicted.shape[1:]),
  )
  return {
    "mse": float(per_image_mse.mean()),
    "psnr": float(psnr.mean()),
    "ssim": float(np.mean(ssim.numpy())),
  }


def nearest_neighbour_partner(
  queries, train_inputs, train_partners, chunk: int = 256
) -> np.ndarray:
  """For each query image, the partner of its nearest training input (squared L2, pixel space).

  Distances are computed exactly: uint8 images make integer dot products, which float64 holds
  without rounding, so ties are real ties, and `argmin` takes the first.

  Args:
    queries: uint8 `[N, H, W, C]`.
    train_inputs: uint8 `[M, H, W, C]`, the same domain as the queries.
    train_partners: `[M, ...]`, the other side of each training pair.
    chunk: queries per distance block (memory is chunk * M float64s).
  """
  queries = np.asarray(queries)
  train_inputs = np.asarray(train_inputs)
  if len(train_inputs) != len(train_partners) or len(train_inputs) == 0:
    raise ValueError(
      f"nearest_neighbour_partner: {len(train_inputs)} training inputs and "
      f"{len(train_partners)} partners: need as many, at least one"
    )
  train = train_inputs.reshape(len(train_inputs), -1).astype(np.float64)
  train_sq = np.einsum("ij,ij->i", train, train)
  index = np.empty(len(queries), np.int64)
  for start in range(0, len(queries), chunk):
    q = queries[start : start + chunk].reshape(-1, train.shape[1]).astype(np.float64)
    distances = train_sq[None, :] - 2.0 * (q @ train.T)  # + |q|^2, the same for every column
    index[start : start + len(q)] = np.argmin(distances, axis=1)
  return np.asarray(train_partners)[index]


# -------------------------------------------------------------------------------------------------
# Running a model.


def model_info(module) -> dict[str, Any]:
  """Shapes and sizes from a serving module or SavedModel (its `info()` function)."""
  info = {k: v.numpy() for k, v in module.info().items()}
  return {
    "image_shape": tuple(int(d) for d in info["image_shape"]),
    "n_bits_x": int(info["n_bits_x"]),
    "n_classes": int(info["n_classes"]),
    "data_dim": int(info["data_dim"]),
    "top_dim": int(info["top_dim"]),
    "n_domains": int(info["n_domains"]),
    # SavedModels exported before the coupled prior have no such key: not coupled.
    "coupled": int(info.get("coupled", 0)),
  }


def run_batches(fn, key, batch_size, images, labels=None, seed=None, temperature=None, seeds=None):
  """Calls fn(images[, temperature][, seeds or seed][, labels]) batch by batch; concatenates `key`.

  With `seeds` (int `[N]`, one per image) each batch gets its rows' seeds, so a row draws the
  same in any batch; with `seed` (an int), batch i gets the scalar seed + i (one seed per call:
  the dequantization noise of `bits_per_dim_noise_d`, and the translations of a SavedModel
  exported before per-row seeds). With `temperature` (a float), every row of the batch gets it.
  A batch the module refuses because the flow overflowed on some rows (a pair whose codes are
  not aligned translates some inputs to inf) is run again row by row, and each row that
  overflows comes out as zeros: black images (a translation has its input's shape), as the
  flow's own output cast to uint8 gave before the module checked it. With `seeds` a row run
  alone is the batch's row; with one `seed` per call it keeps the batch's seed, so its noise
  differs from the batch's: it measures a failure, it does not reproduce the batch.
  """
  out = []
  for i, start in enumerate(range(0, len(images), batch_size)):
    stop = start + batch_size
    batch = images[start:stop]
    rows = None if labels is None else labels[start:stop]
    batch_seeds = None if seeds is None else seeds[start:stop]
    call = functools.partial(_call, fn, key, temperature, None if seed is None else seed + i)
    try:
      out.append(call(batch, rows, batch_seeds))
    except tf.errors.InvalidArgumentError as e:
      if key != "images" or signature_inputs.OVERFLOW not in str(e):
        raise
      out.append(
        np.concatenate(
          [_row_or_zeros(call, batch, rows, batch_seeds, j) for j in range(len(batch))]
        )
      )
  return np.concatenate(out, axis=0)


def _call(fn, key, temperature, seed, batch, labels, seeds):
  args = [tf.constant(batch)]
  if temperature is not None:
    args.append(tf.fill([len(batch)], tf.constant(temperature, tf.float32)))
  if seeds is not None:
    args.append(tf.constant(seeds, tf.int32))
  if seed is not None:
    args.append(tf.constant(seed, tf.int32))
  if labels is not None:
    args.append(tf.constant(labels, tf.int32))
  return fn(*args)[key].numpy()


def _row_or_zeros(call, batch, labels, seeds, j):
  """Row j's image through `call`, or zeros of its shape if the flow overflows on it."""
  row = slice(j, j + 1)
  try:
    return call(
      batch[row], None if labels is None else labels[row], None if seeds is None else seeds[row]
    )
  except tf.errors.InvalidArgumentError as e:
    if signature_inputs.OVERFLOW not in str(e):
      raise
    return np.zeros_like(batch[row])


def _run_pairs(fn, batch_size, images_a, images_b, labels=None, seed=None):
  """Calls fn(images_a, images_b[, seed][, labels]) batch by batch: {output: concatenated}."""
  out: dict[str, list] = {}
  for i, start in enumerate(range(0, len(images_a), batch_size)):
    stop = start + batch_size
    args = [tf.constant(images_a[start:stop]), tf.constant(images_b[start:stop])]
    if seed is not None:
      args.append(tf.constant(seed + i, tf.int32))
    if labels is not None:
      args.append(tf.constant(labels[start:stop], tf.int32))
    for key, value in fn(*args).items():
      out.setdefault(key, []).append(value.numpy())
  return {key: np.concatenate(parts) for key, parts in out.items()}


def draw_metrics(draws, target) -> dict[str, float]:
  """Best-of-k and mean PSNR and the per-pixel spread of k translations `[k, N, H, W, C]`.

  Returns:
    {"psnr_best": mean_i max_j PSNR_ij, "psnr_mean": mean_ij PSNR_ij, "spread": mean over
    images and pixels of std_j(draw_j / 255) (ddof = 0)}.
  """
  draws = np.asarray(draws)
  if draws.ndim != 5 or draws.shape[1:] != np.shape(target):
    raise ValueError(f"draw_metrics: draws {draws.shape} are not k x {np.shape(target)}")
  psnr = np.stack([psnr_per_image(d, target) for d in draws])  # [k, N]
  spread = (draws.astype(np.float64) / 255.0).std(axis=0)
  return {
    "psnr_best": float(psnr.max(axis=0).mean()),
    "psnr_mean": float(psnr.mean()),
    "spread": float(spread.mean()),
  }


def check_draws(temperature: float, draws: int) -> None:
  """ValueError naming the argument unless 0 <= temperature (finite) and draws >= 1."""
  if not (math.isfinite(temperature) and temperature >= 0):
    raise ValueError(f"evaluate: temperature must be finite and >= 0, got {temperature!r}")
  if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
    raise ValueError(f"evaluate: draws must be an integer >= 1, got {draws!r}")


def _coupled_bits(module, domains, labels, batch_size, seed):
  mid = _run_pairs(module.coupled_bits_per_dim, batch_size, domains["a"], domains["b"], labels)
  noisy = _run_pairs(
    module.coupled_bits_per_dim_noise, batch_size, domains["a"], domains["b"], labels, seed
  )
  return {
    key: {"noise": mean_and_stderr(noisy[key]), "mid_bin": mean_and_stderr(mid[key])}
    for key in ("joint", "b_given_a", "a_given_b")
  }


def _sampled_translations(module, domains, labels, batch_size, seed, temperature, draws):
  """(translation_sampled metrics, {direction: the first FIGURE_DRAWS draws of 8 inputs},
  {direction: every draw [draws, N, H, W, C]})."""
  figure, every = {}, {}
  n = len(domains["a"])
  n_batches = -(-n // batch_size)
  per_row = seed_per_row(module)
  result: dict[str, Any] = {"temperature": float(temperature), "draws": int(draws)}
  for source, target in (("a", "b"), ("b", "a")):
    direction = f"{source}2{target}"
    if per_row:
      fn = getattr(module, f"translate_{direction}_sample")
      seeding = [dict(seeds=seeds_lib.per_row(seed + (j + 1) * n, n)) for j in range(draws)]
    else:  # an export with one seed per call, taken by translate_<direction> itself
      fn = getattr(module, f"translate_{direction}")
      seeding = [dict(seed=seed + (j + 1) * n_batches) for j in range(draws)]
    translations = [
      run_batches(
        fn, "images", batch_size, domains[source], labels, temperature=temperature, **seeding[j]
      )
      for j in range(draws)
    ]
    translations = np.stack(translations)
    result[direction] = draw_metrics(translations, domains[target])
    figure[direction] = list(translations[:FIGURE_DRAWS, :8])
    every[direction] = translations
  return result, figure, every


def seed_per_row(module) -> bool:
  """Whether the module's draws take a seed per row (an export older than that takes one)."""
  return "seed_per_row" in module.info()


def evaluate(
  module,
  images_a,
  images_b=None,
  labels=None,
  train_a=None,
  train_b=None,
  batch_size: int = 64,
  seed: int = 0,
  temperature: float = config_lib.TEMPERATURE,
  draws: int = 8,
  judges=None,
  feature_nets=None,
  classes=None,
  n_samples: int = sample_quality.N_SAMPLES,
  sample_temperatures=sample_quality.TEMPERATURES,
) -> dict[str, Any]:
  """All the metrics of the module docstring on a paired test set.

  Args:
    module: a `GlowServingModule` or a SavedModel reloaded with `tf.saved_model.load`.
    images_a, images_b: uint8 `[N, H, W, C]` test pairs (images_b None for a single model).
    labels: int `[N]` classes, for a class-conditional model.
    train_a, train_b: uint8 training pairs for the nearest-neighbour baseline (None: skipped).
    batch_size: images per call of the model.
    seed: seeds the dequantization noise of the noisy bits/dim (batch i uses seed + i), the
      draws of the sampled translations (a seed per row: see the module docstring) and the
      samples (sample k from seed + k).
    temperature: T >= 0 of the sampled translations of a coupled pair.
    draws: k >= 1, translations per test input at T (a coupled pair only).
    judges: {side: a `quality.judge.Classifier`} of the sides to judge (`sample_quality`):
      `n_samples` samples per side at each of `sample_temperatures`, and, with `classes`
      (int `[N]`, the test pairs' labels), the label agreement of the translations.
    feature_nets: {side: a `quality.judge.FeatureNet`}: the Frechet distance of the samples in
      a user's feature space (FID with Inception-v3).

  Returns:
    {"n_test", "model", "metrics", "figure_images"}: `metrics` nested as in the module docstring;
    `figure_images` (not JSON) holds a few inputs / translations (/ draws) / partners for
    `save_figure`.
  """
  check_draws(temperature, draws)
  info = model_info(module)
  # translate_<direction> is the T = 0 translation of images alone, but for a SavedModel
  # exported between the coupled prior and per-row seeds: that one also takes T and a seed.
  translate_takes_noise = "coupled" in module.info() and not seed_per_row(module)
  images_a = np.asarray(images_a, np.uint8)
  n = len(images_a)
  if n == 0:
    raise ValueError("evaluate: no test images")
  paired = images_b is not None
  if paired and info["n_domains"] < 2:
    raise ValueError("evaluate: test pairs given but the model has domain A only")
  if info["n_classes"]:
    if labels is None:
      raise ValueError(
        f"evaluate: a class-conditional model ({info['n_classes']} classes) needs labels"
      )
    labels = np.asarray(labels, np.int32).reshape(-1)
  else:
    labels = None
  domains = {"a": images_a}
  if paired:
    domains["b"] = np.asarray(images_b, np.uint8)
    if domains["b"].shape != images_a.shape:
      raise ValueError(
        f"evaluate: images_a {images_a.shape} and images_b {domains['b'].shape} differ in shape"
      )

  metrics: dict[str, Any] = {"bits_per_dim": {}}
  codes = {}
  for d, images in domains.items():
    noisy = run_batches(
      getattr(module, f"bits_per_dim_noise_{d}"),
      "bits_per_dim",
      batch_size,
      images,
      labels,
      seed=seed,
    )
    mid = run_batches(
      getattr(module, f"bits_per_dim_{d}"), "bits_per_dim", batch_size, images, labels
    )
    metrics["bits_per_dim"][d] = {"noise": mean_and_stderr(noisy), "mid_bin": mean_and_stderr(mid)}
    if paired:
      codes[d] = run_batches(getattr(module, f"encode_{d}"), "eps", batch_size, images, labels)
  figure, translations = {}, {}
  if paired:
    metrics["code_mse"] = code_mse(codes["a"], codes["b"], info["top_dim"])
    # The training reference set carries no labels, so a class-conditional pair skips this.
    if train_a is not None and train_b is not None and labels is None:
      train_codes = [
        run_batches(getattr(module, f"encode_{d}"), "eps", batch_size, np.asarray(x[:n], np.uint8))
        for d, x in (("a", train_a), ("b", train_b))
      ]
      metrics["code_mse_train"] = code_mse(*train_codes, info["top_dim"])
    metrics["translation"] = {}
    train = {"a": train_a, "b": train_b}
    for source, target in (("a", "b"), ("b", "a")):
      direction = f"{source}2{target}"
      translated = run_batches(
        getattr(module, f"translate_{direction}"),
        "images",
        batch_size,
        domains[source],
        labels,
        seed=seed if translate_takes_noise else None,
        temperature=0.0 if translate_takes_noise else None,
      )
      truth = domains[target]
      results = {
        "model": image_metrics(translated, truth),
        "identity": image_metrics(domains[source], truth),
      }
      if train[source] is not None and train[target] is not None:
        neighbour = nearest_neighbour_partner(domains[source], train[source], train[target])
        results["nearest_neighbour"] = image_metrics(neighbour, truth)
      metrics["translation"][direction] = results
      figure[direction] = (domains[source][:8], translated[:8], truth[:8])
      translations[direction] = {0.0: translated}
    if info["coupled"]:
      metrics["coupled_bits_per_dim"] = _coupled_bits(module, domains, labels, batch_size, seed)
      metrics["translation_sampled"], figure_draws, every = _sampled_translations(
        module, domains, labels, batch_size, seed, temperature, draws
      )
      for direction, drawn in every.items():
        translations[direction][float(temperature)] = drawn
      for direction, rows in figure_draws.items():
        source, translated, truth = figure[direction]
        figure[direction] = (source, translated, *rows, truth)
  sample_args = dict(
    test_images=domains,
    n=n_samples,
    temperatures=sample_temperatures,
    seed=seed,
    batch_size=batch_size,
    n_classes=info["n_classes"],
  )
  samples_figure = None
  if judges:
    metrics["sample_quality"], samples_figure = sample_quality.judge_samples(
      module, judges, **sample_args
    )
    if classes is not None and translations:
      metrics["translation_labels"] = sample_quality.translation_labels(
        judges, translations, classes
      )
  if feature_nets:
    metrics["feature_model"], _ = sample_quality.judge_samples(module, feature_nets, **sample_args)
  report = {"n_test": n, "model": info, "metrics": metrics, "figure_images": figure}
  if samples_figure is not None:
    report["sample_images"] = samples_figure
  return report
