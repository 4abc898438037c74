"""Command-line parsing shared by the binaries: flags generated from a config's fields, and the
parsing of glow-serve, glow-demo and glow-manipulators.

Each binary keeps its flags in its own `FlagValues` (several define `--saved_model` or `--port`),
parses them here, and reports a usage error as one line with exit status 2.
"""

from collections.abc import Iterable
import os
import sys

from absl import flags

from glow_tf2 import config as config_lib
from glow_tf2.serving import httpd

# The absl flag of each type a config field can have.
_DEFINE = {
  bool: flags.DEFINE_bool,
  int: flags.DEFINE_integer,
  float: flags.DEFINE_float,
  str: flags.DEFINE_string,
  list: flags.DEFINE_list,
}


def define_config_flags(specs: Iterable[config_lib.FlagSpec], fv: flags.FlagValues) -> None:
  """One flag per config field (`config.flag_specs`): its name, default and help from the field.

  Word choices are str fields, so their flags take the original's integer codes too (`build`
  maps them); a tuple field is a comma-separated list flag.
  """
  for spec in specs:
    default = spec.default
    if spec.type is list:
      default = [f"{v:g}" if isinstance(v, float) else str(v) for v in default]
    _DEFINE[spec.type](spec.flag, default, spec.help, flag_values=fv)


def parse_flags(flag_values: flags.FlagValues, argv, doc: str):
  """Parses argv; returns the flags, or an exit status (0 after --help, 2 for a usage error)."""
  if any(a in ("-h", "--help", "-help", "--helpfull") for a in argv[1:]):
    print(doc.strip() + "\n\nflags:\n" + flag_values.get_help())
    return 0
  try:
    rest = flag_values(list(argv))
  except flags.Error as error:
    message = str(error).splitlines()[0]
    print(f"{os.path.basename(argv[0])}: {message} (--help lists the flags)", file=sys.stderr)
    return 2
  if len(rest) > 1:
    print(f"{os.path.basename(argv[0])}: unexpected arguments {rest[1:]}", file=sys.stderr)
    return 2
  return flag_values


def fail(program: str, message, status: int = 1) -> int:
  """Prints `program: message` (its first line) on stderr; returns `status`."""
  text = str(message).strip().splitlines()
  print(f"{program}: {text[0] if text else type(message).__name__}", file=sys.stderr)
  return status


def check_port(port: int) -> str | None:
  """A usage message for a port number outside 0..65535, else None."""
  if not 0 <= port <= 65535:
    return f"--port={port}: must be in 0..65535 (0 picks a free port)"
  return None


def define_server_flags(fv: flags.FlagValues, gated: str) -> None:
  """The resource flags glow-serve and glow-demo share; `gated` says what --max_concurrent counts."""
  flags.DEFINE_integer("max_concurrent", 2, f"{gated} at once (the memory bound).", flag_values=fv)
  flags.DEFINE_integer(
    "max_connections", httpd.DEFAULT_MAX_CONNECTIONS, "Connections served at once.", flag_values=fv
  )
  flags.DEFINE_float(
    "request_timeout",
    httpd.DEFAULT_REQUEST_TIMEOUT,
    "Seconds a client has to send a whole request (headers and body).",
    flag_values=fv,
  )
  flags.DEFINE_boolean(
    "verbose",
    False,
    "Log every request (absl INFO) and show TensorFlow's start-up messages on stderr.",
    flag_values=fv,
  )


def check_server_flags(fv: flags.FlagValues, counts=()) -> str | None:
  """The first server flag whose value cannot work, as a usage message; None if all can.

  Checks --saved_model (required), `counts`, the flags of `define_server_flags`,
  --max_request_bytes (None: derived) and --port, which glow-serve and glow-demo both define.

  Args:
    fv: parsed flags of glow-serve or glow-demo.
    counts: names of the binary's own integer flags that must be at least 1, checked first.
  """
  if not fv.saved_model:
    return "--saved_model is required (a folder written by glow-export)"
  for name in (*counts, "max_concurrent", "max_connections"):
    if fv[name].value < 1:
      return f"--{name}={fv[name].value}: must be at least 1"
  if fv.max_request_bytes is not None and fv.max_request_bytes < 1:
    return f"--max_request_bytes={fv.max_request_bytes}: must be at least 1"
  if not fv.request_timeout > 0:
    return f"--request_timeout={fv.request_timeout}: must be positive"
  return check_port(fv.port)
