"""Command-line parsing shared by glow-demo and glow-manipulators."""

import os
import sys

from absl import flags


def parse_flags(flag_values: flags.FlagValues, argv, doc: str):
  """Parses argv; returns the flags, or an exit status (0 after --help, 2 for a usage error)."""
  if any(a in ("-h", "--help", "-help", "--helpfull") for a in argv[1:]):
    print(doc.strip() + "\n\nflags:\n" + flag_values.get_help())
    return 0
  try:
    rest = flag_values(list(argv))
  except flags.Error as error:
    print(f"{os.path.basename(argv[0])}: {error}\n(--help lists the flags)", file=sys.stderr)
    return 2
  if len(rest) > 1:
    print(f"{os.path.basename(argv[0])}: unexpected arguments {rest[1:]}", file=sys.stderr)
    return 2
  return flag_values
