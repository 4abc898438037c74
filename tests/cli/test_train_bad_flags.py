"""Bad command lines of glow-train (and bad run folders of glow-eval and glow-export): each ends
with exit status 1 and one line naming the flag (or folder) at fault, never a traceback.

Every command line of this file (the one-step run the resume cases resume, glow-train's table,
a few of its refusals whose output is checked further, the bad run folders) is a process of its
own, forked from the tests' warm process (`helpers.run_console_scripts`): the exit status and
stderr a shell sees, without a TensorFlow start each.
"""

import json
import os
import re

import pytest

from tests.helpers import mnist_dir
from tests.helpers import run_console_scripts
from tests.helpers import tiny_flags

# (extra flags over tests.helpers.tiny_flags, the one-line message's regex). "RUN" stands for the
# run folder; the cases marked with "resume:" run against a folder holding a trained run.
CASES = [
  (["--seed=-1"], r"--seed=-1: must be in \[0, 2\*\*31\)"),
  (["--seed=100000000000000000000"], r"--seed=100000000000000000000: must be in \[0, 2\*\*31\)"),
  (["--seed=2147483648"], r"--seed=2147483648: must be in \[0, 2\*\*31\)"),
  (["--epochs_warmup=inf"], r"--epochs_warmup=inf: must be finite and >= 0"),
  (["--epochs_warmup=nan"], r"--epochs_warmup=nan: must be finite and >= 0"),
  (["--epochs_warmup=-1"], r"--epochs_warmup=-1.0: must be finite and >= 0"),
  (["--polyak_epochs=inf"], r"--polyak_epochs=inf: must be finite and > 0"),
  (["--polyak_epochs=0"], r"--polyak_epochs=0.0: must be finite and > 0"),
  (["--ema_epochs=-1"], r"--ema_epochs=-1.0: must be finite and >= 0"),
  (["--lr=1e400"], r"--lr=inf: must be finite and > 0"),
  (["--lr=0"], r"--lr=0.0: must be finite and > 0"),
  (["--lr=-0.1"], r"--lr=-0.1: must be finite and > 0"),
  (["--lr=nan"], r"--lr=nan: must be finite and > 0"),
  (["--beta1=1"], r"--beta1=1.0: must be in \[0, 1\)"),
  (["--weight_decay=0"], r"--weight_decay=0.0: is multiplicative"),
  (["--weight_decay=1.5"], r"--weight_decay=1.5: is multiplicative"),
  (["--code_loss_scale=inf"], r"--code_loss_scale=inf: must be finite and >= 0"),
  (["--mle_loss_scale=-1"], r"--mle_loss_scale=-1.0: must be finite and >= 0"),
  (["--translation_loss_scale=nan"], r"--translation_loss_scale=nan: must be finite and >= 0"),
  (["--ycond", "--weight_y=inf"], r"--weight_y=inf: must be finite and >= 0"),
  (["--n_batch_train=0"], r"--n_batch_train=0: must be >= 1"),
  (["--n_batch_test=0"], r"--n_batch_test=0: must be >= 1"),
  (["--n_batch_init=1"], r"--n_batch_init=1: must be >= 2"),
  (["--n_test=0"], r"--n_test=0: must be -1 \(the whole test split\) or >= 1"),
  (["--n_train=0"], r"--n_train=0: must be in \[1, 2\*\*62\)"),
  (["--epochs=0"], r"--epochs=0: must be >= 1"),
  (["--train_steps=-5"], r"--train_steps=-5: must be >= 0"),
  (["--train_steps=9223372036854775807"], r"--train_steps=9223372036854775807: must be < 2\*\*62"),
  (["--checkpoint_steps=-1"], r"--checkpoint_steps=-1: must be >= 0"),
  (["--checkpoint_secs=inf"], r"--checkpoint_secs=inf: must be finite and >= 0"),
  (["--checkpoint_secs=-1"], r"--checkpoint_secs=-1.0: must be finite and >= 0"),
  (["--keep_checkpoints=0"], r"--keep_checkpoints=0: must be >= 1"),
  (["--dal=3"], r"--dal=3: must be 0 \(off\), 1 \(shifts\) or 2 \(affine\)"),
  (["--n_bits_x=9"], r"--n_bits_x=9: .*n_bits_x must be an int in \[1, 8\]"),
  (["--depth=0"], r"--depth=0: .*depth must be an int >= 1"),
  (["--width=0"], r"--width=0: .*width must be an int >= 1"),
  (["--n_levels=0"], r"--n_levels=0: .*n_levels must be an int >= 1"),
  (["--channels=2"], r"--channels=2: must be 1 or 3"),
  (["--log_steps=0"], r"--log_steps=0: must be >= 1"),
  (["--epochs_full_valid=0"], r"--epochs_full_valid=0: must be >= 1"),
  (["--num_cpu_devices=-1"], r"--num_cpu_devices=-1: must be in \[0, 256\]"),
  (["--num_cpu_devices=100000"], r"--num_cpu_devices=100000: must be in \[0, 256\]"),
  (["--flow_permutation=7"], r"--flow_permutation=7: must be one of reverse, shuffle, conv, lu"),
  (["--strategy=tpu"], r"--strategy=tpu: must be one of auto, one_device, mirrored"),
  (["--image_size=1"], r"--image_size=1: must be -1 \(the problem's size\) or >= 2"),
  # absl's own parsing of a value that is not a number.
  (["--seed=abc"], r"FATAL Flags parsing error: flag --seed=abc: invalid literal.*"),
  (["--lr=fast"], r"FATAL Flags parsing error: flag --lr=fast: could not convert.*"),
  # Resuming RUN (trained with --depth=1 --width=16, joint, 32x32x1) with another architecture.
  (["resume:", "--depth=2"], r"--depth=2: the run in RUN was trained with --depth=1; .*"),
  (["resume:", "--width=32"], r"--width=32: the run in RUN was trained with --width=16; .*"),
  (
    ["resume:", "--flow_coupling=affine"],
    r"--flow_coupling=affine: the run in RUN was trained with --flow_coupling=additive; .*",
  ),
  (["resume:", "--ycond"], r"--ycond=true: the run in RUN was trained with --ycond=false; .*"),
  (["resume:", "--n_levels=3"], r"--n_levels=3: the run in RUN was trained with --n_levels=2"),
]

# The trained run, the table and the shell's cases and the bad run folders: one TensorFlow
# start (`helpers.run_console_scripts`), a forked process each, in this order.
TRAINED = ("--train_steps=1", "--epochs_full_sample=1000", "--n_sample=4")


def shell_cases(run, data_dir, fresh):
  """(glow-train command line, the last line's regex): each kind of refusal once (a flag's
  value, the problem's name, a resume with another architecture)."""
  return [
    (
      ["glow-train", "--flow_permutation=9", f"--logdir={fresh}"],
      r"glow-train: --flow_permutation=9: must be one of reverse, shuffle, conv, lu",
    ),
    (
      ["glow-train", "--problem=nonesuch", f"--logdir={fresh}"],
      r"glow-train: --problem=nonesuch: unknown problem 'nonesuch'",
    ),
    (
      ["glow-train", *tiny_flags(run, data_dir, "--depth=3")[3:]],
      rf"glow-train: --depth=3: the run in {re.escape(run)} was trained with --depth=1; ",
    ),
  ]


def folder_cases(root):
  """(program, flags, the last line's regex) of glow-eval and glow-export on bad run folders."""
  empty, broken, missing, out = root / "empty", root / "broken", root / "missing", root / "out"
  return [
    ("glow-eval", [f"--logdir={missing}"], rf"glow-eval: --logdir={missing}: no config.json or .*"),
    ("glow-eval", [f"--logdir={empty}"], rf"glow-eval: --logdir={empty}: no config.json or .*"),
    ("glow-eval", [f"--logdir={broken}"], rf"glow-eval: {broken}/config.json: not JSON .*"),
    (
      "glow-export",
      [f"--logdir={empty}", f"--export_dir={out}"],
      rf"glow-export: --logdir={empty}: no config.json or .*",
    ),
    (
      "glow-export",
      [f"--logdir={broken}", f"--export_dir={out}"],
      rf"glow-export: {broken}/config.json: not JSON .*",
    ),
  ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """A joint tiny run of one step (config.json and ckpt-1: what the resume: cases resume), then
  every bad command line of this file against it; {"run", "data_dir", "root", "table", "shell",
  "folders"}, the last three lists of CompletedProcess in the order of their cases."""
  data_dir = mnist_dir(tmp_path_factory)
  root = tmp_path_factory.mktemp("bad_flags")
  run = str(root / "run")
  (root / "empty").mkdir()
  (root / "broken").mkdir()
  (root / "broken" / "config.json").write_text("{")
  table = []
  for extra, _ in CASES:
    resume = extra[:1] == ["resume:"]
    logdir = run if resume else str(root / "fresh")
    # --train_steps=1 first: a case that slipped through would stop at once, not train on.
    table.append(
      ["glow-train", *tiny_flags(logdir, data_dir, "--train_steps=1")[3:], *extra[resume:]]
    )
  shell = [argv for argv, _ in shell_cases(run, data_dir, str(root / "shell_fresh"))]
  folders = [[program, *args] for program, args, _ in folder_cases(root)]
  trained = ["glow-train", *tiny_flags(run, data_dir, *TRAINED)[3:]]
  argvs = [trained, *table, *shell, *folders]
  results = run_console_scripts(argvs)
  assert results[0].returncode == 0, results[0].stderr[-3000:]
  n, m = 1 + len(table), 1 + len(table) + len(shell)
  return dict(
    run=run,
    data_dir=data_dir,
    root=root,
    table=results[1:n],
    shell=results[n:m],
    folders=results[m:],
  )


def first_line(stderr: str) -> str:
  lines = [line for line in stderr.strip().splitlines() if line.strip()]
  return lines[0] if lines else ""


def last_line(stderr: str) -> str:
  lines = [line for line in stderr.strip().splitlines() if line.strip()]
  return lines[-1] if lines else ""


def test_bad_glow_train_command_lines_exit_1_with_one_line_naming_the_flag(runs):
  run, results = runs["run"], runs["table"]
  assert len(results) == len(CASES) >= 25
  wrong = []
  for (extra, pattern), got in zip(CASES, results):
    # absl's parse errors are its own two lines: the error, then where to find the help.
    absl_error = pattern.startswith("FATAL")
    message = first_line(got.stderr) if absl_error else last_line(got.stderr)
    prefix = "" if absl_error else "glow-train: "
    expected = prefix + pattern.replace("RUN", re.escape(run))
    # The message starts with the flag and the reason (re.match anchors at the start).
    if got.returncode != 1 or "Traceback" in got.stderr or not re.match(expected, message):
      wrong.append((extra, got.returncode, message))
  assert not wrong, wrong
  # Nothing was trained or written for the rejected fresh runs.
  assert not (runs["root"] / "fresh" / "checkpoints").exists()
  # The refused resumes left the run as it was.
  with open(os.path.join(run, "config.json")) as f:
    assert json.load(f)["config"]["model"]["depth"] == 1


def test_the_shell_sees_exit_status_1_and_one_line(runs):
  # A process each: the exit status and stderr as a shell sees them, for each kind of refusal;
  # the table above covers every flag (tests/cli/test_quiet.py starts glow-train for real).
  run, fresh = runs["run"], str(runs["root"] / "shell_fresh")
  for (command, pattern), result in zip(shell_cases(run, runs["data_dir"], fresh), runs["shell"]):
    assert result.returncode == 1, (command[1:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    assert re.match(pattern, last_line(result.stderr)), (pattern, last_line(result.stderr))
    if "--problem=nonesuch" in command or "--flow_permutation=9" in command:
      # Stopped before any work: no devices, data, model or output folder.
      for later in ("problem mnist", "replicas", "data-dependent init"):
        assert later not in result.stderr, (command[1:], later)
  assert not os.path.exists(fresh)
  with open(os.path.join(run, "config.json")) as f:
    assert json.load(f)["config"]["model"]["depth"] == 1


def test_bad_run_folders_of_glow_eval_and_glow_export(runs):
  for (tool, args, pattern), result in zip(folder_cases(runs["root"]), runs["folders"]):
    assert result.returncode == 1, (tool, args, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    assert re.fullmatch(pattern, last_line(result.stderr)), (tool, last_line(result.stderr))
  assert not (runs["root"] / "out").exists()
