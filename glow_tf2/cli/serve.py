"""`glow-serve`: see `glow_tf2.serving.server`."""

from glow_tf2.serving.server import main
from glow_tf2.serving.server import run

__all__ = ["main", "run"]

if __name__ == "__main__":
  run()
