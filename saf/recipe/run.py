"""One way to run a recipe, for `saf run` and the cockpit's Recipes screen alike: sweep the runs
whose saf died (so they read as interrupted), prepare, log every event to the JSONL run log,
hand each event to the face that shows it, and run. A resume is a plan made from a past run's
log; it runs down the same path."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from saf.connect.session import CommandSessions
from saf.errors import SafError
from saf.events import Emit, Event
from saf.fleet import Fleet
from saf.recipe import library
from saf.recipe.events import RunStatus
from saf.recipe.log import RunLog, find_run, new_run_id, sweep
from saf.recipe.model import Recipe
from saf.recipe.prepare import prepare
from saf.recipe.runner import AskPassword, Runner


@dataclass(frozen=True)
class RunPlan:
    """What to run: a recipe, the values given for its variables, which nodes (a selector on
    top of each step's own `on`), whether only to check, and from which step."""

    recipe: Recipe
    overrides: dict[str, str] = field(default_factory=dict)
    selector: str | None = None
    check: bool = False
    start_step: int = 0
    resumed_from: str | None = None


class NothingToResume(SafError):
    """The run asked to be resumed finished every step; not an error (exit 0)."""

    exit_code = 0
    title = "Nothing to resume"


def resume_plan(run: str, *, recipe: str | None = None,
                overrides: dict[str, str] | None = None, selector: str | None = None,
                check: bool = False, cluster: str | None = None) -> RunPlan:
    """A plan that resumes `run` (an id, a unique prefix, or "last") from its first step that
    did not finish, with the recipe, variables and selector it ran with; `recipe`,
    `overrides` and `selector` replace those; `cluster` limits the search to that cluster's
    runs ("last" is its newest). Raises NothingToResume when nothing is left."""
    previous = find_run(run, cluster=cluster)
    start = previous.first_unfinished_step()
    if start is None:
        raise NothingToResume(f"run {previous.run} has nothing left to do "
                              f"(it ended {previous.status})")
    loaded = library.load(recipe or previous.started.path or previous.started.recipe)
    values = {**previous.started.vars, **(overrides or {})}
    # Keep only what the (possibly edited) recipe still declares.
    values = {k: v for k, v in values.items() if k in loaded.vars}
    return RunPlan(loaded, values, selector or previous.started.selector, check, start,
                   previous.run)


async def run_recipe(plan: RunPlan, fleet: Fleet, show: Emit, *, run_id: str | None = None,
                     ask_password: AskPassword | None = None,
                     sessions: CommandSessions | None = None,
                     look_ahead: bool = False) -> RunStatus:
    """Run `plan` on `fleet`, logging every event before `show` sees it; the final status
    (ok or failed; a cancellation is logged as `cancelled` and raised). `sessions`: the
    nodes' command sessions to run through and leave open (its owner closes them); else
    the run opens its own and closes them. `look_ahead` (a --check run): every step's plan
    on every node starts at once, each said in its turn (saf.recipe.runner.Runner)."""
    sweep()
    prepared = await prepare(plan.recipe, fleet, plan.overrides, plan.selector)
    # The steps that run: a `recipe` step's are counted one by one (saf.recipe.compose).
    if plan.start_step >= len(prepared.recipe.steps):
        raise SafError(f"the recipe has only {len(prepared.recipe.steps)} steps now")
    run_id = run_id or new_run_id()
    log = RunLog.create(run_id)

    def emit(event: Event) -> None:
        log(event)
        show(event)

    runner = Runner(prepared, fleet, emit, run_id=run_id, check=plan.check,
                    start_step=plan.start_step, resumed_from=plan.resumed_from,
                    ask_password=ask_password, sessions=sessions, look_ahead=look_ahead)
    alive = asyncio.create_task(_keep_touching(log))
    try:
        return await runner.run()
    finally:
        alive.cancel()
        log.close()


async def _keep_touching(log: RunLog, every: float = 1.0) -> None:
    while True:
        await asyncio.sleep(every)
        log.touch()
