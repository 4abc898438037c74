"""glow-train's flags and the typed TrainConfig: defaults, word and integer choices, fast failures."""

import dataclasses

from absl import flags
import pytest

from glow_tf2 import config as tc
from glow_tf2 import presets
from glow_tf2.cli import train


def parse(*args, preset="none") -> tc.TrainConfig:
  """glow-train's flags -> TrainConfig; without a preset unless one is asked for."""
  fv = flags.FlagValues()
  train.define_flags(fv)
  fv(["glow-train", f"--preset={preset}", *args])
  return train.config_from_flags(fv)


@dataclasses.dataclass(frozen=True)
class FakeProblem:
  name: str = "fake"
  image_shape: tuple = (32, 32, 3)
  paired: bool = True
  n_classes: int = 10


def test_defaults_are_the_originals():
  c = parse()
  assert (c.n_batch_train, c.n_batch_test, c.n_batch_init) == (64, 50, 256)
  assert (c.optim.optimizer, c.optim.lr, c.optim.beta1) == ("adamax", 0.001, 0.9)
  assert (c.optim.polyak_epochs, c.optim.weight_decay, c.optim.epochs_warmup) == (1.0, 1.0, 10.0)
  assert (c.model.n_levels, c.model.depth, c.model.width, c.model.n_bits_x) == (3, 32, 512, 8)
  assert (c.model.permutation, c.model.coupling) == ("conv", "additive")  # original 2 and 0
  assert c.gradient_checkpointing and not c.model.learntop and not c.ycond
  assert c.model.precision == "float32"
  assert (c.loss.code_loss_type, c.loss.code_loss_fn) == ("code_last", "l2")
  assert (c.loss.code_loss_scale, c.loss.mle_loss_scale, c.loss.joint_train) == (1.0, 1.0, False)
  assert (c.data.problem, c.data.n_train, c.data.n_test, c.data.dal) == ("mnist", 50000, -1, 1)
  assert (c.epochs_full_valid, c.epochs_full_sample, c.anchor_size) == (5, 5, 32)
  assert (c.strategy, c.num_cpu_devices, c.train_steps) == ("auto", 0, 0)


def test_a_problem_with_a_preset_gets_it_and_the_command_line_wins():
  c = parse("--problem=fashion_edges2shoes", preset="auto")
  assert (c.model.depth, c.model.width, c.model.permutation, c.data.channels) == (8, 128, "lu", 1)
  assert (
    c.loss.joint_train and c.train_steps == presets.PRESETS["fashion_edges2shoes"]["train_steps"]
  )
  c = parse("--problem=fashion_edges2shoes", "--nojoint_train", "--depth=4", preset="auto")
  assert not c.loss.joint_train and c.model.depth == 4 and c.model.width == 128
  # Another problem with the same preset; a problem without one keeps the original's defaults.
  assert parse("--problem=cifar10", preset="mnist").model.depth == 8
  assert parse("--problem=cifar10", preset="auto").model.depth == 32
  c = parse("--problem=mnist_digits", preset="auto")
  assert (c.data.crop_size, c.model.n_levels) == (28, 2)


def test_every_preset_names_real_fields_with_valid_values():
  for name, values in presets.PRESETS.items():
    config = parse(f"--problem={name}", preset="auto")
    for path, value in values.items():
      assert tc.get_field(config, path) == value, (name, path)
  with pytest.raises(tc.ConfigError, match="^--preset=nonesuch: must be one of auto, none"):
    parse(preset="nonesuch")


def test_the_command_line_wins_over_the_preset_which_wins_over_the_defaults():
  fv = flags.FlagValues()
  train.define_flags(fv)
  fv(["glow-train", "--problem=mnist", "--depth=4", "--flow_coupling=0"])
  config, applied = train.configure(fv)
  mnist = presets.PRESETS["mnist"]
  # Given on the command line, though the preset sets them.
  assert (config.model.depth, config.model.coupling) == (4, "additive")
  assert mnist["model.depth"] == 8 and mnist["model.coupling"] == "affine"
  # Set by the preset only.
  assert (config.model.width, config.train_steps, config.data.channels) == (128, 800, 1)
  # In neither: TrainConfig's default.
  assert (config.model.n_bits_x, config.n_batch_test) == (8, 50)
  assert applied == {k: v for k, v in mnist.items() if k not in ("model.depth", "model.coupling")}
  # Applying again gives the same run (the flags are not mutated by the preset).
  assert train.configure(fv)[0] == config
  assert fv.depth == 4 and fv.width == 512


def test_turning_joint_training_off_takes_the_code_distance_for_a_presets_coupled_prior():
  # The mnist preset trains the pair under the coupled prior, which needs joint training; the
  # no-joint run of docs/results.md (`--nojoint_train`) logs the code_all distance instead.
  assert presets.PRESETS["mnist"]["loss.code_loss_type"] == "coupled"
  assert parse("--problem=mnist", preset="auto").loss.coupled
  c = parse("--problem=mnist", "--nojoint_train", preset="auto")
  assert (c.loss.joint_train, c.loss.code_loss_type) == (False, "code_all")
  assert (c.model.depth, c.train_steps) == (8, 800)  # the rest of the preset stands
  # Asked for on the command line, the coupled prior without joint training is still refused.
  with pytest.raises(tc.ConfigError, match="needs --joint_train"):
    parse("--problem=mnist", "--nojoint_train", "--code_loss_type=coupled", preset="auto")
  # The library's apply, with joint training kept off, does the same.
  off = tc.build({"loss.joint_train": False, "data.problem": "mnist"})
  c = presets.apply("mnist", off, keep=frozenset({"loss.joint_train"}))
  assert (c.loss.joint_train, c.loss.code_loss_type) == (False, "code_all")
  assert presets.apply("mnist", off).loss.coupled


def test_flag_defaults_are_the_config_defaults():
  fv = flags.FlagValues()
  train.define_flags(fv)
  defaults = tc.TrainConfig()
  for flag, path in tc.FLAG_FIELDS.items():
    assert fv[flag].default == tc.get_field(defaults, path), flag
  assert parse() == tc.build({"logdir": "./logs"})


def test_smoke_preset_is_a_valid_small_run():
  config = tc.build(presets.preset("smoke", "mnist"))
  assert (config.model.depth, config.model.width, config.epochs) == (1, 16, 3)
  with pytest.raises(tc.ConfigError, match="^unknown config field"):
    tc.build({"model.nonesuch": 1})


def test_precision_flag():
  assert parse("--precision=mixed_bfloat16").model.precision == "mixed_bfloat16"
  with pytest.raises(tc.ConfigError, match="^--precision=float64: must be one of"):
    parse("--precision=float64")


@pytest.mark.parametrize(
  "args, field, expected",
  [
    (["--flow_permutation=0"], "permutation", "reverse"),
    (["--flow_permutation=1"], "permutation", "shuffle"),
    (["--flow_permutation=2"], "permutation", "conv"),
    (["--flow_permutation=3"], "permutation", "lu"),
    (["--flow_permutation=LU"], "permutation", "lu"),
    (["--flow_coupling=1"], "coupling", "affine"),
    (["--flow_coupling=additive"], "coupling", "additive"),
  ],
)
def test_model_choices_as_words_or_integers(args, field, expected):
  assert getattr(parse(*args).model, field) == expected


def test_other_choices():
  c = parse(
    "--optimizer=adam",
    "--code_loss_type=all",
    "--code_loss_fn=l1",
    "--strategy=mirrored",
    "--num_cpu_devices=2",
    "--joint_train",
    "--restore_path_A=/x",
    "--restore_path_B=/y",
  )
  assert (c.optim.optimizer, c.loss.code_loss_type, c.loss.code_loss_fn) == (
    "adam",
    "code_all",
    "l1",
  )
  assert (c.strategy, c.num_cpu_devices, c.loss.joint_train) == ("mirrored", 2, True)
  assert (c.restore_path_a, c.restore_path_b) == ("/x", "/y")
  c = parse("--intra_op_threads=1", "--inter_op_threads=2", "--branches=2")
  assert (c.intra_op_threads, c.inter_op_threads, c.branches) == (1, 2, 2)
  assert parse("--problem=lsun", "--category=tower").data.problem_name == "lsun_tower"


@pytest.mark.parametrize(
  "args, flag",
  [
    (["--flow_permutation=7"], "--flow_permutation=7"),
    (["--flow_coupling=spline"], "--flow_coupling=spline"),
    (["--optimizer=sgd"], "--optimizer=sgd"),
    (["--code_loss_type=B_all"], "--code_loss_type=B_all"),
    (["--code_loss_fn=l3"], "--code_loss_fn=l3"),
    (["--strategy=tpu"], "--strategy=tpu"),
    (["--n_batch_train=0"], "--n_batch_train=0"),
    (["--n_batch_init=1"], "--n_batch_init=1"),
    (["--weight_decay=1.5"], "--weight_decay=1.5"),
    (["--lr=-1"], "--lr=-1"),
    (["--beta1=1"], "--beta1=1"),
    (["--polyak_epochs=0"], "--polyak_epochs=0"),
    (["--n_bits_x=9"], "--n_bits_x=9"),
    (["--channels=2"], "--channels=2"),
    (["--depth=0"], "--depth=0"),
    (["--weight_y=0.01"], "--weight_y=0.01"),  # needs --ycond
    (["--category=tower"], "--category=tower"),  # needs --problem=lsun
    (["--strategy=one_device", "--num_cpu_devices=2"], "--num_cpu_devices=2"),
    (["--epochs_full_valid=0"], "--epochs_full_valid=0"),
    (["--jit_compile", "--flow_permutation=conv"], "--jit_compile"),
    (["--intra_op_threads=-1"], "--intra_op_threads=-1"),
    (["--inter_op_threads=-2"], "--inter_op_threads=-2"),
    (["--branches=0"], "--branches=0"),
  ],
)
def test_bad_values_name_the_flag(args, flag):
  with pytest.raises(tc.ConfigError) as error:
    parse(*args)
  assert str(error.value).startswith(flag), str(error.value)


def test_problem_checks():
  config = parse("--joint_train", "--ycond", "--n_levels=3")
  assert config.check_problem(FakeProblem()).n_classes == 10
  with pytest.raises(tc.ConfigError, match="^--joint_train"):
    config.check_problem(FakeProblem(paired=False))
  with pytest.raises(tc.ConfigError, match="^--ycond"):
    config.check_problem(FakeProblem(n_classes=0))
  with pytest.raises(tc.ConfigError, match="^--image_size/--n_levels"):
    parse("--n_levels=6").check_problem(FakeProblem())
  unconditional = parse("--n_levels=3").check_problem(FakeProblem())
  assert unconditional.n_classes == 0 and unconditional.image_shape == (32, 32, 3)


def test_batches_replicas_and_epochs():
  config = parse("--n_batch_train=64", "--n_batch_test=50", "--n_train=1000")
  assert config.global_batches(32) == (64, 50, 256)
  assert config.global_batches(64) == (16, 12, 64)  # anchored at 32: (32/64)^2
  assert config.steps_per_epoch(32) == 16  # ceil(1000 / 64)
  assert config.optim.beta2(16) == pytest.approx(1 - 1 / 16)
  config.check_replicas(2, 32)
  with pytest.raises(
    tc.ConfigError, match="^--n_batch_train=64: the global batch 64 must be divisible"
  ):
    config.check_replicas(3, 32)
  config.check_replicas(4, 32)  # evaluation pads a test batch of 50 to 4 x 13 rows


def test_hyperparameters_are_the_flags_by_name():
  h = parse(
    "--joint_train", "--width=16", "--flow_permutation=2", "--restore_path_A=/x"
  ).hyperparameters()
  # Keyed as the original's flags, in flag order, every flag mapped to the config.
  assert list(h) == list(tc.FLAG_FIELDS)
  assert h["width"] == 16 and h["joint_train"] is True and h["restore_path_A"] == "/x"
  assert h["flow_permutation"] == "conv" and h["flow_coupling"] == "additive"
  assert not any(isinstance(v, dict) for v in h.values())
