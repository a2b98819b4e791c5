"""Node actions done through a fleet's connectors: what a cockpit (or `saf serve`'s hub on
behalf of every cockpit it feeds) may change on a node."""

from __future__ import annotations

from saf.fleet import Fleet
from saf.shell import quote
from saf.up.actions import restart_part

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
