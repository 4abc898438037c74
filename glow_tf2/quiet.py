"""Quiet start-up of the binaries: TensorFlow's banners on stderr only with --verbose.

Importing TensorFlow prints, whatever TF_CPP_MIN_LOG_LEVEL says, the absl pre-init warning
("All log messages before absl::InitializeLog() ...") and the oneDNN and CPU-feature-guard
banners, straight to file descriptor 2 from C++. `import_tensorflow` points fd 2 at /dev/null
for the length of that import (Python errors still surface: they are raised after fd 2 is back).

What stays on stderr: TensorFlow's C++ warnings and errors after the import (TF_CPP_MIN_LOG_LEVEL
is 2 unless the user set it; 3 would hide real errors too). One such line used to come with
every training run on a CPU with oneDNN on: "E0000 ... util.cc:131] oneDNN supports DT_BOOL only
on platforms with AVX-512. Falling back to the default Eigen-based implementation". It is
harmless (oneDNN logs it once per process and leaves the op to Eigen) and was Grappler's doing:
its arithmetic optimizer rewrote the translation term's backward pass so that a Transpose ran on
a bool tensor, which oneDNN's layout pass does not take. The binaries run without Grappler on a
CPU (`grappler.skip_on_cpu`), so their graphs hold no such op and the line is gone without
raising the log level; with GLOW_TF2_GRAPPLER=1 it comes back (tests/cli/test_quiet.py checks
both, with oneDNN forced on).

A binary's package (`glow_tf2`) imports TensorFlow before the binary's own module runs, so
`glow_tf2/__init__.py` imports this module first, and importing it runs `startup()`: the quiet
import only when a glow binary is starting (`glow-*` console scripts, `python -m glow_tf2...`),
never for a library user. The binaries (`cli/`, glow-data) import it too, to say so. It is the
lowest layer of the package and imports nothing of glow_tf2 (it runs before the package is set
up).
"""

import os
import sys

VERBOSE_FLAGS = ("--verbose", "--verbose=true", "--verbose=1")


def is_binary(argv: list[str] | None = None) -> bool:
  """Whether the process is a glow binary starting: `glow-*` or `python -m glow_tf2...`."""
  argv = sys.argv if argv is None else argv
  if not argv:
    return False
  # `python -m pkg.mod`: argv[0] is "-m" while the packages of pkg.mod are imported.
  return argv[0] == "-m" or os.path.basename(argv[0]).startswith("glow-")


def verbose_requested(argv: list[str] | None = None) -> bool:
  argv = sys.argv if argv is None else argv
  return any(arg.lower() in VERBOSE_FLAGS for arg in argv[1:])


def import_tensorflow(verbose: bool = False) -> None:
  """Imports TensorFlow; unless `verbose`, with its start-up banners kept off stderr."""
  if verbose or "tensorflow" in sys.modules:
    import tensorflow  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import

    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(os.devnull, "w") as devnull:
      os.dup2(devnull.fileno(), 2)
      import tensorflow  # noqa: F401,F811  # pylint: disable=g-import-not-at-top,unused-import
  finally:
    os.dup2(saved, 2)
    os.close(saved)


def startup() -> None:
  """For `glow_tf2/__init__.py`: the quiet TensorFlow import, when a glow binary is starting."""
  if is_binary():
    import_tensorflow(verbose_requested())


startup()
