"""Recipes: gpu-setup mid-run (step 2 running on beta and gamma, alpha done)."""

from tests.snapshot_apps._recipes import make_recipes_app

app = make_recipes_app("midrun.jsonl")
