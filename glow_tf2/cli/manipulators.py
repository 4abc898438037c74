"""`glow-manipulators`: see `glow_tf2.demo.manipulators`."""

from glow_tf2.demo.manipulators import main
from glow_tf2.demo.manipulators import run

__all__ = ["main", "run"]

if __name__ == "__main__":
  run()
