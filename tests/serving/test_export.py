"""SavedModel export: signatures, a clean-process reload without TFP or glow_tf2, the bit-exact
round trip, deterministic sampling, and refusal of bad inputs by the reloaded signatures."""

import json
import os
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2.serving import export
from tests import helpers

PAIR_SIGNATURES = {
  "encode_a",
  "encode_b",
  "decode_a",
  "decode_b",
  "translate_a2b",
  "translate_b2a",
  "translate_a2b_sample",
  "translate_b2a_sample",
  "translate_codes_a2b",
  "translate_codes_b2a",
  "sample_a",
  "sample_b",
  "bits_per_dim_a",
  "bits_per_dim_b",
  "sample_pairs",
  "rho",
  "serving_default",
}


def tiny_config(**overrides):
  """tests.helpers' tiny Glow at 8x8x3."""
  return helpers.tiny_glow_config(**{"image_shape": (8, 8, 3), **overrides})


def train_pair(glow_a, glow_b, images_a, images_b, labels=None, steps=4):
  """A few joint steps (bits/dim of both + code loss), so nothing is left at its init value."""
  variables = glow_a.trainable_variables + glow_b.trainable_variables
  optimizer = tf.keras.optimizers.Adam(1e-2)
  n_bits = glow_a.config.n_bits_x
  for step in range(steps):
    with tf.GradientTape() as tape:
      x_a = glow_tf2.preprocess(images_a, n_bits, seed=[step, 0])
      x_b = glow_tf2.preprocess(images_b, n_bits, seed=[step, 1])
      eps_a, ld_a = glow_a.encode(x_a, labels=labels)
      eps_b, ld_b = glow_b.encode(x_b, labels=labels)
      log_prob = glow_tf2.losses.standard_normal_log_prob
      nll = -(log_prob(eps_a) + ld_a) - (log_prob(eps_b) + ld_b)
      loss = tf.reduce_mean(nll) + tf.reduce_mean(tf.square(eps_a - eps_b))
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))


def trained_pair(config, images_a, images_b, labels=None):
  glow_a = glow_tf2.Glow(config, seed=1, name="glow_a")
  glow_b = glow_tf2.Glow(config, seed=2, name="glow_b")
  glow_a.initialize(glow_tf2.preprocess(images_a, config.n_bits_x, noise=False))
  glow_b.initialize(glow_tf2.preprocess(images_b, config.n_bits_x, noise=False))
  train_pair(glow_a, glow_b, images_a, images_b, labels)
  # Training a few steps barely moves the zero-initialised convs; shake every weight a little too.
  helpers.perturb(glow_a, scale=0.05, seed=1)
  helpers.perturb(glow_b, scale=0.05, seed=2)
  return glow_a, glow_b


@pytest.fixture(scope="module")
def pair_export(tmp_path_factory):
  config = tiny_config()
  images_a = helpers.real_images(48, config.image_shape, seed=3)
  images_b = 255 - images_a
  glow_a, glow_b = trained_pair(config, images_a, images_b)
  module = export.build_serving_module(glow_a, glow_b)
  export_dir = str(tmp_path_factory.mktemp("export") / "glow")
  export.export_saved_model(module, export_dir)
  return module, export_dir, images_a[:6], images_b[:6]


# A clean process: importing TFP or glow_tf2 raises, so the SavedModel must stand on TF alone.
CHILD = textwrap.dedent("""
    import importlib.abc, json, os, sys
    class Blocker(importlib.abc.MetaPathFinder):
      def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow_probability", "glow_tf2"):
          raise ImportError("blocked in this test: " + name)
        return None
    sys.meta_path.insert(0, Blocker())
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import tensorflow as tf

    export_dir, io_path, out_path = sys.argv[1:4]
    data = np.load(io_path)
    model = tf.saved_model.load(export_dir)
    called = set()

    class Recorder(dict):  # the names of the signatures called with good inputs
      def __getitem__(self, name):
        called.add(name)
        return dict.__getitem__(self, name)

    sig = Recorder(model.signatures)
    images_a = tf.constant(data["images_a"])
    images_b = tf.constant(data["images_b"])
    out = {"signatures": sorted(sig.keys())}
    arrays = {}
    eps_a = sig["encode_a"](images=images_a)["eps"]
    eps_b = sig["encode_b"](images=images_b)["eps"]
    arrays["eps_a"], arrays["eps_b"] = eps_a.numpy(), eps_b.numpy()
    arrays["round_a"] = sig["decode_a"](eps=eps_a)["images"].numpy()
    arrays["round_b"] = sig["decode_b"](eps=eps_b)["images"].numpy()
    # Every input batched, one entry per row: what TF Serving's row format needs.
    def hot(images):  # a temperature and seeds, which a pair that is not coupled ignores
      n = len(images)
      return dict(images=images, temperature=tf.fill([n], 0.8), seed=tf.range(3, 3 + n))
    arrays["a2b"] = sig["translate_a2b"](images=images_a)["images"].numpy()
    arrays["b2a"] = sig["translate_b2a"](images=images_b)["images"].numpy()
    arrays["a2b_hot"] = sig["translate_a2b_sample"](**hot(images_a))["images"].numpy()
    arrays["b2a_hot"] = sig["translate_b2a_sample"](**hot(images_b))["images"].numpy()
    arrays["default"] = sig["serving_default"](images=images_a)["images"].numpy()
    arrays["codes_a2b"] = sig["translate_codes_a2b"](eps=eps_a)["images"].numpy()
    arrays["codes_b2a"] = sig["translate_codes_b2a"](eps=eps_b)["images"].numpy()
    arrays["rho"] = sig["rho"]()["rho"].numpy()
    arrays["bits_a"] = sig["bits_per_dim_a"](images=images_a)["bits_per_dim"].numpy()
    arrays["bits_b"] = sig["bits_per_dim_b"](images=images_b)["bits_per_dim"].numpy()
    temperature = tf.constant([0.0, 0.5, 0.7, 1.0])
    seeds = tf.constant([7, 8, 9, 10])
    for d in "ab":
      sample = sig["sample_" + d]
      arrays["sample_%s_1" % d] = sample(temperature=temperature, seed=seeds)["images"].numpy()
      arrays["sample_%s_2" % d] = sample(temperature=temperature, seed=seeds)["images"].numpy()
      arrays["sample_%s_3" % d] = sample(temperature=temperature,
                                         seed=seeds + 100)["images"].numpy()
      arrays["sample_%s_row2" % d] = sample(temperature=temperature[2:3],
                                            seed=seeds[2:3])["images"].numpy()
    pairs = sig["sample_pairs"](temperature=temperature, seed=seeds)
    arrays["pairs_a"], arrays["pairs_b"] = pairs["images_a"].numpy(), pairs["images_b"].numpy()
    out["called"] = sorted(called)
    out["shapes"] = {k: list(v.shape) for k, v in arrays.items()}
    out["dtypes"] = {k: str(v.dtype) for k, v in arrays.items()}

    # Bad inputs, each followed by a good call that must still work.
    h, w, c = data["images_a"].shape[1:]
    bad = {
        "rank3": ("encode_a", dict(images=tf.zeros([h, w, c], tf.uint8))),
        "rank5": ("translate_a2b", dict(images=tf.zeros([1, 1, h, w, c], tf.uint8))),
        "size": ("encode_b", dict(images=tf.zeros([2, h + 8, w, c], tf.uint8))),
        "channels": ("bits_per_dim_a", dict(images=tf.zeros([2, h, w, c + 1], tf.uint8))),
        "dtype": ("encode_a", dict(images=tf.zeros([2, h, w, c], tf.float32))),
        "eps_size": ("decode_a", dict(eps=tf.zeros([2, h * w * c + 1]))),
        "eps_nan": ("decode_b", dict(eps=tf.fill([2, h * w * c], float("nan")))),
        "temperature_rank": ("sample_a", dict(temperature=tf.zeros([2, 2]),
                                              seed=tf.constant([1, 2]))),
        "temperature_negative": ("sample_a", dict(temperature=tf.constant([-0.5]),
                                                  seed=tf.constant([1]))),
        "seed_rank": ("sample_b", dict(temperature=tf.constant([1.0]), seed=tf.constant(1))),
        "seed_length": ("sample_b", dict(temperature=tf.constant([1.0]),
                                         seed=tf.constant([1, 2]))),
        "seed_dtype": ("sample_b", dict(temperature=tf.constant([1.0]),
                                        seed=tf.constant([1], tf.int64))),
    }
    errors = {}
    for key, (name, kwargs) in bad.items():
      try:
        sig[name](**kwargs)
        errors[key] = None
      except (tf.errors.InvalidArgumentError, TypeError, ValueError) as e:
        errors[key] = type(e).__name__ + ": " + str(getattr(e, "message", e))
      again = sig["translate_a2b_sample"](**hot(images_a))["images"].numpy()
      assert np.array_equal(again, arrays["a2b_hot"]), "the model changed after a bad call"
    out["errors"] = errors
    out["modules"] = sorted(m for m in sys.modules
                            if m.split(".")[0] in ("tensorflow_probability", "glow_tf2"))
    np.savez(out_path, **arrays)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def reloaded(pair_export, tmp_path_factory):
  module, export_dir, images_a, images_b = pair_export
  work = tmp_path_factory.mktemp("child")
  np.savez(work / "io.npz", images_a=images_a, images_b=images_b)
  script = work / "child.py"
  script.write_text(CHILD)
  env = dict(os.environ, PYTHONPATH="")  # nothing of the project on the path
  proc = subprocess.run(
    [sys.executable, str(script), export_dir, str(work / "io.npz"), str(work / "out.npz")],
    capture_output=True,
    text=True,
    timeout=120,
    env=env,
    cwd=str(work),
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(proc.stdout.strip().splitlines()[-1])
  arrays = dict(np.load(work / "out.npz"))
  return module, images_a, images_b, report, arrays


def test_reloads_without_tfp_or_glow_tf2_and_lists_every_signature(reloaded):
  _, _, _, report, _ = reloaded
  assert report["modules"] == []
  assert set(report["signatures"]) == PAIR_SIGNATURES
  # Every signature was called there, with batched inputs only (one seed per row).
  assert set(report["called"]) == PAIR_SIGNATURES


def test_signature_shapes_and_dtypes(reloaded):
  _, images_a, _, report, _ = reloaded
  n, (h, w, c) = len(images_a), images_a.shape[1:]
  shapes, dtypes = report["shapes"], report["dtypes"]
  for d in "ab":
    assert shapes[f"eps_{d}"] == [n, h * w * c] and dtypes[f"eps_{d}"] == "float32"
    assert shapes[f"round_{d}"] == [n, h, w, c] and dtypes[f"round_{d}"] == "uint8"
    assert shapes[f"bits_{d}"] == [n] and dtypes[f"bits_{d}"] == "float32"
    assert shapes[f"sample_{d}_1"] == [4, h, w, c] and dtypes[f"sample_{d}_1"] == "uint8"
  for name in ("a2b", "b2a", "a2b_hot", "b2a_hot", "default", "pairs_a", "pairs_b"):
    assert shapes[name][1:] == [h, w, c] and dtypes[name] == "uint8"
  assert shapes["a2b_hot"][0] == n and shapes["pairs_a"][0] == 4


def test_round_trip_is_bit_exact_for_8_bits(reloaded):
  _, images_a, images_b, _, arrays = reloaded
  np.testing.assert_array_equal(arrays["round_a"], images_a)
  np.testing.assert_array_equal(arrays["round_b"], images_b)


def test_reloaded_values_match_the_models(reloaded):
  module, images_a, images_b, _, arrays = reloaded
  glow_a, glow_b = module.glow_a, module.glow_b
  x_a = glow_tf2.preprocess(images_a, 8, noise=False)
  eps_a, _ = glow_a.encode(x_a)
  np.testing.assert_allclose(arrays["eps_a"], eps_a.numpy(), atol=1e-4)
  # Translation: decode_B(encode_A(x)) with the models themselves.
  x_b, _ = glow_b.decode(eps_a)
  expected = glow_tf2.postprocess(x_b, 8).numpy().astype(int)
  assert np.abs(arrays["a2b"].astype(int) - expected).max() <= 1  # a float can flip a bin
  assert np.mean(arrays["a2b"] != expected) < 0.01
  np.testing.assert_array_equal(arrays["default"], arrays["a2b"])
  np.testing.assert_array_equal(arrays["rho"], np.ones(eps_a.shape[1], np.float32))
  # rho = 1: the sampling translations are the images-only ones at any temperature.
  np.testing.assert_array_equal(arrays["a2b_hot"], arrays["a2b"])
  np.testing.assert_array_equal(arrays["b2a_hot"], arrays["b2a"])
  # The codes' translation of encode's codes is the images' translation.
  np.testing.assert_array_equal(arrays["codes_a2b"], arrays["a2b"])
  np.testing.assert_array_equal(arrays["codes_b2a"], arrays["b2a"])
  # And back: decode_A(encode_B(x_B)) with the models themselves.
  eps_b, _ = glow_b.encode(glow_tf2.preprocess(images_b, 8, noise=False))
  np.testing.assert_allclose(arrays["eps_b"], eps_b.numpy(), atol=1e-4)
  x_a, _ = glow_a.decode(eps_b)
  expected_b2a = glow_tf2.postprocess(x_a, 8).numpy().astype(int)
  assert np.abs(arrays["b2a"].astype(int) - expected_b2a).max() <= 1
  assert np.mean(arrays["b2a"] != expected_b2a) < 0.01
  assert np.mean(arrays["b2a"] != images_b) > 0.5 and np.mean(expected_b2a != expected) > 0.5
  # A translation is not the input and not the identity map of a trained pair.
  assert np.mean(arrays["a2b"] != images_a) > 0.5
  expected_bits = glow_tf2.bits_per_dim(glow_b, images_b, noise=False).numpy()
  np.testing.assert_allclose(arrays["bits_b"], expected_bits, rtol=1e-5)


def test_sampling_is_deterministic_per_seed(reloaded):
  _, _, _, _, arrays = reloaded
  for d in "ab":
    np.testing.assert_array_equal(arrays[f"sample_{d}_1"], arrays[f"sample_{d}_2"])
    for row in (1, 2, 3):  # other seeds, other samples, row by row
      assert not np.array_equal(arrays[f"sample_{d}_1"][row], arrays[f"sample_{d}_3"][row])
    # A row is its own seed's draw: row 2 drawn alone is row 2 of the batch.
    np.testing.assert_array_equal(arrays[f"sample_{d}_row2"][0], arrays[f"sample_{d}_1"][2])
  # Temperature 0 decodes eps = 0: the same image whatever the seed.
  np.testing.assert_array_equal(arrays["sample_a_1"][0], arrays["sample_a_3"][0])
  # sample_pairs' sides are sample_a's and (rho = 1) sample_b's of the same seeds.
  np.testing.assert_array_equal(arrays["pairs_a"], arrays["sample_a_1"])
  np.testing.assert_array_equal(arrays["pairs_b"], arrays["sample_b_1"])


def test_sample_a_and_sample_b_with_one_seed_decode_the_same_eps(pair_export):
  module = pair_export[0]
  temperature = tf.fill([16], 0.2)

  def codes(seed):
    # Re-encoding a sample recovers its eps up to the 8-bit quantisation and the clipping of
    # the image (B = 255 - A is mostly saturated white, so B's samples lose the most).
    seeds = tf.range(16) + 100 * seed
    a = module.encode_a(module.sample_a(temperature, seeds)["images"])["eps"]
    b = module.encode_b(module.sample_b(temperature, seeds)["images"])["eps"]
    return a.numpy().ravel(), b.numpy().ravel()

  a, b = codes(5)
  assert np.corrcoef(a, b)[0, 1] > 0.5
  _, b_other = codes(6)
  assert abs(np.corrcoef(a, b_other)[0, 1]) < 0.2


def test_a_pair_that_is_not_coupled_translates_with_rho_1_at_any_temperature(pair_export):
  module, _, images_a, images_b = pair_export
  assert not module.coupled and int(module.info()["coupled"]) == 0
  for name, images in (("translate_a2b", images_a), ("translate_b2a", images_b)):
    cold = getattr(module, name)(tf.constant(images))["images"].numpy()
    sample = getattr(module, f"{name}_sample")
    hot = sample(tf.constant(images), tf.fill([6], 1.0), tf.range(5, 11))["images"].numpy()
    np.testing.assert_array_equal(hot, cold)
  # Pairs: eps_B = eps_A, so each side is its own sample of the seed.
  temperature, seed = tf.constant([0.7, 1.0, 0.3]), tf.constant([4, 5, 6])
  pairs = module.sample_pairs(temperature, seed)
  for d in "ab":
    np.testing.assert_array_equal(
      pairs[f"images_{d}"].numpy(),
      getattr(module, f"sample_{d}")(temperature, seed)["images"].numpy(),
    )
  assert not hasattr(module, "coupled_bits_per_dim")


@pytest.mark.parametrize(
  "case, expected",
  [
    ("rank3", "images"),
    ("rank5", "images"),
    ("size", "images"),
    ("channels", "images"),
    ("dtype", "uint8"),
    ("eps_size", "eps"),
    ("eps_nan", "`eps` must be finite"),
    ("temperature_rank", "temperature"),
    ("temperature_negative", "`temperature` must be >= 0"),
    ("seed_rank", "sample_b_seed_must_be_rank_1_N"),
    ("seed_length", "sample_b: `seed` must have one entry per row"),
    ("seed_dtype", "int32"),
  ],
)
def test_bad_inputs_are_refused_with_a_clear_error(reloaded, case, expected):
  errors = reloaded[3]["errors"]
  assert errors[case] is not None, f"{case} was accepted"
  assert "InvalidArgumentError" in errors[case]
  assert expected in errors[case]
  if case in ("rank3", "rank5", "size", "channels"):
    assert "is not compatible with expected shape [?,8,8,3]" in errors[case]


def test_conditional_single_domain_export_with_fewer_bits(tmp_path):
  config = tiny_config(image_shape=(8, 8, 1), n_classes=3, n_bits_x=5)
  images = helpers.real_images(24, config.image_shape, seed=5)
  labels = np.arange(24, dtype=np.int32) % 3
  glow = glow_tf2.Glow(config, seed=4)
  glow.initialize(glow_tf2.preprocess(images, 5, noise=False))
  helpers.perturb(glow, scale=0.05, seed=4)
  export_dir = export.export_saved_model(export.build_serving_module(glow), str(tmp_path / "m"))
  model = tf.saved_model.load(export_dir)
  sig = model.signatures
  assert set(sig.keys()) == {
    "encode_a",
    "decode_a",
    "sample_a",
    "bits_per_dim_a",
    "serving_default",
  }
  images_t, labels_t = tf.constant(images[:8]), tf.constant(labels[:8])
  eps = sig["encode_a"](images=images_t, labels=labels_t)["eps"]
  np.testing.assert_array_equal(
    sig["serving_default"](images=images_t, labels=labels_t)["eps"], eps
  )
  back = sig["decode_a"](eps=eps, labels=labels_t)["images"].numpy()
  np.testing.assert_array_equal(back, (images[:8] // 8) * 8)  # quantised to 5 bits
  # The labels matter: the same eps decodes differently under other classes.
  other = sig["decode_a"](eps=eps, labels=(labels_t + 1) % 3)["images"].numpy()
  assert not np.array_equal(other, back)
  samples = sig["sample_a"](
    temperature=tf.fill([3], 0.7), seed=tf.constant([1, 2, 3]), labels=tf.constant([0, 1, 2])
  )["images"].numpy()
  assert samples.shape == (3, 8, 8, 1)
  assert np.all((samples % 8 == 0) | (samples == 255))  # 5-bit levels (255: clipped k = 32)
  bad = [
    dict(images=images_t, labels=tf.constant([0, 1, 2])),  # wrong length
    dict(images=images_t, labels=tf.fill([8], 3)),  # out of range
    dict(images=images_t, labels=tf.fill([8], -1)),
    dict(images=images_t, labels=tf.zeros([8, 1], tf.int32)),
  ]  # wrong rank
  for kwargs in bad:
    with pytest.raises(tf.errors.InvalidArgumentError, match="labels"):
      sig["bits_per_dim_a"](**kwargs)
  bits = sig["bits_per_dim_a"](images=images_t, labels=labels_t)["bits_per_dim"].numpy()
  expected = glow_tf2.bits_per_dim(glow, images[:8], labels=labels[:8], noise=False).numpy()
  np.testing.assert_allclose(bits, expected, rtol=1e-5)


def test_pair_configs_must_agree():
  glow_a = glow_tf2.Glow(tiny_config(), seed=0)
  glow_b = glow_tf2.Glow(tiny_config(n_bits_x=5), seed=0)
  with pytest.raises(ValueError, match="n_bits_x"):
    export.build_serving_module(glow_a, glow_b)


def test_export_is_atomic_and_refuses_to_overwrite(tmp_path):
  config = tiny_config(image_shape=(8, 8, 1), n_levels=1, learntop=False)
  glow = glow_tf2.Glow(config, seed=0)
  glow.initialize(glow_tf2.preprocess(helpers.real_images(8, config.image_shape), 8, noise=False))
  module = export.build_serving_module(glow)
  target = tmp_path / "model"
  export.export_saved_model(module, str(target))
  with pytest.raises(FileExistsError):
    export.export_saved_model(module, str(target))
  (target / "stale_file").write_text("old")
  export.export_saved_model(module, str(target), overwrite=True)
  assert not (target / "stale_file").exists()
  assert sorted(os.listdir(tmp_path)) == ["model"]  # no temporary folders left behind
  info = json.loads((target / "assets.extra" / "glow_config.json").read_text())
  assert info["image_shape"] == [8, 8, 1] and info["domains"] == ["a"]


def test_overwrite_replaces_only_a_saved_model_of_ours_or_an_empty_folder(tmp_path):
  """--export_dir one level too high (the model base folder) with --overwrite: nothing goes."""
  module = _tiny_module()
  base = tmp_path / "notamodel"
  export.export_saved_model(module, str(base / "1"))
  (base / "important.txt").write_text("keep me")
  with pytest.raises(FileExistsError) as error:
    export.export_saved_model(module, str(base), overwrite=True)
  message = str(error.value)
  assert "\n" not in message
  assert f"{base} is not a SavedModel of glow-export (it holds 1/, important.txt)" in message
  assert f"model base folder (versions 1): export to {base / '2'}" in message
  assert (base / "important.txt").read_text() == "keep me"
  assert (base / "1" / "saved_model.pb").exists()
  assert sorted(os.listdir(tmp_path)) == ["notamodel"]  # no temporary folders left behind
  # A SavedModel of another exporter (no glow_config.json) is not ours to delete either.
  foreign = tmp_path / "foreign"
  foreign.mkdir()
  (foreign / "saved_model.pb").write_bytes(b"pb")
  with pytest.raises(FileExistsError, match="it holds saved_model.pb"):
    export.export_saved_model(module, str(foreign), overwrite=True)
  assert os.listdir(foreign) == ["saved_model.pb"]
  # An empty folder and a SavedModel of ours (extra files and all) are replaced.
  (tmp_path / "empty").mkdir()
  export.export_saved_model(module, str(tmp_path / "empty"), overwrite=True)
  assert (tmp_path / "empty" / "saved_model.pb").exists()
  (base / "1" / "assets.extra" / "manipulators.npz").write_bytes(b"old directions")
  export.export_saved_model(module, str(base / "1"), overwrite=True)
  assert not (base / "1" / "assets.extra" / "manipulators.npz").exists()


def _tiny_module():
  config = tiny_config(image_shape=(8, 8, 1), n_levels=1, learntop=False)
  glow = glow_tf2.Glow(config, seed=0)
  glow.initialize(glow_tf2.preprocess(helpers.real_images(8, config.image_shape), 8, noise=False))
  return export.build_serving_module(glow)


def test_export_removes_stale_temporaries_and_keeps_live_ones(tmp_path):
  """A killed export's `<name>.tmp-<pid>-*` goes when its pid is dead or it is a day old."""
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  live_pid = os.getpid()
  stale_dead = tmp_path / f"model.tmp-{dead.pid}-abc"
  stale_old = tmp_path / "model.tmp-k2j4h1"  # an older version's name: judged by age
  stale_old_swap = tmp_path / f"model.old-{dead.pid}-xyz"
  live = tmp_path / f"model.tmp-{live_pid}-def"
  recent_unknown = tmp_path / "model.tmp-recent"
  other = tmp_path / "other.tmp-1-abc"  # another export's: not ours to judge
  for folder in (stale_dead, stale_old, stale_old_swap, live, recent_unknown, other):
    folder.mkdir()
    (folder / "variables.data").write_bytes(b"x" * 10)
  two_days_ago = time.time() - 2 * 24 * 3600
  os.utime(stale_old, (two_days_ago, two_days_ago))
  export.export_saved_model(_tiny_module(), str(tmp_path / "model"))
  assert sorted(os.listdir(tmp_path)) == sorted(
    ["model", live.name, recent_unknown.name, other.name]
  )
  # A day later the live one is stale too (its pid may have been reused).
  removed = export.remove_stale_temporaries(str(tmp_path / "model"), now=time.time() + 2 * 86400)
  assert sorted(os.path.basename(p) for p in removed) == sorted([live.name, recent_unknown.name])
  assert sorted(os.listdir(tmp_path)) == sorted(["model", other.name])


@pytest.mark.parametrize(
  "umask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)]
)
def test_export_has_normal_permissions(tmp_path, umask, folder_mode, file_mode):
  """Not mkdtemp's 0700: a serving process of another user must be able to read the model."""
  old = os.umask(umask)
  try:
    target = export.export_saved_model(_tiny_module(), str(tmp_path / "model"))
  finally:
    os.umask(old)
  modes = {}
  for folder, dirs, names in os.walk(target):
    modes[folder] = stat.S_IMODE(os.stat(folder).st_mode)
    for name in names:
      modes[os.path.join(folder, name)] = stat.S_IMODE(os.stat(os.path.join(folder, name)).st_mode)
  assert os.path.join(target, "saved_model.pb") in modes and len(modes) >= 5
  for path, mode in modes.items():
    expected = folder_mode if os.path.isdir(path) else file_mode
    assert mode == expected, (path, oct(mode))
