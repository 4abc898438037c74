"""Helpers the tests share: real images that install offline, the checks of bijector mathematics,
small run configurations and the subprocess environment of the binaries, data fixtures on disk."""

import atexit
import dataclasses
import gzip
import os
import pathlib
import struct
import subprocess
import sys

import numpy as np
from PIL import Image
import skimage.data
import tensorflow as tf

import glow_tf2
from glow_tf2 import config as tc
from glow_tf2 import presets
from glow_tf2_tools import sample_images
from tests import forkserver


def real_images(n: int, shape, seed: int = 0) -> np.ndarray:
  """Real uint8 images [n, H, W, C] (H = W): photo patches (C = 3) or MNIST digits (C = 1)."""
  h, w, c = shape
  assert h == w, shape
  return sample_images.real_images(n, h, c, seed)


def grid_cells(grid, n_rows: int, n_cols: int, cell: int) -> np.ndarray:
  """The [n_rows, n_cols, cell, cell, C] cells of an `image_grid.make_grid` grid (pad 1), after
  checking that the grid has exactly that many cells."""
  grid = np.asarray(grid)
  step = cell + 1
  assert grid.shape[:2] == (n_rows * step + 1, n_cols * step + 1), (grid.shape, n_rows, n_cols)
  return np.stack(
    [
      np.stack([grid[1 + r * step :][:cell, 1 + c * step :][:, :cell] for c in range(n_cols)])
      for r in range(n_rows)
    ]
  )


def perturb(module: tf.Module, scale: float = 0.1, seed: int = 0) -> None:
  """Adds N(0, scale^2) noise to every trainable variable, so no layer is left at the identity."""
  rng = np.random.default_rng(seed)
  for v in module.trainable_variables:
    v.assign_add(rng.normal(0.0, scale, v.shape).astype(np.float32))


def jacobian_log_det(fn, x: tf.Tensor) -> np.ndarray:
  """log|det J| per example of fn at x, from the autodiff Jacobian of the flattened map."""
  n = x.shape[0]
  flat = tf.reshape(x, [n, -1])
  with tf.GradientTape() as tape:
    tape.watch(flat)
    y = tf.reshape(fn(tf.reshape(flat, x.shape)), [n, -1])
  jac = tape.batch_jacobian(y, flat).numpy().astype(np.float64)
  assert jac.shape[1] == jac.shape[2], f"not a square Jacobian: {jac.shape}"
  sign, log_abs_det = np.linalg.slogdet(jac)
  assert np.all(sign != 0), "singular Jacobian"
  return log_abs_det


def row_noise(seeds, salt: int, dim: int) -> np.ndarray:
  """float32 `[N, dim]`, each row drawn alone: stateless_normal([dim], seed=[seeds_i, salt]).

  The documented per-row draw of the SavedModel's signatures, written out one row at a time,
  independently of `glow_tf2.seeds.row_normal`.
  """
  return np.stack(
    [tf.random.stateless_normal([dim], seed=[int(s), salt]).numpy() for s in seeds]
  ).reshape(len(seeds), dim)


# Tiny Glows.


def operations(graph: tf.Graph) -> list[tf.Operation]:
  """Every op a run of graph executes: its own, and once per call those of each function called.

  A Glow's steps of flow run as calls of one shared function (`flows.shared_trace`), whose body
  is a graph of its own, not ops of the caller's.
  """
  ops = []
  for op in graph.get_operations():
    if op.type in ("PartitionedCall", "StatefulPartitionedCall"):
      ops.extend(operations(graph._functions[op.get_attr("f").name].graph))
    else:
      ops.append(op)
  return ops


def tiny_glow_config(**overrides) -> glow_tf2.GlowConfig:
  """The tests' small Glow: 8x8x1 images, 2 levels of 1 step, width 8, LU 1x1 convolutions,
  affine couplings, a learnt top prior. `overrides`: GlowConfig fields by name."""
  fields = dict(
    image_shape=(8, 8, 1),
    n_levels=2,
    depth=1,
    width=8,
    permutation="lu",
    coupling="affine",
    learntop=True,
  )
  return glow_tf2.GlowConfig(**{**fields, **overrides})


def initialized_glow(
  config, images: np.ndarray, seed: int, name: str | None = None, perturb_scale: float = 0.0
):
  """A Glow of `config` (seeded), its data-dependent init run on uint8 `images` [N, H, W, C] at
  8 bits without noise; with `perturb_scale`, every weight then moved by `perturb` (seed `seed`)
  so that no layer is left at the identity."""
  glow = glow_tf2.Glow(config, seed=seed, **({"name": name} if name else {}))
  glow.initialize(glow_tf2.preprocess(images, 8, noise=False))
  if perturb_scale:
    perturb(glow, scale=perturb_scale, seed=seed)
  return glow


def psnr_per_image(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(MSE, PSNR in dB) per image of uint8 images [N, ...] scaled to [0, 1]; 100 dB where equal."""
  p, t = pred.astype(np.float64) / 255, target.astype(np.float64) / 255
  mse = ((p - t) ** 2).reshape(len(p), -1).mean(axis=1)
  return mse, np.array([10 * np.log10(1 / m) if m > 0 else 100.0 for m in mse])


# Runs of the trainer.

# Two logical CPUs of a 2-core machine: every subprocess gets one thread pool per process only.
SUBPROCESS_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


def mnist_dir(tmp_path_factory) -> str:
  """Folder of the embedded 1-channel mnist problem, built once per test session."""
  root = pathlib.Path(tmp_path_factory.getbasetemp()) / "mnist_c1"
  if not (root / "meta.json").exists():
    from glow_tf2.input import problems  # pylint: disable=g-import-not-at-top

    problems.get_problem("mnist", data_dir=str(root), channels=1)
  return str(root)


def tiny_config(logdir, data_dir, **overrides) -> tc.TrainConfig:
  """A joint mnist run of a few seconds (`presets.smoke`): 32x32x1, 2 levels of 1 step, width 16.

  `overrides`: run fields by name, and model=/optim=/loss=/data= dicts of a part's fields.
  """
  values = {**presets.smoke(), "data.problem": "mnist", "data.data_dir": data_dir}
  values["logdir"] = str(logdir)
  for part in ("model", "optim", "loss", "data"):
    values.update({f"{part}.{k}": v for k, v in overrides.pop(part, {}).items()})
  values.update(overrides)
  return tc.build(values)


def tiny_pair_run(tmp_path_factory, name: str, values: dict) -> dict:
  """One epoch (2 steps) of a joint pair trained in this process on 32 mnist pairs, 32x32x1, 2
  levels of 1 step, width 8; `values`: config fields by path ("optim.lr") over these.

  Returns {"logdir", "trainer" (after fit), "data_dir"}.
  """
  from glow_tf2.input import pipeline as input_pipeline  # pylint: disable=g-import-not-at-top
  from glow_tf2.input import problems  # pylint: disable=g-import-not-at-top
  from glow_tf2.train import loop  # pylint: disable=g-import-not-at-top

  data_dir = mnist_dir(tmp_path_factory)
  logdir = str(tmp_path_factory.mktemp(name))
  fields = {
    "data.problem": "mnist",
    "data.data_dir": data_dir,
    "data.channels": 1,
    "data.n_train": 32,
    "data.dal": 0,
    "model.n_levels": 2,
    "model.depth": 1,
    "model.width": 8,
    "gradient_checkpointing": False,
    "optim.epochs_warmup": 1.0,
    "loss.joint_train": True,
    "logdir": logdir,
    "n_batch_train": 16,
    "n_batch_init": 32,
    "epochs": 1,
    "epochs_full_valid": 1,
    "n_sample": 4,
    "log_steps": 100,
  }
  config = tc.build({**fields, **values})
  problem = problems.get_problem("mnist", data_dir=data_dir, channels=1)
  trainer = loop.Trainer(config, problem, tf.distribute.get_strategy(), input_pipeline.make_dataset)
  trainer.fit()
  return dict(logdir=logdir, trainer=trainer, data_dir=data_dir)


def tiny_flags(logdir, data_dir, *extra) -> list:
  """The command-line twin of tiny_config for `python -m glow_tf2.train`: `--preset=smoke` (3
  epochs of 10 steps, unless `extra` gives --epochs or a smaller --train_steps)."""
  return [
    sys.executable,
    "-m",
    "glow_tf2.cli.train",
    "--problem=mnist",
    "--preset=smoke",
    f"--data_dir={data_dir}",
    f"--logdir={logdir}",
    *extra,
  ]


def run_python(args, timeout=480, env=None, input=None, cwd=None) -> subprocess.CompletedProcess:
  """`python ...` with SUBPROCESS_ENV (or `env`), its output captured as text: forked from the
  warm server where it runs there as in a fresh process, else a fresh process."""
  if FORK_SERVER.can_run(args, env):
    return FORK_SERVER.run(args, timeout=timeout, input=input, cwd=cwd)
  return subprocess.run(
    args,
    env=SUBPROCESS_ENV if env is None else env,
    capture_output=True,
    text=True,
    timeout=timeout,
    input=input,
    cwd=cwd,
  )


# Programs of the tests forked from one warm process (tests/forkserver.py): a TensorFlow start-up
# (7-9 s of a core) per test process instead of one per program.
FORK_SERVER = forkserver.ForkServer(SUBPROCESS_ENV)
atexit.register(FORK_SERVER.close)


def run_console_scripts(argvs, timeout=300) -> list[subprocess.CompletedProcess]:
  """Runs each command line `[script, *args]` (a console script of setup.cfg) as a process of
  its own, forked from the warm server: the exit status and output a shell would see, without
  the quiet start-up of the real script (one real run of each binary checks that); their
  CompletedProcess (returncode -N: killed by signal N), in order."""
  return [FORK_SERVER.run([sys.executable, *argv], timeout=timeout) for argv in argvs]


def replace(config: tc.TrainConfig, **changes) -> tc.TrainConfig:
  return dataclasses.replace(config, **changes)


# Data on disk.

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
PHOTOS = (
  "astronaut",
  "chelsea",
  "coffee",
  "rocket",
  "hubble_deep_field",
  "immunohistochemistry",
  "retina",
)


def photo_patches(n: int, size: int, seed: int = 0) -> np.ndarray:
  """`n` real colour patches uint8 [n, size, size, 3] cut from skimage's photos at seeded spots."""
  rng = np.random.default_rng(seed)
  photos = [getattr(skimage.data, name)() for name in PHOTOS]
  out = []
  for i in range(n):
    photo = photos[i % len(photos)]
    y = rng.integers(0, photo.shape[0] - size + 1)
    x = rng.integers(0, photo.shape[1] - size + 1)
    out.append(photo[y : y + size, x : x + size, :3])
  return np.stack(out).astype(np.uint8)


def grey_patches(n: int, size: int, seed: int = 0) -> np.ndarray:
  """Real grey patches uint8 [n, size, size] from skimage.data.camera()."""
  rng = np.random.default_rng(seed)
  photo = skimage.data.camera()
  ys = rng.integers(0, photo.shape[0] - size + 1, n)
  xs = rng.integers(0, photo.shape[1] - size + 1, n)
  return np.stack([photo[y : y + size, x : x + size] for y, x in zip(ys, xs)])


def fashion(split: str = "train", n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Fashion-MNIST images uint8 [N, 28, 28] and labels, read here without the library."""
  stem = "train" if split == "train" else "t10k"
  x = np.frombuffer(
    gzip.open(f"{FASHION_DIR}/{stem}-images-idx3-ubyte.gz").read(), np.uint8, offset=16
  )
  y = np.frombuffer(
    gzip.open(f"{FASHION_DIR}/{stem}-labels-idx1-ubyte.gz").read(), np.uint8, offset=8
  )
  return x.reshape(-1, 28, 28)[:n], y[:n].astype(np.int64)


def write_idx(path: str, array: np.ndarray, compress: bool = True) -> None:
  header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  data = header + np.ascontiguousarray(array, np.uint8).tobytes()
  with open(path, "wb") as handle:
    handle.write(gzip.compress(data) if compress else data)


def save(path: str, image: np.ndarray, **kwargs) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path, **kwargs)


def decode_file(path: str) -> np.ndarray:
  with Image.open(path) as image:
    return np.asarray(image.convert("RGB"))


def read_records(root: str, split: str, res_log2: int | None = None) -> list[dict]:
  """Every Example of a split, parsed with plain tf.train.Example code (not the library's)."""
  folder = os.path.join(root, split)
  files = sorted(f for f in os.listdir(folder) if f.endswith(".tfrecords"))
  if res_log2 is not None:
    files = [f for f in files if f"-r{res_log2:02d}-" in f]
  out = []
  for name in files:
    for raw in tf.data.TFRecordDataset(os.path.join(folder, name)).as_numpy_iterator():
      feature = tf.train.Example.FromString(raw).features.feature
      shape = tuple(feature["shape"].int64_list.value)
      item = {"label": feature["label"].int64_list.value[0]}
      for key in ("data", "data_a", "data_b"):
        if key in feature:
          item[key] = np.frombuffer(feature[key].bytes_list.value[0], np.uint8).reshape(shape)
      if "attr" in feature:
        item["attr"] = tuple(feature["attr"].int64_list.value)
      out.append(item)
  return out


def key(*images: np.ndarray) -> bytes:
  return b"".join(np.ascontiguousarray(i).tobytes() for i in images)


def box2(image: np.ndarray) -> np.ndarray:
  """The 2x2 box downsampling with floor, written independently of the library."""
  h, w, c = image.shape
  return np.floor(
    image.reshape(h // 2, 2, w // 2, 2, c).astype(np.float64).mean(axis=(1, 3))
  ).astype(np.uint8)


def listing(root: str) -> list[str]:
  """Every file under root, relative (hidden temporaries included)."""
  out = []
  for dirpath, _, names in os.walk(root):
    out += [os.path.relpath(os.path.join(dirpath, n), root) for n in names]
  return sorted(out)
