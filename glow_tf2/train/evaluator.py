"""A run's validation metrics: test-set means of the EMA models under any replica count, and
the judged sample scalars of `--judge_samples` (`judging.py`).

The evaluator reads the run through its public parts (`loop.Trainer`: strategy, replicas, test
batch, `test_dataset`, `steps.eval_step`, problem), as Orbit's evaluator runs over a model it is
given; what a validation does with the metrics (best-model saves, logs) is the controller's.
"""

from absl import logging
import tensorflow as tf

from glow_tf2.train import judging


class Evaluator:
  """Metrics of the run's EMA models on the test split.

  Args:
    run: the `loop.Trainer` whose models are evaluated (and judged: `judging.SampleJudge` reads
      its problem, sides, seed and translations).
  """

  def __init__(self, run):
    self.run = run
    self._judge = None  # judging.SampleJudge, made at the first validation that judges

  def evaluate(self) -> dict[str, float]:
    """Means over the test set (EMA models): loss_x, bits_per_dim_x, code_loss, ...

    Pad and mask: every global batch of n <= batch_test images is padded to R * b rows, b =
    ceil(batch_test / R) for R replicas (row i holds image i mod n), with a mask of n ones, and
    replica r evaluates rows [r * b, (r + 1) * b). Each replica gets a full batch of the same
    static shape whatever the test-set size and --n_batch_test (an empty or ragged part breaks
    the graph), the masked sums count each image once, and the noise of an image depends on its
    batch and global row only (stateless draws fill rows in order, so a draw of more rows
    begins with the same ones), so any replica count gives the metrics of one device.
    """
    run = self.run
    per_replica = -(-run.batch_test // run.n_replicas)
    totals: dict[str, float] = {}
    for i, batch in enumerate(run.test_dataset(run.batch_test)):
      padded = pad_batch(batch, per_replica * run.n_replicas)

      def part(ctx, padded=padded):
        start = ctx.replica_id_in_sync_group * per_replica
        return {k: v[start : start + per_replica] for k, v in padded.items()}

      values = run.strategy.experimental_distribute_values_from_function(part)
      for k, v in run.steps.eval_step(values, tf.constant(i, tf.int64)).items():
        totals[k] = totals.get(k, 0.0) + float(v)
    count = totals.pop("count", 0.0)
    if not count:
      raise ValueError(f"problem {run.problem.name!r}: the test split gave no images")
    return {k: v / count for k, v in totals.items()}

  @property
  def judges(self) -> bool:
    """Whether validations judge samples: --judge_samples, on the chief, with 2+ classes."""
    run = self.run
    return bool(run.config.judge_samples) and run.is_chief and (run.problem.n_classes or 0) >= 2

  def sample_scores(self) -> dict[str, float]:
    """The judged sample and translation scalars (`judging.py`) of the EMA models now; {} when
    the run does not judge. The judges are made (trained on first use) at the first call."""
    if not self.judges:
      return {}
    run = self.run
    if self._judge is None:
      self._judge = judging.SampleJudge(
        run,
        run.dataset("train", 256, shuffle=False, repeat=False),
        run.test_dataset(256),
        run.config.judge_samples,
        log=logging.info,
      )
    return self._judge.scores(run)


def pad_batch(batch: dict[str, tf.Tensor], rows: int) -> dict[str, tf.Tensor]:
  """A batch of n <= rows examples padded to `rows` (row i = example i mod n), plus "mask":
  float32 `[rows]`, 1 for the n real rows and 0 for the padding."""
  n = tf.shape(next(iter(batch.values())))[0]
  index = tf.range(rows) % n
  out = {k: tf.gather(v, index) for k, v in batch.items()}
  out["mask"] = tf.cast(tf.range(rows) < n, tf.float32)
  return out
