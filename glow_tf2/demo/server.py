"""glow-demo: the interactive page and its JSON API for an exported SavedModel, in one process.

    glow-demo --saved_model=DIR [--port=5050] [--host=127.0.0.1]
              [--examples=FILE.npz | --problem=NAME [--data_dir=DIR]] [--manipulators=FILE.npz]

Open http://127.0.0.1:5050/ . The page (glow_tf2/demo/static/, plain HTML/CSS/JS, nothing
fetched from elsewhere) translates an example, an uploaded image or a drawing (at a temperature,
with a row of draws, for a pair trained with the coupled prior), draws random samples at a
temperature and matching pairs, interpolates between two images in latent space and moves an
image along a label's direction. The API is documented in `glow_tf2.demo.api`.

Examples come from --examples, else from --problem's test split, else from
`DIR/assets.extra/examples.npz` (written by glow-manipulators); directions from --manipulators,
else `DIR/assets.extra/manipulators.npz`. Either may be missing: the page says so.

Requests are JSON only (never pickle), at most --max_request_bytes; anything wrong with one gets
a 4xx and {"error": message}, and the server keeps serving. Connections and request deadlines
are bounded as glow-serve's (`glow_tf2.serving.httpd`); a POST's JSON parsing, image decoding and
model calls all run inside the API's gate of --max_concurrent slots.
"""

import json
import os
import traceback

from absl import logging

from glow_tf2.demo import api as api_lib
from glow_tf2.demo import model as model_lib
from glow_tf2.serving import httpd

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
CONTENT_TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".ico": "image/x-icon",
}
# The page loads nothing from elsewhere; the policy makes that a rule the browser enforces.
CSP = (
  "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
  "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def examples_from_problem(
  problem: str, data_dir: str | None, model: model_lib.DemoModel, n: int
) -> api_lib.Examples:
  """The first `n` examples of `problem`'s test split, read as the model's channels and size."""
  import glow_tf2  # pylint: disable=g-import-not-at-top  (only this path needs the data code)

  height, _, channels = model.image_shape
  # crop_size: a model trained on the centre of the stored images (--crop_size) reads the same.
  spec = glow_tf2.get_problem(problem, data_dir=data_dir, channels=channels, crop_size=height)
  batch = next(iter(glow_tf2.make_dataset(spec, "test", n, shuffle=False, repeat=False)))
  arrays = {"a": batch["image_a"].numpy()}
  if "image_b" in batch:
    arrays["b"] = batch["image_b"].numpy()
  return api_lib.make_examples(
    arrays, batch["label"].numpy(), model, source=f"--problem={problem}", max_examples=n
  )


def build_api(
  saved_model: str,
  examples: str | None = None,
  problem: str | None = None,
  data_dir: str | None = None,
  manipulators: str | None = None,
  n_examples: int = 12,
  limits: api_lib.Limits = api_lib.Limits(),
  max_concurrent: int = 2,
  model: model_lib.DemoModel | None = None,
) -> api_lib.DemoAPI:
  """Loads the SavedModel, examples and directions; a missing optional file becomes a message.

  `model` (optional) is the SavedModel at `saved_model` already loaded; the default examples and
  directions are looked for in `saved_model`'s assets.extra either way.
  """
  saved_model = model_lib.check_saved_model(saved_model)
  if model is None:
    model = model_lib.DemoModel(saved_model, max_concurrent=max_concurrent)
  messages = []
  loaded_examples = None
  n_examples = min(n_examples, limits.max_examples)
  if examples:
    path = os.path.join(examples, "examples.npz") if os.path.isdir(examples) else examples
    loaded_examples = api_lib.load_examples(path, model, n_examples)  # asked for: errors are fatal
  elif problem:
    loaded_examples = examples_from_problem(problem, data_dir, model, n_examples)
  elif os.path.isfile(model_lib.default_examples_path(saved_model)):
    loaded_examples = api_lib.load_examples(
      model_lib.default_examples_path(saved_model), model, n_examples
    )
  else:
    messages.append(
      "No example strip: start glow-demo with --problem=NAME or --examples=FILE, "
      "or run glow-manipulators. Upload or draw an image instead."
    )
  directions = None
  path = manipulators or model_lib.default_manipulators_path(saved_model)
  if manipulators or os.path.isfile(path):
    directions = api_lib.load_directions(path, model)
  else:
    messages.append(
      "No manipulation directions: run glow-manipulators "
      f"--saved_model={saved_model} --problem=NAME, then restart glow-demo."
    )
  return api_lib.DemoAPI(model, loaded_examples, directions, limits, messages, max_concurrent)


def _error_message(error: Exception) -> str:
  # TensorFlow's messages carry a graph trace after the first lines; the page needs the reason.
  text = getattr(error, "message", None) or str(error)
  return " ".join(text.strip().splitlines()[:2])[:500]


class DemoHandler(httpd.DeadlineHandler):
  """Serves static files and /api/; `server.api` is the `DemoAPI`."""

  server_version = "glow-demo/1"
  static_files = (
    frozenset(f for f in os.listdir(STATIC_DIR) if os.path.splitext(f)[1] in CONTENT_TYPES)
    if os.path.isdir(STATIC_DIR)
    else frozenset()
  )

  def _send(self, status: int, body: bytes, content_type: str) -> None:
    self.send_response(status)
    self.send_header("Content-Type", content_type)
    self.send_header("Content-Length", str(len(body)))
    self.send_header("Cache-Control", "no-store")
    self.send_header("X-Content-Type-Options", "nosniff")
    self.send_header("Content-Security-Policy", CSP)
    if self.close_connection:
      self.send_header("Connection", "close")
    self.end_headers()
    if self.command != "HEAD":
      self.wfile.write(body)

  def _json(self, status: int, payload) -> None:
    self._send(status, json.dumps(payload).encode("utf-8"), "application/json")

  def send_json_error(self, status: int, message: str) -> None:
    self.close_connection = True
    self._json(status, {"error": message})

  def _static(self, name: str) -> None:
    if name not in self.static_files:
      self._json(404, {"error": f"no such file: {self.path.split('?', 1)[0]}"})
      return
    with open(os.path.join(STATIC_DIR, name), "rb") as f:
      body = f.read()
    self._send(200, body, CONTENT_TYPES[os.path.splitext(name)[1]])

  def _raw_body(self) -> bytes:
    """The POST body's bytes, checked for length and type before any is read."""
    if self.headers.get("Transfer-Encoding"):
      self.close_connection = True
      raise api_lib.RequestError(411, "chunked requests are not supported: send a Content-Length")
    length = self.headers.get("Content-Length")
    if length is None:
      self.close_connection = True
      raise api_lib.RequestError(411, "a POST needs a Content-Length header")
    try:
      n = int(length)
      if n < 0:
        raise ValueError
    except ValueError:
      self.close_connection = True
      raise api_lib.RequestError(400, f"bad Content-Length header: {length!r}") from None
    length = n
    limit = self.server.api.limits.max_request_bytes
    if length > limit:
      self.close_connection = True  # the unread body must not be taken for the next request
      raise api_lib.RequestError(413, f"request body of {length} bytes; the limit is {limit}")
    content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
      self.close_connection = True
      raise api_lib.RequestError(
        415,
        "send the request body as JSON (Content-Type: "
        f"application/json), got {content_type or 'none'}",
      )
    raw = self.rfile.read(length)
    if len(raw) != length:
      self.close_connection = True
      raise api_lib.RequestError(400, "the request body ended before Content-Length bytes")
    return raw

  def _api(self, method: str) -> None:
    endpoint = self.path.split("?", 1)[0][len("/api/") :].strip("/")
    api = self.server.api
    try:
      if method == "POST":
        raw = self._raw_body()
        self._json(200, api.handle_body(endpoint, raw))
      else:
        self._json(200, api.handle(method, endpoint, None))
    except api_lib.RequestError as error:
      self._json(error.status, {"error": error.message})
    except TimeoutError:
      raise  # the deadline passed while reading the body: DeadlineHandler answers 408
    except Exception as error:  # pylint: disable=broad-except
      import tensorflow as tf  # pylint: disable=g-import-not-at-top  (loaded by the model already)

      if isinstance(error, (tf.errors.InvalidArgumentError, ValueError)):
        self._json(400, {"error": _error_message(error)})
      else:
        logging.error("error in /api/%s:\n%s", endpoint, traceback.format_exc())
        self.close_connection = True
        self._json(500, {"error": f"server error: {type(error).__name__}: {_error_message(error)}"})

  def do_GET(self):  # pylint: disable=invalid-name
    path = self.path.split("?", 1)[0]
    if path.startswith("/api/"):
      self._api("GET")
    elif path in ("/", "/index.html"):
      self._static("index.html")
    elif path.startswith("/static/"):
      self._static(path[len("/static/") :])
    else:
      self._json(404, {"error": f"no such page: {path}; the demo is at /"})

  def do_HEAD(self):  # pylint: disable=invalid-name
    # The headers a GET would send, no body (`_send` writes none for HEAD); /api/ POST
    # endpoints answer 405 as to a GET.
    self.do_GET()

  def do_POST(self):  # pylint: disable=invalid-name
    if self.path.split("?", 1)[0].startswith("/api/"):
      self._api("POST")
    else:
      self.close_connection = True
      self._json(405, {"error": "POST goes to /api/<endpoint>"})

  def _not_allowed(self):
    self.close_connection = True
    self._json(405, {"error": f"method {self.command} not allowed: use GET, HEAD or POST"})

  do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed  # noqa: N815


class DemoServer(httpd.BoundedHTTPServer):
  """The demo's HTTP server: `api` answers /api/, the handler serves the page."""

  def __init__(
    self,
    address,
    api: api_lib.DemoAPI,
    max_connections: int = httpd.DEFAULT_MAX_CONNECTIONS,
    request_timeout: float = httpd.DEFAULT_REQUEST_TIMEOUT,
  ):
    self.api = api
    super().__init__(address, DemoHandler, max_connections, request_timeout)


def make_server(
  api: api_lib.DemoAPI,
  host: str = "127.0.0.1",
  port: int = 5050,
  max_connections: int = httpd.DEFAULT_MAX_CONNECTIONS,
  request_timeout: float = httpd.DEFAULT_REQUEST_TIMEOUT,
) -> DemoServer:
  """A server bound to (host, port); port 0 takes a free one (see `server.server_address`).

  Raises:
    ValueError: a limit that cannot work. OSError: the address cannot be bound.
  """
  return DemoServer((host, port), api, max_connections, request_timeout)
