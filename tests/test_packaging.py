"""setup.cfg lists every package of the source tree.

`tools/setup.sh` installs in editable mode, where a package missing from `packages` still imports
from the checkout; a wheel (`pip install .`) would silently leave it out.
"""

import configparser
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _listed_packages() -> set[str]:
  parser = configparser.ConfigParser()
  parser.read(ROOT / "setup.cfg")
  return {line.strip() for line in parser["options"]["packages"].splitlines() if line.strip()}


def _source_packages() -> set[str]:
  found = set()
  for init in (ROOT / "glow_tf2").rglob("__init__.py"):
    found.add(".".join(init.parent.relative_to(ROOT).parts))
  return found


def test_every_glow_tf2_package_is_listed():
  missing = _source_packages() - _listed_packages()
  assert not missing, f"setup.cfg [options] packages lacks {sorted(missing)}"


def test_every_listed_package_exists():
  listed = {p for p in _listed_packages() if p.startswith("glow_tf2.") or p == "glow_tf2"}
  stale = listed - _source_packages()
  assert not stale, f"setup.cfg lists packages that do not exist: {sorted(stale)}"
