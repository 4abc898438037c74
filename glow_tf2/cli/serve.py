"""glow-serve: TensorFlow Serving's REST API for an exported SavedModel (`glow_tf2.serving.server`).

    glow-serve --saved_model=DIR [--model_name=glow] [--port=8501] [--host=127.0.0.1]
               [--max_batch=64] [--max_concurrent=2] [--max_connections=64]
               [--request_timeout=30] [--max_request_bytes=derived] [--verbose]

Listens on 127.0.0.1 unless --host says otherwise. A malformed command line or a flag value that
cannot work (`--max_batch=0`, `--port=70000`) ends in one line on stderr and exit status 2; a
SavedModel that is not there and an address that cannot be bound, in one line and exit status 1.
"""

import sys

from absl import flags
from absl import logging

from glow_tf2 import quiet  # noqa: F401  (TensorFlow's start-up banners only with --verbose)
from glow_tf2.cli import flag_parsing
from glow_tf2.serving import server as serve_lib

PROGRAM = "glow-serve"


def flag_values() -> flags.FlagValues:
  """glow-serve's flags, in their own FlagValues."""
  fv = flags.FlagValues()
  define = dict(flag_values=fv)
  flags.DEFINE_string(
    "saved_model", None, "SavedModel folder (or a TF Serving base folder of versions).", **define
  )
  flags.DEFINE_string(
    "model_name", "glow", "The model name in the URLs: /v1/models/<name>.", **define
  )
  flags.DEFINE_integer(
    "port", 8501, "Port (TF Serving's REST default; 0 picks a free one).", **define
  )
  flags.DEFINE_string(
    "host", "127.0.0.1", "Interface to listen on (0.0.0.0 exposes it to the network).", **define
  )
  flags.DEFINE_integer(
    "max_request_bytes",
    None,
    "Largest request body (default: what --max_batch examples of the widest signature need).",
    **define,
  )
  flags.DEFINE_integer(
    "max_batch", serve_lib.DEFAULT_MAX_BATCH, "Largest batch of a predict request.", **define
  )
  flag_parsing.define_server_flags(fv, "Predict requests parsed and run")
  return fv


def check_flags(fv: flags.FlagValues) -> str | None:
  """The first flag value that cannot work, as a message; None if all can."""
  problem = flag_parsing.check_server_flags(fv, counts=("max_batch",))
  if problem is None and (not fv.model_name or "/" in fv.model_name or ":" in fv.model_name):
    problem = f"--model_name={fv.model_name!r}: must be non-empty, without '/' or ':'"
  return problem


def main(argv) -> int:
  """glow-serve with the command line `argv`; serves until SIGTERM or Ctrl-C; the exit status."""
  fv = flag_parsing.parse_flags(flag_values(), argv, __doc__)
  if isinstance(fv, int):
    return fv
  problem = check_flags(fv)
  if problem:
    return flag_parsing.fail(PROGRAM, problem, 2)
  logging.set_verbosity(logging.INFO if fv.verbose else logging.WARNING)
  try:
    model_server = serve_lib.ModelServer(
      fv.saved_model, fv.model_name, fv.max_batch, fv.max_concurrent
    )
  except (FileNotFoundError, ValueError, OSError) as e:
    return flag_parsing.fail(PROGRAM, e)
  try:
    server = serve_lib.make_server(
      model_server,
      fv.host,
      fv.port,
      fv.max_request_bytes,
      fv.max_connections,
      fv.request_timeout,
    )
  except OSError as e:
    return flag_parsing.fail(PROGRAM, f"cannot listen on {fv.host}:{fv.port}: {e.strerror or e}")
  host, port = server.server_address[:2]
  print(
    f"{PROGRAM}: model {model_server.model_name!r} version {model_server.version} from "
    f"{model_server.path}\n{PROGRAM}: signatures {', '.join(sorted(model_server.signatures))}"
    f"\n{PROGRAM}: requests up to {server.max_request_bytes} bytes, {fv.max_batch} examples"
    f"\n{PROGRAM}: listening on http://{host}:{port}/v1/models/{model_server.model_name}",
    flush=True,
  )
  serve_lib.serve_until_stopped(server)
  return 0


def run():
  """Console-script entry point (`glow-serve`)."""
  logging.use_absl_handler()
  sys.exit(main(sys.argv))


if __name__ == "__main__":
  run()
