"""Bad command lines and bad files for glow-serve, glow-demo, glow-manipulators, glow-data and
glow-export: each ends in one line on stderr naming what is wrong, with its exit status (2 for a
malformed command line of glow-serve/-demo/-manipulators, 1 for bad input), never a traceback.

glow-serve, glow-demo and glow-manipulators run in-process through their `main(argv)` (fast); the
console-script cases run as processes, all at once in a module fixture: one real start of each
binary (its quiet start-up: no TensorFlow banner), and glow-data's other command lines forked
from the tests' warm process (`helpers.run_console_scripts`: a process each, one TensorFlow start
for all).
"""

import concurrent.futures
import gzip
import os
import socket
import struct
import subprocess
import sys

import numpy as np
import pytest

from glow_tf2.cli import demo as demo_cli
from glow_tf2.cli import manipulators as manipulators_cli
from glow_tf2.cli import serve as serve_cli
from glow_tf2.serving import export
from tests import helpers

MAINS = {"glow-serve": serve_cli.main, "glow-demo": demo_cli.main}
MAINS["glow-manipulators"] = manipulators_cli.main


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
  """A tiny SavedModel and bad files next to it; {name: path}."""
  root = tmp_path_factory.mktemp("bad_command_lines")
  config = helpers.tiny_glow_config(n_levels=1, learntop=False)
  glow = helpers.initialized_glow(config, helpers.real_images(8, (8, 8, 1)), seed=0)
  model = export.export_saved_model(export.build_serving_module(glow), str(root / "model"))
  p = {"model": model, "root": str(root)}
  (root / "garbage").mkdir()
  (root / "garbage" / "saved_model.pb").write_bytes(b"not a protobuf")
  p["garbage"] = str(root / "garbage")
  (root / "not_npz.npz").write_bytes(b"PK\x03\x04 this is no zip")
  p["not_npz"] = str(root / "not_npz.npz")
  np.savez(root / "no_labels.npz", images=np.zeros((4, 8, 8, 1), np.uint8))
  p["no_labels"] = str(root / "no_labels.npz")
  np.savez(
    root / "few_labels.npz", image_a=np.zeros((4, 8, 8, 1), np.uint8), label=np.zeros(3, int)
  )
  p["few_labels"] = str(root / "few_labels.npz")
  np.savez(root / "wrong_dirs.npz", names=np.asarray(["x"]), direction_a=np.zeros((1, 3)))
  p["wrong_dirs"] = str(root / "wrong_dirs.npz")
  # IDX folders, each with one broken images file.
  images = np.zeros((10, 28, 28), np.uint8)
  labels = np.zeros(10, np.uint8)

  def idx_bytes(array):
    return (
      bytes([0, 0, 8, array.ndim])
      + struct.pack(f">{array.ndim}I", *array.shape)
      + (array.tobytes())
    )

  good = gzip.compress(idx_bytes(images))
  broken = {
    "deflate": good[:10] + b"\xff" * 50 + good[60:],  # a valid gzip header, a bad deflate block
    "truncated_gzip": good[:-30],
    "magic": b"\x01\x02" + idx_bytes(images)[2:],
    "truncated_idx": idx_bytes(images)[:-100],
  }
  for name, data in broken.items():
    folder = root / f"idx_{name}"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(data)
    (folder / "t10k-images-idx3-ubyte").write_bytes(data)
    for stem in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
      (folder / stem).write_bytes(idx_bytes(labels))
    p[f"idx_{name}"] = str(folder)
  return p


@pytest.fixture
def busy_port():
  """A port some other socket is listening on."""
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield sock.getsockname()[1]


# (id, program, arguments ({name} = a path of `paths`, {busy} = busy_port), status, message)
IN_PROCESS = [
  ("serve-no-model", "glow-serve", [], 2, "--saved_model is required"),
  ("serve-concurrent-0", "glow-serve", ["--saved_model={model}", "--max_concurrent=0"], 2,
   "--max_concurrent=0: must be at least 1"),
  ("serve-batch-negative", "glow-serve", ["--saved_model={model}", "--max_batch=-1"], 2,
   "--max_batch=-1: must be at least 1"),
  ("serve-connections-0", "glow-serve", ["--saved_model={model}", "--max_connections=0"], 2,
   "--max_connections=0: must be at least 1"),
  ("serve-timeout-0", "glow-serve", ["--saved_model={model}", "--request_timeout=0"], 2,
   "--request_timeout=0.0: must be positive"),
  ("serve-bytes-0", "glow-serve", ["--saved_model={model}", "--max_request_bytes=0"], 2,
   "--max_request_bytes=0: must be at least 1"),
  ("serve-port-70000", "glow-serve", ["--saved_model={model}", "--port=70000"], 2,
   "--port=70000: must be in 0..65535"),
  ("serve-port-abc", "glow-serve", ["--saved_model={model}", "--port=abc"], 2,
   "flag --port=abc"),
  ("serve-unknown-flag", "glow-serve", ["--saved_model={model}", "--bogus"], 2,
   "Unknown command line flag 'bogus'"),
  ("serve-extra-argument", "glow-serve", ["--saved_model={model}", "extra"], 2,
   "unexpected arguments ['extra']"),
  ("serve-model-name", "glow-serve", ["--saved_model={model}", "--model_name=a/b"], 2,
   "--model_name='a/b': must be non-empty, without '/' or ':'"),
  ("serve-missing-model", "glow-serve", ["--saved_model={root}/nothing"], 1,
   "nothing: neither a SavedModel (no saved_model.pb) nor a folder of numbered"),
  ("serve-garbage-model", "glow-serve", ["--saved_model={garbage}"], 1, "saved_model.pb"),
  ("serve-busy-port", "glow-serve", ["--saved_model={model}", "--port={busy}"], 1,
   "cannot listen on 127.0.0.1:{busy}: Address already in use"),
  ("serve-bad-host", "glow-serve", ["--saved_model={model}", "--host=256.1.1.1", "--port=0"], 1,
   "cannot listen on 256.1.1.1:0"),
  ("demo-no-model", "glow-demo", [], 2, "--saved_model is required"),
  ("demo-both-sources", "glow-demo", ["--saved_model={model}", "--examples=x", "--problem=mnist"],
   2, "give --examples or --problem, not both"),
  ("demo-concurrent-0", "glow-demo", ["--saved_model={model}", "--max_concurrent=0"], 2,
   "--max_concurrent=0: must be at least 1"),
  ("demo-port-negative", "glow-demo", ["--saved_model={model}", "--port=-1"], 2,
   "--port=-1: must be in 0..65535"),
  ("demo-timeout-negative", "glow-demo", ["--saved_model={model}", "--request_timeout=-3"], 2,
   "--request_timeout=-3.0: must be positive"),
  ("demo-missing-model", "glow-demo", ["--saved_model={root}/nothing"], 1,
   "nothing: no such folder"),
  ("demo-garbage-model", "glow-demo", ["--saved_model={garbage}"], 1, "saved_model.pb"),
  ("demo-missing-examples", "glow-demo", ["--saved_model={model}", "--examples={root}/no.npz"],
   1, "no.npz"),
  ("demo-corrupt-examples", "glow-demo", ["--saved_model={model}", "--examples={not_npz}"], 1,
   "not_npz.npz"),
  ("demo-wrong-directions", "glow-demo", ["--saved_model={model}", "--manipulators={wrong_dirs}"],
   1, "direction_a must be finite [1, 64], got (1, 3): not made for this model?"),
  ("demo-busy-port", "glow-demo", ["--saved_model={model}", "--port={busy}"], 1,
   "cannot listen on 127.0.0.1:{busy}: Address already in use"),
  ("manipulators-no-model", "glow-manipulators", [], 2, "--saved_model is required"),
  ("manipulators-no-data", "glow-manipulators", ["--saved_model={model}"], 2,
   "give exactly one of --problem and --data"),
  ("manipulators-both", "glow-manipulators",
   ["--saved_model={model}", "--data={no_labels}", "--problem=mnist"], 2, "exactly one of"),
  ("manipulators-no-labels", "glow-manipulators", ["--saved_model={model}", "--data={no_labels}"],
   1, "needs `image_a` (or `images`) and `label` (or `labels`)"),
  ("manipulators-few-labels", "glow-manipulators",
   ["--saved_model={model}", "--data={few_labels}"], 1, "3 labels for 4 images"),
  ("manipulators-missing-data", "glow-manipulators",
   ["--saved_model={model}", "--data={root}/none.npz"], 1, "none.npz"),
  ("manipulators-max-examples-0", "glow-manipulators",
   ["--saved_model={model}", "--data={few_labels}", "--max_examples=0"], 1,
   "--max_examples=0 and --batch_size=100 must be at least 1"),
  ("manipulators-unknown-flag", "glow-manipulators", ["--saved_model={model}", "--nope=1"], 2,
   "Unknown command line flag 'nope'"),
]  # fmt: skip


def _fill(text: str, paths, busy) -> str:
  return text.format(busy=busy, **paths)


@pytest.mark.parametrize(
  "program, args, status, message", [c[1:] for c in IN_PROCESS], ids=[c[0] for c in IN_PROCESS]
)
def test_in_process(paths, busy_port, capsys, program, args, status, message):
  argv = [program] + [_fill(a, paths, busy_port) for a in args]
  got = MAINS[program](argv)
  err = capsys.readouterr().err
  assert got == status, err
  lines = err.strip().splitlines()
  assert len(lines) == 1, err
  assert lines[0].startswith(f"{program}: ") and _fill(message, paths, busy_port) in lines[0]


def _bin(name):
  return os.path.join(os.path.dirname(sys.executable), name)


# (id, argv ({name} = a path), exit status, the one line stderr must be: its words)
SUBPROCESS = [
  ("data-broken-deflate", ["glow-data", "--source=idx", "--input={idx_deflate}", "--output={root}/o1"],
   1, "train-images-idx3-ubyte: corrupt gzip data (Error -3 while decompressing data"),
  ("data-truncated-gzip", ["glow-data", "--source=idx", "--input={idx_truncated_gzip}",
   "--output={root}/o2"], 1, "corrupt gzip data (Compressed file ended before the end-of-stream"),
  ("data-wrong-magic", ["glow-data", "--source=idx", "--input={idx_magic}", "--output={root}/o3"],
   1, "not an IDX file of unsigned bytes (bad magic number)"),
  ("data-truncated-idx", ["glow-data", "--source=idx", "--input={idx_truncated_idx}",
   "--output={root}/o4"], 1, "IDX file holds 7740 bytes, its header (10, 28, 28) needs 7840"),
  ("data-missing-input", ["glow-data", "--source=idx", "--output={root}/o5"], 1,
   "--source=idx needs --input"),
  ("data-unknown-source", ["glow-data", "--source=bogus", "--output={root}/o6"], 1,
   "flag --source=bogus: value should be one of"),
  ("data-no-output", ["glow-data", "--source=mnist"], 1, "Flag --output must have a value"),
  ("export-missing-run", ["glow-export", "--logdir={root}/norun", "--export_dir={root}/e"], 1,
   "--logdir="),
  ("serve-binary-missing-model", ["glow-serve", "--saved_model={root}/nothing"], 1,
   "neither a SavedModel"),
  ("demo-binary-bad-flag", ["glow-demo", "--saved_model={model}", "--max_connections=0"], 2,
   "--max_connections=0: must be at least 1"),
  ("manipulators-binary-bad-data", ["glow-manipulators", "--saved_model={model}",
   "--data={no_labels}"], 1, "needs `image_a`"),
]  # fmt: skip


# The cases that start their binary for real, one per binary; the others are forked.
REAL_STARTS = (
  "data-broken-deflate",
  "export-missing-run",
  "serve-binary-missing-model",
  "demo-binary-bad-flag",
  "manipulators-binary-bad-data",
)


@pytest.fixture(scope="module")
def subprocess_results(paths):
  argvs = {name: [_fill(a, paths, 0) for a in argv] for name, argv, *_ in SUBPROCESS}
  forked = [name for name in argvs if name not in REAL_STARTS]
  assert {argvs[name][0] for name in REAL_STARTS} == {argv[0] for argv in argvs.values()}

  def run(name):
    argv = argvs[name]
    return subprocess.run(
      [_bin(argv[0])] + argv[1:],
      env=helpers.SUBPROCESS_ENV,
      capture_output=True,
      text=True,
      timeout=300,
    )

  with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
    forks = pool.submit(helpers.run_console_scripts, [argvs[n] for n in forked])
    results = dict(zip(REAL_STARTS, pool.map(run, REAL_STARTS)))
    results.update(zip(forked, forks.result()))
  return results


@pytest.mark.parametrize("name, argv, status, message", SUBPROCESS, ids=[c[0] for c in SUBPROCESS])
def test_console_script(paths, subprocess_results, name, argv, status, message):
  result = subprocess_results[name]
  assert result.returncode == status, result.stderr
  lines = result.stderr.strip().splitlines()
  # No traceback; for the real starts, no TensorFlow banner either (the quiet start-up).
  assert len(lines) == 1, result.stderr
  assert lines[0].startswith(f"{argv[0]}: ") and _fill(message, paths, 0) in lines[0], lines[0]
  # Nothing half-written by a failed glow-data.
  for arg in argv:
    if arg.startswith("--output="):
      out = _fill(arg.split("=", 1)[1], paths, 0)
      assert not os.path.exists(out) or not os.listdir(out), os.listdir(out)
