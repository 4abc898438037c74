"""The quiet start-up, moved to `glow_tf2.quiet`: this name stays while `cli/eval.py` imports it.

TODO: remove once `cli/eval.py` imports `glow_tf2.quiet` like the other binaries.
"""

from glow_tf2 import quiet  # noqa: F401
