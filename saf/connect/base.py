"""The connector interface every transport implements, and what its calls return."""

from __future__ import annotations

import abc
import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from saf.deadline import within
from saf.inventory.model import Node

OutputCallback = Callable[[str, str], None]
"""Called with (stream, line) for each line as it arrives; stream is "stdout" or "stderr"."""

KEEP_BYTES = 4 * 1024 * 1024  # per stream; older lines are dropped past this


class CommandOutcome:
    """What every finished command offers: did it succeed, and its last words. Mixed into
    dataclasses that have exit_status, stdout and stderr."""

    exit_status: int | None
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def tail(self, lines: int = 10) -> list[str]:
        """The last lines of output, stderr's preferred when it has any."""
        text = self.stderr.strip() or self.stdout.strip()
        return text.splitlines()[-lines:]


@dataclass
class RunResult(CommandOutcome):
    node: str
    command: str
    exit_status: int | None
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    cancelled: bool = False
    signal: str | None = None


class OutputCollector:
    """Keeps a bounded copy of a stream's lines while passing each to a callback."""

    def __init__(self, stream: str, callback: OutputCallback | None) -> None:
        self.stream = stream
        self.callback = callback
        self.lines: deque[str] = deque()
        self.size = 0

    def add(self, line: str) -> None:
        line = line.rstrip("\r\n")
        self.lines.append(line)
        self.size += len(line) + 1
        while self.size > KEEP_BYTES and len(self.lines) > 1:
            self.size -= len(self.lines.popleft()) + 1
        if self.callback:
            self.callback(self.stream, line)

    def text(self) -> str:
        return "\n".join(self.lines) + ("\n" if self.lines else "")


async def pump_lines(readline: Callable[[], Awaitable[str | bytes]],
                     collector: OutputCollector) -> None:
    while True:
        line = await readline()
        if not line:
            return
        if isinstance(line, bytes):
            line = line.decode("utf-8", errors="replace")
        collector.add(line)


@dataclass
class Forward:
    """A local port that reaches a port on the node. Close it when done."""

    local_port: int
    remote_host: str
    remote_port: int
    _close: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)

    async def close(self) -> None:
        if self._close:
            await self._close()
            self._close = None


class NodeProcess(abc.ABC):
    """What every long-lived process on a node offers, whatever its streams carry: waiting
    for it, stopping it, and what it said on stderr."""

    @abc.abstractmethod
    async def wait(self) -> int | None:
        """Wait for the process to end; its exit status (None if killed by a signal)."""

    @abc.abstractmethod
    async def stop(self, grace: float = 3.0) -> None:
        """Close stdin (a well-behaved or guarded program then exits) and make sure it ends."""

    @abc.abstractmethod
    async def stderr_text(self) -> str:
        """Whatever the process wrote to stderr (read after it ended)."""


class RemoteProcess(NodeProcess):
    """A long-lived process on a node with its stdin and stdout as text streams."""

    @abc.abstractmethod
    async def readline(self) -> str:
        """The next line of stdout ('' at end of stream). A line longer than the transport's
        buffer may come in parts, each without its newline: the caller joins them (and
        decides how long is too long)."""

    @abc.abstractmethod
    def write(self, text: str) -> None: ...


class ByteProcess(NodeProcess):
    """A process on a node whose stdin and stdout carry bytes (e.g. rsync's protocol)."""

    @abc.abstractmethod
    async def read(self, size: int = 65536) -> bytes:
        """Up to `size` bytes of stdout (b'' at end of stream)."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Send to stdin, waiting while the channel's buffer is full."""

    @abc.abstractmethod
    def write_eof(self) -> None:
        """Close stdin."""


class Connector(abc.ABC):
    """How saf reaches one node. Implementations: SSH (asyncssh) and local (subprocess)."""

    kind: str = "?"

    def __init__(self, node: Node) -> None:
        self.node = node

    @property
    @abc.abstractmethod
    def connected(self) -> bool: ...

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection (no-op when open); raises ConnectError with a reason."""

    @abc.abstractmethod
    async def _run(self, command: str, out: OutputCollector, err: OutputCollector,
                   input: str | None) -> tuple[int | None, str | None]:
        """Run a guarded command to completion: (exit status, signal name)."""

    async def run(self, command: str, *, on_output: OutputCallback | None = None,
                  input: str | None = None, timeout: float | None = None) -> RunResult:  # noqa: ASYNC109 - stops the command, returns its output so far with timed_out set
        """Run `command` through the node's POSIX shell, stream its output line by line, and
        return its exit status. Cancelling the call (Ctrl-C) or a timeout stops the remote
        command and its children. `input` is handed to the command as its first stdin line."""
        await self.connect()
        out = OutputCollector("stdout", on_output)
        err = OutputCollector("stderr", on_output)
        started = time.monotonic()
        status: int | None = None
        signal: str | None = None
        timed_out = cancelled = False
        try:
            status, signal = await within(
                self._run(command, out, err, input), timeout)
        except TimeoutError:
            timed_out = True
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            duration = time.monotonic() - started
        return RunResult(self.node.name, command, status, out.text(), err.text(), duration,
                         timed_out=timed_out, cancelled=cancelled, signal=signal)

    @abc.abstractmethod
    async def put(self, local: Path, remote: str, *, mode: int | None = None) -> None:
        """Upload one file to `remote` (a path on the node; ~ is the user's home)."""

    @abc.abstractmethod
    async def start(self, command: str, *, stdin: bool = True) -> RemoteProcess:
        """Start a long-lived process. With stdin=True the program owns its stdin and must exit
        when it closes (saf's agent does); with stdin=False it is guarded like `run`."""

    async def start_bytes(self, command: str) -> ByteProcess:
        """Start `command` with binary stdin/stdout. Like start(stdin=True), the program owns
        its stdin and must exit when it closes (rsync --server does)."""
        raise NotImplementedError(f"the {self.kind} connector has no binary processes")

    @abc.abstractmethod
    async def forward(self, remote_port: int, remote_host: str = "127.0.0.1") -> Forward:
        """A local port on the operator's machine that reaches remote_host:remote_port as seen
        from the node."""

    @abc.abstractmethod
    async def close(self) -> None: ...
