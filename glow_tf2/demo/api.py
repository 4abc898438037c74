"""The demo's JSON API, independent of HTTP: one method per endpoint under /api/.

Every method takes the parsed JSON body (a dict) and returns a JSON-ready dict. A bad request
raises `RequestError` with a 4xx status and a message meant for the page. Images travel as
base64 PNG, codes as JSON arrays of numbers.

  GET  /api/health       {"status": "ok"}
  GET  /api/info         shapes, domains, directions, examples and limits
  GET  /api/examples     {"examples": [{"image_a", "image_b"?, "label"}], "source"}
  POST /api/translate    {"image", "source": "a"|"b", "temperature"?, "seed"?, "label"?}
                         -> {"input", "output", "target", "temperature", "seed", "notes"}
  POST /api/translations {"image", "source", "temperature", "n", "seed", "label"?}
                         -> {"input", "outputs": [n], "target", "temperature", "seed", "notes"}
  POST /api/encode       {"image", "domain", "label"?} -> {"code": [D numbers], "notes"}
  POST /api/decode       {"code": [D numbers], "domain", "label"?} -> {"image"}
  POST /api/sample       {"domain", "temperature", "seed", "n", "label"?} -> {"images"}
  POST /api/sample_pairs {"temperature", "seed", "n", "label"?} -> {"images_a", "images_b"}
  POST /api/interpolate  {"images": [from, to], "domain", "n", "label"?}
                         -> {"frames", "translated"?, "t", "notes"}
  POST /api/manipulate   {"image", "domain", "direction", "strength", "label"?}
                         -> {"input", "output", "translated"?, "notes"}

Interpolation is linear in the code: frame i decodes (1 - t_i) z_from + t_i z_to with t from 0 to
1, so the first and last frames are the two images themselves (quantized to the model's bits).
Manipulation decodes z + strength * direction, with the direction of that domain from
`glow-manipulators`. "translated" decodes rho * (the same codes) with the other model of a pair:
their translation at temperature 0.

Translation at temperature T (0 by default: the conditional mean code) decodes
rho * z + T sqrt(1 - rho^2) n with the other model, row i's n standard normal noise of its own
seed, `seed` + i (`glow_tf2.seeds`: /api/translations' n outputs are n draws for one input, and
/api/sample's image i is the same whatever n). A pair that was not trained
with the coupled prior has rho = 1: its translations are the same at every T ("coupled" in
/api/info says which). /api/sample_pairs draws n pairs (x_A, x_B) from the joint model at T.

A value in its range can still make the flow overflow (a code of 1e4 into a model whose
couplings divide by a small scale: NaN or infinite images, which PNG would show as black). Such
a request gets 400 naming the field that did it (`code`, `temperature`, `strength`, ...).
"""

import contextlib
import dataclasses
import json
import math
import os
from typing import Any

import numpy as np

from glow_tf2 import config as config_lib
from glow_tf2.demo import images as image_io
from glow_tf2.demo.assets import Directions
from glow_tf2.demo.assets import Examples
from glow_tf2.demo.assets import load_directions  # noqa: F401  (importable from here too)
from glow_tf2.demo.assets import load_examples  # noqa: F401  (importable from here too)
from glow_tf2.demo.assets import make_examples  # noqa: F401  (importable from here too)
from glow_tf2.demo.assets import open_npz  # noqa: F401  (importable from here too)
from glow_tf2.demo.model import DemoModel
from glow_tf2.demo.model import Overflow
from glow_tf2.serving import httpd


class RequestError(Exception):
  """A client error: the server answers `status` with {"error": message}."""

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status
    self.message = message


@dataclasses.dataclass(frozen=True)
class Limits:
  """What one request may ask for.

  `max_request_bytes` defaults to what the largest request needs: /api/interpolate's two images
  of `max_image_bytes` in base64 (4/3 of their size) and 64 KiB for the rest.
  """

  max_request_bytes: int | None = None
  max_image_bytes: int = 3 * 1024 * 1024
  # Pixels of one uploaded image, from its header before decoding: a 1024x1024 RGBA upload
  # decodes to 4 MB (and a few copies while converted), where 4096x4096 cost 337 MB.
  max_pixels: int = 1024 * 1024
  max_samples: int = 32  # images of /api/sample, draws of /api/translations, pairs of sample_pairs
  max_frames: int = 16
  max_temperature: float = 2.0
  max_strength: float = 20.0
  max_examples: int = 32

  def __post_init__(self):
    if self.max_request_bytes is None:
      derived = 2 * 4 * (self.max_image_bytes // 3 + 1) + 64 * 1024
      object.__setattr__(self, "max_request_bytes", derived)
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if not value > 0:
        raise ValueError(f"{field.name}={value}: must be positive")


class DemoAPI:
  """The endpoints. Thread-safe: the only state is read-only after construction."""

  def __init__(
    self,
    model: DemoModel,
    examples: Examples | None = None,
    directions: Directions | None = None,
    limits: Limits = Limits(),
    messages: list[str] | None = None,
    max_concurrent: int = 2,
    queue_timeout: float = httpd.DEFAULT_QUEUE_TIMEOUT,
  ):
    # POST requests parse, decode and run inside this gate: memory grows with its slots.
    self._gate = httpd.Gate(max_concurrent, queue_timeout)  # ValueError for max_concurrent < 1
    self.model = model
    self.examples = examples
    self.directions = directions
    self.limits = limits
    self.messages = list(messages or [])  # startup messages shown on the page (missing files)

  # ---------------------------------------------------------------------------------------------
  # Reading requests.

  def _fields(self, body: Any, required, optional=()) -> dict[str, Any]:
    if not isinstance(body, dict):
      raise RequestError(400, "the request body must be a JSON object")
    unknown = sorted(set(body) - set(required) - set(optional))
    if unknown:
      raise RequestError(
        400,
        f"unknown field(s) {unknown}; expected {sorted(required)}"
        + (f" and optionally {sorted(optional)}" if optional else ""),
      )
    missing = [k for k in required if k not in body]
    if missing:
      raise RequestError(400, f"missing field(s) {missing}")
    return body

  def _domain(self, body, key="domain", default=None) -> str:
    value = body.get(key, default)
    if value not in self.model.domains:
      raise RequestError(400, f"`{key}` must be one of {list(self.model.domains)}, got {value!r}")
    return value

  def _int(self, body, key, low, high, default=None) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
      if isinstance(value, float) and value.is_integer():
        value = int(value)
      else:
        raise RequestError(400, f"`{key}` must be an integer, got {_show(value)}")
    if not low <= value <= high:
      raise RequestError(400, f"`{key}` must be in [{low}, {high}], got {_show(value)}")
    return value

  def _float(self, body, key, low, high, default=None) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
      raise RequestError(400, f"`{key}` must be a finite number, got {_show(value)}")
    if not low <= value <= high:
      raise RequestError(400, f"`{key}` must be in [{low}, {high}], got {_show(value)}")
    return float(value)

  def _labels(self, body, n) -> np.ndarray | None:
    if not self.model.n_classes:
      if body.get("label") not in (None, 0):
        raise RequestError(400, "`label`: this model is not class-conditional")
      return None
    label = self._int(body, "label", 0, self.model.n_classes - 1, default=0)
    return np.full([n], label, np.int32)

  def _image(self, value, what) -> tuple:
    try:
      raw = image_io.decode_base64(value, what, self.limits.max_image_bytes)
      return image_io.to_model_image(raw, self.model.image_shape, what, self.limits.max_pixels)
    except image_io.ImageError as error:
      raise RequestError(400, str(error)) from None

  def _direction(self, name) -> int:
    if self.directions is None:
      raise RequestError(
        404,
        "no manipulation directions are loaded: run `glow-manipulators "
        f"--saved_model={self.model.path} --problem=...` and restart",
      )
    if name not in self.directions.names:
      raise RequestError(404, f"unknown direction {name!r}; known: {self.directions.names}")
    return self.directions.names.index(name)

  @staticmethod
  @contextlib.contextmanager
  def _blame(field: str):
    """Model calls inside: a flow that overflowed is a 400 naming the request's `field`."""
    try:
      yield
    except Overflow:
      raise RequestError(
        400, f"`{field}` too large for this model: the flow overflowed (its output is not finite)"
      ) from None

  @staticmethod
  def _png(images: np.ndarray) -> list[str]:
    return [image_io.to_png_base64(x) for x in images]

  # ---------------------------------------------------------------------------------------------
  # Endpoints.

  def health(self, body=None) -> dict[str, Any]:
    return {"status": "ok"}

  def info(self, body=None) -> dict[str, Any]:
    model = self.model
    return {
      "saved_model": model.path,
      "image_shape": list(model.image_shape),
      "n_bits_x": model.n_bits_x,
      "n_classes": model.n_classes,
      "data_dim": model.data_dim,
      "domains": list(model.domains),
      "coupled": model.coupled,
      "rho": _summary(model.rho),
      "directions": list(self.directions.names) if self.directions else [],
      "direction_counts": list(self.directions.counts) if self.directions else [],
      "n_examples": len(self.examples.labels) if self.examples else 0,
      "messages": self.messages,
      "limits": dataclasses.asdict(self.limits),
    }

  def examples_(self, body=None) -> dict[str, Any]:
    if self.examples is None:
      return {
        "examples": [],
        "source": None,
        "message": "no examples loaded: start with --problem=NAME or --examples=FILE.npz, "
        "or write them with glow-manipulators",
      }
    rows = []
    for i, label in enumerate(self.examples.labels):
      row = {"label": int(label)}
      for domain, array in self.examples.images.items():
        row[f"image_{domain}"] = image_io.to_png_base64(array[i])
      rows.append(row)
    return {"examples": rows, "source": os.path.basename(self.examples.source)}

  def _pair_source(self, body) -> str:
    source = self._domain(body, "source", default="a")
    if self.model.other(source) is None:
      raise RequestError(400, "this SavedModel holds one model: nothing to translate to")
    return source

  def _temperature(self, body, default: float) -> float:
    return self._float(body, "temperature", 0.0, self.limits.max_temperature, default=default)

  def _seed(self, body) -> int:
    return self._int(body, "seed", 0, 2**31 - 1, default=0)

  def translate(self, body) -> dict[str, Any]:
    body = self._fields(body, ["image"], ["source", "temperature", "seed", "label"])
    source = self._pair_source(body)
    temperature, seed = self._temperature(body, default=0.0), self._seed(body)
    image, notes = self._image(body["image"], "image")
    with self._blame("temperature" if temperature > 0 else "image"):
      output = self.model.translate(image[None], source, temperature, seed, self._labels(body, 1))
    return {
      "source": source,
      "target": self.model.other(source),
      "temperature": temperature,
      "seed": seed,
      "input": image_io.to_png_base64(image),
      "output": image_io.to_png_base64(output[0]),
      "notes": notes,
    }

  def translations(self, body) -> dict[str, Any]:
    body = self._fields(body, ["image"], ["source", "temperature", "seed", "n", "label"])
    source = self._pair_source(body)
    temperature, seed = self._temperature(body, default=config_lib.TEMPERATURE), self._seed(body)
    n = self._int(body, "n", 1, self.limits.max_samples, default=6)
    image, notes = self._image(body["image"], "image")
    with self._blame("temperature" if temperature > 0 else "image"):
      outputs = self.model.translations(image, source, temperature, n, seed, self._labels(body, n))
    return {
      "source": source,
      "target": self.model.other(source),
      "temperature": temperature,
      "seed": seed,
      "input": image_io.to_png_base64(image),
      "outputs": self._png(outputs),
      "notes": notes,
    }

  def encode(self, body) -> dict[str, Any]:
    body = self._fields(body, ["image"], ["domain", "label"])
    domain = self._domain(body, default="a")
    image, notes = self._image(body["image"], "image")
    with self._blame("image"):
      code = self.model.encode(image[None], domain, self._labels(body, 1))[0]
    return {"domain": domain, "code": code.astype(float).tolist(), "notes": notes}

  def decode(self, body) -> dict[str, Any]:
    body = self._fields(body, ["code"], ["domain", "label"])
    domain = self._domain(body, default="a")
    code = body["code"]
    d = self.model.data_dim
    if (
      not isinstance(code, list)
      or len(code) != d
      or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in code)
    ):
      raise RequestError(400, f"`code` must be a JSON array of {d} numbers")
    if not all(_finite(v) and abs(v) <= 1e4 for v in code):  # before numpy: 10**400 overflows
      raise RequestError(400, "`code` must hold finite numbers of magnitude at most 1e4")
    code = np.asarray(code, np.float64)
    with self._blame("code"):
      image = self.model.decode(code[None].astype(np.float32), domain, self._labels(body, 1))[0]
    return {"domain": domain, "image": image_io.to_png_base64(image)}

  def sample(self, body) -> dict[str, Any]:
    body = self._fields(body, [], ["domain", "temperature", "seed", "n", "label"])
    domain = self._domain(body, default="a")
    temperature, seed = self._temperature(body, default=config_lib.TEMPERATURE), self._seed(body)
    n = self._int(body, "n", 1, self.limits.max_samples, default=8)
    with self._blame("temperature"):
      images = self.model.sample(
        domain, np.full([n], temperature, np.float32), seed, self._labels(body, n)
      )
    return {"domain": domain, "temperature": temperature, "seed": seed, "images": self._png(images)}

  def sample_pairs(self, body) -> dict[str, Any]:
    body = self._fields(body, [], ["temperature", "seed", "n", "label"])
    if len(self.model.domains) < 2:
      raise RequestError(400, "this SavedModel holds one model: there are no pairs to sample")
    temperature, seed = self._temperature(body, default=config_lib.TEMPERATURE), self._seed(body)
    n = self._int(body, "n", 1, self.limits.max_samples, default=4)
    with self._blame("temperature"):
      images_a, images_b = self.model.sample_pairs(
        np.full([n], temperature, np.float32), seed, self._labels(body, n)
      )
    return {
      "temperature": temperature,
      "seed": seed,
      "images_a": self._png(images_a),
      "images_b": self._png(images_b),
    }

  def interpolate(self, body) -> dict[str, Any]:
    body = self._fields(body, ["images"], ["domain", "n", "label"])
    domain = self._domain(body, default="a")
    pair = body["images"]
    if not isinstance(pair, list) or len(pair) != 2:
      raise RequestError(400, "`images` must be a list of two base64 images (from, to)")
    n = self._int(body, "n", 2, self.limits.max_frames, default=8)
    (first, notes_1), (last, notes_2) = (
      self._image(pair[0], "from image"),
      self._image(pair[1], "to image"),
    )
    labels = self._labels(body, 2)
    t = np.linspace(0.0, 1.0, n)
    frame_labels = self._labels(body, n)
    with self._blame("images"):
      codes = self.model.encode(np.stack([first, last]), domain, labels).astype(np.float64)
      path = ((1.0 - t)[:, None] * codes[0] + t[:, None] * codes[1]).astype(np.float32)
      result = {
        "domain": domain,
        "t": t.tolist(),
        "notes": notes_1 + notes_2,
        "frames": self._png(self.model.decode(path, domain, frame_labels)),
      }
      if self.model.other(domain):
        result["translated"] = self._png(self.model.translate_codes(path, domain, frame_labels))
    return result

  def manipulate(self, body) -> dict[str, Any]:
    body = self._fields(body, ["image", "direction"], ["domain", "strength", "label"])
    domain = self._domain(body, default="a")
    index = self._direction(body["direction"])
    strength = self._float(
      body, "strength", -self.limits.max_strength, self.limits.max_strength, default=1.0
    )
    image, notes = self._image(body["image"], "image")
    labels = self._labels(body, 1)
    with self._blame("image"):
      code = self.model.encode(image[None], domain, labels)
    with np.errstate(over="ignore"):  # an infinite code is refused by the model call below
      moved = code + np.float32(strength) * self.directions.vectors[domain][index][None]
    with self._blame("strength"):
      result = {
        "domain": domain,
        "direction": body["direction"],
        "strength": strength,
        "input": image_io.to_png_base64(image),
        "output": image_io.to_png_base64(self.model.decode(moved, domain, labels)[0]),
        "notes": notes,
      }
      if self.model.other(domain):
        result["translated"] = image_io.to_png_base64(
          self.model.translate_codes(moved, domain, labels)[0]
        )
    return result

  ROUTES = {
    ("GET", "health"): "health",
    ("GET", "info"): "info",
    ("GET", "examples"): "examples_",
    ("POST", "translate"): "translate",
    ("POST", "translations"): "translations",
    ("POST", "encode"): "encode",
    ("POST", "decode"): "decode",
    ("POST", "sample"): "sample",
    ("POST", "sample_pairs"): "sample_pairs",
    ("POST", "interpolate"): "interpolate",
    ("POST", "manipulate"): "manipulate",
  }

  def handle_body(self, endpoint: str, raw: bytes) -> dict[str, Any]:
    """A POST to /api/<endpoint> with the raw JSON `raw`: parsed and answered inside the gate.

    The endpoint is checked first (404/405 cost nothing); a request that finds no free slot
    within the gate's timeout gets 503.
    """
    self._route("POST", endpoint)
    try:
      with self._gate:
        try:
          body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
          raise RequestError(400, f"the request body is not valid JSON: {error}") from None
        return self.handle("POST", endpoint, body)
    except httpd.GateBusy as error:
      raise RequestError(503, str(error)) from None

  def _route(self, method: str, endpoint: str) -> str:
    name = self.ROUTES.get((method, endpoint))
    if name is None:
      methods = [m for (m, e) in self.ROUTES if e == endpoint]
      if methods:
        raise RequestError(405, f"/api/{endpoint} takes {' or '.join(methods)}, not {method}")
      known = sorted({e for (_, e) in self.ROUTES})
      raise RequestError(404, f"no endpoint /api/{endpoint}; known: {known}")
    return name

  def handle(self, method: str, endpoint: str, body: Any) -> dict[str, Any]:
    """Dispatches /api/<endpoint> with a parsed body; unknown endpoints 404, a wrong method 405.

    Takes no slot of the gate (`handle_body` does, around the parsing too).
    """
    return getattr(self, self._route(method, endpoint))(body)


def _summary(rho: np.ndarray | None) -> dict[str, float] | None:
  """min, mean and max of a pair's rho `[D]` for the page; None for a single model."""
  if rho is None:
    return None
  return {"min": float(rho.min()), "mean": float(rho.mean()), "max": float(rho.max())}


def _finite(value) -> bool:
  """Whether a JSON number is finite as a float (a 400-digit integer is not: float() overflows)."""
  try:
    return math.isfinite(value)
  except OverflowError:
    return False


def _show(value) -> str:
  """A value for a message, at most 40 characters (a 400-digit number is not echoed whole)."""
  text = repr(value)
  return text if len(text) <= 40 else text[:37] + "..."


def _reject_constant(name):
  raise ValueError(f"{name} is not a number JSON allows")
