"""Node actions done through a fleet's connectors: what a cockpit (or `saf serve`'s hub on
behalf of every cockpit it feeds) may change on a node."""

from __future__ import annotations

from typing import TYPE_CHECKING

from saf.fleet import Fleet
from saf.shell import quote
from saf.up.actions import restart_part

if TYPE_CHECKING:
    from saf.events import Emit
    from saf.recipe.runner import AskPassword
    from saf.up.part import Kind, Verb

SIGNALS = ("TERM", "KILL")


class FleetActions:
    """What the cockpit may change on a node, done through the fleet's connectors."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    async def signal(self, node: str, pid: int, signal: str) -> str:
        if signal not in SIGNALS:
            raise ValueError(f"signal must be one of {', '.join(SIGNALS)}")
        command = f"kill -{signal} {quote(str(int(pid)))}"
        result = await self.fleet.connector(node).run(command, timeout=15)
        if result.exit_status == 0:
            return f"{node}: {command}"
        return f"{node}: {command} failed: {(result.stderr or result.stdout).strip()}"

    async def restart_part(self, node: str, kind: str, name: str, port: int = 0) -> str:
        return await restart_part(self.fleet, node, kind, name, port)

    async def bring_part(self, verb: Verb, kind: Kind, node: str, name: str, show: Emit,
                         ask_password: AskPassword | None = None) -> str:
        from saf.up.part import bring_part  # the compiler and runner: loaded when first used

        return await bring_part(self.fleet, verb, kind, node, name, show,
                                ask_password=ask_password)
