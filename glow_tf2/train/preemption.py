"""SIGTERM and SIGINT stop a run between two steps, with a checkpoint: a preempted run loses nothing.

A cluster that preempts a job sends SIGTERM and, after a grace period, SIGKILL; a person stops a
run with Ctrl-C (SIGINT). Either way the run should finish the step in flight, save what a
periodic step checkpoint saves (the weights, optimizer and the running sums of the epoch, so a
rerun resumes bitwise) and exit non-zero with one line naming the step and the checkpoint.

`Watch` turns the first of these signals into a flag the controller reads between steps (a
Python signal handler runs between bytecodes of the main thread, so the step in flight always
completes); a second signal kills the process at once, as it would without the watch (a
checkpoint is written atomically, so even that loses only the steps since the last one).

Under MultiWorkerMirroredStrategy a checkpoint is a collective: every worker must save at the
same step, and often only one worker is preempted. `Watch.agreed` all-reduces the flag every
step, so all workers stop after the same step and all exit with the same status.

Why not `tf.distribute.experimental.PreemptionCheckpointHandler`, which does this for
MultiWorkerMirroredStrategy: it does not fit the run's checkpoint manager and its order of a
resume. It restores the newest checkpoint itself when it is built (before the controller's
architecture check and its fallback from a checkpoint that does not read), adds a counter of
its own to our `tf.train.Checkpoint`, saves through `manager.save` without the finite checks and
the epoch's running sums that our saves write first, watches SIGTERM only (not SIGINT), and
exits from inside the step function (`exit_fn`), before the logs are flushed and the line naming
the checkpoint is printed. Its agreement on a step uses the coordination service's key-value
store; one all-reduced number per step is as cheap here and works under every strategy.
"""

import os
import signal

from absl import logging
import tensorflow as tf

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def signal_name(signum: int) -> str:
  return signal.Signals(signum).name


def exit_status(signum: int) -> int:
  """A shell's status of a process ended by `signum`: 143 for SIGTERM, 130 for SIGINT."""
  return 128 + signum


class Preempted(Exception):
  """The run stopped on a signal after a whole step, with its checkpoint saved.

  Args:
    signum: the signal agreed on (by every worker of a multi-worker run).
    step: the last step trained.
    max_steps: the run's last step.
    checkpoint: what a rerun resumes from ("" if the run stopped before its first checkpoint).
    own: whether this process received the signal (else another worker did).
  """

  def __init__(self, signum: int, step: int, max_steps: int, checkpoint: str, own: bool):
    self.signum, self.step, self.max_steps = signum, step, max_steps
    self.checkpoint, self.own = checkpoint, own
    self.exit_status = exit_status(signum)
    name = signal_name(signum)
    by = name if own else f"{name} to another worker"
    if checkpoint:
      saved = f"checkpoint {checkpoint}; rerun the same command to resume"
    else:
      saved = "no checkpoint was saved yet; a rerun starts afresh"
    super().__init__(f"stopped by {by} after step {step} of {max_steps}: {saved}")


class Watch:
  """Catches SIGTERM and SIGINT while a run trains (`with Watch(strategy) as watch:`).

  Outside the main thread signals cannot be caught (`signal.signal` refuses); the watch then
  catches nothing and a signal acts as it would without it.

  Args:
    strategy: the run's tf.distribute strategy (multi-worker: the flag is all-reduced).
  """

  def __init__(self, strategy: tf.distribute.Strategy):
    self.strategy = strategy
    self.received = 0  # the first signal this process got (0: none)
    self._previous = {}

  def __enter__(self) -> "Watch":
    try:
      self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
    except ValueError:  # not the main thread
      logging.warning("signals are not caught outside the main thread: SIGTERM kills the run")
    return self

  def __exit__(self, *exc) -> None:
    for s, handler in self._previous.items():
      # None: a handler installed outside Python, which cannot be put back; the default then.
      signal.signal(s, signal.SIG_DFL if handler is None else handler)
    self._previous = {}

  def _handle(self, signum, frame) -> None:
    del frame
    if self.received:
      # A second signal: stop now, as without the watch.
      for s in SIGNALS:
        signal.signal(s, signal.SIG_DFL)
      os.kill(os.getpid(), signum)
      return
    self.received = signum

  def agreed(self) -> int:
    """The signal every worker stops on now (0: go on). Called by every worker at every step.

    One process decides alone. Workers of a multi-worker run sum a vote per signal over all
    replicas, so if any worker was signalled all stop at this step; SIGTERM wins over SIGINT.
    """
    if not isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
      return self.received
    votes = tf.constant([float(self.received == s) for s in SIGNALS])
    per_replica = self.strategy.run(lambda: tf.identity(votes))
    total = self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None).numpy()
    return next((int(s) for s, n in zip(SIGNALS, total) if n > 0), 0)
