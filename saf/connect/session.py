"""One command session per node per run: the node's commands through one long-lived program
(agents/command_session.py, sent as `python -c` text) instead of one exec channel each.

`SessionConnector` wraps a node's pooled connector and keeps its interface: `run` goes through
the session, everything else (put, start, forward) through the wrapped connector. The recipe
runner uses it, so a run opens one channel per node for its commands, however many there are.

Where the session cannot serve, `run` is the wrapped connector's own, one guarded channel per
command:
- a node whose python cannot run the program (none, or too old: it never says hello): said
  once, through `on_fallback`, and the node stays on channels for the rest of the run;
- a command with `input` (a sudo password): a secret never enters the session's stream.

Cancelling a command (Ctrl-C, a timeout) asks the session to stop its process group; closing
the session (or a dropped connection) ends the program, which stops whatever still runs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import itertools
import json
import zlib
from collections import Counter
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from saf.connect.base import (
    KEEP_BYTES,
    ByteProcess,
    Connector,
    Forward,
    OutputCollector,
    RemoteProcess,
)
from saf.connect.session_frames import MAX_FRAME, Exit, Gate, Hello, Out
from saf.deadline import within
from saf.errors import ConnectError, Failure
from saf.shell import program, quote, sh

HELLO_TIMEOUT = 30.0  # seconds a node's python may take to start the session program
CANCEL_GRACE = 5.0    # seconds a cancelled command has to report its end (TERM, then KILL)


@functools.cache
def program_text() -> str:
    """The session program for `python -c`, compressed: a quarter of the bytes, and no quote
    or backslash for any login shell (fish reads backslashes inside single quotes)."""
    text = resources.files("saf.agents").joinpath("command_session.py").read_text()
    packed = base64.b64encode(zlib.compress(text.encode(), 9)).decode()
    return ('import base64,zlib;exec(compile(zlib.decompress(base64.b64decode('
            f'"{packed}")),"saf_command_session","exec"))')


def start_command(python: str) -> str:
    """The shell command that starts the session with the node's python, or with python3 where
    that one is missing, cannot be run or is too old (the program's exit status 3): the
    session needs no more than the standard library, and a venv named in the inventory may not
    be made yet. -S skips site-packages, which it does not need, and their start-up time. Under
    sh whatever the login shell; the program is in $p, so it is written once; no backslash
    anywhere (fish reads them inside single quotes)."""
    script = (f"p={quote(program_text())}\n"
              f'{program(python)} -S -c "$p"; rc=$?\n'
              'case $rc in 3|126|127) exec python3 -S -c "$p";; esac\n'
              "exit $rc")
    return "exec " + sh(script)


class _Command:
    """A command in flight: where its output goes, and its end."""

    def __init__(self, out: OutputCollector, err: OutputCollector) -> None:
        self.streams = {"o": out, "e": err}
        self.parts: dict[str, list[str]] = {"o": [], "e": []}
        self.sizes = {"o": 0, "e": 0}
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def add(self, frame: Out) -> None:
        parts = self.parts[frame.s]
        parts.append(frame.d)
        self.sizes[frame.s] += len(frame.d)
        # A line is joined from its parts up to what a stream keeps at all (KEEP_BYTES): a
        # node that never ends its line cannot grow saf's memory past that.
        if not frame.more or self.sizes[frame.s] >= KEEP_BYTES:
            self.streams[frame.s].add("".join(parts))
            parts.clear()
            self.sizes[frame.s] = 0

    def flush(self) -> None:
        for stream, parts in self.parts.items():
            if parts:
                self.streams[stream].add("".join(parts))
                parts.clear()
                self.sizes[stream] = 0


class Session:
    """The program running on one node, and the commands it runs for saf."""

    def __init__(self, node: str, process: RemoteProcess) -> None:
        self.node = node
        self.process = process
        self.gate = Gate()
        self.ids = itertools.count(1)
        self.commands: dict[int, _Command] = {}
        self.hello: asyncio.Future[Hello] = asyncio.get_running_loop().create_future()
        self.ended: str | None = None  # why the session is over, once it is
        self.reader = asyncio.create_task(self._read())

    @property
    def alive(self) -> bool:
        return self.ended is None

    async def _lines(self) -> None:
        """Each whole line (joined from its parts) to _frame; a line past MAX_FRAME is
        counted as bad and skipped to its end."""
        buffer: list[str] = []
        size = 0
        too_long = False
        while line := await self.process.readline():
            whole = line.endswith("\n")
            if not too_long:
                buffer.append(line)
                size += len(line)
                if size > MAX_FRAME:
                    too_long, buffer, size = True, [], 0
                    self.gate.count("too_long")
            if whole:
                if not too_long:
                    self._frame("".join(buffer))
                buffer, size, too_long = [], 0, False

    async def _read(self) -> None:
        try:
            await self._lines()
            self._end("the node's command session ended")
        except Exception as exc:  # noqa: BLE001 - any transport error ends the session
            self._end(f"the node's command session broke: {type(exc).__name__}")

    def _frame(self, line: str) -> None:
        frame = self.gate.read(line)
        if isinstance(frame, Hello):
            if not self.hello.done():
                self.hello.set_result(frame)
        elif isinstance(frame, Out):
            command = self.commands.get(frame.id)
            if command is not None:
                command.add(frame)
        elif isinstance(frame, Exit):
            command = self.commands.get(frame.id)
            if command is not None and not command.done.done():
                command.flush()
                command.done.set_result(frame.rc)

    def _end(self, why: str) -> None:
        self.ended = why
        if not self.hello.done():
            self.hello.set_exception(ConnectError(self.node, Failure.LOST, why))
        for command in self.commands.values():
            if not command.done.done():
                command.flush()
                command.done.set_exception(ConnectError(self.node, Failure.LOST, why))

    def _send(self, request: dict[str, object]) -> None:
        self.process.write(json.dumps(request, separators=(",", ":")) + "\n")

    async def run(self, command: str, out: OutputCollector, err: OutputCollector) -> int:
        """Run `command` in the session to its end: its exit status."""
        if not self.alive:
            raise ConnectError(self.node, Failure.LOST, self.ended or "")
        ident = next(self.ids)
        pending = self.commands[ident] = _Command(out, err)
        try:
            self._send({"op": "run", "id": ident, "cmd": command})
            return await asyncio.shield(pending.done)
        except asyncio.CancelledError:
            # Stop its process group and wait for its end, so nothing outlives the call.
            with contextlib.suppress(Exception):
                self._send({"op": "cancel", "id": ident})
                await within(asyncio.shield(pending.done), CANCEL_GRACE)
            raise
        finally:
            pending.done.add_done_callback(lambda done: done.cancelled() or done.exception())
            self.commands.pop(ident, None)

    async def close(self) -> None:
        """End the program (its stdin's end stops whatever it still runs)."""
        await self.process.stop()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


class SessionConnector(Connector):
    """A node's connector whose `run` goes through one command session (see the module)."""

    kind = "session"

    def __init__(self, inner: Connector, *,
                 on_fallback: Callable[[str], None] | None = None) -> None:
        super().__init__(inner.node)
        self.inner = inner
        self.on_fallback = on_fallback
        self.fallback: str | None = None  # why this node's commands take a channel each
        self._session: Session | None = None
        self._lock = asyncio.Lock()
        # Bad frames of the sessions that ended (a lost one is started again), by reason.
        self._ended_bad: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"SessionConnector({self.inner!r})"

    @property
    def connected(self) -> bool:
        return self.inner.connected

    @property
    def bad_frames(self) -> int:
        return sum(self.bad_by_reason.values())

    @property
    def bad_by_reason(self) -> dict[str, int]:
        """The frames the node's sessions sent that were not frames, by reason (a count,
        never their content), over every session of this connector."""
        total = Counter(self._ended_bad)
        if self._session is not None:
            total.update(self._session.gate.bad)
        return {reason: n for reason, n in sorted(total.items()) if n}

    async def _end(self, session: Session) -> None:
        self._ended_bad.update(session.gate.bad)
        await session.close()

    async def connect(self) -> None:
        await self.inner.connect()

    async def _open(self) -> Session | None:
        """The node's live session (started on first use, again after a lost one), or None
        when its python cannot run one."""
        async with self._lock:
            if self.fallback is not None:
                return None
            if self._session is not None and self._session.alive:
                return self._session
            if self._session is not None:
                await self._end(self._session)
                self._session = None
            process = await self.inner.start(start_command(self.node.python))
            session = Session(self.node.name, process)
            try:
                await within(asyncio.shield(session.hello), HELLO_TIMEOUT)
            except (ConnectError, TimeoutError):
                await self._end(session)
                if not self.inner.connected:
                    raise  # the connection, not the python: the caller's error
                said = (await process.stderr_text()).strip().splitlines()
                self._fall_back(said[-1] if said else "it never answered")
                return None
            except BaseException:
                await self._end(session)
                raise
            self._session = session
            return session

    def _fall_back(self, why: str) -> None:
        python = self.node.python
        tried = "python3" if python == "python3" else f"neither {python} nor python3"
        can = "cannot" if python == "python3" else "can"
        self.fallback = (f"{tried} on {self.node.name} {can} run saf's command session ({why}); "
                         "each of its commands runs on a channel of its own")
        if self.on_fallback is not None:
            self.on_fallback(self.fallback)

    async def _run(self, command: str, out: OutputCollector, err: OutputCollector,
                   input: str | None) -> tuple[int | None, str | None]:
        if input is None:
            session = await self._open()
            if session is not None:
                return await session.run(command, out, err), None
        return await self.inner._run(command, out, err, input)

    async def put(self, local: Path, remote: str, *, mode: int | None = None) -> None:
        await self.inner.put(local, remote, mode=mode)

    async def start(self, command: str, *, stdin: bool = True) -> RemoteProcess:
        return await self.inner.start(command, stdin=stdin)

    async def start_bytes(self, command: str) -> ByteProcess:
        return await self.inner.start_bytes(command)

    async def forward(self, remote_port: int, remote_host: str = "127.0.0.1") -> Forward:
        return await self.inner.forward(remote_port, remote_host)

    async def close(self) -> None:
        """End the session; the wrapped connector is its owner's (the fleet's) to close."""
        async with self._lock:
            session, self._session = self._session, None
        if session is not None:
            await self._end(session)


class CommandSessions:
    """Each node's command session, kept for every run that is given it: `saf up`'s plan
    and then its apply run through one session program per node, not one per run (each
    start is a python started on the node, 0.1-0.2 s before the first command). Whoever
    made it closes it; a run that is given it leaves it open."""

    def __init__(self) -> None:
        self._by_node: dict[str, SessionConnector] = {}
        self._warming: asyncio.Future[None] | None = None

    def of(self, plain: Connector) -> SessionConnector:
        """The session connector over the node's pooled connector `plain` (a fleet has one
        per node)."""
        found = self._by_node.get(plain.node.name)
        if found is None:
            found = self._by_node[plain.node.name] = SessionConnector(plain)
        return found

    def warm(self, plains: list[Connector]) -> None:
        """Start these nodes' sessions now, without waiting: a run's first command there
        waits for its node's start instead of making one. What fails here is met again, and
        said, by that command."""
        async def start() -> None:
            await asyncio.gather(*(self.of(plain)._open() for plain in plains),
                                 return_exceptions=True)

        self._warming = asyncio.ensure_future(start())

    def bad_frames(self) -> dict[str, dict[str, int]]:
        """Node -> the bad frames its sessions sent, by reason, for the nodes that sent any."""
        return {node: bad for node, session in self._by_node.items()
                if (bad := session.bad_by_reason)}

    async def close(self) -> None:
        """End every session (what they still run is stopped on the node)."""
        if self._warming is not None:
            self._warming.cancel()
            await asyncio.gather(self._warming, return_exceptions=True)
        sessions, self._by_node = list(self._by_node.values()), {}
        await asyncio.gather(*(session.close() for session in sessions),
                             return_exceptions=True)
