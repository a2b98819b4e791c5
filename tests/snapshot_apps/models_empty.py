"""Serving: no model server started yet (what a new user sees first)."""

from tests.snapshot_apps._serving import make_empty_serving_app

app = make_empty_serving_app()
