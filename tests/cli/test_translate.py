"""glow-translate on a real (tiny) coupled glow-train run and its SavedModel: a folder of real
pictures in mixed sizes and formats, and a corrupt file, translated both ways; reproducible at
T = 0 and per seed at T > 0; crop against resize; exit codes, counts and bad command lines.

The binary runs in-process through its `main(argv)` (no second TensorFlow start), and once as
the installed console script.
"""

import logging as std_logging
import os
import subprocess

import numpy as np
from PIL import Image
import pytest
import skimage.data

import glow_tf2
from glow_tf2 import translate_files
from glow_tf2 import user_images
from glow_tf2.cli import translate
from glow_tf2.serving import export
from tests import helpers
from tests.cli.test_export import bin_path

SHAPE = (32, 32, 1)
STEMS = ["digit", "photo", "sub/camera", "sub/deeper/wide"]  # the readable ones, in order


@pytest.fixture(scope="module")
def model(tmp_path_factory):
  """{"run": a coupled run folder (2 steps, 32x32x1), "export": its SavedModel, "pair": the
  run's ImagePair}."""
  run = helpers.tiny_pair_run(
    tmp_path_factory,
    "translate_run",
    {
      "data.n_test": 16,
      "optim.lr": 0.01,
      "loss.code_loss_type": "coupled",
      "loss.coupled_rho_init": 0.9,
      "n_batch_test": 16,
      "epochs_full_sample": 10,
    },
  )
  pair = glow_tf2.load_pair(run["logdir"])  # the EMA weights glow-export exports
  module = export.build_serving_module(pair.glow_a, pair.glow_b, prior=pair.prior)
  folder = export.export_saved_model(module, str(tmp_path_factory.mktemp("translate_export") / "1"))
  return dict(run=run["logdir"], export=folder, pair=pair)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
  """A folder of real pictures: a grey digit PNG, colour and grey JPEGs, a nested wide colour
  PNG, a corrupt PNG and a text file (not an image: left out)."""
  root = tmp_path_factory.mktemp("translate_inputs") / "in"
  photo = skimage.data.astronaut()
  helpers.save(str(root / "digit.png"), helpers.real_images(1, SHAPE, seed=3)[0])
  helpers.save(str(root / "photo.jpg"), photo[20:220, 80:480], quality=92)
  helpers.save(str(root / "sub" / "camera.jpg"), skimage.data.camera()[:300, 150:300, None])
  helpers.save(str(root / "sub" / "deeper" / "wide.png"), photo[250:310, 100:400])
  (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n and then not a PNG at all")
  (root / "readme.txt").write_text("not an image")
  return str(root)


def fitted(inputs, fit="crop"):
  """The readable inputs fitted to the model, `[4, 32, 32, 1]`."""
  files = [f for f in user_images.find_images([inputs]) if f.stem != "broken"]
  return np.stack([user_images.fit(user_images.load(f.path), SHAPE, fit) for f in files])


def read(path):
  with Image.open(path) as image:
    assert image.mode == "L" and image.size == (32, 32), (path, image.mode, image.size)
    return np.asarray(image)[..., None]


def outputs(folder, draws=1):
  """The output PNGs of the readable inputs, `[draws, 4, 32, 32, 1]`."""
  paths = [translate_files.output_paths(str(folder), s, draws) for s in STEMS]
  return np.stack([np.stack([read(p[k]) for p in paths]) for k in range(draws)])


def run_main(capsys, *args):
  """(exit status, stdout, stderr) of glow-translate in this process."""
  code = translate.main(["glow-translate", *args])
  out, err = capsys.readouterr()
  return code, out, err


def test_a_folder_a2b_at_t0_written_by_name_with_the_corrupt_file_counted(
  model, inputs, tmp_path, capsys, caplog
):
  with caplog.at_level(std_logging.WARNING):
    code, out, _ = run_main(capsys, f"--model={model['run']}", f"--output={tmp_path / 'a'}", inputs)
  assert code == 1
  assert f"glow-translate: 5 image(s) -> {tmp_path / 'a'}, a2b, T = 0\n" in out
  assert "each image centre-cropped to 1:1 and scaled to 32x32, grey" in out
  assert out.endswith("glow-translate: 4 translated, 1 failed\n")
  assert "broken.png: unreadable or corrupt image" in caplog.text
  listing = sorted(
    os.path.relpath(os.path.join(d, n), tmp_path / "a")
    for d, _, ns in os.walk(tmp_path / "a")
    for n in ns
  )
  assert listing == ["digit.png", "photo.png", "sub/camera.png", "sub/deeper/wide.png"]
  expected = model["pair"].translate(fitted(inputs), "a2b").numpy()
  np.testing.assert_array_equal(outputs(tmp_path / "a")[0], expected)
  # T = 0 is reproducible, and the seed does not enter it.
  run_main(capsys, f"--model={model['run']}", f"--output={tmp_path / 'b'}", "--seed=9", inputs)
  np.testing.assert_array_equal(outputs(tmp_path / "b"), outputs(tmp_path / "a"))


def test_b2a_goes_the_other_way(model, inputs, tmp_path, capsys):
  args = [f"--model={model['run']}", inputs, "--direction=b2a"]
  code, out, _ = run_main(capsys, f"--output={tmp_path / 'b2a'}", *args)
  assert code == 1 and ", b2a, T = 0" in out
  b2a = outputs(tmp_path / "b2a")[0]
  np.testing.assert_array_equal(b2a, model["pair"].translate(fitted(inputs), "b2a").numpy())
  a2b = model["pair"].translate(fitted(inputs), "a2b").numpy()
  assert np.abs(b2a.astype(int) - a2b).mean() > 1


def test_draws_at_t_above_0_are_reproducible_per_seed(model, inputs, tmp_path, capsys):
  def draws(seed, name):
    code, out, _ = run_main(
      capsys,
      f"--model={model['run']}",
      f"--output={tmp_path / name}",
      "--temperature=0.8",
      "--draws=2",
      f"--seed={seed}",
      inputs,
    )
    assert code == 1 and "T = 0.8, seed " + str(seed) + ", 2 draw(s)" in out
    return outputs(tmp_path / name, draws=2)

  first = draws(3, "s3")
  np.testing.assert_array_equal(draws(3, "s3_again"), first)
  other = draws(4, "s4")
  assert (other != first).mean() > 0.1
  assert (first[0] != first[1]).mean() > 0.1  # two draws, two pictures
  x = fitted(inputs)
  for k in range(2):
    seeds = np.array([translate_files.file_seed(3, k, stem) for stem in STEMS], np.int32)
    np.testing.assert_array_equal(first[k], model["pair"].translate(x, "a2b", 0.8, seeds).numpy())


def test_crop_and_resize_frame_the_pictures_differently(model, inputs, tmp_path, capsys):
  sheets = {}
  for fit in ("crop", "resize"):
    sheet = str(tmp_path / f"{fit}.png")
    code, out, _ = run_main(
      capsys,
      f"--model={model['run']}",
      f"--output={tmp_path / fit}",
      f"--fit={fit}",
      f"--sheet={sheet}",
      inputs,
    )
    assert code == 1 and f"glow-translate: sheet {sheet}" in out
    sheets[fit] = helpers.grid_cells(read_grid(sheet), 4, 2, 32)
    np.testing.assert_array_equal(sheets[fit][:, 0], fitted(inputs, fit))
    np.testing.assert_array_equal(sheets[fit][:, 1], outputs(tmp_path / fit)[0])
  assert "resized whole to 32x32 (aspect ratio not kept)" in out
  crop, resize = sheets["crop"], sheets["resize"]
  np.testing.assert_array_equal(crop[0], resize[0])  # the square digit: the same either way
  for i in (1, 2, 3):  # the others: other pictures, other translations
    assert np.abs(crop[i, 0].astype(int) - resize[i, 0]).mean() > 2
    assert (crop[i, 1] != resize[i, 1]).any()


def read_grid(path):
  with Image.open(path) as image:
    return np.asarray(image)[..., None]


def test_a_savedmodel_draws_what_its_run_folder_draws(model, inputs, tmp_path, capsys):
  code, _, _ = run_main(
    capsys,
    f"--model={model['export']}",
    f"--output={tmp_path / 'saved'}",
    "--batch_size=3",
    "--temperature=1",
    "--seed=5",
    inputs,
  )
  assert code == 1
  # Batches of 3 over the 5 files (the corrupt one leaves the first with 2 images); each image
  # draws from its own seed, so the run folder's pair translating them all at once agrees.
  x, pair = fitted(inputs), model["pair"]
  seeds = np.array([translate_files.file_seed(5, 0, stem) for stem in STEMS], np.int32)
  expected = pair.translate(x, "a2b", 1.0, seeds).numpy()
  saved = outputs(tmp_path / "saved")[0]
  assert np.abs(saved.astype(int) - expected).max() <= 1 and (saved == expected).mean() > 0.99


@pytest.mark.parametrize(
  "args, message",
  [
    (["--output=o", "IN"], "--model is required"),
    (["--model=nowhere", "--output=o", "IN"], "--model=nowhere: no such folder"),
    (["--model=RUN", "IN"], "--output is required"),
    (["--model=RUN", "--output=o"], "no inputs: give image files or folders after the flags"),
    (
      ["--model=RUN", "--output=o", "--direction=a2c", "IN"],
      "flag --direction=a2c: value should be one of <a2b|b2a>",
    ),
    (
      ["--model=RUN", "--output=o", "--fit=squash", "IN"],
      "flag --fit=squash: value should be one of <crop|resize>",
    ),
    (["--model=RUN", "--output=o", "--draws=-1", "IN"], "draws must be at least 1, got -1"),
    (
      ["--model=RUN", "--output=o", "--draws=3", "IN"],
      "draws=3 at temperature 0: every draw would be the same",
    ),
    (
      ["--model=RUN", "--output=o", "--temperature=-1", "IN"],
      "temperature must be finite and >= 0, got -1.0",
    ),
    (["--model=RUN", "--output=o", "--seed=-2", "IN"], "seed must be in 0..2147483647, got -2"),
    (["--model=RUN", "--output=o", "--batch_size=0", "IN"], "batch_size must be at least 1, got 0"),
    (["--model=RUN", "--output=o", "IN/missing.png"], "IN/missing.png: no such file or folder"),
    (["--model=RUN", "--output=o", "IN/sub/deeper/wide.png/"], "no such file or folder"),
    (
      ["--model=RUN", "--output=o", "--label=2", "IN"],
      "a label is given, but the pair is not class-conditional",
    ),
    (["--model=RUN", "--output=o", "--sheet=s.jpg", "IN"], "--sheet=s.jpg: must be a .png file"),
    (["--model=RUN", "--output=o", "--nope", "IN"], "Unknown command line flag 'nope'"),
    (["--model=RUN", "--output=IN/digit.png", "IN"], "exists and is not a folder"),
  ],
)
def test_a_command_line_that_cannot_work_ends_in_one_line_and_status_2(
  model, inputs, args, message, capsys
):
  args = [a.replace("IN", inputs).replace("RUN", model["run"]) for a in args]
  code, out, err = run_main(capsys, *args)
  assert code == 2, (out, err)
  assert err.startswith("glow-translate: ") and err.count("\n") == 1, err
  assert message.replace("IN", inputs) in err


def test_a_folder_that_is_no_model_ends_in_one_line_and_status_1(inputs, tmp_path, capsys):
  code, _, err = run_main(capsys, f"--model={tmp_path}", "--output=o", inputs)
  assert code == 1 and err.count("\n") == 1
  assert f"glow-translate: cannot load --model={tmp_path}: load_pair: " in err


def test_help_lists_the_flags(capsys):
  code, out, _ = run_main(capsys, "--help")
  assert code == 0 and "glow-translate --model=RUN_OR_SAVED_MODEL" in out and "--fit" in out


def test_the_console_script(model, inputs, tmp_path):
  out_dir = tmp_path / "script"
  proc = subprocess.run(
    [bin_path("glow-translate"), f"--model={model['export']}", f"--output={out_dir}", inputs],
    capture_output=True,
    text=True,
    timeout=300,
    env=helpers.SUBPROCESS_ENV,
  )
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert proc.stdout.splitlines()[-1] == "glow-translate: 4 translated, 1 failed"
  assert "broken.png: unreadable or corrupt image" in proc.stderr
  assert "5/5 images (100%)" in proc.stderr and "images/s, ETA 0:00:00" in proc.stderr
  assert "oneDNN" not in proc.stderr and "Traceback" not in proc.stderr
  assert "Logging before flag parsing" not in proc.stderr
  expected = model["pair"].translate(fitted(inputs), "a2b").numpy()
  assert np.abs(outputs(out_dir)[0].astype(int) - expected).max() <= 1
