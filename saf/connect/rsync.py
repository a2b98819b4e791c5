"""Local rsync talking to `rsync --server` on a node over saf's own connection to it.

saf listens on a private UNIX socket (mode 0600, in a 0700 temporary folder) and runs local
rsync with `-e "<python> rsync_shim.py SOCKET"`. The shim bridges rsync's remote-shell stdin and
stdout to the socket; saf bridges the socket to the remote command started with the connector's
`start_bytes`. So rsync's delta transfer rides the SSH connection saf already holds: no second
login, no ssh binary, the same host-key checks and keys, and it works the same on a LocalConnector.

Write the node's side of a transfer as `remote(path)`; with `-s` (which `run_rsync` always
passes) paths travel inside rsync's protocol, so spaces and quotes in them need no quoting, and a
relative path is relative to the login folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saf.connect.base import ByteProcess, CommandOutcome, Connector
from saf.deadline import within
from saf.shell import quote

SHIM = Path(__file__).with_name("rsync_shim.py")
CHUNK = 1 << 16
HOST = "saf"  # what rsync believes the node is called; the shim ignores it


def local_rsync() -> str | None:
    """The local rsync program, if there is one."""
    return shutil.which("rsync")


def remote(path: str) -> str:
    """The node's side of a transfer, as rsync's command line wants it."""
    return f"{HOST}:{path}"


@dataclass
class RsyncResult(CommandOutcome):
    exit_status: int | None  # local rsync's
    stdout: str
    stderr: str  # local rsync's, then the node's rsync's
    remote_status: int | None = None

    def bytes_sent(self) -> int | None:
        """From --stats: the bytes local rsync put on the wire."""
        found = re.search(r"^Total bytes sent: ([\d,.]+)", self.stdout, re.M)
        return int(re.sub(r"\D", "", found.group(1))) if found else None


class _Bridge:
    """Carries one rsync connection between the UNIX socket and the node."""

    def __init__(self, conn: Connector) -> None:
        self.conn = conn
        self.tasks: list[asyncio.Task[Any]] = []
        self.remote_status: int | None = None
        self.remote_stderr = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.append(task)
        proc: ByteProcess | None = None
        try:
            if len(self.tasks) > 1:  # rsync opens one connection; refuse anything else
                return
            words = json.loads(await reader.readline())
            # Joined with spaces for the node's shell, as ssh does with its arguments.
            proc = await self.conn.start_bytes(" ".join(str(w) for w in words))
            await asyncio.gather(self._up(reader, proc), self._down(proc, writer))
            self.remote_status = await proc.wait()
            self.remote_stderr = await proc.stderr_text()
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            self.remote_stderr += f"saf: rsync bridge: {exc}\n"
        finally:
            if proc is not None:
                await asyncio.shield(proc.stop(2.0))
            writer.close()

    @staticmethod
    async def _up(reader: asyncio.StreamReader, proc: ByteProcess) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(CHUNK):
                await proc.write(data)
        proc.write_eof()

    @staticmethod
    async def _down(proc: ByteProcess, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await proc.read(CHUNK):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()


async def run_rsync(conn: Connector, args: list[str], *,
                    program: str | None = None) -> RsyncResult:
    """Run local rsync with `args` (plus -s), its remote side reached through `conn`.
    Cancelling stops local rsync, the bridge and the node's rsync."""
    program = program or local_rsync()
    if program is None:
        raise FileNotFoundError("rsync is not installed here")
    folder = tempfile.mkdtemp(prefix="saf-rsync-")  # 0700: only this user reaches the socket
    path = os.path.join(folder, "rsync.sock")
    bridge = _Bridge(conn)
    server = await asyncio.start_unix_server(bridge.handle, path=path)
    proc: asyncio.subprocess.Process | None = None
    try:
        os.chmod(path, 0o600)
        shim = " ".join(quote(p) for p in (sys.executable, str(SHIM), path))
        proc = await asyncio.create_subprocess_exec(
            program, "-s", "-e", shim, *args, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, env={**os.environ, "LC_ALL": "C"})
        out, err = await proc.communicate()
        # The bridge ends right after the node's rsync does; wait for its exit status.
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
            await within(asyncio.gather(*bridge.tasks, return_exceptions=True), 5)
        stderr = err.decode("utf-8", errors="replace")
        if bridge.remote_stderr.strip():
            stderr += bridge.remote_stderr
        return RsyncResult(proc.returncode, out.decode("utf-8", errors="replace"), stderr,
                           bridge.remote_status)
    finally:
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.shield(proc.wait())
        server.close()
        for task in bridge.tasks:
            task.cancel()
        if bridge.tasks:
            await asyncio.gather(*bridge.tasks, return_exceptions=True)
        shutil.rmtree(folder, ignore_errors=True)
