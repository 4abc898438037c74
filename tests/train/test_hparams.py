"""TensorBoard's HParams dashboard gets both the hyperparameters and the metrics of a run."""

import glob

from tensorboard.plugins.hparams import metadata
from tensorboard.plugins.hparams import plugin_data_pb2
import tensorflow as tf

from glow_tf2.train import outputs


def _hparams_plugin_data(logdir):
  found = {}
  for path in glob.glob(f"{logdir}/events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.metadata.plugin_data.plugin_name == metadata.PLUGIN_NAME:
          data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
          found[value.tag] = data
  return found


def test_the_experiment_declares_the_eval_metrics_and_every_hyperparameter(tmp_path):
  hyperparameters = {"problem": "mnist", "depth": 8, "lr": 0.001, "joint_train": True}
  out = outputs.Outputs(str(tmp_path), hyperparameters, ("A", "B"), batch_train=32, resume_epoch=0)
  out.write_hparams()
  data = _hparams_plugin_data(tmp_path)
  experiment = data[metadata.EXPERIMENT_TAG].experiment
  metrics = sorted(m.name.tag for m in experiment.metric_infos)
  assert metrics == sorted(
    [
      "eval/bits_per_dim_a",
      "eval/bits_per_dim_b",
      "eval/code_loss",
      "eval/loss_a",
      "eval/loss_b",
      "eval/translation_loss",
    ]
  )
  assert sorted(h.name for h in experiment.hparam_infos) == sorted(hyperparameters)
  session = data[metadata.SESSION_START_INFO_TAG].session_start_info
  assert session.hparams["depth"].number_value == 8
  assert session.hparams["problem"].string_value == "mnist"


def test_a_single_model_declares_no_code_metrics(tmp_path):
  out = outputs.Outputs(str(tmp_path), {"problem": "x"}, ("A",), batch_train=8, resume_epoch=0)
  assert out.metric_tags() == ["eval/loss_a", "eval/bits_per_dim_a"]
