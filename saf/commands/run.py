"""`saf run RECIPE`: run a recipe on the inventory's nodes, live, and log every event."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import click

from saf.commands import common

if TYPE_CHECKING:
    from saf.events import Event
    from saf.recipe.run import RunPlan
    from saf.render.run_view import RunView


@click.command("run")
@click.argument("recipe", required=False)
@click.option("--var", "-V", "assignments", multiple=True, metavar="NAME=VALUE",
              help="Set a recipe variable (repeatable).")
@click.option("--on", "selector", metavar="SEL",
              help="Only these nodes: all, head, workers, NAME, tag:WORD, os:linux|macos, "
                   "or a comma list (each step still keeps to its own `on`).")
@click.option("--check", is_flag=True,
              help="Change nothing: run only the checks and say what would change.")
@click.option("--json", "as_json", is_flag=True, help="Write events as JSON lines.")
@click.option("--resume", metavar="RUN",
              help="Resume RUN (an id from `saf runs`, or `last`) from its first step that "
                   "did not finish.")
@click.option("--verbose", "-v", is_flag=True, help="Show every line of output.")
@click.option("--password-stdin", is_flag=True,
              help="Read the sudo password for `become` steps from the first line of stdin "
                   "instead of asking on the terminal.")
@click.pass_context
def run(ctx: click.Context, recipe: str | None, assignments: tuple[str, ...],
        selector: str | None, check: bool, as_json: bool, resume: str | None,
        verbose: bool, password_stdin: bool) -> None:
    """Run RECIPE (a file, or the name of a shipped or user recipe) on the nodes.

    Exits 0 when every step ended ok, changed or skipped; 1 when a step failed; 2 when the
    recipe, the inventory or an argument is invalid; 130 when interrupted (Ctrl-C stops every
    remote command; the run can be resumed with --resume).
    """
    from saf.fleet import Fleet
    from saf.recipe.events import RunStatus
    from saf.recipe.run import run_recipe
    from saf.render.console import print_json_line

    inventory = common.inventory(ctx)
    up_plan = None
    if resume and not recipe:
        # A `saf up` / `saf down` run is resumed from saf.toml, compiled again (saf.up.bring:
        # imported only here, as it imports every part saf up brings).
        from saf.up import bring
        from saf.up import compile as uc

        up_plan = bring.resume(resume, inventory, check=check, selector=selector)
    plan = _up_plan(up_plan) if up_plan else _plan(recipe, assignments, selector, check,
                                                   resume, inventory.cluster.name)
    if up_plan:
        inventory = uc.for_ray(inventory, bring.read(inventory))
    if plan is None:
        return
    view = None
    if not as_json:
        from saf.render.run_view import RunView
        view = RunView(verbose=verbose)

    # Read now, before anything runs: the password then sits in this process only, and is
    # handed to sudo on stdin by the runner (never on a command line, never logged).
    piped = common.read_stdin_password() if password_stdin else None
    ask_password = _password_asker(piped, view)

    def show(event: Event) -> None:
        if as_json:
            print_json_line(event)
        elif view is not None:
            view(event)

    async def go() -> str:
        async with Fleet(inventory) as fleet:
            return await run_recipe(plan, fleet, show, ask_password=ask_password)

    try:
        status = common.run(go())
    finally:
        if view is not None:
            view.close()
    if status != RunStatus.OK:
        ctx.exit(1)


def _up_plan(make: Callable[[], RunPlan]) -> RunPlan | None:
    """A `saf up` / `saf down` run's resume plan (None, said, when nothing is left)."""
    from saf.recipe.run import NothingToResume

    try:
        return make()
    except NothingToResume as exc:
        click.echo(str(exc))
        return None


def _plan(recipe: str | None, assignments: tuple[str, ...], selector: str | None, check: bool,
          resume: str | None, cluster: str) -> RunPlan | None:
    """What to run: RECIPE, or the rest of the run --resume names (None, said, when nothing
    of it is left to run)."""
    from saf.recipe import library
    from saf.recipe.prepare import parse_assignments
    from saf.recipe.run import NothingToResume, RunPlan, resume_plan

    if resume:
        try:
            return resume_plan(resume, recipe=recipe, overrides=parse_assignments(assignments),
                               selector=selector, check=check, cluster=cluster)
        except NothingToResume as exc:
            click.echo(str(exc))
            return None
    if recipe:
        return RunPlan(library.load(recipe), parse_assignments(assignments), selector, check)
    raise click.UsageError("give a RECIPE (see `saf recipes`) or --resume RUN")


def _password_asker(piped: str | None, view: RunView | None
                    ) -> Callable[[str], Awaitable[str | None]]:
    """How the runner asks for the sudo password: the one read from stdin, else on the
    terminal (the live view paused meanwhile); None when nothing was typed."""
    import asyncio

    from saf.recipe.runner import BecomeError

    async def ask_password(prompt: str) -> str | None:
        if piped is not None:
            return piped
        if not sys.stdin.isatty():
            raise BecomeError("become: sudo needs a password and there is no terminal to ask "
                              "on (pass --password-stdin, or allow NOPASSWD in sudoers)")
        if view is not None:
            view.pause()
        try:
            return await asyncio.to_thread(getpass.getpass, prompt)
        except (EOFError, OSError):
            return None
        finally:
            if view is not None:
                view.resume()

    return ask_password
