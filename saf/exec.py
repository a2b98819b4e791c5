"""`saf exec`'s engine: one command on many nodes at once, as events."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import ClassVar, Literal

from saf.connect import become as sudo
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


AskPassword = Callable[[], Awaitable[str | None]]


class BecomeRefused(Exception):
    """A node on which the command cannot run as root: no sudo, no password, a wrong one."""


class Become:
    """`saf exec --become`: the command as root on each node, by `sudo -n` where the node
    allows it, else `sudo -S` with the password `ask` gives, asked once for every node and
    handed to sudo on stdin only (never on a command line, in an event or a log)."""

    def __init__(self, ask: AskPassword) -> None:
        self._ask = ask
        self._lock = asyncio.Lock()
        self._password: str | None = None
        self._asked = False

    async def _password_once(self) -> str:
        async with self._lock:
            if not self._asked:
                self._asked = True
                self._password = await self._ask()
        if self._password is None:
            raise BecomeRefused("sudo needs a password and none was given (--password-stdin, "
                                "a terminal to ask on, or NOPASSWD in sudoers)")
        return self._password

    async def prepare(self, conn: Connector, command: str) -> tuple[str, str | None]:
        """The command as root on this node, and what goes on its stdin first."""
        mode = (await conn.run(sudo.PROBE)).stdout.strip() or "nosudo"
        if mode == "nosudo":
            raise BecomeRefused("the node has no sudo and saf is not root there")
        if mode != "password":
            return sudo.wrap(command, mode), None
        password = await self._password_once()
        checked = await conn.run(sudo.VERIFY, input=password)
        if not checked.ok:  # a wrong password fails as such, not as the command's exit
            raise BecomeRefused(f"sudo refused the password ({sudo.refusal(checked.stderr)})")
        return sudo.wrap(command, mode), password


async def exec_on(fleet: Fleet, nodes: list[Node], command: str, emit: Emit, *,
                  timeout: float | None = None,  # noqa: ASYNC109 - stops the command, returns its output so far with timed_out set
                  become: Become | None = None) -> list[CommandFinished]:
    """Run `command` on every node at once, streaming OutputLine events and one
    CommandFinished per node (in inventory order in the returned list). With `become`, as
    root: a node where that is refused fails with the reason `become`."""
    check_command_size(command)

    async def one(conn: Connector) -> CommandFinished:
        name = conn.node.name

        def line(stream: str, text: str) -> None:
            emit(OutputLine(node=name, stream=stream, line=text))

        run, first_line = command, None
        if become is not None:
            try:
                run, first_line = await become.prepare(conn, command)
                check_command_size(run)
            except BecomeRefused as exc:
                refused = CommandFinished(node=name, status="failed", reason="become",
                                          message=f"become: {exc}")
                emit(refused)
                return refused
        result = await conn.run(run, on_output=line, timeout=timeout, input=first_line)
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
