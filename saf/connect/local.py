"""The local connector: a node that is the operator's own machine, reached by subprocess."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import shutil
import signal
from pathlib import Path

from saf.connect.base import (
    ByteProcess,
    Connector,
    Forward,
    NodeProcess,
    OutputCollector,
    RemoteProcess,
    pump_lines,
)
from saf.deadline import within
from saf.shell import guarded


async def _end_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    """Stop a process started in its own session: it and all its children."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await within(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


def _status(code: int | None) -> tuple[int | None, str | None]:
    if code is not None and code < 0:
        return None, signal.Signals(-code).name
    return code, None


class LocalChild(NodeProcess):
    """A subprocess in its own session; what text and byte processes share."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def wait(self) -> int | None:
        return _status(await self.proc.wait())[0]

    async def stop(self, grace: float = 3.0) -> None:
        if self.proc.stdin and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await within(self.proc.wait(), grace)
        except TimeoutError:
            await _end_group(self.proc, grace)

    async def stderr_text(self) -> str:
        assert self.proc.stderr
        return (await self.proc.stderr.read()).decode("utf-8", errors="replace")


class LocalProcess(LocalChild, RemoteProcess):
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        super().__init__(proc)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    async def readline(self) -> str:
        """The next line; a line longer than the stream's buffer comes in parts (each without
        a newline), as asyncssh gives it, so the caller decides what a long line is."""
        assert self.proc.stdout
        try:
            data = await self.proc.stdout.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            data = exc.partial  # the end of the stream
        except asyncio.LimitOverrunError as exc:
            data = await self.proc.stdout.readexactly(exc.consumed)  # a part of a long line
        return self._decoder.decode(data, final=not data)

    def write(self, text: str) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(text.encode())


class LocalByteProcess(LocalChild, ByteProcess):
    async def read(self, size: int = 65536) -> bytes:
        assert self.proc.stdout
        return await self.proc.stdout.read(size)

    async def write(self, data: bytes) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()

    def write_eof(self) -> None:
        if self.proc.stdin and not self.proc.stdin.is_closing():
            self.proc.stdin.close()


def _put_file(local: Path, remote: str, mode: int | None) -> None:
    """Copy `local` to `remote` (a path on this machine, ~ allowed) under a temporary name,
    then rename it into place: a reader never sees half a file."""
    target = Path(os.path.expanduser(remote))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".saf-part")
    shutil.copyfile(local, tmp)
    if mode is not None:
        tmp.chmod(mode)
    tmp.replace(target)


class LocalConnector(Connector):
    kind = "local"

    @property
    def connected(self) -> bool:
        return True

    async def connect(self) -> None:
        return None

    async def _spawn(self, command: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", command, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            cwd=os.path.expanduser("~"))  # noqa: ASYNC240 - reads $HOME, touches no disk

    async def _run(self, command: str, out: OutputCollector, err: OutputCollector,
                   input: str | None) -> tuple[int | None, str | None]:
        proc = await self._spawn(guarded(command, feed_first_line=input is not None))
        assert proc.stdin
        assert proc.stdout
        assert proc.stderr
        try:
            if input is not None:
                proc.stdin.write(input.rstrip("\n").encode() + b"\n")
            await asyncio.gather(pump_lines(proc.stdout.readline, out),
                                 pump_lines(proc.stderr.readline, err))
            return _status(await proc.wait())
        finally:
            if proc.returncode is None:
                proc.stdin.close()
                await asyncio.shield(_end_group(proc, 2.0))

    async def put(self, local: Path, remote: str, *, mode: int | None = None) -> None:
        await asyncio.to_thread(_put_file, local, remote, mode)

    async def start(self, command: str, *, stdin: bool = True) -> RemoteProcess:
        return LocalProcess(await self._spawn(command if stdin else guarded(command)))

    async def start_bytes(self, command: str) -> ByteProcess:
        return LocalByteProcess(await self._spawn(command))

    async def forward(self, remote_port: int, remote_host: str = "127.0.0.1") -> Forward:
        # The node is this machine: its ports are already ours.
        return Forward(remote_port, remote_host, remote_port)

    async def close(self) -> None:
        return None
