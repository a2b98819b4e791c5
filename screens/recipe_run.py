"""The Recipes screen's run controller: runs a plan down the core's one path (`run_recipe`,
as `saf run` does: interrupted runs swept, every event logged where `saf runs` finds it) in an
app worker, feeds each event into the run's `RunState`, and tells the screen by messages.

It draws nothing; it is a widget so that its worker, its messages and its password question
belong to the screen it sits on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from saf.screens.recipe_modals import PasswordModal
from textual import work
from textual.message import Message
from textual.widget import Widget

from saf.cockpit.context import RecipeRunner
from saf.errors import SafError
from saf.events import Emit, Event
from saf.fleet import Fleet
from saf.inventory import Inventory
from saf.recipe.events import RunStatus
from saf.recipe.run import RunPlan, run_recipe
from saf.recipe.runner import AskPassword
from saf.recipe.state import RunState


class RunController(Widget):
    DEFAULT_CSS = "RunController { display: none; }"

    class Changed(Message):
        """The run's state moved on (a newer one replaces any not yet handled)."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RunController.Changed)

    @dataclass
    class NotRun(Message):
        """The run could not start (a bad variable, selector or inventory)."""

        error: SafError

    def __init__(self) -> None:
        super().__init__()
        self.state: RunState | None = None

    @property
    def going(self) -> bool:
        return self.state is not None and self.state.status == RunStatus.RUNNING

    def start(self, plan: RunPlan, inventory: Inventory, fleet: Fleet | None,
              runner: RecipeRunner | None = None) -> RunState:
        """Run `plan` with `runner` (saf serve's hub), else on `fleet` (or, when the cockpit
        has none, on a fleet of `inventory` opened for this run); the state it will fill."""
        async def go(show: Emit, ask_password: AskPassword) -> object:
            if runner is not None:
                return await runner(plan, show, ask_password)
            runs_on = fleet if fleet is not None else Fleet(inventory)
            try:
                return await run_recipe(plan, runs_on, show, ask_password=ask_password)
            finally:
                if runs_on is not fleet:
                    await runs_on.close()

        return self.start_with(go)

    def start_with(self, go: Callable[[Emit, AskPassword], Awaitable[object]]) -> RunState:
        """Run whatever `go(show, ask_password)` runs (a run of the core's, whose events it
        hands to `show`: one declared part brought up, saf.up.part); the state it fills."""
        self.state = RunState()
        self._run(go, self.state)
        return self.state

    def cancel(self) -> None:
        """Stop the run: the runner stops every remote command and logs `cancelled`."""
        self.workers.cancel_group(self, "recipe-run")

    @work(exclusive=True, group="recipe-run", exit_on_error=False)
    async def _run(self, go: Callable[[Emit, AskPassword], Awaitable[object]],
                   state: RunState) -> None:
        def show(event: Event) -> None:
            state.apply(event)
            self.post_message(self.Changed())

        try:
            await go(show, self._ask_password)
        except SafError as exc:
            self.post_message(self.NotRun(exc))
        finally:
            self.post_message(self.Changed())

    async def _ask_password(self, prompt: str) -> str | None:
        return await self.app.push_screen_wait(PasswordModal(prompt))
