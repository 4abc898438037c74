"""The interactive web demo of an exported pix2pix-flow SavedModel.

    glow-manipulators --saved_model=DIR --problem=mnist   # directions per label + example strip
    glow-demo --saved_model=DIR [--port=5050]             # then open http://127.0.0.1:5050/

Modules:
  images        PNG/base64 <-> uint8 arrays, with the resizing and colour conversion the page needs.
  model         `DemoModel`: the SavedModel's signatures as numpy functions (TensorFlow only).
  api           `DemoAPI`: the JSON endpoints under /api/, independent of HTTP.
  server        the HTTP server of the page and the API (the binary: `glow_tf2.cli.demo`).
  manipulators  mean code of each label minus that of the rest (`glow_tf2.cli.manipulators`).
"""
