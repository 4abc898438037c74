"""The whole Glow bijector: shapes, layout, round trips, log-det, init, the distribution, training."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import glow_tf2
from glow_tf2.flows import shared_trace
from glow_tf2.flows import squeeze as squeeze_lib
from tests import helpers

tfb = tfp.bijectors


def tiny(**overrides):
  """tests.helpers' tiny Glow at 8x8x3 and 2 steps a level."""
  return helpers.tiny_glow_config(**{"image_shape": (8, 8, 3), "depth": 2, **overrides})


def x_of(images, n_bits=8):
  return glow_tf2.preprocess(images, n_bits, noise=False)


def initialized(config, images, seed=0, perturb=0.0):
  glow = helpers.initialized_glow(config, images, seed)
  if perturb:
    helpers.perturb(glow, scale=perturb, seed=seed)
  return glow


def twin(glow, **options):
  """A Glow of the same config and weights as glow, built with other execution options."""
  # The same seed: it also fixes what is not a variable (LU permutations, shuffles).
  other = glow_tf2.Glow(glow.config, seed=glow.parameters["seed"], **options)
  for a, b in zip(other.variables, glow.variables):
    a.assign(b)
  return other


def _np_squeeze(h: np.ndarray) -> np.ndarray:
  """[N, H, W, C] -> [N, H/2, W/2, 4C], channel c * 4 + dy * 2 + dx (Glow's order), in numpy."""
  n, height, width, c = h.shape
  out = np.empty((n, height // 2, width // 2, 4 * c), h.dtype)
  for dy in range(2):
    for dx in range(2):
      out[..., dy * 2 + dx :: 4] = h[:, dy::2, dx::2, :]
  return out


def _affine_only_glow(config, seed=0):
  """A Glow whose only non-trivial parts are per-channel affine maps, and those maps.

  With reverse permutations and additive couplings whose output conv is still zero, a step of
  flow is ActNorm then a channel reversal; split and top priors with a zero kernel give a constant
  mean and log-std per channel (their bias). Random values for exactly those variables make the
  encoding one that numpy can reproduce without any of the library's layers.
  """
  glow = glow_tf2.Glow(config, seed=seed)
  rng = np.random.default_rng(seed + 1)
  actnorms = []
  for steps in glow.steps:
    level = []
    for step in steps:
      c = step.actnorm.channels
      bias, logs = rng.normal(0, 0.5, c), rng.normal(0, 0.1, c)
      step.actnorm.bias.assign(bias.astype(np.float32))
      step.actnorm.logs.assign(logs.astype(np.float32))
      level.append((bias, 3.0 * logs))  # the stored logs are a third of the log-scale
    actnorms.append(level)
  priors = []
  for prior in [split.network for split in glow.splits] + [glow.top.network]:
    c2 = prior.bias.shape[0]
    bias = rng.normal(0, 0.3, c2)
    prior.bias.assign(bias.astype(np.float32))
    priors.append((bias[: c2 // 2], bias[c2 // 2 :]))  # (mean, logs): the two channel halves
  return glow, actnorms, priors


def _np_encode(x, actnorms, priors):
  """(eps [N, D], log_det [N]) of `_affine_only_glow`'s model, in float64 numpy."""
  h = _np_squeeze(x.astype(np.float64))
  n = h.shape[0]
  log_det = np.zeros(n)
  blocks = []
  for level, steps in enumerate(actnorms):
    for bias, log_scale in steps:
      h = ((h + bias) * np.exp(log_scale))[..., ::-1]
      log_det += h.shape[1] * h.shape[2] * log_scale.sum()
    mean, logs = priors[level]
    if level < len(actnorms) - 1:
      half = h.shape[-1] // 2
      blocks.append(((h[..., half:] - mean) * np.exp(-logs)).reshape(n, -1))
      log_det -= h.shape[1] * h.shape[2] * logs.sum()
      h = _np_squeeze(h[..., :half])
    else:
      blocks.append(((h - mean) * np.exp(-logs)).reshape(n, -1))
      log_det -= h.shape[1] * h.shape[2] * logs.sum()
  return np.concatenate(blocks, -1), log_det


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("n_levels", [1, 2, 3, 4])
def test_encoding_for_every_level_count_is_the_layered_map(channels, n_levels):
  config = tiny(
    image_shape=(16, 16, channels),
    n_levels=n_levels,
    depth=2,
    permutation="reverse",
    coupling="additive",
    learntop=True,
  )
  glow, actnorms, priors = _affine_only_glow(config)
  images = helpers.real_images(2, config.image_shape)
  x = x_of(images)
  eps, log_det = glow.encode(x)
  expected_eps, expected_log_det = _np_encode(x.numpy(), actnorms, priors)
  assert eps.shape == (2, 16 * 16 * channels) and log_det.shape == (2,)
  np.testing.assert_allclose(eps.numpy(), expected_eps, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(log_det.numpy(), expected_log_det, rtol=1e-5, atol=1e-4)
  # split_eps cuts eps into the levels' blocks, finest first, each row-major [h, w, c].
  blocks = glow.split_eps(eps)
  assert [tuple(b.shape[1:]) for b in blocks] == list(config.eps_shapes)
  offset = 0
  for block in blocks:
    size = int(np.prod(block.shape[1:]))
    np.testing.assert_array_equal(
      block.numpy().reshape(2, -1), eps.numpy()[:, offset : offset + size]
    )
    offset += size
  assert offset == config.data_dim == 16 * 16 * channels
  assert glow.top_dim == int(np.prod(config.eps_shapes[-1])) == blocks[-1].shape[1:].num_elements()
  # Decoding gives back x and the opposite log-det.
  x_back, fldj = glow.decode(eps)
  np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=1e-5)
  np.testing.assert_allclose(fldj.numpy(), -expected_log_det, rtol=1e-5, atol=1e-4)
  # TFP's event-shape bookkeeping agrees.
  assert glow.forward_event_shape([config.data_dim]) == list(config.image_shape)
  assert glow.inverse_event_shape(list(config.image_shape)) == [config.data_dim]


def test_eps_layout_is_levels_finest_first_flattened_row_major():
  config = tiny(
    image_shape=(8, 8, 1),
    n_levels=2,
    depth=1,
    permutation="reverse",
    coupling="additive",
    learntop=False,
  )
  glow = glow_tf2.Glow(config, seed=0)
  # At init (zero convs, additive coupling, reverse permutation, actnorm at identity, zero priors)
  # the encoding is a pure reshuffle of x we can reproduce by hand.
  x = tf.constant(np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype(np.float32))
  eps, log_det = glow.encode(x)
  h = squeeze_lib.squeeze(x)[..., ::-1]  # level 0: squeeze, reverse; [2, 4, 4, 4]
  eps0 = h[..., 2:]  # split: second half leaves
  h = squeeze_lib.squeeze(h[..., :2])[..., ::-1]  # level 1 (top): squeeze, reverse; [2, 2, 2, 8]
  expected = tf.concat([tf.reshape(eps0, [2, -1]), tf.reshape(h, [2, -1])], -1)
  np.testing.assert_allclose(eps.numpy(), expected.numpy(), atol=1e-6)
  np.testing.assert_allclose(log_det.numpy(), 0.0, atol=1e-6)


@pytest.mark.parametrize(
  "permutation,coupling",
  [("lu", "affine"), ("conv", "additive"), ("shuffle", "affine"), ("reverse", "additive")],
)
def test_round_trips_on_real_images(permutation, coupling):
  config = tiny(permutation=permutation, coupling=coupling)
  images = helpers.real_images(4, config.image_shape)
  glow = initialized(config, images, perturb=0.05)
  x = x_of(images)
  eps = glow.inverse(x)
  np.testing.assert_allclose(glow.forward(tf.identity(eps)).numpy(), x.numpy(), atol=1e-4)
  z = tf.constant(np.random.default_rng(1).normal(size=(3, config.data_dim)).astype(np.float32))
  np.testing.assert_allclose(
    glow.inverse(tf.identity(glow.forward(z))).numpy(), z.numpy(), atol=1e-3
  )
  # Decoding what was encoded gives back the very pixels.
  np.testing.assert_array_equal(glow_tf2.postprocess(glow.decode(eps)[0]).numpy(), images)


def test_log_det_matches_jacobian_whole_glow():
  config = tiny(image_shape=(4, 4, 3), n_levels=2, depth=2, width=4)
  # Real photo patches: ActNorm init on tiny digit crops would meet all-black channels (std 0, a
  # scale of 1e6) and make the float32 Jacobian meaningless.
  # ActNorm init wants many samples per channel: the top level here is 1x1.
  glow = initialized(config, helpers.real_images(64, config.image_shape, seed=1), perturb=0.05)
  images = helpers.real_images(3, config.image_shape)
  eps = glow.inverse(x_of(images))
  fldj = glow.forward_log_det_jacobian(tf.identity(eps)).numpy()
  expected = helpers.jacobian_log_det(lambda e: glow.decode(e)[0], eps)
  np.testing.assert_allclose(fldj, expected, rtol=1e-3, atol=1e-3)
  ildj = glow.inverse_log_det_jacobian(x_of(images)).numpy()
  np.testing.assert_allclose(ildj, -fldj, rtol=1e-4, atol=1e-3)


def test_initialize_normalizes_and_is_not_identity():
  config = tiny(image_shape=(16, 16, 3), depth=2, width=16)
  images = helpers.real_images(32, config.image_shape)
  glow = initialized(config, images)
  x = x_of(images)
  h = squeeze_lib.squeeze(x)
  step = glow.steps[0][0]
  out = step.actnorm.normalize(h)
  mean, var = tf.nn.moments(out, [0, 1, 2])
  np.testing.assert_allclose(mean.numpy(), 0.0, atol=1e-4)
  np.testing.assert_allclose(var.numpy(), 1.0, atol=1e-3)
  # The coupling network's first hidden ActNorm is normalised on what reaches it too.
  h1, _ = step.permutation._inverse_and_log_det(out)
  net = step.coupling.network
  hidden = net.norm_in.normalize(net.conv_in(h1[..., : step.coupling.half]))
  mean, var = tf.nn.moments(hidden, [0, 1, 2])
  np.testing.assert_allclose(mean.numpy(), 0.0, atol=1e-4)
  np.testing.assert_allclose(var.numpy(), 1.0, atol=2e-3)
  # After init the flow is not the identity reshuffle: a fresh model encodes differently.
  fresh = glow_tf2.Glow(config, seed=0)
  assert np.abs(glow.encode(x)[0].numpy() - fresh.encode(x)[0].numpy()).max() > 0.1


def test_variable_count_and_every_weight_trains():
  config = tiny(n_classes=3)
  images = helpers.real_images(8, config.image_shape)
  labels = tf.constant(np.arange(8) % 3, tf.int32)
  glow = initialized(config, images)
  # Per step: actnorm 2, LU 3 (lower, upper, log_s), coupling net 9; per split 3; top 3 + 3.
  per_step = 2 + 3 + (1 + 2 + 1 + 2 + 3)
  expected = config.n_levels * config.depth * per_step + (config.n_levels - 1) * 3 + 3 + 3
  assert len(glow.trainable_variables) == expected
  before = [v.numpy().copy() for v in glow.trainable_variables]
  optimizer = tf.keras.optimizers.Adam(1e-2)

  @tf.function
  def step(images, labels):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(glow_tf2.bits_per_dim(glow, images, labels))
    grads = tape.gradient(loss, glow.trainable_variables)
    optimizer.apply_gradients(zip(grads, glow.trainable_variables))

  # Zero-initialised output scales get a gradient only once the layer before them has moved.
  for _ in range(3):
    step(images, labels)
  unchanged = [
    v.name for v, b in zip(glow.trainable_variables, before) if np.allclose(v.numpy(), b)
  ]
  assert not unchanged


def test_ycond_changes_log_prob():
  config = tiny(n_classes=4)
  images = helpers.real_images(4, config.image_shape)
  glow = initialized(config, images)
  helpers.perturb(glow.top, scale=0.3)
  x = x_of(images)
  lp0 = glow.distribution(labels=tf.constant([0, 0, 0, 0])).log_prob(x)
  lp1 = glow.distribution(labels=tf.constant([1, 2, 3, 1])).log_prob(tf.identity(x))
  assert np.abs(lp0.numpy() - lp1.numpy()).min() > 1e-2
  samples = glow.distribution(labels=tf.constant([0, 1, 2])).sample(3)
  assert samples.shape == (3,) + config.image_shape


def test_bits_per_dim_agrees_with_distribution_log_prob():
  config = tiny(n_bits_x=5)
  images = helpers.real_images(4, config.image_shape)
  glow = initialized(config, images, perturb=0.05)
  bits = glow_tf2.bits_per_dim(glow, images, noise=False).numpy()
  x = glow_tf2.preprocess(images, 5, noise=False)
  log_prob = glow.distribution().log_prob(x).numpy().astype(np.float64)
  d = config.data_dim
  expected = -(log_prob - d * math.log(2**5)) / (d * math.log(2))
  np.testing.assert_allclose(bits, expected, rtol=1e-6)


def test_log_prob_runs_each_step_of_flow_once(monkeypatch):
  config = tiny()
  glow = glow_tf2.Glow(config, seed=0)
  calls = []
  original = shared_trace.call
  monkeypatch.setattr(
    shared_trace,
    "call",
    lambda module, method, *a: calls.append(method) or original(module, method, *a),
  )
  x = x_of(helpers.real_images(2, config.image_shape))
  glow.distribution().log_prob(x)  # TransformedDistribution asks for inverse AND its log-det
  assert calls == ["_inverse_and_log_det"] * (config.n_levels * config.depth)


def test_traces_once_for_many_batches():
  config = tiny()
  glow = glow_tf2.Glow(config, seed=0)
  fn = tf.function(lambda images: glow_tf2.bits_per_dim(glow, images))
  for seed in range(3):
    fn(tf.constant(helpers.real_images(4, config.image_shape, seed=seed)))
  assert fn.experimental_get_tracing_count() == 1


def test_gradient_checkpointing_gives_the_same_gradients():
  config = tiny()
  images = tf.constant(helpers.real_images(4, config.image_shape))
  plain = initialized(config, images.numpy(), seed=3, perturb=0.05)
  checkpointed = twin(plain, gradient_checkpointing=True)

  @tf.function
  def grads(glow, images):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(glow_tf2.bits_per_dim(glow, images, noise=False))
    return loss, tape.gradient(loss, glow.trainable_variables)

  loss_a, grads_a = grads(plain, images)
  loss_b, grads_b = grads(checkpointed, images)
  np.testing.assert_allclose(loss_a.numpy(), loss_b.numpy(), rtol=1e-6)
  assert all(g is not None for g in grads_b)
  for ga, gb in zip(grads_a, grads_b):
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("branches,batch", [(3, 5), (3, 2)])
def test_branches_give_the_same_results_and_gradients(branches, batch):
  # (3, 5) splits 2 + 2 + 1 (an even split is its first two parts); (3, 2) runs as 2 branches
  # (an empty one would break grappler).
  config = tiny(n_classes=3)
  init_images = helpers.real_images(16, config.image_shape, seed=4)
  images = tf.constant(init_images[:batch])
  labels = tf.constant(np.arange(batch) % 3)
  plain = initialized(config, init_images, seed=5, perturb=0.05)
  branched = twin(plain, branches=branches)

  @tf.function
  def run(glow, images):
    with tf.GradientTape() as tape:
      eps, log_det = glow.encode(x_of(images), labels=labels)
      loss = tf.reduce_mean(glow_tf2.bits_per_dim(glow, images, labels=labels, noise=False))
    x, fldj = glow.decode(eps, labels=labels)
    return eps, log_det, x, fldj, tape.gradient(loss, glow.trainable_variables)

  expected, got = run(plain, images), run(branched, images)
  # Float32 round-off differs with the batch size oneDNN sees; the decode amplifies it most.
  for e, g in zip(expected[:4], got[:4]):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(got[2].numpy(), x_of(images).numpy(), atol=1e-4)
  for e, g in zip(expected[4], got[4]):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("coupling", ["affine", "additive"])
def test_bits_per_dim_gradient_is_the_central_difference_of_the_loss(coupling):
  # What training needs of the model: the gradient it descends is the loss's own slope. Along a
  # unit direction u of all the weights, g . u must equal (L(w + h u) - L(w - h u)) / 2h, the
  # slope measured by evaluating the loss alone. u: the gradient itself (the slope is |g|), then
  # the gradient with each variable's part flipped at random (a part given to the wrong variable
  # or scaled shows). h = 1e-2: float32 round-off and the O(h^2) term each stay under 0.3%.
  config = tiny(image_shape=(8, 8, 1), coupling=coupling, n_classes=3)
  images = helpers.real_images(8, config.image_shape, seed=2)
  labels = tf.constant(np.arange(8) % 3)
  glow = initialized(config, images, seed=1, perturb=0.05)
  variables = glow.trainable_variables

  def loss():
    bits = glow_tf2.bits_per_dim(glow, images, labels=labels, noise=False)
    return tf.reduce_mean(tf.cast(bits, tf.float64))

  with tf.GradientTape() as tape:
    value = loss()
  grads = [g.numpy().astype(np.float64) for g in tape.gradient(value, variables)]
  w0 = [v.numpy() for v in variables]
  rng = np.random.default_rng(3)
  flipped = [g * rng.choice([-1.0, 1.0]) for g in grads]
  for direction in (grads, flipped):
    scale = np.sqrt(sum(np.sum(d**2) for d in direction))
    u = [d / scale for d in direction]
    slope = sum(np.sum(g * d) for g, d in zip(grads, u))
    assert abs(slope) > 1.0, slope  # a slope worth measuring (measured 3.6 to 16)
    sides = []
    for sign in (1.0, -1.0):
      for v, w, d in zip(variables, w0, u):
        v.assign((w + sign * 1e-2 * d).astype(np.float32))
      sides.append(float(loss()))
    for v, w in zip(variables, w0):
      v.assign(w)
    np.testing.assert_allclose(slope, (sides[0] - sides[1]) / 2e-2, rtol=1e-2)
  np.testing.assert_allclose(float(loss()), float(value), rtol=1e-7)


def test_translation_through_two_differently_trained_models():
  config = tiny()
  images_a = helpers.real_images(4, config.image_shape, seed=0)
  glow_a = initialized(config, images_a, seed=1, perturb=0.05)
  glow_b = glow_tf2.Glow(config, seed=1)  # same config, same seed: equal arguments ...
  for a, b in zip(glow_b.variables, glow_a.variables):
    b.assign(a)
  helpers.perturb(glow_b, scale=0.05, seed=2)  # ... but other weights
  a2b = glow_tf2.translation(glow_a, glow_b)
  x_a = x_of(images_a)
  x_b = a2b.forward(x_a)
  by_hand = glow_b.decode(glow_a.encode(x_a)[0])[0]
  np.testing.assert_allclose(x_b.numpy(), by_hand.numpy(), atol=1e-5)
  assert np.abs(x_b.numpy() - x_a.numpy()).max() > 1e-2  # not answered from a's cache entry
  np.testing.assert_allclose(a2b.inverse(tf.identity(x_b)).numpy(), x_a.numpy(), atol=1e-4)


@pytest.mark.parametrize(
  "field,value,message",
  [
    ("image_shape", (32, 32, 2), "channels must be 1 or 3"),
    ("image_shape", (20, 20, 3), "divisible by 2\\*\\*n_levels"),
    ("n_levels", 0, "n_levels"),
    ("depth", 0, "depth"),
    ("width", -1, "width"),
    ("permutation", "random", "permutation.*'random'"),
    ("coupling", "spline", "coupling.*'spline'"),
    ("n_classes", -2, "n_classes"),
    ("n_bits_x", 9, "n_bits_x"),
  ],
)
def test_bad_config_raises(field, value, message):
  with pytest.raises(ValueError, match=message):
    glow_tf2.GlowConfig(**{field: value})


def test_conditional_model_without_labels_raises():
  glow = glow_tf2.Glow(tiny(n_classes=2), seed=0)
  with pytest.raises(ValueError, match="labels"):
    glow.encode(x_of(helpers.real_images(1, (8, 8, 3))))


@pytest.mark.parametrize("branches", [0, 2.0])
def test_bad_branches_raise(branches):
  with pytest.raises(ValueError, match="branches must be an int >= 1"):
    glow_tf2.Glow(tiny(), seed=0, branches=branches)
