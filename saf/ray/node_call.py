"""Calling saf.ray.node_probe on a node through anything that runs commands there (a recipe
step's context, or a connector), and reading its answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from saf.connect.base import RunResult
from saf.errors import RayError
from saf.ray.facts import NodeFacts, answer, parse_facts, probe_command

Run = Callable[..., Awaitable[RunResult]]
"""run(command, *, quiet=...) -> RunResult (StepContext.run's shape)."""


async def call(run: Run, node: str, python: str, action: str, args: dict[str, Any], *,
               quiet: bool = True, fallback: str | None = None
               ) -> tuple[dict[str, Any], RunResult]:
    result = await run(probe_command(python, action, args, fallback=fallback), quiet=quiet)
    value = answer(result.stdout)
    if value is None:
        tail = " / ".join(result.tail(3)) or f"exit status {result.exit_status}"
        raise RayError(f"{node}: {python} could not run saf's Ray probe ({tail})")
    error = value.get("error")
    if isinstance(error, str):
        raise RayError(f"{node}: {action} failed on the node: {error[:500]}")
    return value, result


async def node_facts(run: Run, node: str, python: str, *, temp_dir: str, ports: list[int],
                     record: str | None = None, probe: list[str] | None = None,
                     tools: bool = False, fallback: str | None = None,
                     node_dir: str | None = None, parts: bool = False) -> NodeFacts:
    """The node's facts; with `parts`, also whether its Ray's dashboard and client parts
    import (a fraction of a second on the node)."""
    args: dict[str, Any] = {"temp_dir": temp_dir, "node_name": node, "ports": ports,
                            "record": record, "probe": probe or [], "tools": tools,
                            "node_dir": node_dir, "parts": parts}
    value, _ = await call(run, node, python, "facts", args, fallback=fallback)
    return parse_facts(value)
