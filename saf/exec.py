"""`saf exec`'s engine: one command on many nodes at once, as events."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from saf.connect.base import Connector
from saf.events import Emit, Event, OutputLine
from saf.fleet import Fleet, error_reason
from saf.inventory.model import Node
from saf.shell import check_command_size

CommandStatus = Literal["ok", "failed", "timeout", "unreachable"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CommandFinished(Event):
    """How a command ended on one node. status: ok, failed (non-zero exit), timeout,
    unreachable (could not connect: `reason` says why)."""

    kind: ClassVar[str] = "command_finished"
    node: str
    status: CommandStatus
    exit_status: int | None = None
    signal: str | None = None
    duration: float = 0.0
    reason: str | None = None
    message: str | None = None


async def exec_on(fleet: Fleet, nodes: list[Node], command: str, emit: Emit, *,
                  timeout: float | None = None) -> list[CommandFinished]:  # noqa: ASYNC109 - stops the command, returns its output so far with timed_out set
    """Run `command` on every node at once, streaming OutputLine events and one
    CommandFinished per node (in inventory order in the returned list)."""
    check_command_size(command)

    async def one(conn: Connector) -> CommandFinished:
        name = conn.node.name

        def line(stream: str, text: str) -> None:
            emit(OutputLine(node=name, stream=stream, line=text))

        result = await conn.run(command, on_output=line, timeout=timeout)
        status: CommandStatus
        if result.timed_out:
            status = "timeout"
        elif result.ok:
            status = "ok"
        else:
            status = "failed"
        done = CommandFinished(node=name, status=status, exit_status=result.exit_status,
                               signal=result.signal, duration=round(result.duration, 3))
        emit(done)
        return done

    results = await fleet.each(nodes, one)
    finished: list[CommandFinished] = []
    for node in nodes:
        outcome = results[node.name]
        if isinstance(outcome, BaseException):
            reason, message = error_reason(outcome)
            outcome = CommandFinished(node=node.name, status="unreachable", reason=reason,
                                      message=message)
            emit(outcome)
        finished.append(outcome)
    return finished
