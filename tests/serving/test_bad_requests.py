"""glow-serve against a corpus of malformed predict requests: none may crash or stall it.

Every case is a predict request whose body is wrong (not JSON, wrong fields, values of the wrong
type or beyond their dtype's range, values in range that overflow inside the flow, a sampling
translation's temperature and seed misused, shapes, batches beyond --max_batch), sent as raw
bytes over its own connection to the session's server (limits in tests/serving/conftest.py). It must get the expected status and a JSON error naming what is
wrong; after each, a good request must still get the right predictions. The HTTP around a
request (sizes and lengths of bodies, paths, methods, headers, slow and idle clients, the
connection cap) is test_bad_http.py's.
"""

import json

import numpy as np
import pytest

from tests.serving import conftest
from tests.serving.raw_http import P
from tests.serving.raw_http import assert_refused
from tests.serving.raw_http import assert_still_serving
from tests.serving.raw_http import http
from tests.serving.raw_http import raw_json


def cases(images):
  """(id, request bytes, expected status, words of the expected error message)."""
  g = images.tolist()
  img = lambda a: np.asarray(a).tolist()  # noqa: E731
  nested8 = lambda v: [[[v] for _ in range(8)] for _ in range(8)]  # noqa: E731  one 8x8x1 image
  deep = b'{"instances": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
  sample = lambda **inputs: {"signature_name": "sample_a", "inputs": inputs}  # noqa: E731
  pairs = lambda **inputs: {"signature_name": "sample_pairs", "inputs": inputs}  # noqa: E731
  # A good translate_a2b_sample request of the 5 images, but for `inputs`.
  a2b = lambda **inputs: {  # noqa: E731
    "signature_name": "translate_a2b_sample",
    "inputs": {"images": g, "temperature": [0.5] * 5, "seed": [0, 1, 2, 3, 4], **inputs},
  }
  decode = lambda eps: {"signature_name": "decode_a", "inputs": {"eps": eps}}  # noqa: E731
  eps_text = lambda v: (  # noqa: E731  a decode_a request whose first eps entry is the text v
    '{"signature_name": "decode_a", "inputs": {"eps": [['
    + v
    + ", "
    + ", ".join(["0.0"] * 63)
    + "]]}}"
  )
  c = []
  add = lambda *case: c.append(case)  # noqa: E731
  # --- JSON.
  add("not-json", http("POST", P, b"{not json"), 400, "not valid JSON")
  add("pickle", http("POST", P, b"\x80\x04\x95pickle."), 400, "not valid JSON")
  add("empty-body", http("POST", P, b""), 400, "not valid JSON")
  add("truncated-json", http("POST", P, b'{"instances": [[[[1]]'), 400, "not valid JSON")
  add("trailing-garbage", http("POST", P, b'{"instances": []} xyz'), 400, "not valid JSON")
  add("invalid-utf8", http("POST", P, b'{"instances": "\xff\xfe"}'), 400, "not valid JSON")
  add("deep-nesting", http("POST", P, deep), 400, "not valid JSON")
  add("json-array", http("POST", P, [1, 2]), 400, "JSON object")
  add("json-string", http("POST", P, "instances"), 400, "JSON object")
  add("json-null", http("POST", P, None, length=False), 411, "Content-Length")
  add("json-number", http("POST", P, b"3"), 400, "JSON object")
  add("NaN", http("POST", P, raw_json(eps_text("NaN"))), 400, "NaN is not a JSON number")
  add("Infinity", http("POST", P, raw_json(eps_text("Infinity"))), 400, "Infinity is not a JSON")
  add("-Infinity", http("POST", P, raw_json(eps_text("-Infinity"))), 400, "Infinity is not")
  # --- Request fields.
  add("no-fields", http("POST", P, {}), 400, "exactly one of 'instances'")
  add("both-formats", http("POST", P, {"instances": g, "inputs": g}), 400, "exactly one of")
  add(
    "unknown-field",
    http("POST", P, {"instances": g, "extra": 1}),
    400,
    "unknown request fields: extra",
  )
  add(
    "signature-int",
    http("POST", P, {"signature_name": 3, "instances": g}),
    400,
    "'signature_name' must be a string",
  )
  add(
    "signature-null",
    http("POST", P, {"signature_name": None, "instances": g}),
    400,
    "must be a string",
  )
  add(
    "signature-unknown",
    http("POST", P, {"signature_name": "nope", "instances": g}),
    400,
    "signature_name 'nope' not found",
  )
  add("instances-empty", http("POST", P, {"instances": []}), 400, "non-empty list")
  add("instances-object", http("POST", P, {"instances": {"images": g}}), 400, "non-empty list")
  add("instances-string", http("POST", P, {"instances": "abc"}), 400, "non-empty list")
  add(
    "instances-mixed", http("POST", P, {"instances": [{"images": g[0]}, g[1]]}), 400, "all objects"
  )
  add(
    "instance-missing-input",
    http("POST", P, {"signature_name": "encode_a", "instances": [{"image": g[0]}]}),
    400,
    "needs the input 'images'",
  )
  add(
    "instance-extra-input",
    http("POST", P, {"signature_name": "encode_a", "instances": [{"images": g[0], "x": 1}]}),
    400,
    "no input(s) x",
  )
  add(
    "rows-without-seed",
    http("POST", P, {"signature_name": "sample_a", "instances": [{"temperature": 0.7}]}),
    400,
    "every instance needs the input 'seed' of signature 'sample_a' (inputs: seed, temperature)",
  )
  add("columns-missing", http("POST", P, sample(temperature=[1.0])), 400, "missing: seed")
  add(
    "columns-unknown",
    http("POST", P, {"signature_name": "encode_a", "inputs": {"images": g, "labels": [0] * 5}}),
    400,
    "unknown: labels",
  )
  add(
    "columns-not-named",
    http("POST", P, {"signature_name": "sample_a", "inputs": [1.0]}),
    400,
    "'inputs' must be an object naming them",
  )
  # --- Types and values.
  add("strings", http("POST", P, {"instances": [nested8("a")]}), 400, "non-numeric or ragged")
  add("booleans", http("POST", P, {"instances": [nested8(True)]}), 400, "booleans")
  add("nulls", http("POST", P, {"instances": [nested8(None)]}), 400, "non-numeric or ragged")
  add("ragged", http("POST", P, {"instances": [g[0], g[1][:3]]}), 400, "rectangular")
  add(
    "fractions-for-uint8",
    http("POST", P, {"instances": img(images / 2)}),
    400,
    "must hold integers (uint8)",
  )
  add(
    "256-for-uint8",
    http("POST", P, {"instances": [nested8(256)]}),
    400,
    "values must be in [0, 255]",
  )
  add(
    "negative-for-uint8",
    http("POST", P, {"instances": [nested8(-1)]}),
    400,
    "values must be in [0, 255]",
  )
  add(
    "10**30-for-uint8",
    http("POST", P, {"instances": [nested8(10**30)]}),
    400,
    "integer too large for uint8",
  )
  add(
    "400-digit-int",
    http(
      "POST",
      P,
      raw_json('{"instances": [' + json.dumps(nested8(0)).replace("0", "9" * 400, 1) + "]}"),
    ),
    400,
    "integer too large for uint8",
  )
  add(
    "400-digit-eps",
    http("POST", P, raw_json(eps_text("9" * 400))),
    400,
    "integer too large for float32",
  )
  add("5000-digit-int", http("POST", P, raw_json(eps_text("9" * 5000))), 400, "not valid JSON")
  add("1e400-is-inf", http("POST", P, raw_json(eps_text("1e400"))), 400, "must be finite")
  add("-1e400-is-inf", http("POST", P, raw_json(eps_text("-1e400"))), 400, "must be finite")
  add("beyond-float32", http("POST", P, raw_json(eps_text("1e39"))), 400, "at most 3.403e+38")
  add(
    "temperature-string",
    http("POST", P, sample(temperature=["hot"], seed=[1])),
    400,
    "non-numeric",
  )
  add("temperature-negative", http("POST", P, sample(temperature=[-1.0], seed=[1])), 400, ">= 0")
  add(
    "seed-fraction",
    http("POST", P, sample(temperature=[1.0], seed=[1.5])),
    400,
    "must hold integers (int32)",
  )
  add(
    "seed-huge",
    http("POST", P, sample(temperature=[1.0], seed=[2**31])),
    400,
    "[-2147483648, 2147483647]",
  )
  add(
    "seed-scalar",
    http("POST", P, sample(temperature=[1.0], seed=1)),
    400,
    "input 'seed' must have shape ['N']",
  )
  add(
    "seed-per-row",
    http("POST", P, sample(temperature=[1.0, 1.0], seed=[1])),
    400,
    "sample_a: `seed` must have one entry per row",
  )
  # --- A sampling translation's temperature and seed, the images-only one, sampled pairs.
  add("translate-temperature-negative", http("POST", P, a2b(temperature=[-0.5] * 5)), 400, ">= 0")
  add(
    "translate-temperature-per-image",
    http("POST", P, a2b(temperature=[0.5] * 3)),
    400,
    "`temperature` must have one entry per image",
  )
  add(
    "translate-temperature-scalar",
    http("POST", P, a2b(temperature=0.5)),
    400,
    "input 'temperature' must have shape ['N']",
  )
  add(
    "translate-temperature-strings",
    http("POST", P, a2b(temperature=["warm"] * 5)),
    400,
    "input 'temperature' must hold numbers",
  )
  no_temperature = {k: v for k, v in a2b()["inputs"].items() if k != "temperature"}
  add(
    "translate-temperature-1e400",
    http(
      "POST",
      P,
      raw_json(
        json.dumps({"signature_name": "translate_a2b_sample", "inputs": no_temperature})[:-2]
        + ', "temperature": [1e400]}}'
      ),
    ),
    400,
    "values must be finite",
  )
  add(
    "translate-seed-fraction",
    http("POST", P, a2b(seed=[0.5] * 5)),
    400,
    "input 'seed' must hold integers (int32)",
  )
  add("translate-seed-huge", http("POST", P, a2b(seed=[-(2**31) - 1] * 5)), 400, "[-2147483648, ")
  add(
    "translate-seed-scalar",
    http("POST", P, a2b(seed=3)),
    400,
    "input 'seed' must have shape ['N']",
  )
  add(
    "translate-seed-per-image",
    http("POST", P, a2b(seed=[1, 2])),
    400,
    "translate_a2b_sample: `seed` must have one entry per row",
  )
  add(
    "translate-seed-in-rows",
    http("POST", P, {"instances": [{"images": g[0], "seed": 3}]}),
    400,
    "signature 'serving_default' has no input(s) seed (inputs: images)",  # T = 0 only
  )
  add(
    "translate-seed-in-rows-a2b",
    http(
      "POST", P, {"signature_name": "translate_a2b", "instances": [{"images": g[0], "seed": 3}]}
    ),
    400,
    "signature 'translate_a2b' has no input(s) seed (inputs: images)",
  )
  add(
    "translate-temperature-to-images-only",
    http(
      "POST",
      P,
      {"signature_name": "translate_a2b", "inputs": {"images": g, "temperature": [0.5] * 5}},
    ),
    400,
    "signature 'translate_a2b' takes inputs images; unknown: temperature",
  )
  add(
    "translate-temperature-in-some-rows",
    http(
      "POST",
      P,
      {
        "signature_name": "translate_b2a_sample",
        "instances": [
          {"images": g[0], "temperature": 1.0, "seed": 0},
          {"images": g[1], "seed": 1},
        ],
      },
    ),
    400,
    "every instance needs the input 'temperature' of signature 'translate_b2a_sample' "
    "(inputs: images, seed, temperature)",
  )
  add(
    "translate-unknown-input",
    http("POST", P, a2b(temp=[1.0] * 5)),
    400,
    "takes inputs images, seed, temperature; unknown: temp",
  )
  add(
    "translate-no-images",
    http(
      "POST",
      P,
      {"signature_name": "translate_a2b_sample", "inputs": {"temperature": [1.0], "seed": [1]}},
    ),
    400,
    "missing: images",
  )
  add(
    "translate-no-temperature",
    http("POST", P, {"signature_name": "translate_a2b_sample", "inputs": no_temperature}),
    400,
    "missing: temperature",
  )
  add("pairs-missing-seed", http("POST", P, pairs(temperature=[1.0])), 400, "missing: seed")
  add(
    "pairs-negative-temperature",
    http("POST", P, pairs(temperature=[0.5, -1.0], seed=[2, 3])),
    400,
    "sample_pairs: `temperature` must be >= 0",
  )
  add(
    "pairs-65-temperatures",
    http("POST", P, pairs(temperature=[1.0] * 65, seed=list(range(65)))),
    413,
    "batch of 65 examples",
  )
  # --- Values in range that overflow inside the flow (were 200 with a black image).
  add(
    "overflow-sample-temperature",
    http("POST", P, sample(temperature=[3.4e38], seed=[1])),
    400,
    "sample_a: `temperature` too large: the flow overflowed",
  )
  add(
    "overflow-decode-eps",
    http("POST", P, decode([[3e38] * 64])),
    400,
    "decode_a: `eps` too large: the flow overflowed",
  )
  add(
    "overflow-translate-temperature",
    http("POST", P, a2b(temperature=[3.4e38] * 5)),
    400,
    "translate_a2b_sample: `temperature` too large: the flow overflowed",
  )
  add(
    "overflow-pairs-temperature",
    http("POST", P, pairs(temperature=[0.7, 3.4e38], seed=[1, 2])),
    400,
    "sample_pairs: `temperature` too large: the flow overflowed",
  )
  # --- Shapes.
  add(
    "rank-3-images",
    http("POST", P, {"instances": img(images[:, :, :, 0])}),
    400,
    "must have shape ['N', 8, 8, 1]",
  )
  add(
    "rank-5-images",
    http("POST", P, {"instances": img(images[:, None])}),
    400,
    "must have shape ['N', 8, 8, 1]",
  )
  add(
    "16x8-images",
    http("POST", P, {"instances": np.zeros((2, 16, 8, 1), int).tolist()}),
    400,
    "not compatible",
  )
  add(
    "3-channel-images",
    http("POST", P, {"instances": np.zeros((2, 8, 8, 3), int).tolist()}),
    400,
    "not compatible",
  )
  add("eps-65", http("POST", P, decode([[0.0] * 65])), 400, "not compatible")
  add("eps-rank-1", http("POST", P, decode([0.0] * 64)), 400, "must have shape ['N', 64]")
  add(
    "temperature-rank-2",
    http("POST", P, sample(temperature=[[1.0]], seed=[1])),
    400,
    "must have shape ['N']",
  )
  # --- Batch sizes (the sizes and lengths of bodies: test_bad_http.py).
  add(
    "65-instances",
    http("POST", P, {"instances": [nested8(0)] * 65}),
    413,
    "batch of 65 examples is larger than this server's limit --max_batch=64",
  )
  add(
    "65-temperatures",
    http("POST", P, sample(temperature=[1.0] * 65, seed=[1] * 65)),
    413,
    "--max_batch=64",
  )
  return c


_IMAGES_FOR_IDS = np.zeros((5,) + conftest.SHAPE, np.uint8)


@pytest.mark.parametrize(
  "index", range(len(cases(_IMAGES_FOR_IDS))), ids=[c[0] for c in cases(_IMAGES_FOR_IDS)]
)
def test_bad_request(server, expected, index):
  assert_refused(server["port"], cases(server["images"])[index])
  assert_still_serving(server, expected)
