"""translate_files: batches of a user's real images through a pair (a stand-in with the pair's
interface here; tests/cli/test_translate.py runs trained ones), PNGs out by name, failures
counted, the draws' seeds, the sheet, the progress lines."""

import logging as std_logging
import os

from absl import logging
import numpy as np
from PIL import Image
import pytest
import skimage.data

from glow_tf2 import translate_files
from glow_tf2 import user_images
from tests import helpers

SHAPE = (8, 8, 1)


class StandIn:
  """`pair.translate`'s contract without a model: 255 - x at T = 0, each row shifted by its own
  seed above."""

  def __init__(self, coupled=True, classes=0, seed_per_row=True):
    self.image_shape, self.n_classes = SHAPE, classes
    self.coupled, self.seed_per_row = coupled, seed_per_row
    self.calls = []

  def translate(self, images, direction, temperature, seed, labels=None):
    seed = np.asarray(seed)
    assert seed.shape == (len(images),) and seed.dtype == np.int32  # one seed per row
    self.calls.append(dict(n=len(images), direction=direction, seed=list(seed), labels=labels))
    out = 255 - np.asarray(images, np.int64)
    if temperature > 0:
      out = (out + seed[:, None, None, None]) % 256
    return out.astype(np.uint8)


@pytest.fixture
def files(tmp_path):
  """Five real pictures (grey and colour, PNG and JPEG, one nested) and a corrupt PNG."""
  photo, camera = skimage.data.astronaut(), skimage.data.camera()
  root = tmp_path / "in"
  helpers.save(str(root / "a.png"), camera[:40, :40, None])
  helpers.save(str(root / "b.jpg"), photo[:30, :50], quality=95)
  (root / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n then nothing a PNG holds")
  helpers.save(str(root / "d.png"), photo[200:264, 200:264])
  helpers.save(str(root / "sub" / "e.jpg"), camera[100:120, 50:90, None], quality=95)
  helpers.save(str(root / "sub" / "f.png"), photo[::64, ::64])
  return user_images.find_images([str(root)])


def fitted(file):
  return user_images.fit(user_images.load(file.path), SHAPE, "crop")


def read(path):
  with Image.open(path) as image:
    return np.asarray(image)


def test_one_png_per_image_by_relative_name_and_the_corrupt_one_counted(files, tmp_path, caplog):
  pair = StandIn()
  plan = translate_files.Plan(batch_size=2)
  with caplog.at_level(std_logging.WARNING):
    summary = translate_files.translate_files(pair, files, str(tmp_path / "out"), plan)
  assert summary.line() == "5 translated, 1 failed"
  assert len(summary.failed) == 1 and "c.png: unreadable or corrupt image" in summary.failed[0]
  assert "skipped" in caplog.text and "c.png" in caplog.text
  names = ["a", "b", "d", "sub/e", "sub/f"]
  assert summary.written == [str(tmp_path / "out" / f"{n}.png") for n in names]
  for file in files:
    if file.stem == "c":
      assert not os.path.exists(tmp_path / "out" / "c.png")
      continue
    out = read(tmp_path / "out" / f"{file.stem}.png")
    np.testing.assert_array_equal(out, 255 - fitted(file)[..., 0])
  # Batches of 2 over the list; the corrupt file leaves its batch one image short.
  assert [c["n"] for c in pair.calls] == [2, 1, 2]
  stems = [["a", "b"], ["d"], ["sub/e", "sub/f"]]
  assert [c["seed"] for c in pair.calls] == [
    [translate_files.file_seed(0, 0, stem) for stem in batch] for batch in stems
  ]
  assert not [n for n in os.listdir(tmp_path / "out") if "tmp" in n]


def test_draws_named_by_number_with_their_own_seeds_and_a_sheet(files, tmp_path):
  pair = StandIn()
  plan = translate_files.Plan(temperature=0.5, seed=7, draws=3, batch_size=4, direction="b2a")
  sheet = str(tmp_path / "sheets" / "sheet.png")
  out = str(tmp_path / "out")
  summary = translate_files.translate_files(pair, files, out, plan, sheet=sheet, sheet_rows=4)
  assert summary.translated == 5 and len(summary.written) == 15
  stems = [["a", "b", "d"], ["sub/e", "sub/f"]]
  seeds = [[translate_files.file_seed(7, k, stem) for stem in b] for b in stems for k in range(3)]
  assert [c["seed"] for c in pair.calls] == seeds
  assert len({s for call in seeds for s in call}) == 15  # every image and draw its own seed
  assert {c["direction"] for c in pair.calls} == {"b2a"}
  for k in range(3):
    x = fitted(files[4])  # sub/e
    expected = ((255 - x.astype(int) + translate_files.file_seed(7, k, "sub/e")) % 256)[..., 0]
    np.testing.assert_array_equal(read(os.path.join(out, "sub", f"e_draw{k}.png")), expected)
  # The sheet: the first 4 translated images, each row its input and its 3 draws.
  cells = helpers.grid_cells(read(sheet)[..., None], 4, 4, 8)
  for row, file in zip(cells, [f for f in files if f.stem != "c"]):
    np.testing.assert_array_equal(row[0], fitted(file))
    for k in range(3):
      np.testing.assert_array_equal(
        row[1 + k], read(os.path.join(out, f"{file.stem}_draw{k}.png"))[..., None]
      )


def test_same_seed_same_files_other_seed_other_files(files, tmp_path):
  def run(seed, name):
    plan = translate_files.Plan(temperature=1.0, seed=seed, batch_size=3)
    translate_files.translate_files(StandIn(), files, str(tmp_path / name), plan)
    return read(tmp_path / name / "d.png")

  np.testing.assert_array_equal(run(1, "x"), run(1, "y"))
  assert (run(1, "x") != run(2, "z")).any()
  assert translate_files.file_seed(1, 0, "a") != translate_files.file_seed(0, 1, "a")
  assert 0 <= translate_files.file_seed(1, 0, "a") < 2**31


def test_an_images_draws_do_not_depend_on_the_batch_size_or_the_other_files(files, tmp_path):
  def run(batch_size, chosen, name):
    plan = translate_files.Plan(temperature=1.0, seed=3, draws=2, batch_size=batch_size)
    translate_files.translate_files(StandIn(), chosen, str(tmp_path / name), plan)
    return [read(tmp_path / name / f"d_draw{k}.png") for k in range(2)]

  whole = run(4, files, "whole")
  np.testing.assert_array_equal(run(1, files, "ones"), whole)
  np.testing.assert_array_equal(run(2, [f for f in files if f.stem == "d"], "alone"), whole)
  assert (whole[0] != whole[1]).any()


def test_an_export_from_before_per_row_seeds_draws_at_t_0_only():
  older = StandIn(seed_per_row=False)
  translate_files.check_pair(older, translate_files.Plan())
  with pytest.raises(ValueError, match="exported before per-row seeds.*re-export it"):
    translate_files.check_pair(older, translate_files.Plan(temperature=0.5))


def test_an_unwritable_output_fails_that_image_only_and_no_half_file_looks_complete(
  files, tmp_path, monkeypatch
):
  out = tmp_path / "out"
  out.mkdir()
  (out / "sub").write_text("a file where the folder sub/ should be")
  summary = translate_files.translate_files(StandIn(), files, str(out), translate_files.Plan())
  assert summary.line() == "3 translated, 3 failed"
  assert sum("sub/e.jpg: cannot write its output" in m for m in summary.failed) == 1

  def crash(src, dst):  # the process dies between writing and renaming
    raise OSError("killed")

  monkeypatch.setattr(os, "replace", crash)
  out = tmp_path / "crashed"
  summary = translate_files.translate_files(StandIn(), files, str(out), translate_files.Plan())
  assert summary.translated == 0
  assert not [p for p in out.rglob("*") if p.name.endswith(".png")]


def test_labels_go_to_a_class_conditional_pair():
  pair = StandIn(classes=10)
  image = user_images.ImageFile("unused", "x")
  with pytest.raises(ValueError, match="class-conditional \\(10 classes\\)"):
    translate_files.translate_files(pair, [image], "out", translate_files.Plan())
  with pytest.raises(ValueError, match="label 10 is not one of the pair's classes 0..9"):
    translate_files.check_pair(pair, translate_files.Plan(label=10))
  with pytest.raises(ValueError, match="not class-conditional"):
    translate_files.check_pair(StandIn(), translate_files.Plan(label=1))
  with pytest.raises(ValueError, match="no coupled prior"):
    translate_files.check_pair(StandIn(coupled=False), translate_files.Plan(temperature=1, draws=2))


def test_labelled_translation(files, tmp_path):
  pair = StandIn(classes=10)
  translate_files.translate_files(pair, files[:2], str(tmp_path), translate_files.Plan(label=3))
  np.testing.assert_array_equal(pair.calls[0]["labels"], [3, 3])


@pytest.mark.parametrize(
  "values, message",
  [
    (dict(direction="a2c"), "direction must be one of a2b, b2a, got 'a2c'"),
    (dict(temperature=-0.5), "temperature must be finite and >= 0"),
    (dict(temperature=float("nan")), "temperature must be finite and >= 0"),
    (dict(seed=-1), "seed must be in 0..2147483647"),
    (dict(seed=2**31), "seed must be in 0..2147483647"),
    (dict(draws=0), "draws must be at least 1, got 0"),
    (dict(draws=2), "draws=2 at temperature 0: every draw would be the same"),
    (dict(batch_size=0), "batch_size must be at least 1"),
    (dict(fit="stretch"), "fit must be one of crop, resize, got 'stretch'"),
    (dict(label=-1), "label must be >= 0"),
  ],
)
def test_plan_refuses_what_cannot_work(values, message):
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
    translate_files.Plan(**values)


def test_progress_gives_rate_and_time_left(caplog):
  now = [100.0]
  progress = translate_files.Progress(400, every=10.0, clock=lambda: now[0])
  old = logging.get_verbosity()
  logging.set_verbosity(logging.INFO)
  try:
    with caplog.at_level(std_logging.INFO):
      now[0] = 105.0
      progress.update(50)  # 5 s since the start: not yet
      now[0] = 110.0
      progress.update(100)
      now[0] = 111.0
      progress.update(400)  # the end: always
  finally:
    logging.set_verbosity(old)
  lines = [r.getMessage() for r in caplog.records]
  assert lines == [
    "100/400 images (25%), 10.0 images/s, ETA 0:00:30",
    "400/400 images (100%), 36.4 images/s, ETA 0:00:00",
  ]
  assert translate_files.format_duration(3 * 3600 + 62.4) == "3:01:02"
