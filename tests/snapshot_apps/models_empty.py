"""Models: no model server started yet (what a new user sees first)."""

from tests.snapshot_apps._models import make_empty_models_app

app = make_empty_models_app()
