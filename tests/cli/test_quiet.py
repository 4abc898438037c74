"""The binaries start quietly: TensorFlow's start-up banners reach stderr only with --verbose."""

import subprocess
import sys

from glow_tf2 import quiet
from tests.helpers import SUBPROCESS_ENV
from tests.helpers import mnist_dir
from tests.helpers import tiny_flags

BANNERS = ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard")
# TensorFlow's own default log level (0), so that --verbose shows a banner on every CPU: at
# level 2 (tests.helpers.SUBPROCESS_ENV) only the oneDNN banner remains, and only Intel CPUs
# with AVX-512 print it (an AMD EPYC prints none).
ENV = {k: v for k, v in SUBPROCESS_ENV.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def _stderr(*args) -> str:
  result = subprocess.run(
    [sys.executable, "-m", "glow_tf2.cli.train", "--flow_permutation=9", *args],
    env=ENV,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode != 0
  assert "--flow_permutation=9: must be one of" in result.stderr  # our message still shows
  return result.stderr


def test_banners_only_with_verbose():
  quiet = _stderr()
  assert not any(b in quiet for b in BANNERS), quiet
  loud = _stderr("--verbose")
  assert any(b in loud for b in BANNERS), loud  # the check can fail: they exist


def test_only_glow_binaries_count():
  assert quiet.is_binary(["-m", "--x"]) and quiet.is_binary(["/venv/bin/glow-train"])
  assert not quiet.is_binary(["/venv/bin/pytest"]) and not quiet.is_binary([])
  assert quiet.verbose_requested(["glow-eval", "--verbose"])
  assert not quiet.verbose_requested(["glow-eval", "--noverbose"])


def test_the_package_loads_nothing_of_the_binaries():
  # `import glow_tf2` (the library) imports the quiet start-up, which sits below every layer,
  # and nothing of cli/.
  code = "import sys, glow_tf2; print(sorted(m for m in sys.modules if m.startswith('glow_tf2.')))"
  result = subprocess.run(
    [sys.executable, "-c", code], env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=120
  )
  assert result.returncode == 0, result.stderr
  loaded = eval(result.stdout.strip().splitlines()[-1])
  assert "glow_tf2.quiet" in loaded
  assert not [m for m in loaded if m.startswith("glow_tf2.cli")], loaded


# oneDNN's one-time "E0000 ... util.cc:131] oneDNN supports DT_BOOL only on platforms with
# AVX-512" line: an ERROR-level C++ log line (TF_CPP_MIN_LOG_LEVEL=2 lets it through, and 3 would
# hide real errors too). Its source is Grappler's arithmetic optimizer, which rewrites the
# translation term's backward pass so that a Transpose runs on a bool tensor; oneDNN's layout
# pass then logs that it cannot take bool. The binaries run without Grappler on a CPU
# (glow_tf2/grappler.py), so their graphs never hold that Transpose. TF_ENABLE_ONEDNN_OPTS=1
# turns oneDNN on whatever the CPU (TensorFlow enables it by itself only on CPUs with AVX-512
# VNNI or newer), so the check means the same on every machine.
ONEDNN_BOOL = "oneDNN supports DT_BOOL only"


def _train_stderr(tmp_path_factory, logdir, **env) -> str:
  command = tiny_flags(
    logdir, mnist_dir(tmp_path_factory), "--train_steps=1", "--translation_loss_scale=10"
  )
  result = subprocess.run(
    command,
    env={**SUBPROCESS_ENV, "TF_ENABLE_ONEDNN_OPTS": "1", **env},
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stderr


def test_a_training_run_logs_no_onednn_bool_line(tmp_path_factory, tmp_path):
  stderr = _train_stderr(tmp_path_factory, tmp_path / "quiet")
  assert ONEDNN_BOOL not in stderr, stderr
  assert "E0000" not in stderr, stderr  # no other C++ error line either
  # The check can fail: with Grappler on, the same run logs the line.
  loud = _train_stderr(tmp_path_factory, tmp_path / "grappler", GLOW_TF2_GRAPPLER="1")
  assert ONEDNN_BOOL in loud, loud
