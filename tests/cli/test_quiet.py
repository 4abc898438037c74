"""The binaries start quietly: TensorFlow's start-up banners reach stderr only with --verbose."""

import subprocess
import sys

from glow_tf2.cli import _quiet
from tests.helpers import SUBPROCESS_ENV

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
  assert _quiet.is_binary(["-m", "--x"]) and _quiet.is_binary(["/venv/bin/glow-train"])
  assert not _quiet.is_binary(["/venv/bin/pytest"]) and not _quiet.is_binary([])
  assert _quiet.verbose_requested(["glow-eval", "--verbose"])
  assert not _quiet.verbose_requested(["glow-eval", "--noverbose"])
