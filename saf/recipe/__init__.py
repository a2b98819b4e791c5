"""Recipes: the TOML format (model, parse), checking against an inventory (prepare), step
kinds (kinds), the runner, its events and the JSONL run log."""

from saf.recipe.model import Recipe, Step, Var
from saf.recipe.parse import load_recipe, parse_recipe

__all__ = ["Recipe", "Step", "Var", "load_recipe", "parse_recipe"]
