"""The Recipes screen's steps pane: a recipe's description, variables and steps, with the
nodes each step would run on."""

from __future__ import annotations

import datetime

from rich.console import Group, RenderableType
from rich.text import Text
from saf.screens.recipe_status import status_style
from saf.screens.widgets import palette
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from saf import select as selectors
from saf.errors import SafError
from saf.inventory.model import Inventory
from saf.recipe import library
from saf.recipe.log import RunSummary
from saf.recipe.model import Recipe


class RecipeSteps(VerticalScroll):
    def __init__(self) -> None:
        super().__init__(id="recipes-detail-box", classes="panel")
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
        # Lines that wrap at words rather than tables: a table in a pane 30 cells wide squeezes
        # every column until a command reads "{no…".
        if recipe.vars:
            parts.append(Text("\nvariables", style="bold"))
            for var in recipe.vars.values():
                value = Text("required", style=v.get("warning", "yellow")) if var.required \
                    else Text(repr(var.default))
                parts.append(Text.assemble((var.name, "bold"), " = ", value,
                                           (f"  {var.description}" if var.description else "",
                                            "dim")))
        parts.append(Text("\nsteps", style="bold"))
        for step in recipe.steps:
            flags = [f for f, on in (("serial", step.serial), ("become", step.become)) if on]
            parts.append(Text.assemble(
                (f"{step.index + 1}. ", "dim"), (step.name, "bold"), ("  on ", "dim"),
                nodes_for(step.on, inventory, known_nodes),
                (f" ({', '.join(flags)})" if flags else "", "dim")))
            # What it does, on one line under it: a longer command ends in "…".
            does, *more = step.kind.describe().splitlines() or [""]
            parts.append(Text("   " + does + (" …" if more else ""), style="dim",
                              no_wrap=True, overflow="ellipsis"))
        parts.append(Text("\nEnter runs it · c checks what would change", style="dim"))
        detail.update(Group(*parts))
        self.border_title = f"Steps · {recipe.name}"


    def show_run(self, summary: RunSummary | None) -> None:
        """A past run (history mode): what ran, where, how it ended, and the keys for it;
        with none, how runs come to be listed here."""
        detail = self.query_one("#recipes-detail", Static)
        v = palette(self.app)
        if summary is None:
            self.border_title = "Past run"
            detail.update(Text("No past runs of this cluster yet. A run started here (Enter on "
                               "a recipe) or with `saf run` is listed here; h goes back to the "
                               "recipes.", style="dim"))
            return
        started = summary.started
        when = datetime.datetime.fromtimestamp(started.time).strftime("%Y-%m-%d %H:%M:%S")
        parts: list[RenderableType] = [
            Text.assemble((started.recipe, "bold"), (f"  {summary.run}", "dim")),
            Text.assemble(("status ", "dim"),
                          (summary.status, status_style(summary.status, v)),
                          (f"  started {when}" + ("  (check only)" if started.check else ""),
                           "dim")),
            Text("\nsteps", style="bold")]
        for step in started.steps:
            index = step.index
            parts.append(Text.assemble((f"{index + 1}. ", "dim"), (step.name, "bold"),
                                       ("  on ", "dim"), ", ".join(step.nodes)))
        parts.append(Text("\nEnter shows each step on each node · r resumes it · h back to "
                          "the recipes", style="dim"))
        detail.update(Group(*parts))
        self.border_title = f"Past run · {started.recipe}"


def targets(selector: str, inventory: Inventory | None, known_nodes: bool) -> list[str] | str:
    """The names of the nodes a step's `on` selects in `inventory`; or, when they cannot be
    named, what to show instead: the selector (no inventory), with its error when the app
    knows nodes (`known_nodes`)."""
    if inventory is None:
        return selector
    try:
        return [n.name for n in selectors.select(inventory, selector)]
    except SafError as exc:
        return f"{selector}: {exc}" if known_nodes else selector


def nodes_for(selector: str, inventory: Inventory | None, known_nodes: bool) -> str:
    """`targets` as a person reads them: "alpha, beta, gamma"."""
    found = targets(selector, inventory, known_nodes)
    return found if isinstance(found, str) else ", ".join(found)
