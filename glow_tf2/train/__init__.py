"""Training: the step, the loop, the run's outputs, the optimiser, tf.distribute strategies."""
