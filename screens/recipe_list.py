"""The Recipes screen's side list: the recipes there are, or (switched with `h`) the past runs.
It loads each recipe once, and tells the screen what the user highlights and chooses."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from rich.text import Text
from saf.screens.base import cockpit_of
from saf.screens.recipe_status import status_style
from saf.screens.widgets import palette
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from saf.errors import SafError
from saf.recipe import library
from saf.recipe.log import RunSummary, list_runs
from saf.recipe.model import Recipe
from saf.recipe.parse import load_recipe

DESCRIPTION_CHARS = 48  # of a recipe's description in the list; the steps pane has it all


class RecipeList(Vertical):
    """Recipes, or past runs; `found` is the recipes to list."""

    @dataclass
    class Highlighted(Message):
        """A recipe was highlighted; `own` when the list did it itself (on filling), not the
        user, so a run on view stays on view."""

        own: bool

    class RecipeChosen(Message):
        """Enter on a recipe: run it."""

    @dataclass
    class RunChosen(Message):
        """Enter on a past run: show it."""

        run: str

    def __init__(self, found: list[library.Found]) -> None:
        super().__init__(id="recipes-side", classes="panel flush")
        self.found = found
        self.history_mode = False
        self._recipes: dict[str, Recipe | SafError] = {}
        self._runs: dict[str, RunSummary] = {}  # the past runs listed, by id
        self._own_highlight = False

    def compose(self) -> ComposeResult:
        yield OptionList(id="recipes-list")

    def toggle_history(self) -> None:
        self.history_mode = not self.history_mode
        self.fill()

    def fill(self) -> None:
        """(Re)fill the list for the mode; the screen calls it first once it has mounted."""
        options = self.query_one(OptionList)
        options.clear_options()
        if self.history_mode:
            self.border_title = "Past runs"
            # This cluster's history only (the one a run here goes to): runs of other
            # inventories are theirs, as in `saf runs` (--all shows every cluster's).
            setup = cockpit_of(self).setup
            cluster = setup.inventory.cluster.name if setup.inventory is not None else setup.cluster
            runs = list(reversed(list_runs(cluster=cluster)))
            self._runs = {s.run: s for s in runs}
            for s in runs:
                options.add_option(Option(Text.assemble(
                    (f"{s.started.recipe}\n", "bold"),
                    (f"{s.run}  ", "dim"), (s.status, status_style(s.status, palette(self.app)))),
                    id=s.run))
            if not runs:
                options.add_option(Option("no runs yet", disabled=True))
        else:
            self.border_title = "Recipes"
            for found in self.found:
                recipe = self.recipe(found)
                description = recipe.description if isinstance(recipe, Recipe) else str(recipe)
                # Cut at a word, with "…": the list wraps it to its width.
                short = textwrap.shorten(description, DESCRIPTION_CHARS, placeholder="…")
                options.add_option(Option(Text.assemble((f"{found.name}\n", "bold"),
                                                        (short, "dim")),
                                          id=found.name))
        if options.option_count:
            # The first highlight is ours, not the user's: it must not hide a run on show.
            self._own_highlight = True
            options.highlighted = 0

    def recipe(self, found: library.Found) -> Recipe | SafError:
        """The recipe, loaded once; a recipe that does not load is its error."""
        if found.name not in self._recipes:
            try:
                self._recipes[found.name] = load_recipe(found.path)
            except SafError as exc:
                self._recipes[found.name] = exc
        return self._recipes[found.name]

    def highlight(self, name: str) -> None:
        """Highlight the recipe called `name` (the command palette's "Recipe NAME"), leaving
        the past runs for the recipes if they are on view."""
        if self.history_mode:
            self.toggle_history()
        options = self.query_one(OptionList)
        options.highlighted = options.get_option_index(name)

    def _highlighted_id(self) -> str | None:
        options = self.query_one(OptionList)
        if options.highlighted is None:
            return None
        return options.get_option_at_index(options.highlighted).id

    def current(self) -> library.Found | None:
        """The highlighted recipe (None in history mode)."""
        ident = None if self.history_mode else self._highlighted_id()
        return next((f for f in self.found if f.name == ident), None)

    def current_run(self) -> str | None:
        """The highlighted past run's id (None in recipe mode)."""
        return self._highlighted_id() if self.history_mode else None

    def current_summary(self) -> RunSummary | None:
        """The highlighted past run (None in recipe mode, or when there is none)."""
        run = self.current_run()
        return self._runs.get(run) if run else None

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        own, self._own_highlight = self._own_highlight, False
        # In both modes: the steps pane shows the highlighted recipe, or past run.
        self.post_message(self.Highlighted(own))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if self.history_mode:
            if event.option.id:
                self.post_message(self.RunChosen(event.option.id))
        else:
            self.post_message(self.RecipeChosen())
