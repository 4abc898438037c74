"""Programs around the package: benchmarks and helpers (installed as glow_tf2_tools)."""
