"""glow-bench's TensorFlow contenders: callables that each run one timed unit of work.

glow_tf2's training step (one model, or the joint step of two with the code loss), its encode and
decode, and tfp.bijectors.Glow's training step at the closest settings, each built on a fixed
batch of real images and returning a callable that runs once and waits for the result. The
PyTorch contender is tools/bench_torch.py.
"""

import math

import numpy as np

from glow_tf2_tools import bench_configs


def image_batch(bench: bench_configs.BenchConfig, batch=None, seed=0):
  """uint8 `[batch, size, size, channels]` real images as a constant (batch: `bench.batch`)."""
  import tensorflow as tf

  from glow_tf2_tools import sample_images

  return tf.constant(
    sample_images.real_images(batch or bench.batch, bench.image_size, bench.channels, seed)
  )


def make_train_step(
  bench: bench_configs.BenchConfig,
  *,
  jit: bool = False,
  checkpointing: bool = False,
  branches: int = 1,
):
  """A callable running one Adam step of one glow_tf2 model on a fixed real batch."""
  import tensorflow as tf

  import glow_tf2
  from glow_tf2.train import optim

  glow = glow_tf2.Glow(
    bench.glow_config(), seed=0, gradient_checkpointing=checkpointing, branches=branches
  )
  images = image_batch(bench)
  glow.initialize(glow_tf2.preprocess(images, 8, noise=False))
  optimizer = optim.Adam(1e-4)
  variables = glow.trainable_variables

  @tf.function(jit_compile=jit, autograph=False)
  def step(images):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(glow_tf2.bits_per_dim(glow, images))
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  return lambda: step(images).numpy(), glow


def make_joint_step(bench: bench_configs.BenchConfig, branches: int = 1):
  """Two models and the code loss (code_last), each model updated by its own loss."""
  import tensorflow as tf

  import glow_tf2
  from glow_tf2 import losses as losses_lib
  from glow_tf2.train import optim

  config = bench.glow_config()
  glows = [
    glow_tf2.Glow(config, seed=s, branches=branches, name=n)
    for s, n in ((0, "glow_a"), (1, "glow_b"))
  ]
  images = image_batch(bench)
  pair = (images, 255 - images)
  for glow, side in zip(glows, pair):
    glow.initialize(glow_tf2.preprocess(side, 8, noise=False))
  optimizers = [optim.Adam(1e-4) for _ in glows]
  top = config.top_dim

  @tf.function(autograph=False)
  def step(images_a, images_b):
    with tf.GradientTape(persistent=True) as tape:
      bits, codes = [], []
      for glow, side in zip(glows, (images_a, images_b)):
        log_prob, eps = losses_lib.log_prob_and_eps(glow, glow_tf2.preprocess(side, 8))
        bits.append(tf.reduce_mean(losses_lib.bits_from_log_prob(log_prob, config.data_dim, 8)))
        codes.append(eps[:, -top:])
      code_loss = tf.reduce_mean(tf.square(codes[0] - codes[1]))
      losses = [b + code_loss for b in bits]
    for glow, optimizer, loss in zip(glows, optimizers, losses):
      grads = tape.gradient(loss, glow.trainable_variables)
      optimizer.apply_gradients(zip(grads, glow.trainable_variables))
    return losses[0]

  return lambda: step(*pair).numpy()


def make_tfp_train_step(bench: bench_configs.BenchConfig, branches: int = 1):
  """tfp.bijectors.Glow at the closest settings, same loss and optimizer; with branches > 1 the
  batch is split into that many log_prob calls, as `Glow(branches=...)` does for glow_tf2."""
  import tensorflow as tf
  import tensorflow_probability as tfp
  from tensorflow_probability.python.bijectors import glow as tfp_glow

  from glow_tf2.train import optim

  width = bench.width
  bijector = tfp.bijectors.Glow(
    output_shape=(bench.image_size, bench.image_size, bench.channels),
    num_glow_blocks=bench.n_levels,
    num_steps_per_block=bench.depth,
    coupling_bijector_fn=lambda shape: tfp_glow.GlowDefaultNetwork(shape, num_hidden=width),
    exit_bijector_fn=tfp_glow.GlowDefaultExitNetwork,
    use_actnorm=True,
    seed=0,
  )
  d = bench.image_size**2 * bench.channels
  model = tfp.distributions.TransformedDistribution(
    tfp.distributions.Sample(tfp.distributions.Normal(0.0, 1.0), [d]), bijector
  )
  images = image_batch(bench)
  x = tf.cast(images, tf.float32) / 256.0 - 0.5
  model.log_prob(x)  # creates the variables (and runs TFP's data-dependent actnorm init)
  variables = bijector.trainable_variables
  optimizer = optim.Adam(1e-4)

  @tf.function(autograph=False)
  def step(images):
    x = tf.cast(images, tf.float32) / 256.0 - 0.5
    x += tf.random.uniform(tf.shape(x), 0.0, 1.0 / 256.0)
    with tf.GradientTape() as tape:
      log_prob = tf.concat([model.log_prob(part) for part in tf.split(x, branches)], 0)
      loss = -tf.reduce_mean(log_prob - d * math.log(256.0)) / (d * math.log(2.0))
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  return lambda: step(images).numpy(), sum(int(np.prod(v.shape)) for v in variables)


def make_codec(bench: bench_configs.BenchConfig, batch: int = 64, branches: int = 1):
  """(encode, decode) callables on a batch of `batch` real images."""
  import tensorflow as tf

  import glow_tf2

  config = bench.glow_config()
  glow = glow_tf2.Glow(config, seed=0, branches=branches)
  images = image_batch(bench, batch)
  glow.initialize(glow_tf2.preprocess(images, 8, noise=False))
  encode = tf.function(
    lambda im: glow.encode(glow_tf2.preprocess(im, 8, noise=False))[0], autograph=False
  )
  decode = tf.function(lambda eps: glow_tf2.postprocess(glow.decode(eps)[0], 8), autograph=False)
  eps = encode(images)
  return lambda: encode(images).numpy(), lambda: decode(eps).numpy()
