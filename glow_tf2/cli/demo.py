"""glow-demo: the interactive page and its JSON API for an exported SavedModel (`glow_tf2.demo`).

    glow-demo --saved_model=DIR [--port=5050] [--host=127.0.0.1]
              [--examples=FILE.npz | --problem=NAME [--data_dir=DIR]] [--manipulators=FILE.npz]
              [--max_concurrent=2] [--max_connections=64] [--request_timeout=30] [--verbose]

Open http://127.0.0.1:5050/ (the demo listens on 127.0.0.1 unless --host says otherwise). A
malformed command line or a flag value that cannot work (`--max_concurrent=0`, `--examples` with
`--problem`) ends in one line on stderr and exit status 2; a missing or unreadable file and an
address that cannot be bound, in one line and exit status 1.
"""

import sys

from absl import flags
from absl import logging

from glow_tf2 import quiet  # noqa: F401  (TensorFlow's start-up banners only with --verbose)
from glow_tf2.cli import flag_parsing
from glow_tf2.demo import api as api_lib
from glow_tf2.demo import server as demo_lib
from glow_tf2.serving import server as serve_lib

PROGRAM = "glow-demo"


def flag_values() -> flags.FlagValues:
  """glow-demo's flags, in their own FlagValues (glow-serve defines some of the same names)."""
  fv = flags.FlagValues()
  define = dict(flag_values=fv)
  flags.DEFINE_string("saved_model", None, "SavedModel folder written by glow-export.", **define)
  flags.DEFINE_integer("port", 5050, "Port to listen on (0: any free port).", **define)
  flags.DEFINE_string(
    "host", "127.0.0.1", "Address to bind; 0.0.0.0 exposes the demo to the network.", **define
  )
  flags.DEFINE_string(
    "examples",
    None,
    "An .npz of examples (image_a[, image_b], label) or a folder holding examples.npz.",
    **define,
  )
  flags.DEFINE_string(
    "problem",
    None,
    "Take the example strip from this problem's test split (e.g. mnist, fashion_edges2shoes).",
    **define,
  )
  flags.DEFINE_string("data_dir", None, "Data folder of --problem.", **define)
  flags.DEFINE_integer("n_examples", 12, "Images in the example strip.", **define)
  flags.DEFINE_string(
    "manipulators",
    None,
    "The .npz of glow-manipulators (default: "
    "<saved_model>/assets.extra/manipulators.npz if present).",
    **define,
  )
  flags.DEFINE_integer(
    "max_request_bytes",
    None,
    "Largest request body (default: what two images of the largest upload size need).",
    **define,
  )
  flag_parsing.define_server_flags(fv, "Requests parsed, decoded and run")
  return fv


def check_flags(fv: flags.FlagValues) -> str | None:
  """The first flag value that cannot work, as a message; None if all can."""
  problem = flag_parsing.check_server_flags(fv, counts=("n_examples",))
  if problem is None and fv.examples and fv.problem:
    problem = "give --examples or --problem, not both"
  return problem


def main(argv) -> int:
  """glow-demo with the command line `argv`; serves until SIGTERM or Ctrl-C; the exit status."""
  fv = flag_parsing.parse_flags(flag_values(), argv, __doc__)
  if isinstance(fv, int):
    return fv
  problem = check_flags(fv)
  if problem:
    return flag_parsing.fail(PROGRAM, problem, 2)
  logging.set_verbosity(logging.INFO if fv.verbose else logging.WARNING)
  try:
    api = demo_lib.build_api(
      fv.saved_model,
      fv.examples,
      fv.problem,
      fv.data_dir,
      fv.manipulators,
      fv.n_examples,
      api_lib.Limits(max_request_bytes=fv.max_request_bytes),
      fv.max_concurrent,
    )
  except (FileNotFoundError, ValueError, OSError, KeyError) as error:
    return flag_parsing.fail(PROGRAM, error)
  try:
    server = demo_lib.make_server(api, fv.host, fv.port, fv.max_connections, fv.request_timeout)
  except OSError as e:
    return flag_parsing.fail(PROGRAM, f"cannot listen on {fv.host}:{fv.port}: {e.strerror or e}")
  for message in api.messages:
    print(f"{PROGRAM}: {message}", file=sys.stderr)
  host, port = server.server_address[:2]
  print(f"{PROGRAM}: serving {api.model.path} at http://{host}:{port}/", flush=True)
  serve_lib.serve_until_stopped(server)
  return 0


def run():
  """Console-script entry point (`glow-demo`)."""
  logging.use_absl_handler()
  sys.exit(main(sys.argv))


if __name__ == "__main__":
  run()
