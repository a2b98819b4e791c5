"""`saf replay FILE`: the cockpit on a recording, no cluster needed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from saf.errors import SafError

if TYPE_CHECKING:
    from saf.inventory import Inventory
    from saf.screens.app import SafApp

READONLY_BECAUSE = "a replay has no cluster behind it"


@click.command("replay")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--speed", type=click.FloatRange(min=0.01, max=1000), default=1.0,
              show_default=True, help="Play this many times faster than recorded.")
@click.option("--start", "start", type=click.FloatRange(min=0), default=0.0,
              help="Begin this many seconds into the recording.")
@click.pass_context
def replay(ctx: click.Context, file: Path, speed: float, start: float) -> None:
    """Open the cockpit on a recording made with `saf record` (or R in the cockpit).

    Space pauses, Left/Right go back/forward 10 s, < and > halve/double the speed. Actions
    that change a node are off: there is no cluster behind a replay. Recipe checks and the
    Signals screen use the inventory (--inventory, else ./saf.toml or the config folder's).
    """
    explicit = (ctx.find_root().obj or {}).get("inventory")
    replay_cockpit(file, replay_inventory(explicit), speed=speed, start=start).run()


def replay_inventory(explicit: str | None) -> Inventory | None:
    """The inventory a replay's recipes and signals use: the one named (its mistakes are
    reported, as by every command), else the usual one if there is a readable one, else none:
    a replay needs no cluster."""
    from saf.inventory import load_inventory

    if explicit:
        return load_inventory(explicit)
    try:
        return load_inventory()
    except SafError:
        return None


def replay_cockpit(file: Path, inventory: Inventory | None, *, speed: float = 1.0,
                   start: float = 0.0) -> SafApp:
    """Build (not run) the cockpit on the recording in `file`."""
    from saf.cockpit.context import CockpitContext
    from saf.cockpit.settings import load_settings
    from saf.recording import load_recording
    from saf.screens.app import replay_app

    recording = load_recording(file)
    setup = CockpitContext(cluster=recording.cluster, nodes=recording.nodes,
                           settings=load_settings(), inventory=inventory,
                           readonly_because=READONLY_BECAUSE)
    return replay_app(setup, recording, speed=speed, start_at=start)
