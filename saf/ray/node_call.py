"""Calling saf.ray.node_probe on a node through anything that runs commands there (a recipe
step's context, or a connector), and reading its answer through the one gate
(saf.ray.answers.decode)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

import msgspec

from saf.agents.arc_ids import ARC_IDS
from saf.connect.base import RunResult
from saf.errors import RayError
from saf.ray.answers import ACTIONS, A, decode, marked_line
from saf.ray.facts import NodeFacts, probe_command

Run = Callable[..., Awaitable[RunResult]]
"""run(command, *, quiet=...) -> RunResult (StepContext.run's shape)."""

# Each node's last answer on Ray's parts, by (node, python), with the node's import key it
# holds for: importing the parts costs most of a second on the node, and a `saf up` asks in
# its plan and again in its apply. The node itself says whether the answer still holds.
_parts_seen: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}


async def call(run: Run, node: str, python: str, expected: type[A], args: dict[str, Any],
               *, quiet: bool = True, fallback: str | None = None) -> tuple[A, RunResult]:
    """Run the probe's action whose answer is `expected` (NodeFacts, Started, Stopped, Tail,
    Probed) on the node: that answer, checked, and the command's result."""
    action = ACTIONS[expected]
    result = await run(probe_command(python, action, args, fallback=fallback), quiet=quiet)
    line = marked_line(result.stdout)
    if line is None:
        tail = " / ".join(result.tail(3)) or f"exit status {result.exit_status}"
        raise RayError(f"{node}: {python} could not run saf's Ray probe ({tail})")
    return decode(line, expected, node), result


async def node_facts(run: Run, node: str, python: str, *, temp_dir: str, ports: list[int],
                     record: str | None = None, probe: list[str] | None = None,
                     tools: bool = False, fallback: str | None = None,
                     node_dir: str | None = None,
                     parts: bool | Literal["unless_running"] = False) -> NodeFacts:
    """The node's facts; with `parts`, also whether its Ray's dashboard and client parts
    import (most of a second on the node; "unless_running": not where its raylet runs)."""
    args: dict[str, Any] = {"temp_dir": temp_dir, "node_name": node, "ports": ports,
                            "record": record, "probe": probe or [], "tools": tools,
                            "node_dir": node_dir, "parts": parts,
                            "arc_ids": sorted(ARC_IDS)}
    seen = _parts_seen.get((node, python)) if parts else None
    if seen is not None:
        args["parts_known"] = {"key": seen[0], "parts": seen[1]}
    facts, _ = await call(run, node, python, NodeFacts, args, fallback=fallback)
    if facts.ray_parts is not None and facts.parts_key:
        _parts_seen[node, python] = (facts.parts_key, msgspec.to_builtins(facts.ray_parts))
    return facts
