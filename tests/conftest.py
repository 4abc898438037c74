"""pytest's shared fixtures; the helpers themselves are in tests/helpers.py."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from glow_tf2 import grappler

# The tests' graphs are built as the binaries' are (`glow_tf2/__init__.py`): without Grappler on
# a CPU. The binaries the tests start as processes do the same by themselves.
grappler.skip_on_cpu()


@pytest.fixture
def rng():
  return np.random.default_rng(1234)


# The files that take longest (seconds of one worker in a run of the whole suite on 2 cores,
# docs/testing.md), longest first. Under `-n 2 --dist loadfile` pytest-xdist hands out whole
# files, most tests first, so the one-test 2-minute preset file came last and one worker ran it
# alone for minutes while the other sat idle. Giving out the longest files first (the classic
# longest-processing-time rule) lets the many short files fill in around them.
LONGEST_FILES = (  # figures of e8bce67, 2026-12-02
  "tests/train/test_resume.py",  # 185 s
  "tests/train/test_presets.py",  # 119 s
  "tests/tools/test_bench.py",  # 57 s
  "tests/cli/test_export.py",  # 56 s
  "tests/train/test_distributed.py",  # 54 s
  "tests/flows/test_glow.py",  # 43 s
  "tests/tools/test_report.py",  # 42 s
  "tests/train/test_run.py",  # 38 s
  "tests/serving/test_export.py",  # 38 s
  "tests/cli/test_coupled_run.py",  # 33 s
  "tests/train/test_eval_split.py",  # 30 s
  # added 2026-12-07, niced beside a training run (no whole-suite figures yet)
  "tests/cli/test_old_run_folder.py",  # 67-86 s
  "tests/cli/test_photo_edges64_run.py",  # 61 s at a load of 8 (27 s of CPU)
  "tests/train/test_judging.py",  # 32 s
)


@pytest.hookimpl(optionalhook=True)  # a plain pytest run, without xdist, has no such hook
def pytest_xdist_make_scheduler(config, log):
  """`--dist loadfile`, with the files of LONGEST_FILES given out first, in that order."""
  if config.getoption("dist") != "loadfile":
    return None  # xdist's own scheduler for any other mode
  from xdist.scheduler import LoadFileScheduling  # pylint: disable=g-import-not-at-top

  class LongestFirst(LoadFileScheduling):
    # xdist 3.8 (pinned in setup.cfg) pops the next file off the front of `workqueue`, an
    # OrderedDict of file -> tests, in `_assign_work_unit`; the longest file left goes first.
    def _assign_work_unit(self, node):
      for scope in LONGEST_FILES:
        if scope in self.workqueue:
          self.workqueue.move_to_end(scope, last=False)
          break
      super()._assign_work_unit(node)

  return LongestFirst(config, log)
