"""Where an export may write: a new folder, an empty one, or (overwriting) one of its own.

Overwriting deletes, and a path typed one level too high deletes the most: `--export_dir=
models/glow --overwrite`, meant as `models/glow/3`, would remove every version TF Serving has.
So an existing folder is replaced only when it is empty or holds a SavedModel that glow-export
wrote (saved_model.pb and our `assets.extra/glow_config.json`, written by every export since
the first); anything else is refused in one line naming what it holds, with the next version
folder as a hint for a model base folder. `serving.export.export_saved_model` asks before it
builds anything and `atomic_dir.write_directory` asks again just before the swap.
"""

import os

from glow_tf2 import atomic_dir

# With saved_model.pb, it marks a folder as a SavedModel of glow-export.
CONFIG_FILE = os.path.join("assets.extra", "glow_config.json")


def is_our_saved_model(folder: str) -> bool:
  """Whether `folder` holds saved_model.pb and glow-export's `assets.extra/glow_config.json`."""
  return os.path.isfile(os.path.join(folder, "saved_model.pb")) and os.path.isfile(
    os.path.join(folder, CONFIG_FILE)
  )


def check_replaceable(folder: str) -> None:
  """Raises FileExistsError unless `folder` is empty or a SavedModel that glow-export wrote.

  A SavedModel of ours goes with whatever was added to it (glow-manipulators' files belong to
  the model they were computed from). Anything else, a model base folder of versions or a
  folder of someone's files, is refused with a one-line message naming what it holds.
  """
  names = os.listdir(folder)
  if not names or is_our_saved_model(folder):
    return
  versions = sorted(int(n) for n in names if n.isdigit() and os.path.isdir(os.path.join(folder, n)))
  hint = (
    f"; it is a model base folder (versions {', '.join(map(str, versions))}): export to "
    f"{os.path.join(folder, str(versions[-1] + 1))}"
    if versions
    else ""
  )
  raise FileExistsError(
    f"{folder} is not a SavedModel of glow-export (it holds "
    f"{atomic_dir.describe_contents(folder)}): overwriting replaces only one of those or an "
    f"empty folder{hint}"
  )


def check_export_dir(export_dir: str, overwrite: bool = False) -> str:
  """The absolute `export_dir` if an export may write it; FileExistsError (one line) if not.

  A missing folder may be written; an existing one only with `overwrite`, and then only if
  `check_replaceable` accepts it. glow-export asks before loading the run, so that a refusal
  costs nothing.
  """
  export_dir = os.path.abspath(export_dir)
  if not os.path.lexists(export_dir):
    return export_dir
  if not overwrite:
    raise FileExistsError(f"{export_dir} exists: pass overwrite=True (--overwrite) to replace it")
  if not os.path.isdir(export_dir):
    raise FileExistsError(f"{export_dir} exists and is not a folder: refusing to replace it")
  check_replaceable(export_dir)
  return export_dir
