"""The binaries: thin absl programs over the library (flags -> config -> library call)."""
