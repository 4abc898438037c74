"""Serving: SavedModel export, evaluation of a trained run, the REST server."""
