"""tools/kill_resume.py's verdict: weight differences, log comparison, the table and exit status.

The runs themselves (glow-train killed and resumed) are tests/train/test_resume.py's; here the
checks the tool prints are fed checkpoints and logs with known differences."""

import json

import numpy as np
import tensorflow as tf

from glow_tf2_tools import kill_resume


def write_checkpoint(prefix, weights, progress=""):
  root = tf.train.Checkpoint(
    w=tf.Variable(weights),
    step=tf.Variable(7, dtype=tf.int64),
    epoch_progress=tf.Variable(progress),
  )
  return root.write(str(prefix))


def write_log(path, records):
  lines = [{"problem": "mnist", "logdir": str(path.parent)}] + records
  path.write_text("".join(json.dumps(r) + "\n" for r in lines))


def test_weight_diffs_are_max_abs_per_variable_and_ignore_the_running_means(tmp_path):
  w = np.array([[1.0, -2.0], [3.0, 0.5]], np.float32)
  a = write_checkpoint(tmp_path / "a", w, progress='{"step": 7}')
  b = write_checkpoint(tmp_path / "b", w + np.array([[0, 0], [-0.25, 0]], np.float32))
  diffs = kill_resume.weight_diffs(a, b)
  assert diffs == {"w/.ATTRIBUTES/VARIABLE_VALUE": 0.25, "step/.ATTRIBUTES/VARIABLE_VALUE": 0.0}
  assert set(kill_resume.weight_diffs(a, a).values()) == {0.0}
  # Another shape, or a variable one of them lacks: infinitely different.
  c = write_checkpoint(tmp_path / "c", np.zeros([3], np.float32))
  assert kill_resume.weight_diffs(a, c)["w/.ATTRIBUTES/VARIABLE_VALUE"] == float("inf")
  d = tf.train.Checkpoint(w=tf.Variable(w)).write(str(tmp_path / "d"))
  assert kill_resume.weight_diffs(a, d)["step/.ATTRIBUTES/VARIABLE_VALUE"] == float("inf")


def test_logs_equal_ignores_the_clocks_and_the_header_only(tmp_path):
  ref, run = tmp_path / "ref", tmp_path / "run"
  ref.mkdir()
  run.mkdir()
  record = {"epoch": 1, "n_images": 160, "train_time": 3, "loss": "10.1257"}
  write_log(ref / "train_A.txt", [record])
  write_log(ref / "test_A.txt", [{"epoch": 1, "loss": "9.0000"}])
  write_log(run / "train_A.txt", [{**record, "train_time": 41, "train_cpu_time": 70}])
  write_log(run / "test_A.txt", [{"epoch": 1, "loss": "9.0000"}])
  assert kill_resume.logs_equal(str(ref), str(run))
  write_log(run / "train_A.txt", [{**record, "loss": "10.1258"}])
  assert not kill_resume.logs_equal(str(ref), str(run))
  write_log(run / "train_A.txt", [record, {**record, "epoch": 2}])
  assert not kill_resume.logs_equal(str(ref), str(run))
  (run / "test_A.txt").unlink()
  write_log(run / "train_A.txt", [record])
  assert not kill_resume.logs_equal(str(ref), str(run))


def test_table_and_verdict():
  good = kill_resume.Row(0, 7, True, 6, 1, 0.0, 0, True)
  rows = [
    good,
    kill_resume.Row(1, 13, True, 12, 1, 2e-7, 3, True),  # not bitwise
    kill_resume.Row(2, 5, True, 3, 2, 0.0, 0, False),  # other logs
    kill_resume.Row(3, 19, False, 18, 1, 0.0, 0, True, "not killed: ended"),
  ]
  assert [kill_resume.failed(r, 0.0) for r in rows] == [False, True, True, True]
  assert [kill_resume.failed(r, 1e-6) for r in rows] == [False, False, True, True]
  lines = kill_resume.format_table(rows, 0.0).splitlines()
  assert lines[0].split()[:4] == ["run", "kill", "step", "resumed"] and len(lines) == 5
  assert lines[1].split() == ["0", "7", "6", "1", "0", "0", "true", "ok"]
  assert lines[2].split()[-1] == "FAIL" and "2e-07" in lines[2]
  assert lines[4].endswith("FAIL (not killed: ended)")
