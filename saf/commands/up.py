"""`saf up`: bring the cluster to what saf.toml declares (docs/cluster.md). The recipe is
compiled by saf.up.compile and run by the recipe runner, so each is a run like `saf run`'s:
logged, listed by `saf runs`, resumable. `saf down` (saf.commands.down) shows its run through
`say` and `apply_plan` here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from saf import defaults
from saf.commands import common

if TYPE_CHECKING:  # imported where used, so `saf up --help` loads none of it
    from saf.connect.session import CommandSessions
    from saf.events import Event
    from saf.fleet import Fleet
    from saf.recipe.run import RunPlan
    from saf.up import bring
    from saf.up.place import Placement

TAIL = 8  # log lines of a failure shown
LOST = 3  # the exit status when nodes did not answer: everything else was brought
COMMAND_WIDTH = 120  # a planned command is cut here unless --verbose


def say(text: str, style: str | None = None) -> None:
    from saf import secrets
    from saf.render.console import console

    console().print(secrets.redact(text), style=style, markup=False, highlight=False,
                    soft_wrap=True)


def _plan_lines(collected: bring.Collected, nodes: list[str], verbose: bool) -> list[str]:
    """Per node, each part that would change (and what it would run: each command's first
    line unless --verbose) or fails (with its evidence)."""
    from saf.recipe.events import StepStatus

    lines = []
    for f in collected.of(StepStatus.CHANGED, StepStatus.FAILED, nodes=nodes):
        mark = "would change" if f.status == StepStatus.CHANGED else "fails"
        lines.append(f"  {f.node}  {f.part}: {mark}: {f.message}".rstrip(": "))
        for command in f.would:
            lines += [f"      {w}" for w in (command.splitlines() if verbose
                                            else [_first_line(command)])]
        if f.status == StepStatus.FAILED:
            lines += [f"      | {t}" for t in f.tail[-TAIL:]]
    return lines


def say_lost(skipped: dict[str, list[str]], lost: dict[str, str],
              what: str = "not reachable, skipped") -> None:
    """Each lost node, and the parts pinned to it that are skipped."""
    for node, why in lost.items():
        say(f"{node}: does not answer ({why}): lost", "bold red")
        if skipped.get(node):
            say(f"    {what}: {', '.join(skipped[node])}")


def orphan_lines(found: dict[str, list[str]], nodes: list[str], prune: bool) -> list[str]:
    """Per node, each service saf up installed that saf.toml no longer declares; with
    --prune the plan's own steps say what is done to them, so none here."""
    if prune:
        return []
    from saf.up.orphans import shown

    return [f"  {node}  {shown(name)}: not declared (saf up --prune removes it)"
            for node in nodes for name in found.get(node, [])]


def _say_placing(placing: Placement, check: bool) -> None:
    """Each replica moved off a lost node, and each model left short of its replicas."""
    moved = "would move" if check else "moved"
    for move in placing.moved:
        say(f"model {move.model}: replica {moved} from {move.lost} (lost) to {move.to}",
            "bold")
    for model, rows in placing.short.items():
        runs = len(placing.nodes.get(model, ()))
        say(f"model {model}: runs {runs} replica{'s' if runs != 1 else ''}, fewer than "
            "declared: no node that answers fits another", "bold red")
        # Only here: saf.cluster.placement loads the capacity model (0.1 s of `saf up`'s
        # start on a loaded machine), which a cluster with no model short never needs.
        from saf.cluster.placement import rows_text

        for line in rows_text(rows).splitlines():
            say(f"    {line}")


def _first_line(command: str, width: int = COMMAND_WIDTH) -> str:
    lines = command.splitlines() or [""]
    first = lines[0] if len(lines[0]) <= width else lines[0][:width - 1] + "…"
    return first + (f"  (+{len(lines) - 1} lines)" if len(lines) > 1 else "")


def _failures(collected: bring.Collected, what: str) -> None:
    from saf.recipe.events import StepStatus

    for f in collected.of(StepStatus.FAILED, nodes=list(collected.nodes)):
        say(f"{f.node}: {f.part} failed: {f.message}", "bold red")
        for line in f.tail[-TAIL:]:
            say(f"    | {line}")
    say(f"run `{what}` again to go on (or `saf run --resume {collected.run}`)")


@click.command("up")
@click.option("--check", is_flag=True,
              help="Change nothing: print what differs from saf.toml; exit 2 when something "
                   "would change, 0 when nothing differs, 3 when nodes are lost.")
@click.option("--on", "selector", metavar="SEL",
              help="Only these nodes (see `saf exec --help`); each part keeps to its own `on`.")
@click.option("--wait", "wait", type=click.FloatRange(0, 3600), default=defaults.UP_WAIT,
              show_default=True, metavar="S",
              help="Seconds to wait for a node that does not answer SSH yet (after a reboot).")
@click.option("--prune", is_flag=True,
              help="Also stop and remove the services saf up installed that saf.toml no "
                   "longer declares (`not declared` in the plan and `saf status`).")
@click.option("--verbose", "-v", is_flag=True, help="Show every line of output.")
@click.pass_context
def up(ctx: click.Context, check: bool, selector: str | None, wait: float, prune: bool,
       verbose: bool) -> None:
    """Bring the cluster to what saf.toml declares: [up]'s recipes, then Ray, then each
    service and model in order, each checked for real (docs/cluster.md).

    Prints the plan first (per node, what is missing or differs and why), then applies it.
    A node that does not answer within --wait is named as lost: the parts pinned to it are
    skipped, a placed model's replica there is placed on another node that fits, and the
    rest is brought as usual. A service saf up installed that saf.toml no longer declares
    is named `not declared` in the plan; --prune stops and removes it (so does `saf down`).

    Exits 0 when done (or nothing to do), 1 when a part failed (named with its evidence; run
    `saf up` again to go on), 2 with --check when something would change, 3 when nodes were
    lost (everything else done, or with --check planned): the cluster is not whole.
    """
    import asyncio

    from saf.connect.session import CommandSessions
    from saf.fleet import Fleet
    from saf.recipe.events import RunStatus, StepStatus
    from saf.recipe.run import RunPlan, run_recipe
    from saf.up import bring, replicas
    from saf.up import compile as uc
    from saf.up import orphans as uo
    from saf.up.place import placement

    inventory = common.inventory(ctx)
    found = bring.read(inventory)
    fleet_inventory = uc.for_ray(inventory, found)

    async def go() -> int:
        async with Fleet(fleet_inventory) as fleet:
            # The plan and the apply run through one command session per node, started as
            # soon as the nodes answer (while placement and orphans are looked at).
            sessions = CommandSessions()
            try:
                return await bring_up(fleet, sessions)
            finally:
                await asyncio.shield(sessions.close())

    async def bring_up(fleet: Fleet, sessions: CommandSessions) -> int:
        nodes = await fleet.select(selector or "all")
        lost = await bring.lost_nodes(fleet, nodes, wait)
        answering = [n for n in nodes if n.name not in lost]
        say_lost(bring.skipped_parts(found, inventory, lost), lost)
        if not answering:
            say("nothing was run: no node answers (wait longer: --wait S)")
            return LOST
        sessions.warm([fleet.connector(n) for n in answering])
        # Placement is the cluster's, whatever --on acts on: a replica serving on a
        # node outside the selection stays there, it is not placed again inside it.
        placing = await placement(
            found, fleet, [n for n in fleet.inventory.nodes if n.name not in lost],
            frozenset(lost))
        _say_placing(placing, check)
        left = await uo.find(fleet, found, answering)
        if bring.head_lost(found, lost) and found.ray is not None:
            say(f"ray: not started on the workers: its head {found.ray.head} is lost",
                "bold red")
        recipe = await bring.recipe(found, inventory, fleet, down=False, placing=placing,
                                    orphans=uo.by_service(left) if prune else None,
                                    lost=lost)
        # Only the nodes that answer: each part keeps to its own `on` among them.
        on = ",".join(n.name for n in answering) if lost else selector
        planned = bring.Collected()
        # Every part's plan at once: a plan changes nothing, so none waits for another.
        status = await run_recipe(RunPlan(recipe, {}, on, check=True), fleet, planned,
                                  sessions=sessions, look_ahead=True)
        lines = _plan_lines(planned, [n.name for n in answering], verbose)
        kept = orphan_lines(left, [n.name for n in answering], prune)
        whole = not lost and not placing.short
        if not lines and status == RunStatus.OK:
            say(f"nothing to do: {bring.summary(found, len(answering))} as declared"
                + ("" if whole else f" (not whole: {len(lost)} node"
                   f"{'s' if len(lost) != 1 else ''} lost)"))
            for line in kept:
                say(line)
            if not check and placing.record:
                replicas.save(inventory.cluster.name, placing.record)
            return 0 if whole and not (check and kept) else LOST if not whole else 2
        say("plan:" if lines else "plan: nothing differs", "bold")
        for line in lines + kept:
            say(line)
        if check:
            failed = planned.of(StepStatus.FAILED) or status != RunStatus.OK
            return 1 if failed else LOST if not whole else \
                2 if planned.of(StepStatus.CHANGED) or kept else 0
        if placing.record:
            replicas.save(inventory.cluster.name, placing.record)
        done = await apply_plan(RunPlan(recipe, {}, on), fleet, verbose, "saf up",
                                sessions)
        return done or (0 if whole else LOST)

    ctx.exit(common.run(go()))


async def apply_plan(plan: RunPlan, fleet: Fleet, verbose: bool, what: str,
                     sessions: CommandSessions | None = None) -> int:
    from saf.recipe.events import RunStatus
    from saf.recipe.run import run_recipe
    from saf.render.run_view import RunView
    from saf.up import bring

    view = RunView(verbose=verbose)
    collected = bring.Collected()

    def show(event: Event) -> None:
        collected(event)
        view(event)

    try:
        status = await run_recipe(plan, fleet, show, sessions=sessions)
    finally:
        view.close()
    if status != RunStatus.OK:
        _failures(collected, what)
        return 1
    return 0
