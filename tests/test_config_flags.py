"""glow-train's flags as they stood before they were generated from the config dataclasses.

Users' command lines, --flagfiles and the first line of old runs' JSON logs name these flags: each
must keep its name, type and default, and `FLAG_FIELDS` its field and its order (the order of
that first line, the original train.py's).
"""

import dataclasses

from absl import flags
import pytest

from glow_tf2 import config as config_lib
from glow_tf2 import presets
from glow_tf2.cli import eval as eval_main
from glow_tf2.cli import flag_parsing
from glow_tf2.cli import train

# (flag, absl type, default) of every flag glow-train defines.
FLAGS_BEFORE = [
  ("verbose", "bool", False),
  ("restore_path_A", "string", ""),
  ("restore_path_B", "string", ""),
  ("inference", "bool", False),
  ("logdir", "string", "./logs"),
  ("preset", "string", "auto"),
  ("problem", "string", "mnist"),
  ("category", "string", ""),
  ("data_dir", "string", None),
  ("tfds_data_dir", "string", None),
  ("channels", "int", 3),
  ("dal", "int", 1),
  ("fmap", "int", 1),
  ("pmap", "int", 16),
  ("flip_color", "bool", False),
  ("n_train", "int", 50000),
  ("n_test", "int", -1),
  ("n_batch_train", "int", 64),
  ("n_batch_test", "int", 50),
  ("n_batch_init", "int", 256),
  ("optimizer", "string", "adamax"),
  ("lr", "float", 0.001),
  ("beta1", "float", 0.9),
  ("polyak_epochs", "float", 1.0),
  ("weight_decay", "float", 1.0),
  ("epochs", "int", 1000000),
  ("train_steps", "int", 0),
  ("epochs_warmup", "float", 10.0),
  ("epochs_full_valid", "int", 5),
  ("gradient_checkpointing", "bool", True),
  ("image_size", "int", -1),
  ("crop_size", "int", 0),
  ("anchor_size", "int", 32),
  ("width", "int", 512),
  ("depth", "int", 32),
  ("weight_y", "float", 0.0),
  ("n_bits_x", "int", 8),
  ("n_levels", "int", 3),
  ("n_sample", "int", 64),
  ("epochs_full_sample", "int", 5),
  ("learntop", "bool", False),
  ("ycond", "bool", False),
  ("seed", "int", 0),
  ("flow_permutation", "string", "conv"),
  ("flow_coupling", "string", "additive"),
  ("precision", "string", "float32"),
  ("joint_train", "bool", False),
  ("code_loss_type", "string", "code_last"),
  ("code_loss_fn", "string", "l2"),
  ("code_loss_scale", "float", 1.0),
  ("mle_loss_scale", "float", 1.0),
  ("translation_loss_scale", "float", 0.0),
  ("coupled_rho_init", "float", 0.95),
  ("coupled_per_dimension", "bool", False),
  ("strategy", "string", "auto"),
  ("num_cpu_devices", "int", 0),
  ("jit_compile", "bool", False),
  ("intra_op_threads", "int", 0),
  ("inter_op_threads", "int", 0),
  ("pick_threads", "bool", True),
  ("branches", "int", 1),
  ("log_steps", "int", 100),
  ("keep_checkpoints", "int", 3),
  ("checkpoint_steps", "int", 0),
  ("checkpoint_secs", "float", 300.0),
]

# config.FLAG_FIELDS: (flag, TrainConfig field path), in the logs' order.
FLAG_FIELDS_BEFORE = [
  ("verbose", "verbose"),
  ("restore_path_A", "restore_path_a"),
  ("restore_path_B", "restore_path_b"),
  ("inference", "inference"),
  ("logdir", "logdir"),
  ("problem", "data.problem"),
  ("category", "data.category"),
  ("data_dir", "data.data_dir"),
  ("tfds_data_dir", "data.tfds_data_dir"),
  ("channels", "data.channels"),
  ("dal", "data.dal"),
  ("flip_color", "data.flip_color"),
  ("n_train", "data.n_train"),
  ("n_test", "data.n_test"),
  ("n_batch_train", "n_batch_train"),
  ("n_batch_test", "n_batch_test"),
  ("n_batch_init", "n_batch_init"),
  ("optimizer", "optim.optimizer"),
  ("lr", "optim.lr"),
  ("beta1", "optim.beta1"),
  ("polyak_epochs", "optim.polyak_epochs"),
  ("weight_decay", "optim.weight_decay"),
  ("epochs", "epochs"),
  ("train_steps", "train_steps"),
  ("epochs_warmup", "optim.epochs_warmup"),
  ("epochs_full_valid", "epochs_full_valid"),
  ("gradient_checkpointing", "gradient_checkpointing"),
  ("image_size", "data.image_size"),
  ("crop_size", "data.crop_size"),
  ("anchor_size", "anchor_size"),
  ("width", "model.width"),
  ("depth", "model.depth"),
  ("weight_y", "loss.weight_y"),
  ("n_bits_x", "model.n_bits_x"),
  ("n_levels", "model.n_levels"),
  ("n_sample", "n_sample"),
  ("epochs_full_sample", "epochs_full_sample"),
  ("learntop", "model.learntop"),
  ("ycond", "ycond"),
  ("seed", "seed"),
  ("flow_permutation", "model.permutation"),
  ("flow_coupling", "model.coupling"),
  ("precision", "model.precision"),
  ("joint_train", "loss.joint_train"),
  ("code_loss_type", "loss.code_loss_type"),
  ("code_loss_fn", "loss.code_loss_fn"),
  ("code_loss_scale", "loss.code_loss_scale"),
  ("mle_loss_scale", "loss.mle_loss_scale"),
  ("translation_loss_scale", "loss.translation_loss_scale"),
  ("coupled_rho_init", "loss.coupled_rho_init"),
  ("coupled_per_dimension", "loss.coupled_per_dimension"),
  ("strategy", "strategy"),
  ("num_cpu_devices", "num_cpu_devices"),
  ("jit_compile", "jit_compile"),
  ("intra_op_threads", "intra_op_threads"),
  ("inter_op_threads", "inter_op_threads"),
  ("pick_threads", "pick_threads"),
  ("branches", "branches"),
  ("log_steps", "log_steps"),
  ("keep_checkpoints", "keep_checkpoints"),
  ("checkpoint_steps", "checkpoint_steps"),
  ("checkpoint_secs", "checkpoint_secs"),
]


def _defined() -> flags.FlagValues:
  fv = flags.FlagValues()
  train.define_flags(fv)
  return fv


def test_every_flag_keeps_its_name_type_and_default():
  fv = _defined()
  got = {name: (fv[name].flag_type(), fv[name].default) for name in fv}
  expected = {name: (kind, default) for name, kind, default in FLAGS_BEFORE}
  # Every flag of before keeps its name, type and default; settings added since are new flags.
  assert {name: got.get(name) for name in expected} == expected
  for name, _, default in FLAGS_BEFORE:  # 0.0 == 0 == False: the types too
    assert type(fv[name].default) is type(default), name


def test_flag_fields_keep_their_fields_and_order():
  # The flags of before first, in their order (the JSON logs' first line); new ones after.
  n = len(FLAG_FIELDS_BEFORE)
  assert list(config_lib.FLAG_FIELDS.items())[:n] == FLAG_FIELDS_BEFORE
  assert list(config_lib.TrainConfig().hyperparameters())[:n] == [f for f, _ in FLAG_FIELDS_BEFORE]
  assert set(list(config_lib.FLAG_FIELDS)[n:]) >= {"noise_sigma", "judge_samples"}


def test_every_leaf_field_of_a_run_has_a_flag_with_help():
  specs = {spec.path: spec for spec in config_lib.TRAIN_FLAGS}
  for path in config_lib.field_paths():
    if path in ("model.image_shape", "model.n_classes"):  # the data decide these (`resolve`)
      assert path not in specs
      continue
    assert path in specs, f"{path}: no flag"
    assert specs[path].help.strip(), f"--{specs[path].flag}: no help text"
  assert len({spec.flag for spec in specs.values()}) == len(specs)
  fv = _defined()
  for spec in config_lib.TRAIN_FLAGS:
    assert fv[spec.flag].help == spec.help


@dataclasses.dataclass(frozen=True)
class _Part:
  size: int = config_lib.setting(3, "A size.")
  name: str | None = config_lib.setting(None, "A name.", flag="part_name")


@dataclasses.dataclass(frozen=True)
class _Tiny:
  part: _Part = _Part(size=5)
  rate: float = config_lib.setting(0.5, "A rate.")
  on: bool = config_lib.setting(True, "Whether on.")
  shape: tuple[int, int] = config_lib.setting((1, 2), "Set from the data.", flag=None)
  plain: int = 7  # no metadata: a flag, without help (the test above would catch it)


def test_a_new_field_is_a_flag_with_nothing_else_written():
  specs = config_lib.flag_specs(_Tiny, order=("rate",))
  # "rate" first as ordered, the rest in field order; a nested default is its instance's.
  assert [(s.flag, s.path, s.type, s.default) for s in specs] == [
    ("rate", "rate", float, 0.5),
    ("size", "part.size", int, 5),
    ("part_name", "part.name", str, None),
    ("on", "on", bool, True),
    ("plain", "plain", int, 7),
  ]
  fv = flags.FlagValues()
  flag_parsing.define_config_flags(specs, fv)
  assert {name: fv[name].flag_type() for name in fv} == {
    "rate": "float",
    "size": "int",
    "part_name": "string",
    "on": "bool",
    "plain": "int",
  }
  assert fv["size"].help == "A size." and fv["size"].default == 5
  fv(["prog", "--size=9", "--part_name=x", "--noon"])
  assert (fv.size, fv.part_name, fv.on, fv.rate) == (9, "x", False, 0.5)


def test_flags_the_generator_cannot_make_fail_at_once():
  @dataclasses.dataclass(frozen=True)
  class Shaped:
    shape: tuple[int, int] = config_lib.setting((1, 2), "A shape with a flag.")

  with pytest.raises(
    TypeError, match=r"^shape: a flag is a bool, int, float, str or tuple\[T, ...\]"
  ):
    config_lib.flag_specs(Shaped)
  with pytest.raises(ValueError, match="no field has the flag"):
    config_lib.flag_specs(_Tiny, order=("rate", "gone"))


def test_each_model_default_is_written_once():
  # The original's model differs from the paper's only in these fields and the placeholder shape.
  paper, original = config_lib.GlowConfig(), config_lib.TRAIN_MODEL
  differ = {
    f.name for f in dataclasses.fields(paper) if getattr(paper, f.name) != getattr(original, f.name)
  }
  assert differ == {"image_shape", "coupling", "learntop"}
  assert original.image_shape == (2**paper.n_levels, 2**paper.n_levels, paper.image_shape[2])


def test_a_flag_the_preset_makes_valid_is_accepted():
  # --jit_compile refuses the default conv permutation; mnist's preset takes lu. The command line
  # alone is not a valid config here, so glow-train applies the preset to the flag values before
  # any config is built (presets.apply starts from a config).
  fv = _defined()
  fv(["glow-train", "--problem=mnist", "--jit_compile"])
  config, applied = train.configure(fv)
  assert config.jit_compile and config.model.permutation == "lu"
  assert applied["model.permutation"] == "lu"
  with pytest.raises(config_lib.ConfigError, match="^--jit_compile"):
    config_lib.build({"data.problem": "mnist", "jit_compile": True})


def test_configure_agrees_with_presets_apply():
  for args in (["--depth=4", "--flow_coupling=0"], ["--nojoint_train"], ["--preset=none"], []):
    fv = _defined()
    fv(["glow-train", "--problem=mnist", *args])
    given = frozenset(path for flag, path in config_lib.FLAG_FIELDS.items() if fv[flag].present)
    flags_only = config_lib.build(
      {path: fv[flag].value for flag, path in config_lib.FLAG_FIELDS.items()}
    )
    assert train.configure(fv)[0] == presets.apply(fv.preset, flags_only, keep=given), args


def test_every_eval_setting_is_a_glow_eval_flag_with_its_help_and_default():
  fv = flags.FlagValues()
  eval_main.define_flags(fv)
  for spec in config_lib.flag_specs(config_lib.EvalConfig):
    assert spec.help and fv[spec.flag].help == spec.help, spec.flag
  assert fv["temperature"].default == config_lib.TEMPERATURE == 0.7
  assert fv["sample_temperatures"].default == ["0.5", "0.7", "1"]
  fv(["glow-eval", "--sample_temperatures=0,1.5", "--draws=3"])
  settings = config_lib.eval_config({s.path: fv[s.flag].value for s in eval_main.EVAL_FLAGS})
  assert settings.sample_temperatures == (0.0, 1.5) and settings.draws == 3
  assert settings.n_samples == config_lib.EvalConfig().n_samples == 500
