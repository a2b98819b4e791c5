"""Model serving across the cluster: every endpoint saf started, found again from the nodes'
records; one endpoint checked through an SSH forward; stopped, restarted, its log read.

Used alike by `saf models` (saf.commands.models) and the cockpit's Models screen.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field

from saf.errors import SafError
from saf.fleet import Fleet, error_reason
from saf.inference import checks
from saf.inference.engine_log import perf_blocks, summarize
from saf.inference.measure import DEADLINE, CheckReport, check_url
from saf.inference.node import Started, Target, list_servers, server_log, start_argv, stop_server
from saf.inference.records import Endpoint
from saf.inventory.model import Node


class NoSuchEndpoint(SafError):
    exit_code = 2  # the user named something that is not there
    title = "No such endpoint"


@dataclass
class ClusterServers:
    endpoints: list[Endpoint] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)  # node -> why
    bad: Counter[str] = field(default_factory=Counter)  # bad lines from nodes, by reason


async def list_endpoints(fleet: Fleet, nodes: list[Node], *, probe: bool = True) -> ClusterServers:
    """Every server saf started on `nodes`, each with its live state."""
    found = await fleet.each(nodes, lambda conn: list_servers(Target.of(conn), probe=probe))
    out = ClusterServers()
    for node in nodes:
        value = found[node.name]
        if isinstance(value, BaseException):
            reason, message = error_reason(value)
            out.unreachable[node.name] = f"{reason}: {message}"
            continue
        out.endpoints.extend(sorted(value.endpoints, key=lambda e: e.port))
        out.bad.update(value.bad.counts)
    return out


def find(endpoints: list[Endpoint], which: str) -> Endpoint:
    """The endpoint named `which`: NODE:PORT, NODE (when it has one), or PORT (when one node
    has it)."""
    node, _, port = which.rpartition(":") if ":" in which else ("", "", "")
    if not node and not port:
        node, port = (which, "") if not which.isdigit() else ("", which)
    chosen = [e for e in endpoints if (not node or e.node == node)
              and (not port or str(e.port) == port)]
    if len(chosen) == 1:
        return chosen[0]
    listed = ", ".join(e.key for e in endpoints) or "none"
    if not chosen:
        raise NoSuchEndpoint(f"no endpoint {which!r} (saf serves: {listed})")
    raise NoSuchEndpoint(f"{which!r} names {len(chosen)} endpoints ("
                         + ", ".join(e.key for e in chosen) + "): say NODE:PORT")


async def check(fleet: Fleet, endpoint: Endpoint, *, requests: int = 1, concurrency: int = 1,
                max_tokens: int = 32, save_for: str | None = None,
                timeout: float = DEADLINE) -> CheckReport:  # noqa: ASYNC109 - ends with what came by then, where asyncio.timeout would raise
    """Measure `endpoint` through an SSH forward to its port; the engine's own timings beside
    saf's (from its answers, else from its log). Saved as the endpoint's last check when
    `save_for` names the cluster."""
    conn = fleet.connector(endpoint.node)
    host = "127.0.0.1" if endpoint.host in ("0.0.0.0", "::", "") else endpoint.host
    forward = await conn.forward(endpoint.port, host)
    try:
        report = await check_url(f"http://127.0.0.1:{forward.local_port}", endpoint.key,
                                 requests=requests, concurrency=concurrency,
                                 max_tokens=max_tokens, timeout=timeout)
    finally:
        await forward.close()
    if report.engine is None and endpoint.engine in ("llama-server", "llama-cpp-python") \
            and report.completed:
        with contextlib.suppress(SafError):
            _, lines = await server_log(Target.of(conn), endpoint.port,
                                        min(40 * len(report.results) + 100, 5000))
            blocks = perf_blocks(lines)[-len(report.completed):]
            if blocks:
                report.engine, report.engine_source = summarize(blocks), "engine log"
    if save_for is not None:
        checks.save(save_for, report)
    return report


async def stop(fleet: Fleet, endpoint: Endpoint, *, grace: float = 10.0) -> Endpoint | None:
    return await stop_server(Target.of(fleet.connector(endpoint.node)), endpoint.port,
                             grace=grace)


async def restart(fleet: Fleet, endpoint: Endpoint, *, timeout: float = 600.0) -> Started:  # noqa: ASYNC109 - the node's deadline, sent to it: stops the server, reports its log
    """Stop the server and start it again with the same command line; ready or failed."""
    if not endpoint.argv:
        raise NoSuchEndpoint(f"{endpoint.key} has no command line on record to restart")
    target = Target.of(fleet.connector(endpoint.node))
    await stop_server(target, endpoint.port)
    return await start_argv(target, endpoint.engine, endpoint.model, endpoint.port,
                            endpoint.host, list(endpoint.argv), timeout=timeout,
                            up=endpoint.mark)


async def logs(fleet: Fleet, endpoint: Endpoint, lines: int = 50) -> tuple[str, list[str]]:
    return await server_log(Target.of(fleet.connector(endpoint.node)), endpoint.port, lines)
