"""One traced graph for every flow step of the same structure (a "stateless call").

A Glow repeats one step of flow K times per level, with equal shapes and different weights. Traced
as plain Python, every step adds its own copy of the step's ops to the caller's graph (its pass,
its gradient, with gradient checkpointing its recomputation), so the time to trace a training step
and the memory of its graph grow with K (docs/benchmarks.md: the mnist preset's joint step took
43 CPU s to trace inlined, 25.5 s shared, 87,141 ops against 49,270).

`call(module, method, *inputs)` returns `getattr(module, method)(*inputs)` computed by one
`tf.function` per (class, method, `module.trace_key()`, the shapes and dtypes of its variables):
the caller reads the module's variables and passes the values as arguments, and while that
function is traced the calling module reads those arguments in place of its own variables. Every
module of the same structure then calls the same function, traced and differentiated once: the K
steps of a level, and the same level of the A and B flows of a pair. Gradients reach each module's
own variables through its reads, outside the function.

The function is a call in the graph, not inlined (`_noinline`): inlined, TensorFlow's runtime
would copy its body into the caller's graph once per call and instantiate every copy's kernels
again. Distribution strategies retrace it per device (their device scope is part of tf.function's
cache key), so each replica's calls stay on its device.

A module's `trace_key()` names every setting besides its variables that its computation reads
(channel counts, kinds, compute dtype); two modules with equal keys and variable shapes must
compute the same function of their variables. A function that would capture a tensor from the
module it was traced with (a weight that is not a `tf.Variable` of the module, or one reachable
twice) raises, instead of silently serving every caller with the first module's weight.
"""

import threading

import tensorflow as tf

_FUNCTIONS: dict[tuple, "tf.types.experimental.PolymorphicFunction"] = {}
# The module whose method a shared function is tracing (tracing happens inside the call).
_TRACING = threading.local()


def _variable_paths(module: tf.Module) -> list[tuple[str, ...]]:
  """The attribute path of every `tf.Variable` of module, in `module.variables` order."""
  paths = [
    path
    for path, _ in module._flatten(predicate=lambda v: isinstance(v, tf.Variable), with_path=True)
  ]
  for path in paths:
    if not all(isinstance(p, str) for p in path):
      raise TypeError(
        f"shared_trace: {type(module).__name__} holds a variable inside a container "
        f"({'.'.join(map(str, path))}); only attributes can be substituted"
      )
  return paths


def _owner(module, path):
  for name in path[:-1]:
    module = getattr(module, name)
  return module


def _with_values(method: str, paths):
  """The traced body: module.method(*inputs) with module's variables read from `values`."""

  def body(inputs, values):
    module = _TRACING.module
    owners = [_owner(module, path) for path in paths]
    originals = [getattr(o, path[-1]) for o, path in zip(owners, paths)]
    # object.__setattr__ bypasses tf.Module's tracking: the module's checkpoint dependencies and
    # its `variables` are untouched, and everything is put back before the trace returns.
    for owner, path, value in zip(owners, paths, values):
      object.__setattr__(owner, path[-1], value)
    try:
      return getattr(module, method)(*inputs)
    finally:
      for owner, path, original in zip(owners, paths, originals):
        object.__setattr__(owner, path[-1], original)

  return body


def call(module: tf.Module, method: str, *inputs):
  """`getattr(module, method)(*inputs)`, by the one traced function of module's structure."""
  paths = _variable_paths(module)
  variables = [getattr(_owner(module, p), p[-1]) for p in paths]
  key = (
    type(module),
    method,
    module.trace_key(),
    tuple((p, tuple(v.shape), v.dtype) for p, v in zip(paths, variables)),
  )
  function = _FUNCTIONS.get(key)
  if function is None:
    function = tf.function(
      _with_values(method, paths),
      autograph=False,
      experimental_attributes={"_noinline": True},
    )
    _FUNCTIONS[key] = function
  values = [tf.convert_to_tensor(v) for v in variables]
  _TRACING.module = module
  try:
    concrete = function.get_concrete_function(inputs, values)
  finally:
    _TRACING.module = None
  if concrete.captured_inputs:
    raise ValueError(
      f"shared_trace: {type(module).__name__}.{method} reads "
      f"{len(concrete.captured_inputs)} tensor(s) that are not its own tf.Variables; "
      "a shared function would give every module the traced module's values"
    )
  return concrete(inputs, values)
