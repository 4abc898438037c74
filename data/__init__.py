"""Dataset preparation: the TFRecord generators (installed as glow_tf2_data)."""
