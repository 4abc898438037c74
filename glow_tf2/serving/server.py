"""glow-serve: TensorFlow Serving's REST API for an exported SavedModel, on the standard library.

    glow-serve --saved_model=DIR [--model_name=glow] [--port=8501] [--host=127.0.0.1]

Speaks the subset of TF Serving's REST API that clients of a predict model use, so a client
written for TF Serving works unchanged, and the same SavedModel can move to a TF Serving
deployment (`tensorflow/serving` with `--model_base_path` pointing at a folder holding it as
`<version>/`):

  GET  /v1/models/<name>[/versions/<v>]             model status
  GET  /v1/models/<name>[/versions/<v>]/metadata    signature defs, as TF Serving prints them
  POST /v1/models/<name>[/versions/<v>]:predict     {"signature_name": ..., "instances": [...]}
                                                    (row format) -> {"predictions": [...]}, or
                                                    {"inputs": {...}} (columnar) -> {"outputs": ...}

Every input of an export is batched, one entry per example (`temperature` `[N]` and `seed`
`[N]` too), so every signature takes both formats: `translate_a2b` images alone (the T = 0
translation), `translate_a2b_sample` rows of {"images", "temperature", "seed"}, `sample_a` rows
of {"temperature", "seed"}; every input is required, as in TF Serving. `sample_pairs` answers
{"images_a", "images_b"} like any signature with two outputs. An export older than per-row seeds
has a scalar `seed` (columnar format only), and its translate_a2b / translate_b2a take
temperature and seed as optional inputs (`predict_request.OPTIONAL_INPUTS`).

Request bodies are parsed as JSON only (never pickle, whatever the Content-Type), limited in size
(by default derived from --max_batch and the largest signature's inputs: `request_byte_limit`)
and batch (--max_batch). Values are converted to each input's dtype with range checks
(`predict_request.py`, which reads a request), and the model's own signatures refuse bad shapes
and inputs that make the flow overflow (NaN or infinite images, which uint8 would turn into a
silent black picture); the server refuses non-finite float outputs too. Anything wrong with a
request gets a 4xx status and {"error": "<message>"}; the server keeps serving.

Resources are bounded (`glow_tf2.serving.httpd`): at most --max_connections connections, each
request with an absolute deadline (--request_timeout) for its headers and body, and the JSON
parsing, conversion and model call of a predict inside the gate of --max_concurrent slots, so
that memory grows with the slots, not with the clients.

`--saved_model` is either a SavedModel folder or a TF Serving model base folder with numeric
version subfolders (the highest version is served).

The HTTP plumbing lives in `httpd.py`.
"""

import http.server
import json
import math
import os
import re
import signal
import threading
from typing import Any

from absl import logging
import numpy as np

from glow_tf2.serving import httpd
from glow_tf2.serving import predict_request
from glow_tf2.serving.predict_request import RequestError

DEFAULT_MAX_BATCH = 64
# JSON characters one number may take, separator included: "255, " and "-1.2345678901234567e-05, ".
_INT_CHARS = 2
_FLOAT_CHARS = 26
_BODY_SLACK = 64 * 1024  # field names, signature_name, whitespace
_PATH = re.compile(
  r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[0-9]+))?"
  r"(?P<rest>/metadata|:[A-Za-z]+)?/?$"
)


def resolve_saved_model(path: str) -> tuple[str, str]:
  """(SavedModel folder, version string) for a SavedModel folder or a TF Serving base folder."""
  if os.path.exists(os.path.join(path, "saved_model.pb")):
    name = os.path.basename(os.path.normpath(path))
    return path, name if name.isdigit() else "1"
  versions = (
    [
      d
      for d in os.listdir(path)
      if d.isdigit() and os.path.exists(os.path.join(path, d, "saved_model.pb"))
    ]
    if os.path.isdir(path)
    else []
  )
  if not versions:
    raise FileNotFoundError(
      f"--saved_model={path}: neither a SavedModel (no saved_model.pb) nor "
      "a folder of numbered SavedModel versions"
    )
  version = max(versions, key=int)
  return os.path.join(path, version), version


def _signature_defs_json(saved_model_dir: str) -> dict[str, Any]:
  """The SignatureDefMap of saved_model.pb as TF Serving's metadata prints it."""
  from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top

  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  signature_defs = proto.meta_graphs[0].signature_def
  return {
    "signature_def": {
      key: json_format.MessageToDict(
        signature_defs[key],
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
      )
      for key in sorted(signature_defs)
      if not key.startswith("__")
    }
  }  # as TF Serving: no init op


def _clean_tf_message(message: str) -> str:
  """The informative line of a TF runtime error, without node names and op ids."""
  lines = [line.strip() for line in message.splitlines()]
  lines = [
    line
    for line in lines
    if line
    and not line.startswith(
      ("Graph execution error", "Detected at node", "<stack traces unavailable>", "[[{{node")
    )
  ]
  text = " ".join(lines) if lines else message
  return re.sub(r"\s*\[Op:__inference\S*\]", "", text).strip()


class ModelServer:
  """The model side of glow-serve: loads the SavedModel, answers status, metadata and predict.

  Args:
    saved_model: a SavedModel folder or a TF Serving base folder of numbered versions.
    model_name: the <name> of the URLs.
    max_batch: the largest batch (N) a predict request may ask for.
    max_concurrent: predict requests parsed and run at once; further ones wait their turn (at
      most `queue_timeout` seconds, then 503).
    queue_timeout: seconds a request may wait for a slot.
  """

  def __init__(
    self,
    saved_model: str,
    model_name: str = "glow",
    max_batch: int = DEFAULT_MAX_BATCH,
    max_concurrent: int = 2,
    queue_timeout: float = httpd.DEFAULT_QUEUE_TIMEOUT,
  ):
    if max_batch < 1:
      raise ValueError(f"max_batch={max_batch}: must be at least 1")
    self._gate = httpd.Gate(max_concurrent, queue_timeout)  # ValueError for max_concurrent < 1
    import tensorflow as tf  # pylint: disable=g-import-not-at-top  (the binary imports it quietly)

    self._tf = tf
    self.path, self.version = resolve_saved_model(saved_model)
    self.model_name = model_name
    self.max_batch = max_batch
    self._model = tf.saved_model.load(self.path)
    self.signatures = {
      k: predict_request.Signature(k, fn) for k, fn in self._model.signatures.items()
    }
    self._metadata = _signature_defs_json(self.path)

  def request_byte_limit(self) -> int:
    """The largest predict body a batch of `max_batch` of the widest signature needs, in bytes.

    Per example and input: (elements) x (characters of the widest number of its dtype, with a
    separator) plus two brackets per innermost row; the widest signature times `max_batch`,
    plus 64 KiB for the rest. A float input of D values costs about 26 D bytes an example.
    """
    widest = 0
    for signature in self.signatures.values():
      size = 0
      for spec in signature.inputs.values():
        dims = [1 if d is None else d for d in spec.shape.as_list()[1:]]
        elements = math.prod(dims)
        dtype = np.dtype(spec.dtype.as_numpy_dtype)
        if dtype.kind in "iu":
          info = np.iinfo(dtype)
          chars = max(len(str(info.min)), len(str(info.max))) + _INT_CHARS
        else:
          chars = _FLOAT_CHARS
        size += elements * chars + 2 * math.prod(dims[:-1]) + 64
      widest = max(widest, size)
    return self.max_batch * widest + _BODY_SLACK

  # ---------------------------------------------------------------------------------------------
  # Endpoints.

  def status(self) -> dict[str, Any]:
    return {
      "model_version_status": [
        {
          "version": self.version,
          "state": "AVAILABLE",
          "status": {"error_code": "OK", "error_message": ""},
        }
      ]
    }

  def metadata(self) -> dict[str, Any]:
    return {
      "model_spec": {"name": self.model_name, "signature_name": "", "version": self.version},
      "metadata": {"signature_def": self._metadata},
    }

  def predict_body(self, body: bytes) -> dict[str, Any]:
    """A predict request's raw body -> the JSON response body; raises RequestError.

    The JSON parsing, the conversion to arrays and the model call all hold a slot of the gate:
    a parsed body takes many times its size in memory (a Python object per number).
    """
    try:
      with self._gate:
        try:
          request = json.loads(body, parse_constant=predict_request.reject_constant)
        except (ValueError, RecursionError) as e:
          raise RequestError(400, f"the request body is not valid JSON: {e}") from None
        return self.predict(request)
    except httpd.GateBusy as e:
      raise RequestError(503, str(e)) from None

  def predict(self, request: Any) -> dict[str, Any]:
    """A parsed JSON request body -> the JSON response body; raises RequestError.

    Does not take a slot of the gate: `predict_body` does, around the parsing too.
    """
    parsed = predict_request.parse(request, self.signatures, self.max_batch)
    outputs = self._call(parsed.signature, parsed.name, parsed.arrays)
    return predict_request.response(outputs, parsed.row_format)

  def _call(self, signature, name, arrays) -> dict[str, np.ndarray]:
    tf = self._tf
    tensors = {k: tf.constant(v, dtype=signature.inputs[k].dtype) for k, v in arrays.items()}
    try:
      result = signature.function(**tensors)
    except tf.errors.InvalidArgumentError as e:
      raise RequestError(400, f"signature {name!r}: {_clean_tf_message(e.message)}") from None
    except (TypeError, ValueError) as e:
      raise RequestError(400, f"signature {name!r}: {e}") from None
    outputs = {k: np.asarray(v.numpy()) for k, v in sorted(result.items())}
    predict_request.check_finite_outputs(name, signature, outputs)
    return outputs


# -------------------------------------------------------------------------------------------------
# HTTP.


class _Handler(httpd.DeadlineHandler):
  """One request; `server.model_server` and `server.max_request_bytes` are set by make_server."""

  server_version = "glow-serve"

  def _send(self, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    self.send_response(status)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    if self.close_connection:
      self.send_header("Connection", "close")
    self.end_headers()
    if self.command != "HEAD":  # HEAD: the headers GET would send, without the body
      self.wfile.write(data)

  def send_json_error(self, status: int, message: str) -> None:
    self.close_connection = True
    self._send(status, {"error": message})

  def _route(self):
    path = self.path.split("?", 1)[0]
    match = _PATH.match(path)
    if not match:
      raise RequestError(
        404, f"no such endpoint: {path}; try /v1/models/{self.server.model_server.model_name}"
      )
    server = self.server.model_server
    name, version, rest = match.group("name"), match.group("version"), match.group("rest")
    if name != server.model_name or (version is not None and version != server.version):
      wanted = f"Specific({name}, {version})" if version else f"Latest({name})"
      raise RequestError(404, f"Servable not found for request: {wanted}")
    return server, rest or ""

  def _handle(self, method: str) -> None:
    self._body_read = False
    try:
      server, rest = self._route()
      if method in ("GET", "HEAD"):
        if rest == "":
          return self._send(200, server.status())
        if rest == "/metadata":
          return self._send(200, server.metadata())
        raise RequestError(405, f"use POST for {rest}")
      if rest != ":predict":
        if rest.startswith(":"):
          raise RequestError(400, f"only :predict is supported, not {rest}")
        raise RequestError(405, "use GET for the status and /metadata")
      body = self._read_body()
      return self._send(200, server.predict_body(body))
    except RequestError as e:
      if not self._body_read and (
        self.headers.get("Content-Length", "0").strip() != "0"
        or self.headers.get("Transfer-Encoding")
      ):
        self.close_connection = True  # an unread body would be parsed as the next request
      return self._send(e.status, {"error": e.message})
    except TimeoutError:
      raise  # the deadline passed while reading the body: DeadlineHandler answers 408
    except Exception as e:  # pylint: disable=broad-except
      # A bug or a resource problem: report it, keep serving.
      logging.exception("glow-serve: internal error on %s %s", method, self.path)
      self.close_connection = True
      return self._send(500, {"error": f"internal error: {type(e).__name__}: {e}"})

  def _read_body(self) -> bytes:
    if self.headers.get("Transfer-Encoding"):
      self.close_connection = True
      raise RequestError(411, "chunked requests are not supported: send a Content-Length")
    length = self.headers.get("Content-Length")
    if length is None:
      self.close_connection = True
      raise RequestError(411, "a Content-Length header is required")
    try:
      n = int(length)
      if n < 0:
        raise ValueError
    except ValueError:
      self.close_connection = True
      raise RequestError(400, f"bad Content-Length: {length!r}") from None
    length = n
    if length > self.server.max_request_bytes:
      self.close_connection = True  # the body is not read: the connection cannot be reused
      raise RequestError(
        413,
        f"request body of {length} bytes is larger than the limit of "
        f"{self.server.max_request_bytes} bytes (--max_request_bytes; by default what "
        f"--max_batch={self.server.model_server.max_batch} examples need)",
      )
    body = self.rfile.read(length)
    self._body_read = True
    if len(body) != length:
      self.close_connection = True
      raise RequestError(400, "the request body ended before Content-Length bytes")
    return body

  def do_GET(self):  # pylint: disable=invalid-name
    self._handle("GET")

  def do_HEAD(self):  # pylint: disable=invalid-name
    self._handle("HEAD")

  def do_POST(self):  # pylint: disable=invalid-name
    self._handle("POST")

  def _not_allowed(self):
    self.close_connection = True
    self._send(405, {"error": f"method {self.command} not allowed: use GET, HEAD or POST"})

  do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed  # noqa: N815


def make_server(
  model_server: ModelServer,
  host: str = "127.0.0.1",
  port: int = 8501,
  max_request_bytes: int | None = None,
  max_connections: int = httpd.DEFAULT_MAX_CONNECTIONS,
  request_timeout: float = httpd.DEFAULT_REQUEST_TIMEOUT,
) -> httpd.BoundedHTTPServer:
  """An HTTP server for `model_server` (port 0 picks a free port: see `server_address`).

  Args:
    model_server: the model.
    host, port: where to listen; 127.0.0.1 by default (0.0.0.0 exposes it to the network).
    max_request_bytes: the largest body; None derives it (`ModelServer.request_byte_limit`).
    max_connections: connections served at once (one more: 503).
    request_timeout: seconds a client has to send a whole request (then 408).

  Raises:
    ValueError: a limit that cannot work. OSError: the address cannot be bound.
  """
  if max_request_bytes is None:
    max_request_bytes = model_server.request_byte_limit()
  if max_request_bytes < 1:
    raise ValueError(f"max_request_bytes={max_request_bytes}: must be at least 1")
  server = httpd.BoundedHTTPServer((host, port), _Handler, max_connections, request_timeout)
  server.model_server = model_server
  server.max_request_bytes = max_request_bytes
  return server


def serve_until_stopped(server: http.server.HTTPServer) -> None:
  """Serves until SIGTERM or Ctrl-C, then closes the socket (glow-serve and glow-demo)."""
  # shutdown() waits for serve_forever() to return, so it must run on another thread.
  signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    server.server_close()
