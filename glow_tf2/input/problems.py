"""The `--problem` registry: from a name to a described, checked data set.

Names:
  mnist, fashion_edges2shoes  embedded paired problems; built on first use (with the same code as
                              `glow-data`) into `data_dir`, or a per-user cache folder when
                              `data_dir` is None, atomically; reused afterwards.
  fashion_mnist, mnist_digits embedded single-domain problems (all of Fashion-MNIST; the
                              `mnist` digits alone), built in the same way.
  photo_edges64               an embedded paired problem at 64x64 (edges <-> crops of
                              scikit-image's photos, no labels; `photo_edges.py`), built in
                              the same way: a small set for testing the 64-pixel path.
  edges2shoes, facades        a paired set written by `glow-data` (e.g. `--source=pix2pix`) in
                              `data_dir` (or `data_dir/<name>`), or the original
                              `{train,val}/{A,B}.npy` layout there (converted once into the
                              cache folder).
  cifar10, celeba, imagenet, imagenet32, imagenet64, lsun_<category>
                              TFRecord sets in `data_dir` (or `data_dir/<name>`; for LSUN
                              `data_dir/<category>`). `imagenet` is Glow's full-size set
                              (every resolution, labels 0..999; `glow-data --source=imagenet_full`).
  lsun_realnvp_<category>     Glow's LSUN realnvp set (`glow-data --source=lsun_realnvp`): images
                              stored with the short side 96 (files `-r06-`), read as random
                              `image_size` (default 64) crops in training and centre crops in
                              test; in `data_dir` or `data_dir/<category>`.
  a folder path               any TFRecord set in the Glow layout.
  tfds:NAME[/CONFIG]          a data set that tensorflow-datasets already prepared under
                              `tfds_data_dir` (never downloads).

Splits are called "train" and "test" here; "test" reads the set's `validation` files (TFDS:
its `test` split, else `validation`).

The data-set code itself is in `embedded.py`, `npy.py` and `data/`.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import hashlib
import os

from glow_tf2.input import embedded
from glow_tf2.input import npy
from glow_tf2.input import records
from glow_tf2.input import writer
from glow_tf2.input.records import DataError

EMBEDDED = ("mnist", "fashion_edges2shoes", "fashion_mnist", "mnist_digits", "photo_edges64")
PAIRED = ("edges2shoes", "facades")
NAMED = (*PAIRED, "cifar10", "celeba", "imagenet", "imagenet32", "imagenet64")
REALNVP_PREFIX = "lsun_realnvp_"
# Glow's realnvp LSUN files are named after int(log2(96)) = 6; crops of 64 by default.
REALNVP_RES_LOG2 = 6
REALNVP_SIDE = 96
REALNVP_CROP = 64
# Classes of the named sets when their folder has no meta.json (the original generators wrote
# labels 0 for ImageNet, LSUN and CelebA: no classes).
KNOWN_CLASSES = {
  "cifar10": 10,
  "imagenet": 1000,
  "mnist": 10,
  "fashion_edges2shoes": 3,
  "fashion_mnist": 10,
  "mnist_digits": 10,
}
SPLIT_FILES = {"train": "train", "test": "validation"}


@dataclasses.dataclass(frozen=True)
class Problem:
  """A data set ready for `pipeline.make_dataset`.

  Attributes:
    name: the `--problem` value.
    image_shape: (H, W, C) of every image.
    paired: whether examples hold two images (A and B of a pair).
    n_classes: number of classes; 0 when the set has no labels (all 0).
    n_train, n_test: examples in the train and test splits.
    train_files, test_files: the TFRecord shards (empty for TFDS problems).
    root: the folder of the TFRecord set (TFDS: its `tfds_data_dir`).
    has_attr: examples carry 40 CelebA attributes.
    tfds_name: `NAME[/CONFIG]` for TFDS problems, else None.
    tfds_splits: (train split, test split) names for TFDS problems.
    tfds_image_key, tfds_label_key: feature names for TFDS problems.
    stored_shape: the (H, W, C) stored in the files when `image_shape` is a centre crop of it
      (see `centre_crop`), else None.
    random_crop: the files hold images of varying sizes, each at least `image_shape`; training
      reads a random `image_shape` crop of each, test its centre crop (LSUN realnvp).
  """

  name: str
  image_shape: tuple[int, int, int]
  paired: bool
  n_classes: int
  n_train: int
  n_test: int
  train_files: tuple[str, ...] = ()
  test_files: tuple[str, ...] = ()
  root: str = ""
  has_attr: bool = False
  tfds_name: str | None = None
  tfds_splits: tuple[str, str] = ("train", "test")
  tfds_image_key: str = "image"
  tfds_label_key: str | None = None
  stored_shape: tuple[int, int, int] | None = None
  random_crop: bool = False

  @property
  def judges_dir(self) -> str:
    """Where the classifiers that judge this set's samples are cached (`quality.judge`): beside
    its files, or in the user's cache when that folder is read-only or there is none."""
    if self.root and os.access(self.root, os.W_OK):
      return os.path.join(self.root, "judges")
    return os.path.join(cache_dir(), "judges", self.name)

  @property
  def is_tfds(self) -> bool:
    return self.tfds_name is not None

  def files(self, split: str) -> tuple[str, ...]:
    """The shard files of "train" or "test"."""
    return {"train": self.train_files, "test": self.test_files}[_check_split(split)]

  def num_examples(self, split: str) -> int:
    return {"train": self.n_train, "test": self.n_test}[_check_split(split)]


def _check_split(split: str) -> str:
  if split not in SPLIT_FILES:
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")
  return split


def cache_dir() -> str:
  """Per-user cache folder: $GLOW_TF2_CACHE, else $XDG_CACHE_HOME/glow_tf2, else ~/.cache/glow_tf2."""
  if os.environ.get("GLOW_TF2_CACHE"):
    return os.environ["GLOW_TF2_CACHE"]
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "glow_tf2")


def get_problem(
  name: str,
  data_dir: str | None = None,
  channels: int | None = None,
  image_size: int | None = None,
  tfds_data_dir: str | None = None,
  verify: bool | None = None,
  crop_size: int | None = None,
) -> Problem:
  """Resolves `--problem` into a checked `Problem`.

  Args:
    name: see the module docstring.
    data_dir: where the set is (or, for the embedded problems, where to build it).
    channels: 1 or 3, or None to take what is stored (embedded problems: 3). A stored channel
      count that differs is an error.
    image_size: side to read (picks the resolution of multi-resolution sets such as CelebA);
      None takes the only (or the largest) resolution stored.
    tfds_data_dir: TFDS data folder for `tfds:` problems.
    verify: check every record's checksum (True), only the framing (False), or the full check
      for sets up to 1 GiB (None).
    crop_size: read the centre `crop_size` x `crop_size` of every image (e.g. 28 gives back
      the MNIST digits that the embedded sets pad to 32); None or the stored size: no crop.

  Raises:
    ValueError: unknown problem name (names it) or bad arguments.
    DataError: the data are missing, incomplete or corrupt (names the file).
  """
  problem = _get_problem(name, data_dir, channels, image_size, tfds_data_dir, verify)
  if crop_size and problem.random_crop:
    raise ValueError(f"problem {name!r} is read as crops of image_size; crop_size does not apply")
  return centre_crop(problem, crop_size) if crop_size else problem


def for_data(data) -> Problem:
  """`get_problem` for a `config.DataConfig`: the problem a training run reads."""
  return get_problem(
    data.problem_name,
    data_dir=data.data_dir,
    channels=data.channels,
    image_size=None if data.image_size == -1 else data.image_size,
    tfds_data_dir=data.tfds_data_dir,
    crop_size=data.crop_size or None,
  )


def centre_crop(problem: Problem, size: int) -> Problem:
  """`problem` read as the centre `size` x `size` of its images (`make_dataset` crops).

  Cropping the 2-pixel zero border that the embedded sets add to 28x28 images gives back the
  original digits and clothes exactly, so bits/dim are over their own 784 pixels.
  """
  height, width, channels = problem.stored_shape or problem.image_shape
  if size == height == width:
    return problem
  if not 1 <= size <= min(height, width):
    raise ValueError(f"crop size {size}: must be between 1 and the images' {height}x{width}")
  return dataclasses.replace(
    problem, image_shape=(size, size, channels), stored_shape=(height, width, channels)
  )


def _get_problem(name, data_dir, channels, image_size, tfds_data_dir, verify) -> Problem:
  if channels not in (None, 1, 3):
    raise ValueError(f"channels must be 1 or 3, got {channels}")
  if name.startswith("tfds:"):
    return _tfds_problem(name, tfds_data_dir, channels, image_size)
  if name in EMBEDDED:
    root = _embedded_root(name, data_dir, channels or 3)
    return _tfrecord_problem(name, root, channels or 3, image_size, verify)
  if name.startswith(REALNVP_PREFIX):
    return _realnvp_problem(name, data_dir, channels, image_size, verify)
  if name in PAIRED:
    root = _require_dir(name, data_dir)
    if not os.path.isdir(os.path.join(root, "train")) and os.path.isdir(os.path.join(root, name)):
      root = os.path.join(root, name)
    if npy.is_npy_layout(root):  # the original layout: convert once into the cache
      root = _converted_npy_root(root, channels)
    elif _holds_image_pairs(root):
      raise DataError(
        f"{root}: pix2pix image pairs, not a TFRecord set; convert them once with "
        f"glow-data --source=pix2pix --input={root} --output=DIR (and --image_size=N)"
      )
    return _tfrecord_problem(name, root, channels, image_size, verify, require_paired=True)
  if name in NAMED or name.startswith("lsun_"):
    sub = name[len("lsun_") :] if name.startswith("lsun_") else name
    if name.startswith("lsun_") and not sub:
      raise ValueError("problem 'lsun_' needs a category, e.g. lsun_bedroom")
    base = _require_dir(name, data_dir)
    root = base if os.path.isdir(os.path.join(base, "train")) else os.path.join(base, sub)
    return _tfrecord_problem(name, root, channels, image_size, verify)
  if os.path.isdir(name):
    return _tfrecord_problem(name, name, channels, image_size, verify)
  known = ", ".join(
    [*EMBEDDED, *NAMED, "lsun_<category>", "tfds:NAME[/CONFIG]", "a TFRecord folder"]
  )
  raise ValueError(f"unknown problem {name!r}: expected one of {known}")


def _realnvp_problem(name, data_dir, channels, image_size, verify) -> Problem:
  category = name[len(REALNVP_PREFIX) :]
  if not category:
    raise ValueError(f"problem {REALNVP_PREFIX!r} needs a category, e.g. lsun_realnvp_bedroom")
  crop = REALNVP_CROP if image_size is None else int(image_size)
  if not 1 <= crop <= REALNVP_SIDE:
    raise ValueError(f"image_size {crop}: {name} crops at most {REALNVP_SIDE}x{REALNVP_SIDE}")
  base = _require_dir(name, data_dir)
  root = base if os.path.isdir(os.path.join(base, "train")) else os.path.join(base, category)
  problem = _tfrecord_problem(
    name, root, channels, REALNVP_SIDE, verify, res_log2=REALNVP_RES_LOG2, same_shape=False
  )
  return dataclasses.replace(
    problem, image_shape=(crop, crop, problem.image_shape[2]), random_crop=True
  )


def _holds_image_pairs(root: str) -> bool:
  """pix2pix's own layout: images (A|B side by side) directly in `root/train`, no shards."""
  train = os.path.join(root, "train")
  if not os.path.isdir(train) or records.resolutions(root, "train"):
    return False
  return any(n.lower().endswith((".jpg", ".jpeg", ".png")) for n in os.listdir(train))


def _require_dir(name: str, data_dir: str | None) -> str:
  if not data_dir:
    raise DataError(f"problem {name!r} needs --data_dir (the folder glow-data wrote)")
  if not os.path.isdir(data_dir):
    raise DataError(f"{data_dir}: data folder for problem {name!r} does not exist")
  return data_dir


def _embedded_root(name: str, data_dir: str | None, channels: int) -> str:
  """The folder of an embedded problem, built there first if it holds no complete set."""
  root = data_dir or os.path.join(cache_dir(), f"{name}-c{channels}")
  meta = writer.read_meta(root)
  if meta and meta.get("source") != name:
    raise DataError(f"{root}: holds {meta.get('source')!r}, not {name!r}")
  res_log2 = records.resolution_log2(embedded.size(name))
  if not writer.set_is_complete(root, ("train", "validation"), (res_log2,)):
    if not meta and records.resolutions(root, "train"):
      # Someone else's TFRecords: building here would mix two sets.
      raise DataError(f"{root}: holds TFRecords that are not a {name} set built by glow-data")
    writer.write_set(root, getattr(embedded, f"{name}_spec")(channels=channels))
  return root


def _converted_npy_root(npy_root: str, channels: int | None) -> str:
  stamp = []
  for dirpath, _, names in sorted(os.walk(npy_root)):
    for n in sorted(names):
      if n.endswith(".npy"):
        st = os.stat(os.path.join(dirpath, n))
        stamp.append(f"{os.path.join(dirpath, n)}:{st.st_size}:{st.st_mtime_ns}")
  key = hashlib.sha1(
    "\n".join([os.path.abspath(npy_root), str(channels), *stamp]).encode()
  ).hexdigest()[:16]
  root = os.path.join(cache_dir(), f"npy-{key}")
  writer.write_set(root, npy.spec(input=npy_root, channels=channels))
  return root


def _tfrecord_problem(
  name: str,
  root: str,
  channels: int | None,
  image_size: int | None,
  verify: bool | None,
  require_paired: bool = False,
  res_log2: int | None = None,
  same_shape: bool = True,
) -> Problem:
  """A TFRecord set's `Problem`; `res_log2` names the files' resolution when it is not log2 of
  `image_size` (LSUN realnvp: 96 px in `-r06-` files), `same_shape=False` allows images of
  different sizes (each at least `image_size` on its short side)."""
  if not os.path.isdir(root):
    raise DataError(f"{root}: data folder for problem {name!r} does not exist")
  available = sorted(
    set(records.resolutions(root, "train")) & set(records.resolutions(root, "validation"))
  )
  if not available:
    train_res = records.resolutions(root, "train")
    if train_res:  # train present, validation absent: say which file is missing
      records.find_shards(root, "validation", train_res[-1])
    raise DataError(
      f"{root}: no TFRecord set (expected train/ and validation/ shards named "
      f"<split>-rNN-s-SSSS-of-NNNN.tfrecords)"
    )
  if res_log2 is not None:
    res = res_log2
  elif image_size is None:
    res = available[-1]
  else:
    res = records.resolution_log2(image_size)
    if res not in available:
      sizes = ", ".join(str(2**r) for r in available)
      raise DataError(f"{root}: no {image_size}x{image_size} images stored (sizes: {sizes})")
  summaries = {
    split: records.scan_files(records.find_shards(root, stored, res), verify, same_shape)
    for split, stored in SPLIT_FILES.items()
  }
  train, test = summaries["train"], summaries["test"]
  if not same_shape:
    for summary in (train, test):
      if min(summary.shape[:2]) < image_size:
        raise DataError(
          f"{summary.files[0]}: {summary.shape[1]}x{summary.shape[0]} images, smaller than "
          f"the {image_size} px short side expected"
        )
  for field in ("shape", "paired", "has_attr") if same_shape else ("paired", "has_attr"):
    if getattr(train, field) != getattr(test, field):
      raise DataError(
        f"{test.files[0]}: {field} {getattr(test, field)} differs from train's {getattr(train, field)}"
      )
  if channels is not None and train.shape[2] != channels:
    what = "grey" if train.shape[2] == 1 else f"{train.shape[2]}-channel"
    raise DataError(f"{train.files[0]}: {what} images where {channels} channels are asked")
  if require_paired and not train.paired:
    raise DataError(f"{train.files[0]}: unpaired images; problem {name!r} needs A/B pairs")
  meta = writer.read_meta(root)
  n_classes = int(meta.get("n_classes", KNOWN_CLASSES.get(name, 0)))
  return Problem(
    name=name,
    image_shape=tuple(int(v) for v in train.shape),
    paired=train.paired,
    n_classes=n_classes,
    n_train=train.n_examples,
    n_test=test.n_examples,
    train_files=train.files,
    test_files=test.files,
    root=root,
    has_attr=train.has_attr,
  )


def _tfds_problem(
  name: str, tfds_data_dir: str | None, channels: int | None, image_size: int | None
) -> Problem:
  import tensorflow_datasets as tfds

  dataset = name[len("tfds:") :]
  if not dataset:
    raise ValueError("problem 'tfds:' needs a data set name, e.g. tfds:mnist")
  where = (
    tfds_data_dir
    or os.environ.get("TFDS_DATA_DIR")
    or os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
  )
  # Look on disk first: for a registered but unprepared name, TFDS may try to reach its bucket.
  if not os.path.isdir(os.path.join(where, dataset.split("/")[0].split(":")[0])):
    raise DataError(f"{where}: TFDS data set {dataset!r} not found there (download is disabled)")
  try:
    builder = tfds.builder(dataset, data_dir=where, try_gcs=False)
  except Exception as error:  # DatasetNotFoundError and friends list every data set: keep one line
    raise DataError(
      f"{where}: TFDS data set {dataset!r} not found ({type(error).__name__})"
    ) from None
  if not os.path.isdir(str(builder.data_dir)) or not builder.info.splits:
    raise DataError(
      f"{builder.data_dir}: TFDS data set {dataset!r} is not prepared there (download is disabled)"
    )
  splits = builder.info.splits
  test_split = next((s for s in ("test", "validation") if s in splits), None)
  if "train" not in splits or test_split is None:
    raise DataError(
      f"{builder.data_dir}: TFDS data set {dataset!r} needs a train and a test or validation split, has {sorted(splits)}"
    )
  features = builder.info.features
  image_keys = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
  if not image_keys:
    raise DataError(f"{builder.data_dir}: TFDS data set {dataset!r} has no image feature")
  image_key = "image" if "image" in image_keys else image_keys[0]
  shape = tuple(features[image_key].shape)
  if None in shape:
    raise DataError(
      f"{builder.data_dir}: {dataset!r} images have no fixed size {shape}; prepare a TFRecord set with glow-data"
    )
  if channels is not None and shape[2] != channels:
    raise DataError(
      f"{builder.data_dir}: {dataset!r} images have {shape[2]} channels where {channels} are asked"
    )
  if image_size is not None and shape[:2] != (image_size, image_size):
    raise DataError(
      f"{builder.data_dir}: {dataset!r} images are {shape[1]}x{shape[0]}, not {image_size}x{image_size}"
    )
  label_keys = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
  label_key = "label" if "label" in label_keys else (label_keys[0] if label_keys else None)
  return Problem(
    name=name,
    image_shape=tuple(int(v) for v in shape),
    paired=False,
    n_classes=int(features[label_key].num_classes) if label_key else 0,
    n_train=int(splits["train"].num_examples),
    n_test=int(splits[test_split].num_examples),
    root=str(where),
    tfds_name=dataset,
    tfds_splits=("train", test_split),
    tfds_image_key=image_key,
    tfds_label_key=label_key,
  )


def list_files(problem: Problem, split: str) -> Sequence[str]:
  """The shard files of a TFRecord problem's split ("train" or "test")."""
  return problem.files(split)
