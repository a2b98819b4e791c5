"""Model servers on one node: start, list, stop, tail the log, and pick an engine.

Each call is one command on the node: the node script (saf.inference.node_script) run by the
node's Python with its request as one JSON argument, under saf's usual guard (so a cancelled
call leaves nothing behind but the server it started, which runs in a session of its own).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from saf.connect.base import Connector, RunResult
from saf.inference.engines import DETECT, ENGINES, GPUS, Gpu, ModelServerSpec
from saf.inference.records import (
    BadLines,
    Endpoint,
    ModelServerError,
    NodeEvent,
    RecordBad,
    ServerLog,
    ServerReady,
    ServerSeen,
    ServerSkipped,
    ServerStarted,
    ServerStopped,
    StartFailed,
    UpMark,
    endpoint_of,
    read_answers,
)
from saf.node_source import program_source
from saf.shell import path_arg, program, quote, sh

SCRIPT = program_source("saf.inference", "node_script.py")
LIST_TIMEOUT = 60.0


@dataclass(frozen=True)
class Target:
    """A node as serving needs it: its name, its Python, and a way to run a command there
    (a connector's `run`, or a recipe step's, whose output goes to the run log)."""

    name: str
    python: str
    run: Callable[[str, float], Awaitable[RunResult]]

    @classmethod
    def of(cls, conn: Connector) -> Target:
        async def run(command: str, timeout: float) -> RunResult:  # noqa: ASYNC109 - stops the command, returns its output so far with timed_out set
            return await conn.run(command, timeout=timeout)

        return cls(conn.node.name, conn.node.python, run)


def script_command(python: str, request: dict[str, Any]) -> str:
    """The node script run by the node's python with -S: it imports only the standard
    library, and a venv's site-packages (its .pth files) cost 0.1-0.3 s of start-up on a
    loaded node, paid by every list (`saf up`'s plan of each model), start and stop; the
    engine it starts is a program of its own, with its site-packages."""
    return f"{program(python)} -S -c {quote(SCRIPT)} {quote(json.dumps(request))}"


async def _call(node: Target, request: dict[str, Any], timeout: float,  # noqa: ASYNC109 - stops the command, returns its output so far with timed_out set
                bad: BadLines) -> list[NodeEvent]:
    """The node script's events for `request`, each checked (saf.inference.records)."""
    result = await node.run(script_command(node.python, request), timeout)
    lines = read_answers(node.name, result.stdout, bad)
    if not lines and not result.ok:
        why = "timed out" if result.timed_out else "; ".join(result.tail(3)) or "no answer"
        raise ModelServerError(f"{node.name}: the serve helper failed ({why})")
    return lines


@dataclass
class NodeServers:
    node: str
    endpoints: list[Endpoint] = field(default_factory=list)
    bad: BadLines = field(default_factory=BadLines)


async def list_servers(node: Target, *, probe: bool = True) -> NodeServers:
    """Every server saf started on the node, with its live state (probed over HTTP on the node
    when `probe`) and uptime. A record that does not read back is listed as `bad`."""
    found = NodeServers(node.name)
    lines = await _call(node, {"op": "list", "probe": probe}, LIST_TIMEOUT, found.bad)
    for line in lines:
        if isinstance(line, ServerSeen):
            found.endpoints.append(endpoint_of(node.name, line.record, line.state, line.uptime))
        elif isinstance(line, RecordBad):
            found.endpoints.append(Endpoint(node.name, line.port, "?", "?", "bad",
                                            why=line.why[:500]))
        else:
            found.bad.add("unexpected_event")
    return found


StartStatus = Literal["ready", "skipped", "failed"]


@dataclass
class Started:
    """How a start ended: ready, skipped (the same server already runs) or failed."""

    status: StartStatus
    endpoint: Endpoint | None = None
    why: str = ""
    tail: list[str] = field(default_factory=list)
    seconds: float | None = None


async def start_server(node: Target, spec: ModelServerSpec, *, up: UpMark | None = None,
                       timeout: float) -> Started:  # noqa: ASYNC109 - the node's deadline, sent to it: stops the server, reports its log
    """Start `spec` detached on the node and wait (at most `timeout` s) until it is ready; a
    server that exits or is not ready in time fails with its log's last lines (and is
    stopped). When the same server (engine, model, command line) already runs: skipped.
    `up`: saf up's mark, kept in its record (saf.up.orphans)."""
    return await start_argv(node, spec.engine, spec.model, spec.port, spec.host, spec.argv(),
                            timeout=timeout, up=up)


async def start_argv(node: Target, engine: str, model: str, port: int, host: str,
                     argv: list[str], *, timeout: float, up: UpMark | None = None) -> Started:  # noqa: ASYNC109 - the node's deadline, sent to it: stops the server, reports its log
    """start_server for a command line already made (a restart reuses the record's, and its
    mark)."""
    bad = BadLines()
    request = {"op": "start", "port": port, "host": host, "engine": engine, "model": model,
               "argv": argv, "timeout": timeout,
               "up": msgspec.to_builtins(up) if up is not None else None}
    lines = await _call(node, request, timeout + 60, bad)
    final = lines[-1] if lines else StartFailed(why="no answer", tail=())
    if isinstance(final, ServerReady):
        return Started("ready", endpoint_of(node.name, final.record, "ready", 0.0),
                       seconds=final.seconds)
    if isinstance(final, ServerSkipped):
        return Started("skipped", endpoint_of(node.name, final.record, final.state, 0.0))
    if isinstance(final, StartFailed):
        return Started("failed", None, final.why, [t[:1000] for t in final.tail[-20:]])
    # The script ended after it launched the server but before it said how that went.
    endpoint = endpoint_of(node.name, final.record, "starting", 0.0) \
        if isinstance(final, ServerStarted) else None
    return Started("failed", endpoint, f"unexpected answer {final.__struct_config__.tag!r}")


async def adopt_server(node: Target, spec: ModelServerSpec, argv: list[str],
                       kept: dict[str, str], *, timeout: float) -> Started:  # noqa: ASYNC109 - the node's deadline, sent to it
    """A server its keeper (the init system, saf's supervisor) has just started as `argv`:
    the node writes its record, with `kept` (service, manager, log), once its process is
    there, and waits (at most `timeout` s) until it is ready."""
    bad = BadLines()
    request = {"op": "kept", "port": spec.port, "host": spec.host, "engine": spec.engine,
               "model": spec.model, "argv": argv, "kept": kept, "timeout": timeout}
    lines = await _call(node, request, timeout + 60, bad)
    final = lines[-1] if lines else StartFailed(why="no answer", tail=())
    if isinstance(final, ServerReady):
        return Started("ready", endpoint_of(node.name, final.record, "ready", 0.0),
                       seconds=final.seconds)
    if isinstance(final, StartFailed):
        return Started("failed", None, final.why, [t[:1000] for t in final.tail[-20:]])
    return Started("failed", None, f"unexpected answer {final.__struct_config__.tag!r}")


async def stop_server(node: Target, port: int, *, grace: float = 10.0) -> Endpoint | None:
    """Stop the server on `port` (TERM to its process group, KILL after `grace` s) and forget
    it; the endpoint it was, or None when saf had started nothing there."""
    bad = BadLines()
    lines = await _call(node, {"op": "stop", "port": port, "grace": grace}, grace * 2 + 30,
                           bad)
    final = lines[-1] if lines else None
    if not isinstance(final, ServerStopped) or final.was is None:
        return None
    return endpoint_of(node.name, final.was, "exited", None)


async def server_log(node: Target, port: int, lines: int = 50) -> tuple[str, list[str]]:
    """(path, last lines) of the server's log on the node."""
    bad = BadLines()
    found = await _call(node, {"op": "logs", "port": port, "lines": lines}, 30, bad)
    final = found[-1] if found else None
    path = final.path if isinstance(final, ServerLog) else "?"
    if not isinstance(final, ServerLog) or final.lines is None:
        raise ModelServerError(f"{node.name}: no log for port {port} ({path})")
    return path, list(final.lines)


async def detect_engine(node: Target, bin_dir: str, python: str) -> tuple[str | None, Gpu]:
    """The engine `auto` picks on this node (None when it has none of them) and the vendor of
    its GPU that needs a server environment of its own (engines.GPU_ENV)."""
    command = f"{sh(DETECT)} saf {path_arg(bin_dir) if bin_dir else quote('')} {program(python)}"
    result = await node.run(command, 60)
    last = result.stdout.strip().splitlines()[-1:] if result.ok else []
    words = last[0].split() if last else []
    engine = words[0] if words and words[0] in ENGINES else None
    gpu: Gpu = next((g for g in GPUS if words[1:2] == [g]), "none")
    return engine, gpu
