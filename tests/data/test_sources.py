"""Every glow-data source round-trips real images pixel-exactly into TFRecords and back."""

import os

import numpy as np

from glow_tf2.input import problems
from glow_tf2.input import records
from glow_tf2_data import generate
from tests.helpers import box2
from tests.helpers import decode_file
from tests.helpers import fashion
from tests.helpers import grey_patches
from tests.helpers import key
from tests.helpers import photo_patches
from tests.helpers import read_records
from tests.helpers import save
from tests.helpers import write_idx


def _keys(items, *fields):
  return sorted(key(*(item[f] for f in fields)) for item in items)


def test_folder_with_class_subfolders(tmp_path):
  src = tmp_path / "src"
  patches = photo_patches(30, 32, seed=10)
  expected = {"train": [], "validation": []}
  for i, patch in enumerate(patches):
    split = "validation" if i % 5 == 0 else "train"
    cls = ["cat", "dog", "eel"][i % 3]
    save(str(src / ("val" if split == "validation" else "train") / cls / f"{i}.png"), patch)
    expected[split].append({"data": patch, "label": ["cat", "dog", "eel"].index(cls)})
  assert generate.generate("folder", str(tmp_path / "out"), input=str(src), shards=2)
  for split in ("train", "validation"):
    got = read_records(str(tmp_path / "out"), split, 5)
    assert sorted((key(g["data"]), g["label"]) for g in got) == sorted(
      (key(e["data"]), e["label"]) for e in expected[split]
    )
  problem = problems.get_problem(str(tmp_path / "out"))
  assert (problem.n_classes, problem.n_train, problem.n_test) == (3, 24, 6)


def test_folder_flat_holds_out_validation_and_downsamples(tmp_path):
  patches = photo_patches(20, 64, seed=11)
  for i, patch in enumerate(patches):
    save(str(tmp_path / "src" / f"img{i}.png"), patch)
  generate.generate("folder", str(tmp_path / "out"), input=str(tmp_path / "src"), image_size=16)
  got = read_records(str(tmp_path / "out"), "train", 4) + read_records(
    str(tmp_path / "out"), "validation", 4
  )
  assert len(read_records(str(tmp_path / "out"), "validation", 4)) == 2
  assert _keys(got, "data") == sorted(key(box2(box2(p))) for p in patches)
  assert all(g["label"] == 0 for g in got)


def test_grey_folder_with_one_channel(tmp_path):
  patches = grey_patches(10, 16, seed=12)[..., None]
  for i, patch in enumerate(patches):
    save(str(tmp_path / "src" / f"{i}.png"), patch)
  generate.generate("folder", str(tmp_path / "out"), input=str(tmp_path / "src"), channels=1)
  got = read_records(str(tmp_path / "out"), "train") + read_records(
    str(tmp_path / "out"), "validation"
  )
  assert _keys(got, "data") == sorted(key(p) for p in patches)


def test_pix2pix_layout(tmp_path):
  a, b = photo_patches(12, 32, seed=13), photo_patches(12, 32, seed=14)
  files = {}
  for i in range(12):
    folder = "val" if i < 3 else "train"
    path = str(tmp_path / "src" / folder / f"{i}_AB.jpg")
    save(path, np.concatenate([a[i], b[i]], axis=1), quality=95)
    files.setdefault(folder, []).append(decode_file(path))
  generate.generate("pix2pix", str(tmp_path / "out"), input=str(tmp_path / "src"))
  for split, folder in (("train", "train"), ("validation", "val")):
    got = read_records(str(tmp_path / "out"), split)
    expected = sorted(
      key(f[:, :32], f[:, 32:]) for f in files[folder]
    )  # the decoded JPEG pixels, halved
    assert _keys(got, "data_a", "data_b") == expected
  problem = problems.get_problem("edges2shoes", data_dir=str(tmp_path / "out"))
  assert problem.paired and (problem.n_train, problem.n_test) == (9, 3)


def test_npy_layout_and_edges2shoes_problem(tmp_path, monkeypatch):
  monkeypatch.setenv("GLOW_TF2_CACHE", str(tmp_path / "cache"))
  a, b = photo_patches(10, 16, seed=15), photo_patches(10, 16, seed=16)
  for folder, sl in (("train", slice(0, 7)), ("val", slice(7, 10))):
    os.makedirs(tmp_path / "src" / folder)
    np.save(tmp_path / "src" / folder / "A.npy", a[sl])
    np.save(tmp_path / "src" / folder / "B.npy", b[sl])
  generate.generate("npy", str(tmp_path / "out"), input=str(tmp_path / "src"))
  got = read_records(str(tmp_path / "out"), "train")
  assert _keys(got, "data_a", "data_b") == sorted(key(x, y) for x, y in zip(a[:7], b[:7]))
  # The problem reads the npy layout directly (converted once into the cache).
  problem = problems.get_problem("edges2shoes", data_dir=str(tmp_path / "src"))
  assert problem.paired and (problem.n_train, problem.n_test, problem.image_shape) == (
    7,
    3,
    (16, 16, 3),
  )
  assert problem.root.startswith(str(tmp_path / "cache"))
  again = problems.get_problem("edges2shoes", data_dir=str(tmp_path / "src"))
  assert again.train_files == problem.train_files


def test_idx_files(tmp_path):
  x, y = fashion("train", 50)
  xt, yt = fashion("test", 20)
  os.makedirs(tmp_path / "idx")
  write_idx(str(tmp_path / "idx" / "train-images-idx3-ubyte.gz"), x)
  write_idx(str(tmp_path / "idx" / "train-labels-idx1-ubyte.gz"), y.astype(np.uint8))
  write_idx(str(tmp_path / "idx" / "t10k-images-idx3-ubyte"), xt, compress=False)
  write_idx(str(tmp_path / "idx" / "t10k-labels-idx1-ubyte"), yt.astype(np.uint8), compress=False)
  generate.generate("idx", str(tmp_path / "out"), input=str(tmp_path / "idx"))
  for split, (images, labels) in (("train", (x, y)), ("validation", (xt, yt))):
    got = read_records(str(tmp_path / "out"), split, 5)
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))[..., None]
    assert sorted((key(g["data"]), g["label"]) for g in got) == sorted(
      (key(p), int(l)) for p, l in zip(padded, labels)
    )


def test_celeba_folder_every_resolution(tmp_path):
  faces = photo_patches(10, 32, seed=17)
  names = [f"{i}.jpg".replace(".jpg", ".png") for i in range(10)]
  attrs = np.random.default_rng(1).choice([-1, 1], size=(10, 40))
  for name, face in zip(names, faces):
    save(str(tmp_path / "celeba" / "img" / name), face)
  lines = ["10", " ".join(f"attr{k}" for k in range(40))]
  lines += [f"{n} " + " ".join(str(v) for v in row) for n, row in zip(names, attrs)]
  (tmp_path / "celeba" / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
  generate.generate("celeba", str(tmp_path / "out"), input=str(tmp_path / "celeba" / "img"))
  assert records.resolutions(str(tmp_path / "out"), "train") == [2, 3, 4, 5]
  val = read_records(str(tmp_path / "out"), "validation", 5)  # the first 10%: image 0
  assert len(val) == 1 and key(val[0]["data"]) == key(faces[0])
  assert val[0]["attr"] == tuple((attrs[0] > 0).astype(int))
  train8 = read_records(str(tmp_path / "out"), "train", 3)
  assert _keys(train8, "data") == sorted(key(box2(box2(f))) for f in faces[1:])
  problem = problems.get_problem("celeba", data_dir=str(tmp_path / "out"), image_size=16)
  assert problem.image_shape == (16, 16, 3) and problem.has_attr and problem.n_train == 9


def test_lsun_webp(tmp_path):
  photos = photo_patches(8, 64, seed=18)
  for i, p in enumerate(photos):
    split = "tower_val" if i < 2 else "tower_train"
    save(str(tmp_path / "lsun" / split / f"{i:04d}.webp"), p, lossless=True)
  generate.generate(
    "lsun", str(tmp_path / "out" / "tower"), input=str(tmp_path / "lsun"), image_size=32
  )
  got = read_records(str(tmp_path / "out" / "tower"), "validation")
  assert _keys(got, "data") == sorted(key(box2(p)) for p in photos[:2])
  problem = problems.get_problem("lsun_tower", data_dir=str(tmp_path / "out"))
  assert problem.image_shape == (32, 32, 3) and (problem.n_train, problem.n_test) == (6, 2)


def test_imagenet_oord_folders(tmp_path):
  photos = photo_patches(9, 32, seed=19)
  for i, p in enumerate(photos):
    folder = "valid_32x32" if i < 3 else "train_32x32"
    save(str(tmp_path / "imnet" / folder / f"{i}.png"), p)
  generate.generate("imagenet", str(tmp_path / "out"), input=str(tmp_path / "imnet"))
  got = read_records(str(tmp_path / "out"), "train")
  assert _keys(got, "data") == sorted(key(p) for p in photos[3:])
  assert len(os.listdir(tmp_path / "out" / "train")) == 6  # 2000 shards capped at the 6 images
  problem = problems.get_problem("imagenet32", data_dir=str(tmp_path / "out"))
  assert problem.image_shape == (32, 32, 3) and problem.n_test == 3


def test_rerun_is_a_no_op_and_overwrite_rewrites(tmp_path):
  for i, p in enumerate(photo_patches(6, 8, seed=20)):
    save(str(tmp_path / "src" / f"{i}.png"), p)
  out = str(tmp_path / "out")
  assert generate.generate("folder", out, input=str(tmp_path / "src"), shards=3)

  def stamps():
    folder = os.path.join(out, "train")
    return {f: os.stat(os.path.join(folder, f)).st_mtime_ns for f in os.listdir(folder)}

  before = stamps()
  assert not generate.generate("folder", out, input=str(tmp_path / "src"))
  assert stamps() == before
  assert generate.generate("folder", out, input=str(tmp_path / "src"), shards=1, overwrite=True)
  assert os.listdir(os.path.join(out, "train")) == ["train-r03-s-0000-of-0001.tfrecords"]
  assert len(before) == 3


def test_many_shards_are_written_one_file_at_a_time(tmp_path, monkeypatch):
  from glow_tf2.input import writer

  monkeypatch.setattr(writer, "MAX_OPEN_FILES", 2)
  photos = photo_patches(23, 8, seed=21)
  for i, p in enumerate(photos):
    save(str(tmp_path / "src" / f"{i}.png"), p)
  generate.generate("folder", str(tmp_path / "out"), input=str(tmp_path / "src"), shards=5)
  problem = problems.get_problem(str(tmp_path / "out"))
  assert len(problem.train_files) == 5 and problem.n_train + problem.n_test == 23
  got = read_records(str(tmp_path / "out"), "train") + read_records(
    str(tmp_path / "out"), "validation"
  )
  assert _keys(got, "data") == sorted(key(p) for p in photos)
  sizes = [os.path.getsize(f) for f in problem.train_files]
  assert min(sizes) > 0
