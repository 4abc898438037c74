"""A TF Serving predict request, read: its JSON body -> the signature and its input arrays.

TF Serving's two formats (`glow_tf2.serving.server` documents the API):

  {"signature_name": ..., "instances": [...]}   row format: one entry per example, an object
                                                naming the inputs or, for a signature of one
                                                required input, the value itself;
  {"signature_name": ..., "inputs": {...}}      columnar format: each input whole.

Every input of a current export is batched (`seed` too: one per row), so every signature takes
both formats, and every input is required, as in TF Serving. A non-batched input exists only in
an export older than per-row seeds (its scalar `seed`), and only the columnar format carries it.

`parse` checks the request's fields, converts every value to its input's dtype with range checks
(300 is not silently a uint8 44; NaN, inf and numbers beyond float32 are refused), fills the
optional inputs of an older export a request left out and refuses batches beyond the server's
limit; `check_finite_outputs` refuses outputs that values in range made NaN or infinite inside
the flow; `response` puts the outputs in the request's format. Anything wrong raises
`RequestError` with the HTTP status and message the client gets. The model's own signatures check the shapes that remain.
"""

import dataclasses
from typing import Any

import numpy as np

# Inputs a request may leave out, by signature: {input: its default} (for a batched input, the
# value of every example). Only an export from between the coupled prior and per-row seeds has
# them: its translate_a2b / translate_b2a took temperature and a scalar seed, and a client of
# images alone (all that existed before) still gets T = 0, where the seed draws nothing. A
# current export's translate_a2b takes images alone, and its sampling signatures get no
# defaults: one seed for every row would give every row the same noise, and TF Serving, which
# the same clients must be able to call, fills in nothing.
OPTIONAL_INPUTS = {
  "translate_a2b": {"temperature": 0.0, "seed": 0},
  "translate_b2a": {"temperature": 0.0, "seed": 0},
}


class RequestError(Exception):
  """A client error: becomes an HTTP 4xx response with {"error": message}."""

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status
    self.message = message


class Signature:
  """One signature: its callable, input specs, output names and the defaults of optional inputs."""

  def __init__(self, name, function):
    self.function = function
    _, kwargs = function.structured_input_signature
    self.inputs = dict(sorted(kwargs.items()))
    self.outputs = sorted(function.structured_outputs)
    # An export from before the inputs existed has none of them: nothing is optional there.
    self.defaults = {k: v for k, v in OPTIONAL_INPUTS.get(name, {}).items() if k in self.inputs}
    self.required = [k for k in self.inputs if k not in self.defaults]

  def fill_defaults(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`arrays` with each optional input that was left out at its default value.

    A batched input's default has one entry per example, N from the batched inputs given.
    """
    batch = next((a.shape[0] for k, a in arrays.items() if self.inputs[k].shape.rank and a.ndim), 0)
    for key, value in self.defaults.items():
      if key not in arrays:
        spec = self.inputs[key]
        shape = [batch] if spec.shape.rank else []
        arrays[key] = np.full(shape, value, np.dtype(spec.dtype.as_numpy_dtype))
    return arrays


@dataclasses.dataclass(frozen=True)
class PredictRequest:
  """A request read: the signature's name, the signature, its input arrays, the format."""

  name: str
  signature: Signature
  arrays: dict[str, np.ndarray]
  row_format: bool


def reject_constant(name):
  """`json.loads(..., parse_constant=reject_constant)`: NaN and Infinity are not JSON numbers."""
  raise ValueError(f"{name} is not a JSON number")


def parse(request: Any, signatures: dict[str, Signature], max_batch: int) -> PredictRequest:
  """A parsed JSON request body -> the signature to call and its inputs; raises RequestError.

  Args:
    request: the JSON body, parsed.
    signatures: the model's signatures by name.
    max_batch: the largest batch (N) a request may ask for (a larger one is a 413).
  """
  if not isinstance(request, dict):
    raise RequestError(400, "the request body must be a JSON object with 'instances' or 'inputs'")
  unknown = set(request) - {"signature_name", "instances", "inputs"}
  if unknown:
    raise RequestError(
      400,
      f"unknown request fields: {', '.join(sorted(unknown))}; expected "
      "'signature_name' and one of 'instances' or 'inputs'",
    )
  name = request.get("signature_name", "serving_default")
  if not isinstance(name, str):
    raise RequestError(400, "'signature_name' must be a string")
  if name not in signatures:
    raise RequestError(
      400,
      f"signature_name {name!r} not found; this model has: {', '.join(sorted(signatures))}",
    )
  signature = signatures[name]
  if ("instances" in request) == ("inputs" in request):
    raise RequestError(
      400,
      "the request must have exactly one of 'instances' (row format) or 'inputs' (columnar format)",
    )
  row_format = "instances" in request
  if row_format:
    arrays = _rows_to_arrays(signature, name, request["instances"], max_batch)
  else:
    arrays = _columns_to_arrays(signature, name, request["inputs"], max_batch)
  return PredictRequest(name, signature, arrays, row_format)


def check_finite_outputs(name: str, signature: Signature, outputs: dict[str, np.ndarray]) -> None:
  """Raises RequestError 400 if a float output is NaN or infinite: the inputs overflowed the flow.

  Inputs pass their range checks and can still overflow inside the flow (a code of 1e4 into a
  coupling that divides by a small scale), and JSON has no NaN to answer with. The images of an
  export check themselves before their uint8 cast (`SignatureInputs.finite_images`); this
  checks the float outputs (codes, bits/dim). The blame goes to the float inputs (eps,
  temperature), else to all inputs, with the examples whose outputs overflowed.
  """
  for key, value in sorted(outputs.items()):
    if value.dtype.kind != "f" or np.all(np.isfinite(value)):
      continue
    inputs = [k for k, spec in signature.inputs.items() if spec.dtype.is_floating]
    inputs = inputs or list(signature.inputs)
    if not inputs:
      raise RequestError(500, f"signature {name!r}: output {key!r} is not finite")
    where = ""
    if value.ndim:
      rows = np.flatnonzero(~np.isfinite(value.reshape(len(value), -1)).all(axis=1))
      shown = ", ".join(map(str, rows[:5])) + (" ..." if len(rows) > 5 else "")
      where = f" (example {shown})" if len(rows) == 1 else f" (examples {shown})"
    raise RequestError(
      400,
      f"signature {name!r}: {' or '.join(repr(k) for k in inputs)} too large: the flow "
      f"overflowed (output {key!r} is not finite{where})",
    )


def response(outputs: dict[str, np.ndarray], row_format: bool) -> dict[str, Any]:
  """The JSON response body of a signature's outputs, in the request's format.

  Row format: {"predictions": [one entry per example]}, each entry the output itself or, with
  several outputs, an object naming them; columnar: {"outputs": the output or an object}.
  """
  if row_format:
    if len(outputs) == 1:
      return {"predictions": next(iter(outputs.values())).tolist()}
    n = len(next(iter(outputs.values())))
    return {"predictions": [{k: v[i].tolist() for k, v in outputs.items()} for i in range(n)]}
  if len(outputs) == 1:
    return {"outputs": next(iter(outputs.values())).tolist()}
  return {"outputs": {k: v.tolist() for k, v in outputs.items()}}


def _rows_to_arrays(signature, name, instances, max_batch):
  if not isinstance(instances, list) or not instances:
    raise RequestError(400, "'instances' must be a non-empty list, one entry per example")
  _check_batch(len(instances), max_batch)
  scalar = [k for k, spec in signature.inputs.items() if spec.shape.rank == 0]
  required_scalar = [k for k in scalar if k in signature.required]
  if required_scalar:
    raise RequestError(
      400,
      f"signature {name!r} has non-batched input(s) "
      f"{', '.join(required_scalar)}: use the columnar format ('inputs')",
    )
  input_names = list(signature.inputs)
  if all(isinstance(row, dict) for row in instances):
    columns = {}
    for key in input_names:
      present = sum(key in row for row in instances)
      if key in scalar:
        if present:
          raise RequestError(
            400,
            f"input {key!r} of signature {name!r} is not batched: send it in the columnar "
            "format ('inputs'), or leave it out (default "
            f"{signature.defaults[key]})",
          )
        continue
      if present == 0 and key in signature.defaults:
        continue
      if present != len(instances):
        raise RequestError(
          400,
          f"every instance needs the input {key!r} of signature {name!r} "
          f"(inputs: {', '.join(input_names)})"
          + (", or none of them (default)" if key in signature.defaults else ""),
        )
      columns[key] = [row[key] for row in instances]
    extra = set().union(*(row.keys() for row in instances)) - set(input_names)
    if extra:
      raise RequestError(
        400,
        f"signature {name!r} has no input(s) "
        f"{', '.join(sorted(extra))} (inputs: {', '.join(input_names)})",
      )
  elif any(isinstance(row, dict) for row in instances):
    raise RequestError(400, "instances must be all objects (named inputs) or all values")
  else:
    if len(signature.required) != 1:
      raise RequestError(
        400,
        f"signature {name!r} has several inputs "
        f"({', '.join(input_names)}): each instance must be an object "
        "naming them",
      )
    columns = {signature.required[0]: instances}
  arrays = {k: _to_array(v, signature.inputs[k], k) for k, v in columns.items()}
  return signature.fill_defaults(arrays)


def _columns_to_arrays(signature, name, inputs, max_batch):
  input_names = list(signature.inputs)
  if not isinstance(inputs, dict):
    if len(signature.required) != 1:
      raise RequestError(
        400,
        f"signature {name!r} has several inputs "
        f"({', '.join(input_names)}): 'inputs' must be an object naming them",
      )
    inputs = {signature.required[0]: inputs}
  missing = [k for k in signature.required if k not in inputs]
  extra = sorted(set(inputs) - set(input_names))
  if missing or extra:
    optional = f" (optional: {', '.join(signature.defaults)})" if signature.defaults else ""
    raise RequestError(
      400,
      f"signature {name!r} takes inputs {', '.join(input_names)}{optional}"
      + (f"; missing: {', '.join(missing)}" if missing else "")
      + (f"; unknown: {', '.join(extra)}" if extra else ""),
    )
  arrays = {k: _to_array(inputs[k], signature.inputs[k], k) for k in input_names if k in inputs}
  for key, array in arrays.items():
    if signature.inputs[key].shape.rank and array.ndim:
      _check_batch(array.shape[0], max_batch)
  return signature.fill_defaults(arrays)


def _check_batch(n: int, max_batch: int) -> None:
  if n > max_batch:
    raise RequestError(
      413,
      f"batch of {n} examples is larger than this server's limit --max_batch={max_batch}",
    )


def _to_array(value, spec, key) -> np.ndarray:
  """A JSON value -> a numpy array of the input's dtype, refusing anything it would change."""
  dtype = np.dtype(spec.dtype.as_numpy_dtype)
  try:
    array = np.asarray(value)
  except (ValueError, TypeError) as e:
    raise RequestError(400, f"input {key!r}: not a rectangular array of numbers ({e})") from None
  if array.dtype.kind == "O" and _has_huge_int(value):
    raise RequestError(400, f"input {key!r}: an integer too large for {dtype.name}")
  if array.dtype.kind == "b" or array.dtype.kind not in "iuf":
    raise RequestError(
      400,
      f"input {key!r} must hold numbers of dtype {dtype.name}, got "
      f"{'booleans' if array.dtype.kind == 'b' else 'non-numeric or ragged data'}",
    )
  if dtype.kind in "iu":
    if array.dtype.kind == "f":
      raise RequestError(
        400,
        f"input {key!r} must hold integers ({dtype.name}), got numbers with a fraction or exponent",
      )
    info = np.iinfo(dtype)
    if array.size and (array.min() < info.min or array.max() > info.max):
      raise RequestError(
        400, f"input {key!r}: values must be in [{info.min}, {info.max}] ({dtype.name})"
      )
  elif array.dtype.kind == "f" and array.size:
    if not np.all(np.isfinite(array)):
      raise RequestError(400, f"input {key!r}: values must be finite (no NaN or infinity)")
    limit = float(np.finfo(dtype).max)
    if np.max(np.abs(array)) > limit:
      raise RequestError(
        400, f"input {key!r}: values must be at most {limit:.4g} in magnitude ({dtype.name})"
      )
  expected_rank = spec.shape.rank
  if expected_rank is not None and array.ndim != expected_rank:
    shape = [("N" if d is None else d) for d in spec.shape.as_list()]
    raise RequestError(
      400,
      f"input {key!r} must have shape {shape} (rank {expected_rank}), "
      f"got shape {list(array.shape)}",
    )
  return array.astype(dtype)


def _has_huge_int(value) -> bool:
  """Whether a nested JSON list holds an integer beyond int64 (numpy makes those objects)."""
  stack = [value]
  while stack:
    item = stack.pop()
    if isinstance(item, list):
      stack.extend(item)
    elif isinstance(item, int) and not isinstance(item, bool) and abs(item) >= 2**63:
      return True
  return False
