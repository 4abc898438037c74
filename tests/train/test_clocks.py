"""The trainer's two clocks (`outputs.Mean`): wall seconds and the process's CPU seconds of
training, paused over saves, carried through a mid-epoch checkpoint, and written cumulatively as
`train_time` and `train_cpu_time` (the last key of a train record)."""

import json
import time

import pytest

from glow_tf2.train import outputs


def spin(cpu_seconds: float) -> None:
  """Burns `cpu_seconds` of this process's CPU time."""
  end = time.process_time() + cpu_seconds
  while time.process_time() < end:
    pass


def test_the_cpu_clock_counts_work_and_not_waiting():
  mean = outputs.Mean()
  spin(0.3)
  assert 0.3 <= mean.cpu_seconds() <= mean.seconds() + 0.05
  cpu, wall = mean.cpu_seconds(), mean.seconds()
  time.sleep(0.4)
  assert mean.seconds() - wall >= 0.4
  # TensorFlow's idle pools may wake now and then; a sleep costs far less than its length.
  assert mean.cpu_seconds() - cpu < 0.15


def test_a_pause_leaves_both_clocks_out():
  mean = outputs.Mean()
  spin(0.2)
  cpu, wall = mean.cpu_seconds(), mean.seconds()
  began, began_cpu = time.time(), time.process_time()
  spin(0.3)  # a checkpoint's save
  mean.pause(time.time() - began, time.process_time() - began_cpu)
  # The 0.3 s are gone from both; the slack is for a worker descheduled between two reads.
  assert mean.cpu_seconds() == pytest.approx(cpu, abs=0.1)
  assert mean.seconds() == pytest.approx(wall, abs=0.1)


def test_a_checkpoints_state_carries_the_cpu_seconds():
  mean = outputs.Mean({"loss": 3.0}, count=2, seconds=100.0, cpu_seconds=180.0)
  state = json.loads(json.dumps(mean.state()))
  resumed = outputs.Mean.from_state(state)
  assert resumed.count == 2 and resumed.result() == {"loss": 1.5}
  assert 180.0 <= resumed.cpu_seconds() < 180.5
  assert 100.0 <= resumed.seconds() < 100.5
  # A state written before the CPU clock resumes it from 0.
  del state["cpu_seconds"]
  assert 0.0 <= outputs.Mean.from_state(state).cpu_seconds() < 0.5


def test_train_logs_are_cumulative_across_a_resume(tmp_path):
  header = {"problem": "mnist"}
  first = outputs.Outputs(str(tmp_path), header, ["A", "B"], batch_train=16, resume_epoch=0)
  first.train_logs(
    1, 10, outputs.Mean({"loss_a": 2.0, "loss_b": 2.0}, 1, seconds=30.0, cpu_seconds=50.0)
  )
  first.train_logs(
    2, 20, outputs.Mean({"loss_a": 1.0, "loss_b": 1.0}, 1, seconds=40.0, cpu_seconds=70.0)
  )
  resumed = outputs.Outputs(str(tmp_path), header, ["A", "B"], batch_train=16, resume_epoch=2)
  resumed.train_logs(
    3, 30, outputs.Mean({"loss_a": 0.5, "loss_b": 0.5}, 1, seconds=10.0, cpu_seconds=20.0)
  )
  for side in "AB":
    with open(tmp_path / f"train_{side}.txt") as f:
      records = [json.loads(line) for line in f.read().splitlines()[1:]]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert [r["train_time"] for r in records] == [30, 70, 80]
    assert [r["train_cpu_time"] for r in records] == [50, 120, 140]
    assert all(list(r)[-1] == "train_cpu_time" for r in records)
    assert [r["loss"] for r in records] == ["2.0000", "1.0000", "0.5000"]
