"""TensorFlow's graph optimiser (Grappler) off on a CPU: the binaries start in less time.

Every `tf.function` graph passes through Grappler's rewrites before its first run. For a Glow the
graphs are large (every flow step of every level is inlined, forward and backward), and on the
mnist preset's joint step the rewrites took about a third of the first step's CPU time: measured
2026-12-07 on an AMD EPYC (2 cores, `TF_CPP_VMODULE=meta_optimizer=1`), the memory optimiser,
the TFG pipeline, constant folding, the dependency and arithmetic optimisers and the layout
optimiser in that order. Switched off (`disable_meta_optimizer`), the same process spent 48 s of
CPU on its first step instead of 74 s, and its next steps, its evaluation and its gradients were
no slower (10 steps: 21.7 s of CPU against 23.1 s; the test-set evaluation 13.0 s against 15.1 s).
Again on a quiet machine (the same day, one process after the other; the trainer of
tests/train/test_presets.py, 20 steps after 4): first step 50.8 s of CPU without Grappler
against 73.8 s with it, 20 steps 23.9 s of wall time against 25.2 s, the whole process 94 s
against 120 s. On a CPU the rewrites have little to give these graphs: the tensors are NHWC
already (the layout optimiser's work is for GPUs), the couplings' convolutions have no bias or
activation to fuse (actnorm follows them), and the variables are not constants to fold.

On a GPU the layout optimiser (NHWC -> NCHW for cuDNN) and the remapper's fusions do pay, so
`skip_on_cpu` leaves Grappler on when TensorFlow sees a GPU. GLOW_TF2_GRAPPLER=1 in the
environment keeps it on anywhere (to compare, or if a TensorFlow release makes it pay).
"""

import os

import tensorflow as tf

ENV = "GLOW_TF2_GRAPPLER"


def skip_on_cpu() -> bool:
  """Turns Grappler off for this process unless a GPU is visible or GLOW_TF2_GRAPPLER=1.

  Call before the first `tf.function` runs (the binaries call it first thing in main).
  Returns whether Grappler is now off.
  """
  if os.environ.get(ENV, "") == "1":
    return False
  if tf.config.list_physical_devices("GPU"):
    return False
  tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
  return True
