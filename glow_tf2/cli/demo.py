"""`glow-demo`: see `glow_tf2.demo.server`."""

from glow_tf2.demo.server import main
from glow_tf2.demo.server import run

__all__ = ["main", "run"]

if __name__ == "__main__":
  run()
