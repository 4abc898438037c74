"""Images/s of encode and decode through an exported SavedModel (docs/serving.md sets the aim).

    .venv/bin/python tools/bench_export.py [--batch=64] [--depth=8] [--width=128] [--iters=20]

Builds a Glow at 32x32x3 (3 levels, affine coupling, LU 1x1 convs by default), initialises it on
real photo patches, exports it with `glow_tf2.serving.export`, reloads the SavedModel with
`tf.saved_model.load` and times the `encode_a` and `decode_a` signatures on uint8 / float32
batches, after warm-up calls. Prints one line per signature and a JSON summary, with the load
average before and after: on a shared machine, other processes' load lowers the figures.
"""

import json
import os
import tempfile
import time

from absl import app
from absl import flags

flags.DEFINE_integer("batch", 64, "images per call")
flags.DEFINE_integer("image_size", 32, "H = W of the images")
flags.DEFINE_integer("channels", 3, "C of the images")
flags.DEFINE_integer("n_levels", 3, "levels L")
flags.DEFINE_integer("depth", 8, "steps of flow per level K")
flags.DEFINE_integer("width", 128, "width of the coupling networks")
flags.DEFINE_string("permutation", "lu", "reverse | shuffle | conv | lu")
flags.DEFINE_string("coupling", "affine", "additive | affine")
flags.DEFINE_integer("iters", 20, "timed calls per signature")
flags.DEFINE_integer("warmup", 3, "untimed calls first")
flags.DEFINE_string("export_dir", None, "where to write the SavedModel (default: a temp dir)")

FLAGS = flags.FLAGS


def _photo_images(n, size, channels, seed=0):
  """Real photo patches from scikit-image (random pixels when it is missing)."""
  import numpy as np

  rng = np.random.default_rng(seed)
  try:
    from skimage import data as skdata

    photos = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket()]
  except ImportError:
    return rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)
  out = []
  for i in range(n):
    photo = photos[i % len(photos)]
    y = rng.integers(0, photo.shape[0] - size)
    x = rng.integers(0, photo.shape[1] - size)
    out.append(photo[y : y + size, x : x + size, :channels])
  return np.stack(out)


def _time(fn, warmup, iters):
  for _ in range(warmup):
    fn()
  start = time.perf_counter()
  for _ in range(iters):
    fn()
  return (time.perf_counter() - start) / iters


def main(argv):
  del argv
  import tensorflow as tf

  import glow_tf2
  from glow_tf2.serving import export

  config = glow_tf2.GlowConfig(
    image_shape=(FLAGS.image_size, FLAGS.image_size, FLAGS.channels),
    n_levels=FLAGS.n_levels,
    depth=FLAGS.depth,
    width=FLAGS.width,
    permutation=FLAGS.permutation,
    coupling=FLAGS.coupling,
  )
  images = _photo_images(max(FLAGS.batch, 256), FLAGS.image_size, FLAGS.channels)
  glow = glow_tf2.Glow(config, seed=0)
  glow.initialize(glow_tf2.preprocess(images, config.n_bits_x, noise=False))
  export_dir = FLAGS.export_dir or os.path.join(tempfile.mkdtemp(), "glow")
  start = time.perf_counter()
  export.export_saved_model(export.build_serving_module(glow), export_dir, overwrite=True)
  export_s = time.perf_counter() - start
  start = time.perf_counter()
  loaded = tf.saved_model.load(export_dir)
  load_s = time.perf_counter() - start

  batch = tf.constant(images[: FLAGS.batch])
  encode = loaded.signatures["encode_a"]
  decode = loaded.signatures["decode_a"]
  eps = encode(images=batch)["eps"]
  results = {
    "batch": FLAGS.batch,
    "config": f"{FLAGS.image_size}x{FLAGS.image_size}x"
    f"{FLAGS.channels} L={FLAGS.n_levels} K={FLAGS.depth} width={FLAGS.width} "
    f"{FLAGS.permutation}/{FLAGS.coupling}",
    "export_s": round(export_s, 1),
    "load_s": round(load_s, 1),
    "cpus": os.cpu_count(),
    "load_average_1min": round(os.getloadavg()[0], 2),
  }
  for name, fn in [
    ("encode_a", lambda: encode(images=batch)["eps"].numpy()),
    ("decode_a", lambda: decode(eps=eps)["images"].numpy()),
  ]:
    seconds = _time(fn, FLAGS.warmup, FLAGS.iters)
    results[f"{name}_ms_per_batch"] = round(1000 * seconds, 1)
    results[f"{name}_images_per_sec"] = round(FLAGS.batch / seconds, 1)
    print(
      f"{name}: {1000 * seconds:.1f} ms per batch of {FLAGS.batch} = "
      f"{FLAGS.batch / seconds:.0f} images/s"
    )
  results["load_average_1min_after"] = round(os.getloadavg()[0], 2)
  print(json.dumps(results))


if __name__ == "__main__":
  app.run(main)
