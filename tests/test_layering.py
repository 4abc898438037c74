"""The package's layers look only down: every import of every module, read from its source.

docs/architecture.md draws the layers; this test is the rule behind the drawing. A module may
import its own layer or a lower one, never a higher one or a sibling of equal rank, and nothing in
glow_tf2 imports the `data/` or `tools/` packages (which sit on top of it).
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Layer of each top-level name under glow_tf2 (a module or a sub-package), lowest first.
RANKS = {
  "config": 0,
  "presets": 1,
  "flows": 1,
  "losses": 2,
  "joint_losses": 3,  # the coupled prior's bits/dim: imports losses and flows
  "image_grid": 2,
  "quality": 2,  # judges of samples and translations: classifier, Frechet distance (numpy, TF)
  "run_dir": 3,
  "input": 3,
  "": 4,  # `import glow_tf2` itself: the public API re-exports flows, losses and input
  "train": 5,
  "serving": 5,
  "demo": 6,
  "cli": 7,
  "quiet": 0,  # the binaries' quiet TensorFlow import, first in `import glow_tf2`: imports nothing
}
OUTSIDE = ("glow_tf2_data", "glow_tf2_tools", "data", "tools", "tests")


def _layer(module: str) -> str:
  """'glow_tf2.flows.glow' -> 'flows'; 'glow_tf2' -> ''."""
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else ""


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
  """(line, absolute module) of every import in a file, names imported from a package included."""
  found = []
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      found += [(node.lineno, alias.name) for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      found.append((node.lineno, node.module))
      if node.module == "glow_tf2":  # `from glow_tf2 import losses` imports glow_tf2.losses
        for alias in node.names:
          if (ROOT / "glow_tf2" / f"{alias.name}.py").exists() or (
            ROOT / "glow_tf2" / alias.name
          ).is_dir():
            found[-1] = (node.lineno, f"glow_tf2.{alias.name}")
  return found


def _package_files():
  return sorted((ROOT / "glow_tf2").rglob("*.py"))


@pytest.mark.parametrize("path", _package_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_look_down(path):
  own = ".".join(path.relative_to(ROOT).with_suffix("").parts)
  if own.endswith(".__init__"):
    own = own[: -len(".__init__")]
  layer = _layer(own)
  assert layer in RANKS, f"{own}: add its layer to RANKS here and to docs/architecture.md"
  for line, target in _imports(path):
    top = target.split(".")[0]
    assert top not in OUTSIDE, f"{path}:{line} imports {target}: glow_tf2 never imports it"
    if top != "glow_tf2":
      continue
    other = _layer(target)
    assert other in RANKS, f"{path}:{line}: unknown layer of {target}"
    if own == "glow_tf2" or other == layer:
      continue
    assert RANKS[other] < RANKS[layer], (
      f"{path}:{line}: {own} (layer {layer or 'glow_tf2'}, rank {RANKS[layer]}) imports {target} "
      f"(layer {other or 'glow_tf2'}, rank {RANKS[other]}): layers import only lower layers"
    )


def test_data_generators_use_only_the_format_and_the_registry():
  for path in sorted((ROOT / "data").glob("*.py")):
    for line, target in _imports(path):
      if target.startswith("glow_tf2."):
        assert _layer(target) in ("input", "quiet"), f"{path}:{line} imports {target}"


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
  # The checker itself must be able to fail: a flows module importing the trainer is refused.
  bad = tmp_path / "glow_tf2" / "flows" / "bad.py"
  bad.parent.mkdir(parents=True)
  bad.write_text("from glow_tf2.train import loop\n")
  monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
  with pytest.raises(AssertionError, match="layers import only lower layers"):
    test_imports_look_down(bad)
