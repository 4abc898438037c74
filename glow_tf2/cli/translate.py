"""glow-translate: a user's own images translated by a trained pair, one PNG per image.

    glow-translate --model=RUN_OR_SAVED_MODEL --output=DIR [--direction=a2b|b2a]
                   [--fit=crop|resize] [--temperature=0] [--seed=0] [--draws=1]
                   [--batch_size=32] [--sheet=FILE.png] [--sheet_rows=32] [--label=K]
                   INPUT [INPUT ...]

INPUTs are image files and folders, searched recursively (PNG, JPEG, WebP, BMP; any size, grey
or colour). Each image is centre-cropped to the model's aspect ratio and scaled (--fit=crop) or
scaled whole (--fit=resize) to the model's shape, its channels converted, translated, and
written to DIR under the name it has under its INPUT, as .png (<name>_draw<k>.png for
--draws > 1). --model is a glow-train run folder (its EMA weights, --checkpoint) or a folder
glow-export wrote. At --temperature=0 the translation is the conditional mean; above 0 each draw
is a sample of p(x_B | x_A) and the same --seed writes the same files.

A file that cannot be decoded is named on stderr, skipped and counted. Exit status: 0 when every
image was translated, 1 when any failed or the model cannot be loaded, 2 for a command line that
cannot work (one line on stderr).
"""

import os
import sys

from absl import flags
from absl import logging

import glow_tf2
from glow_tf2 import quiet  # noqa: F401  (TensorFlow's start-up banners only with --verbose)
from glow_tf2 import translate_files
from glow_tf2 import user_images
from glow_tf2.cli import flag_parsing

PROGRAM = "glow-translate"


def flag_values() -> flags.FlagValues:
  """glow-translate's flags, in their own FlagValues (nothing is defined at import)."""
  fv = flags.FlagValues()
  define = dict(flag_values=fv)
  flags.DEFINE_string(
    "model", None, "A glow-train run folder or a SavedModel folder glow-export wrote.", **define
  )
  flags.DEFINE_string("output", None, "Folder of the translated PNGs.", **define)
  flags.DEFINE_enum("direction", "a2b", ["a2b", "b2a"], "a2b: inputs of domain A.", **define)
  flags.DEFINE_enum(
    "fit",
    "crop",
    list(user_images.FITS),
    "crop: the centred region of the model's aspect ratio, scaled (proportions kept, borders "
    "lost); resize: the whole image scaled (nothing lost, shapes stretch).",
    **define,
  )
  flags.DEFINE_float(
    "temperature", 0.0, "T >= 0: 0 is the conditional mean; above, draws.", **define
  )
  flags.DEFINE_integer("seed", 0, "Seed of the draws at T > 0 (0..2**31-1).", **define)
  flags.DEFINE_integer("draws", 1, "Translations per image (more than 1 needs T > 0).", **define)
  flags.DEFINE_integer("batch_size", 32, "Images per model call.", **define)
  flags.DEFINE_string(
    "sheet",
    None,
    "Also write a PNG sheet: a row per image, the input then its translations.",
    **define,
  )
  flags.DEFINE_integer("sheet_rows", 32, "Images on the sheet, at most (the first ones).", **define)
  flags.DEFINE_integer(
    "label", None, "The class of every image, for a class-conditional pair.", **define
  )
  flags.DEFINE_string(
    "checkpoint",
    "auto",
    "Of a run folder: auto (best-test-loss models, else the last checkpoint) | last | a path.",
    **define,
  )
  flags.DEFINE_boolean("verbose", False, "Show TensorFlow's start-up messages.", **define)
  return fv


def parse(argv):
  """(flags, inputs) of a command line; or an exit status (0 after --help, 2 for a usage error).

  `flag_parsing.parse_flags` refuses positional arguments; here they are the inputs.
  """
  if any(a in ("-h", "--help", "-help", "--helpfull") for a in argv[1:]):
    print(__doc__.strip() + "\n\nflags:\n" + flag_values().get_help())
    return 0
  fv = flag_values()
  try:
    rest = fv(list(argv))
  except flags.Error as error:
    message = str(error).splitlines()[0]
    return flag_parsing.fail(PROGRAM, f"{message} (--help lists the flags)", 2)
  return fv, rest[1:]


def check(fv: flags.FlagValues, inputs) -> str | None:
  """The first thing on the command line that cannot work, as a message; None if nothing."""
  if not fv.model:
    return "--model is required (a glow-train run folder or a SavedModel glow-export wrote)"
  if not os.path.isdir(fv.model):
    return f"--model={fv.model}: no such folder"
  if not fv.output:
    return "--output is required (the folder of the translated PNGs)"
  if os.path.exists(fv.output) and not os.path.isdir(fv.output):
    return f"--output={fv.output}: exists and is not a folder"
  if not inputs:
    return "no inputs: give image files or folders after the flags"
  if fv.sheet is not None and (not fv.sheet.lower().endswith(".png") or os.path.isdir(fv.sheet)):
    return f"--sheet={fv.sheet}: must be a .png file"
  if fv.sheet_rows < 1:
    return f"--sheet_rows={fv.sheet_rows}: must be at least 1"
  return None


def main(argv) -> int:
  """glow-translate with the command line `argv`; returns the exit status."""
  parsed = parse(argv)
  if isinstance(parsed, int):
    return parsed
  fv, inputs = parsed
  problem = check(fv, inputs)
  if problem:
    return flag_parsing.fail(PROGRAM, problem, 2)
  try:
    plan = translate_files.Plan(
      fv.direction, fv.temperature, fv.seed, fv.draws, fv.batch_size, fv.fit, fv.label
    )
    files = user_images.find_images(inputs, skip=fv.output)
  except (ValueError, FileNotFoundError) as error:
    return flag_parsing.fail(PROGRAM, error, 2)
  if not files:
    extensions = ", ".join(user_images.EXTENSIONS)
    return flag_parsing.fail(PROGRAM, f"no image files ({extensions}) in {' '.join(inputs)}", 2)
  logging.set_verbosity(logging.INFO)  # the progress lines
  try:
    pair = glow_tf2.load_pair(fv.model, checkpoint=fv.checkpoint)
  except Exception as error:  # a missing checkpoint, a corrupt SavedModel: TF raises many types
    return flag_parsing.fail(PROGRAM, f"cannot load --model={fv.model}: {error}")
  try:
    translate_files.check_pair(pair, plan)
  except ValueError as error:
    return flag_parsing.fail(PROGRAM, error, 2)
  shape = pair.image_shape
  temperature = f"T = {plan.temperature:g}"
  if plan.temperature > 0 and not pair.coupled:
    temperature += " (ignored: the pair has no coupled prior)"
  elif plan.temperature > 0:
    temperature += f", seed {plan.seed}, {plan.draws} draw(s)"
  print(f"{PROGRAM}: {len(files)} image(s) -> {fv.output}, {plan.direction}, {temperature}")
  print(f"{PROGRAM}: each image {user_images.describe_fit(shape, plan.fit)}", flush=True)
  summary = translate_files.translate_files(
    pair, files, fv.output, plan, sheet=fv.sheet, sheet_rows=fv.sheet_rows
  )
  if fv.sheet and summary.translated:
    print(f"{PROGRAM}: sheet {fv.sheet}")
  print(f"{PROGRAM}: {summary.line()}")
  return 1 if summary.failed else 0


def run():
  """Console-script entry point (`glow-translate`)."""
  # Our flags live in their own FlagValues; absl's global ones (its logging's) keep their
  # defaults, and marking them parsed spares every run absl's "logging before flag parsing".
  flags.FLAGS.mark_as_parsed()
  logging.use_absl_handler()
  sys.exit(main(sys.argv))


if __name__ == "__main__":
  run()
