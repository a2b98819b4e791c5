"""Recipes: gpu-setup finished; gamma's driver check failed (on_failure continue)."""

from tests.snapshot_apps._recipes import make_recipes_app

app = make_recipes_app("finished.jsonl")
