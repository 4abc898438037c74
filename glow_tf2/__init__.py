"""glow_tf2: pix2pix-flow in TensorFlow 2."""
