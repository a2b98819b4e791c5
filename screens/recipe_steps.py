"""The Recipes screen's steps pane: a recipe's description, variables and steps, with the
nodes each step would run on."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from saf import select as selectors
from saf.errors import SafError
from saf.inventory.model import Inventory
from saf.recipe import library
from saf.recipe.model import Recipe
from saf.screens.widgets import palette


class RecipeSteps(VerticalScroll):
    def __init__(self) -> None:
        super().__init__(id="recipes-detail-box")
        self.border_title = "Steps"

    def compose(self) -> ComposeResult:
        yield Static(id="recipes-detail")

    def show(self, found: library.Found | None, recipe: Recipe | SafError | None,
             inventory: Inventory | None, known_nodes: bool) -> None:
        """Show `recipe` (found as `found`); step targets are resolved on `inventory` when
        there is one. `known_nodes`: whether the app knows any node, so a selector's error is
        worth showing."""
        detail = self.query_one("#recipes-detail", Static)
        if found is None or recipe is None:
            detail.update("")
            return
        v = palette(self.app)
        if isinstance(recipe, SafError):
            detail.update(Text(str(recipe), style=v.get("error", "red")))
            return
        where = "shipped with saf" if found.origin == "shipped" else str(found.path)
        parts: list[RenderableType] = [Text.assemble((recipe.name, "bold"), (f"  {where}", "dim")),
                                       Text(recipe.description)]
        if recipe.vars:
            table = Table(box=None, show_header=False, pad_edge=False)
            for var in recipe.vars.values():
                value = Text("required", style=v.get("warning", "yellow")) if var.required \
                    else Text(repr(var.default))
                table.add_row(Text(var.name, style="bold"), value, Text(var.description,
                                                                        style="dim"))
            parts += [Text("\nvariables", style="bold"), table]
        steps = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("#", "STEP", "DOES", "ON"):
            steps.add_column(column)
        for step in recipe.steps:
            flags = [f for f, on in (("serial", step.serial), ("become", step.become)) if on]
            steps.add_row(str(step.index + 1), step.name,
                          Text(step.kind.describe()[:50], style="dim"),
                          _nodes_for(step.on, inventory, known_nodes)
                          + (f" ({', '.join(flags)})" if flags else ""))
        parts += [Text("\nsteps", style="bold"), steps,
                  Text("\nEnter runs it · c checks what would change", style="dim")]
        detail.update(Group(*parts))
        self.border_title = f"Steps · {recipe.name}"


def _nodes_for(selector: str, inventory: Inventory | None, known_nodes: bool) -> str:
    if inventory is None:
        return selector
    try:
        return ", ".join(n.name for n in selectors.select(inventory, selector))
    except SafError as exc:
        return f"{selector}: {exc}" if known_nodes else selector
