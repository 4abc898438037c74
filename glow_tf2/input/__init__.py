"""Data: the TFRecord format (records, writer), the problem registry, the tf.data pipeline.

The sets the registry builds by itself (the embedded problems, the original's .npy layout) are
written here too; the generators for other formats live in the top-level `data/` package
(`glow-data`), which imports this one and is never imported by it.
"""
