"""glow-manipulators: a manipulation direction per label (`glow_tf2.demo.manipulators`).

    glow-manipulators --saved_model=DIR (--problem=NAME [--data_dir=D] | --data=FILE.npz)
                      [--split=train] [--max_examples=2000] [--output=FILE.npz] [--attributes]

Writes `DIR/assets.extra/manipulators.npz` (and, from --problem, `examples.npz`) for glow-demo.
Bad input ends in one line and exit status 1 (2 for a malformed command line).
"""

import sys

from absl import flags

from glow_tf2 import quiet  # noqa: F401  (TensorFlow's start-up banners only with --verbose)
from glow_tf2.cli import flag_parsing
from glow_tf2.demo import manipulators as manipulators_lib

PROGRAM = "glow-manipulators"


def flag_values() -> flags.FlagValues:
  """glow-manipulators' flags, in their own FlagValues (nothing is defined at import)."""
  fv = flags.FlagValues()
  define = dict(flag_values=fv)
  flags.DEFINE_string("saved_model", None, "SavedModel folder written by glow-export.", **define)
  flags.DEFINE_string(
    "problem", None, "A labelled problem (e.g. mnist, fashion_edges2shoes).", **define
  )
  flags.DEFINE_string("data_dir", None, "Data folder of --problem.", **define)
  flags.DEFINE_string("data", None, "Or an .npz of image_a[, image_b] and label.", **define)
  flags.DEFINE_string("split", "train", "Split of --problem to average over.", **define)
  flags.DEFINE_integer("max_examples", 2000, "Examples to encode, at most.", **define)
  flags.DEFINE_integer("batch_size", 100, "Examples per SavedModel call.", **define)
  flags.DEFINE_list(
    "label_names", None, "Names of labels 0, 1, ... (default: the problem's).", **define
  )
  flags.DEFINE_string(
    "output",
    None,
    "Where to write the directions (default <saved_model>/assets.extra/manipulators.npz).",
    **define,
  )
  flags.DEFINE_integer(
    "n_examples",
    12,
    "Also write this many test examples to "
    "<saved_model>/assets.extra/examples.npz for glow-demo (0: none; needs --problem).",
    **define,
  )
  flags.DEFINE_boolean(
    "attributes",
    False,
    "Directions of the images' binary attributes (CelebA's 40: --problem=celeba, or `attr` in "
    "--data) instead of their class labels.",
    **define,
  )
  flags.DEFINE_boolean("verbose", False, "Show TensorFlow's start-up messages.", **define)
  return fv


def main(argv) -> int:
  """glow-manipulators with the command line `argv`; returns the exit status."""
  fv = flag_parsing.parse_flags(flag_values(), argv, __doc__)
  if isinstance(fv, int):
    return fv
  if not fv.saved_model:
    return flag_parsing.fail(PROGRAM, "--saved_model is required", 2)
  if bool(fv.problem) == bool(fv.data):
    return flag_parsing.fail(PROGRAM, "give exactly one of --problem and --data", 2)
  try:
    lines = manipulators_lib.write_manipulators(
      fv.saved_model,
      problem=fv.problem,
      data_dir=fv.data_dir,
      data=fv.data,
      split=fv.split,
      max_examples=fv.max_examples,
      batch_size=fv.batch_size,
      names=fv.label_names,
      output=fv.output,
      n_examples=fv.n_examples,
      attributes=fv.attributes,
    )
  except (FileNotFoundError, ValueError, KeyError, OSError) as error:
    return flag_parsing.fail(PROGRAM, error)
  for line in lines:
    print(f"{PROGRAM}: {line}")
  return 0


def run():
  """Console-script entry point (`glow-manipulators`)."""
  sys.exit(main(sys.argv))


if __name__ == "__main__":
  run()
