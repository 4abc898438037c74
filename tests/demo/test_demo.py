"""glow-demo's JSON API, endpoint by endpoint, against the SavedModel called directly.

Translations (at T = 0 and above), codes, samples, sampled pairs, interpolations and
manipulations of both domains must equal the SavedModel's own signatures on the session's tiny
pair (tests/demo/demo_pair.py, shared with test_browser.py through `demo_files`); so must an
upload of another size and colour, fitted with notes, and concurrent requests. The page, the
example strip, the directions and glow-manipulators are test_demo_assets.py's. (That a pair
exported without a prior translates with rho = 1, whatever the temperature, is
tests/serving/test_export.py's.)
"""

import base64
import io
import threading

import numpy as np
from PIL import Image
import pytest

from glow_tf2.demo import model as model_lib
from tests.demo.demo_pair import demo_files  # noqa: F401  (test_browser.py imports it from here)
from tests.demo.demo_pair import mean_translation
from tests.demo.demo_pair import png
from tests.demo.demo_pair import sig
from tests.demo.demo_pair import unpng


@pytest.mark.parametrize("source, signature", [("a", "translate_a2b"), ("b", "translate_b2a")])
def test_translate_equals_the_saved_model(client, loaded, examples, source, signature):
  image = examples[0][3] if source == "a" else examples[1][3]
  result = client.ok("translate", {"image": png(image), "source": source})
  expected = mean_translation(loaded, image[None], source)[0]
  assert result["target"] == ("b" if source == "a" else "a")
  assert result["temperature"] == 0.0 and result["seed"] == 0
  assert result["notes"] == []
  np.testing.assert_array_equal(unpng(result["input"]), image)
  np.testing.assert_array_equal(unpng(result["output"]), expected)
  assert np.abs(expected.astype(int) - image).mean() > 5  # a real change, not an echo


def test_encode_and_decode_codes_as_json_arrays(client, loaded, examples, rho):
  image = examples[0][1]
  code = client.ok("encode", {"image": png(image), "domain": "a"})["code"]
  expected = sig(loaded, "encode_a", images=image[None])["eps"][0]
  assert len(code) == 256
  np.testing.assert_array_equal(np.asarray(code, np.float32), expected)  # exact through JSON
  decoded = client.ok("decode", {"code": code, "domain": "a"})["image"]
  np.testing.assert_array_equal(unpng(decoded), image)  # 8 bits: decode(encode(x)) == x
  # The translation at T = 0 decodes rho * code with the other model.
  moved = (rho * np.asarray(code, np.float32)).tolist()
  other = client.ok("decode", {"code": moved, "domain": "b"})["image"]
  np.testing.assert_array_equal(unpng(other), mean_translation(loaded, image[None], "a")[0])
  unscaled = client.ok("decode", {"code": code, "domain": "b"})["image"]
  assert not np.array_equal(unpng(unscaled), unpng(other))  # rho matters


def test_sample_equals_the_saved_model(client, loaded):
  result = client.ok("sample", {"domain": "b", "temperature": 0.6, "seed": 11, "n": 4})
  # Sample i from the row seed 11 + i.
  seeds = np.arange(11, 15, dtype=np.int32)
  expected = sig(loaded, "sample_b", temperature=np.full([4], 0.6, np.float32), seed=seeds)[
    "images"
  ]
  got = np.stack([unpng(x) for x in result["images"]])
  np.testing.assert_array_equal(got, expected)
  assert len({x.tobytes() for x in got}) == 4
  again = client.ok("sample", {"domain": "b", "temperature": 0.6, "seed": 11, "n": 4})
  assert again["images"] == result["images"]
  hotter = client.ok("sample", {"domain": "b", "temperature": 1.0, "seed": 11, "n": 4})
  assert hotter["images"] != result["images"]
  # Temperature 0 decodes the zero code: every sample is the same image.
  cold = client.ok("sample", {"domain": "a", "temperature": 0, "seed": 5, "n": 3})
  assert len(set(cold["images"])) == 1


def warm_translation(loaded, images, source, temperature, seed):
  """The SavedModel's translate_<direction>_sample, row i from the seed seed + i."""
  name = "translate_a2b_sample" if source == "a" else "translate_b2a_sample"
  n = len(images)
  return sig(
    loaded,
    name,
    images=images,
    temperature=np.full([n], temperature, np.float32),
    seed=np.arange(seed, seed + n, dtype=np.int32),
  )["images"]


def test_translate_at_a_temperature_equals_the_saved_model(client, loaded, examples, rho):
  image = examples[0][4]
  cold = client.ok("translate", {"image": png(image), "temperature": 0, "seed": 9})
  # T = 0: the conditional mean code, whatever the seed: decode_b(rho * encode_a(x)).
  eps = sig(loaded, "encode_a", images=image[None])["eps"]
  mean = sig(loaded, "decode_b", eps=rho * eps)["images"][0]
  np.testing.assert_array_equal(unpng(cold["output"]), mean)
  body = {"image": png(image), "source": "a", "temperature": 1.3, "seed": 9}
  warm = client.ok("translate", body)
  assert warm["temperature"] == 1.3 and warm["seed"] == 9
  expected = warm_translation(loaded, image[None], "a", 1.3, 9)[0]
  np.testing.assert_array_equal(unpng(warm["output"]), expected)
  assert np.mean(expected != mean) > 0.2  # the temperature matters: the check can fail
  assert client.ok("translate", body)["output"] == warm["output"]
  assert client.ok("translate", dict(body, seed=10))["output"] != warm["output"]


@pytest.mark.parametrize("source", ["a", "b"])
def test_translations_row_equals_the_saved_model(client, loaded, examples, source):
  """n draws of one input: all the mean translation at T = 0; distinct, repeatable at T > 0."""
  image = examples[0 if source == "a" else 1][5]
  body = {"image": png(image), "source": source, "temperature": 0.0, "n": 6, "seed": 3}
  cold = client.ok("translations", body)
  assert len(cold["outputs"]) == 6 and len(set(cold["outputs"])) == 1
  np.testing.assert_array_equal(
    unpng(cold["outputs"][0]), mean_translation(loaded, image[None], source)[0]
  )
  warm = client.ok("translations", dict(body, temperature=0.9))
  got = np.stack([unpng(x) for x in warm["outputs"]])
  expected = warm_translation(loaded, np.repeat(image[None], 6, 0), source, 0.9, 3)
  np.testing.assert_array_equal(got, expected)
  assert len({x.tobytes() for x in got}) == 6
  assert client.ok("translations", dict(body, temperature=0.9))["outputs"] == warm["outputs"]
  other = client.ok("translations", dict(body, temperature=0.9, seed=9))["outputs"]
  assert not set(other) & set(warm["outputs"])  # seeds 9..14, none of 3..8
  # Draw i comes from the seed 3 + i: seed 4 gives 5 of the same draws, moved by one.
  moved = client.ok("translations", dict(body, temperature=0.9, seed=4))["outputs"]
  assert moved[:5] == warm["outputs"][1:] and moved[5] not in warm["outputs"]


def test_sample_pairs_equal_the_saved_model(client, loaded):
  body = {"temperature": 0.8, "seed": 21, "n": 3}
  result = client.ok("sample_pairs", body)
  t = np.full([3], 0.8, np.float32)
  seeds = np.arange(21, 24, dtype=np.int32)  # pair i from the seed 21 + i
  expected = sig(loaded, "sample_pairs", temperature=t, seed=seeds)
  got_a = np.stack([unpng(x) for x in result["images_a"]])
  got_b = np.stack([unpng(x) for x in result["images_b"]])
  np.testing.assert_array_equal(got_a, expected["images_a"])
  np.testing.assert_array_equal(got_b, expected["images_b"])
  # A is model A's sample of the seed; B is drawn given A, not decode_b of A's code itself.
  np.testing.assert_array_equal(got_a, sig(loaded, "sample_a", temperature=t, seed=seeds)["images"])
  assert not np.array_equal(got_b, sig(loaded, "sample_b", temperature=t, seed=seeds)["images"])
  assert len({x.tobytes() for x in got_b}) == 3
  assert client.ok("sample_pairs", body) == result
  other = client.ok("sample_pairs", dict(body, seed=24))["images_b"]
  assert not set(other) & set(result["images_b"])


def test_interpolate_is_linear_in_the_code(client, loaded, examples, rho):
  first, last = examples[0][0], examples[0][1]
  result = client.ok("interpolate", {"images": [png(first), png(last)], "domain": "a", "n": 5})
  assert result["t"] == [0.0, 0.25, 0.5, 0.75, 1.0]
  frames = np.stack([unpng(x) for x in result["frames"]])
  np.testing.assert_array_equal(frames[0], first)
  np.testing.assert_array_equal(frames[-1], last)
  codes = sig(loaded, "encode_a", images=np.stack([first, last]))["eps"].astype(np.float64)
  middle = (0.5 * codes[0] + 0.5 * codes[1]).astype(np.float32)[None]
  np.testing.assert_array_equal(frames[2], sig(loaded, "decode_a", eps=middle)["images"][0])
  translated = np.stack([unpng(x) for x in result["translated"]])
  np.testing.assert_array_equal(
    translated[2], sig(loaded, "decode_b", eps=rho * middle)["images"][0]
  )
  np.testing.assert_array_equal(translated[0], mean_translation(loaded, first[None], "a")[0])
  assert len({f.tobytes() for f in frames}) == 5


def test_manipulate_moves_the_code_along_the_direction(client, loaded, examples, files, rho):
  image = examples[0][2]
  with np.load(model_lib.default_manipulators_path(files["saved_model"])) as data:
    direction_a = data["direction_a"][3]
  result = client.ok(
    "manipulate", {"image": png(image), "domain": "a", "direction": "digit 3", "strength": 1.5}
  )
  code = sig(loaded, "encode_a", images=image[None])["eps"]
  moved = code + np.float32(1.5) * direction_a[None]
  np.testing.assert_array_equal(
    unpng(result["output"]), sig(loaded, "decode_a", eps=moved)["images"][0]
  )
  np.testing.assert_array_equal(
    unpng(result["translated"]), sig(loaded, "decode_b", eps=rho * moved)["images"][0]
  )
  assert not np.array_equal(unpng(result["output"]), image)
  still = client.ok("manipulate", {"image": png(image), "direction": "digit 3", "strength": 0})
  np.testing.assert_array_equal(unpng(still["output"]), image)


def test_domain_b_encode_decode_interpolate_manipulate_by_value(
  client, loaded, examples, files, rho
):
  """The "b" paths of the API equal the SavedModel's B signatures (and differ from A's)."""
  first, last = examples[1][4], examples[1][5]
  code = client.ok("encode", {"image": png(first), "domain": "b"})["code"]
  expected = sig(loaded, "encode_b", images=first[None])["eps"][0]
  np.testing.assert_array_equal(np.asarray(code, np.float32), expected)
  assert not np.allclose(expected, sig(loaded, "encode_a", images=first[None])["eps"][0])
  decoded = client.ok("decode", {"code": code, "domain": "b"})["image"]
  np.testing.assert_array_equal(unpng(decoded), first)
  as_a = client.ok("decode", {"code": (rho * expected).tolist(), "domain": "a"})["image"]
  np.testing.assert_array_equal(unpng(as_a), mean_translation(loaded, first[None], "b")[0])
  result = client.ok("interpolate", {"images": [png(first), png(last)], "domain": "b", "n": 3})
  codes = sig(loaded, "encode_b", images=np.stack([first, last]))["eps"].astype(np.float64)
  middle = (0.5 * codes[0] + 0.5 * codes[1]).astype(np.float32)[None]
  frames = [unpng(x) for x in result["frames"]]
  np.testing.assert_array_equal(frames[0], first)
  np.testing.assert_array_equal(frames[1], sig(loaded, "decode_b", eps=middle)["images"][0])
  np.testing.assert_array_equal(frames[2], last)
  np.testing.assert_array_equal(
    unpng(result["translated"][1]), sig(loaded, "decode_a", eps=rho * middle)["images"][0]
  )
  with np.load(model_lib.default_manipulators_path(files["saved_model"])) as data:
    direction_b = data["direction_b"][7]
  moved = client.ok(
    "manipulate", {"image": png(first), "domain": "b", "direction": "digit 7", "strength": -2.0}
  )
  shifted = codes[:1].astype(np.float32) + np.float32(-2.0) * direction_b[None]
  np.testing.assert_array_equal(
    unpng(moved["output"]), sig(loaded, "decode_b", eps=shifted)["images"][0]
  )
  np.testing.assert_array_equal(
    unpng(moved["translated"]), sig(loaded, "decode_a", eps=rho * shifted)["images"][0]
  )


def test_frame_limit_by_value(client, loaded, examples, served):
  """Exactly max_frames frames, each decode_a of the linear path; one more is refused."""
  limit = served[1].limits.max_frames
  first, last = examples[0][6], examples[0][7]
  body = {"images": [png(first), png(last)], "domain": "a", "n": limit}
  result = client.ok("interpolate", body)
  t = np.linspace(0.0, 1.0, limit)
  assert result["t"] == t.tolist()
  codes = sig(loaded, "encode_a", images=np.stack([first, last]))["eps"].astype(np.float64)
  path = ((1.0 - t)[:, None] * codes[0] + t[:, None] * codes[1]).astype(np.float32)
  np.testing.assert_array_equal(
    np.stack([unpng(x) for x in result["frames"]]), sig(loaded, "decode_a", eps=path)["images"]
  )
  status, payload = client.post("interpolate", dict(body, n=limit + 1))
  assert status == 400 and payload == {"error": f"`n` must be in [2, {limit}], got {limit + 1}"}


def test_wrong_size_colour_image_is_fitted_with_notes(client, loaded):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (24, 40, 4), dtype=np.uint8)
  image[..., 3] = 255
  image[0, 0, 3] = 0
  buffer = io.BytesIO()
  Image.fromarray(image, "RGBA").save(buffer, format="PNG")
  data_url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
  result = client.ok("translate", {"image": data_url, "source": "a"})
  notes = " | ".join(result["notes"])
  assert "transparent" in notes and "grey" in notes
  assert "centre-cropped to 24x24" in notes and "resized from 24x24 to 16x16" in notes
  fitted = unpng(result["input"])
  assert fitted.shape == (16, 16, 1)
  np.testing.assert_array_equal(
    unpng(result["output"]), mean_translation(loaded, fitted[None], "a")[0]
  )


def test_concurrent_requests(client, examples):
  results = [None] * 6

  def work(i):
    results[i] = client.post("translate", {"image": png(examples[0][i]), "source": "a"})

  threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert [status for status, _ in results] == [200] * 6
  for i, (_, payload) in enumerate(results):
    np.testing.assert_array_equal(unpng(payload["input"]), examples[0][i])
