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
  "denoise": 3,  # Tweedie's step through a Glow's density: imports losses
  "image_grid": 2,
  "quality": 2,  # judges of samples and translations: classifier, Frechet distance (numpy, TF)
  "run_dir": 3,
  "input": 3,
  "pair": 4,  # two Glows and the prior of their codes, loaded from a run folder or a SavedModel
  "user_images": 4,  # a user's image files found and fitted to a model's shape: imports input
  "": 5,  # `import glow_tf2` itself: the public API re-exports flows, losses, input and pair
  "train": 6,
  "serving": 6,
  "translate_files": 6,  # a user's image files through a loaded pair, PNGs out (glow-translate)
  "demo": 7,
  "cli": 8,
  "grappler": 0,  # Grappler off on a CPU for the binaries (their graphs start sooner): TF only
  "quiet": 0,  # the binaries' quiet TensorFlow import, first in `import glow_tf2`: imports nothing
  "atomic_dir": 0,  # a folder written in a temporary sibling and renamed: imports nothing of ours
  "run_lock": 0,  # one writer per run folder (flock on <folder>/.lock): imports nothing of ours
  "seeds": 0,  # one seed per row of a draw (the SavedModel's and ImagePair's): TF and numpy only
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


def test_the_package_itself_imports_only_lower_layers():
  # `import glow_tf2` re-exports the library; it may not load a layer above its own rank
  # (train, serving, demo, cli), not even for a side effect.
  path = ROOT / "glow_tf2" / "__init__.py"
  for line, target in _imports(path):
    if target.split(".")[0] != "glow_tf2":
      continue
    other = _layer(target)
    assert other in RANKS, f"{path}:{line}: unknown layer of {target}"
    assert other != "" and RANKS[other] < RANKS[""], (
      f"{path}:{line}: glow_tf2 (rank {RANKS['']}) imports {target} "
      f"(layer {other or 'glow_tf2'}, rank {RANKS[other]}): layers import only lower layers"
    )


def test_the_package_rule_catches_an_upward_import(tmp_path, monkeypatch):
  init = tmp_path / "glow_tf2" / "__init__.py"
  init.parent.mkdir(parents=True)
  init.write_text("from glow_tf2.cli import train\n")
  (tmp_path / "glow_tf2" / "cli").mkdir()
  monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
  with pytest.raises(AssertionError, match="layers import only lower layers"):
    test_the_package_itself_imports_only_lower_layers()


# The installed name of each checked folder.
PACKAGES = {"glow_tf2": "glow_tf2", "glow_tf2_data": "data", "glow_tf2_tools": "tools"}


def _module_name(path: pathlib.Path) -> str:
  """tools/bench.py -> 'glow_tf2_tools.bench'; glow_tf2/cli/__init__.py -> 'glow_tf2.cli'."""
  for package, folder in PACKAGES.items():
    if path.is_relative_to(ROOT / folder):
      parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
      return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
  raise ValueError(path)


def _package_dir(module: str) -> pathlib.Path | None:
  """The folder of a package of ours ('glow_tf2.cli'), None for a module or another's name."""
  first, *rest = module.split(".")
  if first not in PACKAGES:
    return None
  folder = ROOT / PACKAGES[first] / pathlib.Path(*rest)
  return folder if (folder / "__init__.py").exists() else None


def _is_private(name: str) -> bool:
  return name.startswith("_") and not name.startswith("__")


def _within(own: str, package: str) -> bool:
  return own == package or own.startswith(package + ".")


def _private_reaches(path: pathlib.Path) -> list[str]:
  """Every use of another module's private name in a file: `from M import _x` and `m._x`.

  A private name is private to its module; a private module (`cli/_run.py`) to its package, so
  the modules of that package may import it.
  """
  own = _module_name(path)
  tree = ast.parse(path.read_text(), str(path))
  found, modules = [], {}  # modules: local name -> our module it is bound to
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      package = _package_dir(node.module)
      if node.module.split(".")[0] not in PACKAGES:
        continue
      for alias in node.names:
        submodule = package is not None and (
          (package / f"{alias.name}.py").exists() or (package / alias.name).is_dir()
        )
        if _is_private(alias.name) and not (submodule and _within(own, node.module)):
          found.append(f"{path}:{node.lineno}: from {node.module} import {alias.name}")
        if submodule:
          modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    elif isinstance(node, ast.Import):
      for alias in node.names:
        parts = alias.name.split(".")
        if parts[0] not in PACKAGES:
          continue
        for i, part in enumerate(parts):
          if _is_private(part) and not _within(own, ".".join(parts[:i])):
            found.append(f"{path}:{node.lineno}: import {alias.name}")
        if alias.asname:
          modules[alias.asname] = alias.name
  for node in ast.walk(tree):
    if (
      isinstance(node, ast.Attribute)
      and isinstance(node.value, ast.Name)
      and node.value.id in modules
      and _is_private(node.attr)
    ):
      target = modules[node.value.id]
      if not (_package_dir(target) and _within(own, target)):
        found.append(f"{path}:{node.lineno}: {node.value.id}.{node.attr} ({target}.{node.attr})")
  return found


def _checked_files():
  return sorted(p for folder in PACKAGES.values() for p in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _checked_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_uses_another_modules_private_names(path):
  # No allow-list: what another module needs is public in its own (tests may still reach in).
  assert not _private_reaches(path)


def test_the_private_rule_catches_each_kind_of_reach(tmp_path, monkeypatch):
  for folder in ("glow_tf2/flows", "glow_tf2/cli", "data"):
    (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / folder / "__init__.py").write_text("")
  (tmp_path / "glow_tf2" / "cli" / "_run.py").write_text("")
  monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
  bad = tmp_path / "glow_tf2" / "flows" / "bad.py"
  bad.write_text(
    "from glow_tf2.flows import conv1x1\n"
    "from glow_tf2.flows.conv1x1 import _Conv1x1\n"
    "from glow_tf2.cli import _run\n"
    "import glow_tf2.cli._run as run\n"
    "conv1x1._pixelwise_matmul\n"
  )
  (tmp_path / "glow_tf2" / "flows" / "conv1x1.py").write_text("")
  assert [line.split(": ", 1)[1] for line in _private_reaches(bad)] == [
    "from glow_tf2.flows.conv1x1 import _Conv1x1",
    "from glow_tf2.cli import _run",
    "import glow_tf2.cli._run",
    "conv1x1._pixelwise_matmul (glow_tf2.flows.conv1x1._pixelwise_matmul)",
  ]
  # Inside its package a private module is fair game; so is its public name, from anywhere.
  good = tmp_path / "glow_tf2" / "cli" / "good.py"
  good.write_text("from glow_tf2.cli import _run\n_run.load_run\n")
  outside = tmp_path / "data" / "ok.py"
  outside.write_text("from glow_tf2.flows import conv1x1\nconv1x1.pixelwise_matmul\n")
  assert _private_reaches(good) == [] and _private_reaches(outside) == []
