"""The SSH connector (asyncssh): one pooled connection per node, many channels on it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import socket
import time
from collections import defaultdict, deque
from pathlib import Path

import asyncssh

from saf.connect import hostkeys
from saf.connect.backoff import Backoff
from saf.connect.base import (ByteProcess, Connector, Forward, OutputCollector, RemoteProcess,
                              pump_lines)
from saf.errors import ConnectError
from saf.inventory.model import Node
from saf.shell import guarded

# OpenSSH's MaxStartups (default 10:30:100) starts dropping connections that have not yet
# authenticated once ten are in flight to one server. saf keeps fewer handshakes than that in
# flight per host and retries the few that are dropped anyway.
HANDSHAKES_PER_HOST = 8
HANDSHAKE_RETRIES = 6
# OpenSSH's MaxSessions (default 10) caps the channels one connection may have open.
SESSIONS_PER_CONNECTION = 8
KEEPALIVE_INTERVAL = 15
KEEPALIVE_COUNT_MAX = 3

_handshake_gates: dict[tuple[str, int, int], asyncio.Semaphore] = defaultdict(
    lambda: asyncio.Semaphore(HANDSHAKES_PER_HOST))


def _gate(end: hostkeys.Endpoint) -> asyncio.Semaphore:
    # Semaphores belong to one event loop; tests and the CLI may run several loops in turn.
    loop = asyncio.get_running_loop()
    key = (end.host, end.port, id(loop))
    return _handshake_gates[key]


def _transient(exc: BaseException) -> bool:
    """A connection dropped before authentication, as MaxStartups does."""
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, asyncssh.ConnectionLost)):
        return True
    if isinstance(exc, asyncssh.DisconnectError):
        return "closed" in str(exc).lower() or "reset" in str(exc).lower()
    return False


def classify(node: Node, exc: BaseException) -> ConnectError:
    """Turn whatever connecting raised into a ConnectError with a short reason."""
    where = node.address
    if isinstance(exc, ConnectError):
        return exc
    if isinstance(exc, ConnectionRefusedError):
        return ConnectError(node.name, "refused", f"connection refused by {where}")
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return ConnectError(node.name, "timeout",
                            f"no answer from {where} within {node.connect_timeout:g} s")
    if isinstance(exc, asyncssh.PermissionDenied):
        return ConnectError(node.name, "auth", f"authentication failed for {where} "
                            "(no accepted key; `saf keys push` installs yours)")
    if isinstance(exc, socket.gaierror):
        return ConnectError(node.name, "dns", f"cannot resolve host {node.host!r}: "
                            f"{exc.strerror}")
    if _transient(exc):
        return ConnectError(node.name, "lost", f"connection to {where} dropped: {exc}")
    if isinstance(exc, OSError):
        return ConnectError(node.name, "unreachable", f"{where}: {exc.strerror or exc}")
    return ConnectError(node.name, "error", f"{where}: {exc}")


class _Client(asyncssh.SSHClient):
    def __init__(self, owner: SSHConnector) -> None:
        self.owner = owner

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._lost(exc)


STDERR_KEEP = 64 * 1024  # the last bytes of a long-lived process's stderr worth keeping


class SSHProcess(RemoteProcess):
    def __init__(self, process: asyncssh.SSHClientProcess, release: asyncio.Semaphore) -> None:
        self.process = process
        self._release = release
        self._released = False
        # stderr is read all along: unread, it would fill the channel's window and stall the
        # program, and asyncssh drops what is left unread once the channel closes.
        self._stderr: deque[str | bytes] = deque()
        self._stderr_size = 0
        self._stderr_task = asyncio.create_task(self._collect_stderr())

    async def _collect_stderr(self) -> None:
        with contextlib.suppress(asyncssh.Error, OSError, asyncio.IncompleteReadError):
            while chunk := await self.process.stderr.read(8192):
                self._stderr.append(chunk)
                self._stderr_size += len(chunk)
                while self._stderr_size > STDERR_KEEP and len(self._stderr) > 1:
                    self._stderr_size -= len(self._stderr.popleft())

    def _done(self) -> None:
        if not self._released:
            self._released = True
            self._release.release()

    async def readline(self) -> str:
        try:
            return await self.process.stdout.readline()
        except (asyncssh.Error, OSError, asyncio.IncompleteReadError):
            return ""

    def write(self, text: str) -> None:
        self.process.stdin.write(text)

    async def wait(self) -> int | None:
        try:
            result = await self.process.wait()
        finally:
            self._done()
        return result.exit_status if result.exit_status is not None and \
            result.exit_status >= 0 else None

    async def stop(self, grace: float = 3.0) -> None:
        with contextlib.suppress(Exception):
            self.process.stdin.write_eof()
        try:
            await asyncio.wait_for(self.process.wait_closed(), grace)
        except (asyncio.TimeoutError, TimeoutError, asyncssh.Error, OSError):
            with contextlib.suppress(Exception):
                self.process.terminate()
            self.process.close()
        finally:
            self._done()

    async def stderr_text(self) -> str:
        """What the process wrote to stderr (its last 64 KiB), once the stream has ended or
        a second has passed."""
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._stderr_task), 1.0)
        parts = [p.decode("utf-8", errors="replace") if isinstance(p, bytes) else p
                 for p in self._stderr]
        return "".join(parts)


class SSHByteProcess(SSHProcess, ByteProcess):
    """A process opened without an encoding: its streams carry bytes."""

    async def read(self, size: int = 65536) -> bytes:
        try:
            return await self.process.stdout.read(size)
        except (asyncssh.Error, OSError):
            return b""

    async def write(self, data: bytes) -> None:  # type: ignore[override]
        self.process.stdin.write(data)
        await self.process.stdin.drain()

    def write_eof(self) -> None:
        with contextlib.suppress(Exception):
            self.process.stdin.write_eof()



class SSHConnector(Connector):
    kind = "ssh"

    def __init__(self, node: Node, *, password: str | None = None,
                 client_keys: list[str] | None = None,
                 via: asyncssh.SSHClientConnection | None = None,
                 extra_options: dict | None = None) -> None:
        super().__init__(node)
        self._extra = dict(extra_options or {})  # more asyncssh options, applied last
        self._password = password
        self._client_keys = client_keys
        self._via = via  # an open connection to tunnel through (a ProxyJump hop)
        # After a failed connect, the next attempt waits: callers that loop (the agent link)
        # back off without each writing its own timer.
        self._backoff = Backoff(initial=0.5, maximum=30.0)
        self._retry_at = 0.0
        self._jumps: list[SSHConnector] = []
        self._conn: asyncssh.SSHClientConnection | None = None
        self._connecting: asyncio.Lock | None = None
        self._sessions: asyncio.Semaphore | None = None
        self.lost_reason: str | None = None

    def __repr__(self) -> str:  # never shows the password
        return f"SSHConnector({self.node.name!r})"

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def _lost(self, exc: Exception | None) -> None:
        self._conn = None
        self.lost_reason = str(exc) if exc else "closed"

    async def _connect_jumps(self, spec: str) -> asyncssh.SSHClientConnection:
        """Connect through ProxyJump hops ourselves, so each hop's host key is checked against
        the same known_hosts and uses the same keys as the node itself."""
        for stale in self._jumps:  # from before a lost connection
            await stale.close()
        self._jumps.clear()
        previous: SSHConnector | None = None
        for hop in spec.split(","):
            user, _, hostport = hop.strip().rpartition("@")
            host, _, port = hostport.partition(":")
            hop_node = dataclasses.replace(
                self.node, name=f"{self.node.name} (via jump host {hop.strip()})", host=host,
                port=int(port) if port.isdigit() else None, user=user or None)
            connector = SSHConnector(hop_node, client_keys=self._client_keys,
                                     via=previous._conn if previous else None)
            await connector.connect()
            self._jumps.append(connector)
            previous = connector
        assert previous is not None and previous._conn is not None
        return previous._conn

    def _options(self, tunnel: asyncssh.SSHClientConnection | None = None) -> dict:
        node = self.node
        opts: dict = dict(
            host=node.host, config=hostkeys.config_paths(node),
            connect_timeout=node.connect_timeout,
            keepalive_interval=KEEPALIVE_INTERVAL, keepalive_count_max=KEEPALIVE_COUNT_MAX,
        )
        if node.port:
            opts["port"] = node.port
        if node.user:
            opts["username"] = node.user
        if node.known_hosts:
            opts["known_hosts"] = os.path.expanduser(node.known_hosts)
        if self._client_keys is not None:
            opts["client_keys"] = self._client_keys
        elif node.identity:
            opts["client_keys"] = [os.path.expanduser(node.identity)]
        if tunnel is not None or self._via is not None:
            opts["tunnel"] = tunnel or self._via
        if self._password is not None:
            opts["password"] = self._password
            opts.setdefault("client_keys", None)
            opts["agent_path"] = None
        opts.update(self._extra)
        return opts

    async def connect(self) -> None:
        if self._conn is not None:
            return
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._conn is not None:
                return
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                await self._connect_now()
            except BaseException:
                self._retry_at = time.monotonic() + self._backoff.next()
                raise
            self._backoff.reset()
            self._retry_at = 0.0

    async def _connect_now(self) -> None:
        end = hostkeys.resolve(self.node)
        tunnel = None
        if end.jump and self._via is None:
            tunnel = await self._connect_jumps(end.jump)
        delay = 0.2
        for attempt in range(HANDSHAKE_RETRIES + 1):
            try:
                async with _gate(end):
                    conn, _ = await asyncssh.create_connection(
                        lambda: _Client(self), **self._options(tunnel))
                break
            except asyncssh.HostKeyNotVerifiable:
                raise await hostkeys.diagnose(self.node) from None
            except Exception as exc:  # noqa: BLE001 - classified below
                if _transient(exc) and attempt < HANDSHAKE_RETRIES:
                    await asyncio.sleep(delay * (1 + random.random()))
                    delay = min(delay * 2, 3.0)
                    continue
                raise classify(self.node, exc) from None
        self._conn = conn
        self.lost_reason = None
        self._sessions = asyncio.Semaphore(SESSIONS_PER_CONNECTION)

    async def _open(self, command: str, *, binary: bool = False,
                    ) -> tuple[asyncssh.SSHClientProcess, asyncio.Semaphore]:
        await self.connect()
        assert self._conn is not None and self._sessions is not None
        sessions = self._sessions
        await sessions.acquire()
        try:
            process = await self._conn.create_process(
                command, encoding=None if binary else "utf-8", errors="replace")
        except BaseException as exc:
            sessions.release()
            if isinstance(exc, (asyncssh.Error, OSError)):
                raise classify(self.node, exc) from None
            raise
        return process, sessions

    async def _run(self, command: str, out: OutputCollector, err: OutputCollector,
                   input: str | None) -> tuple[int | None, str | None]:
        process, sessions = await self._open(guarded(command, feed_first_line=input is not None))
        finished = False
        try:
            if input is not None:
                process.stdin.write(input.rstrip("\n") + "\n")
            await asyncio.gather(pump_lines(process.stdout.readline, out),
                                 pump_lines(process.stderr.readline, err))
            result = await process.wait()
            finished = True
            if result.exit_signal:
                return None, result.exit_signal[0]
            return result.exit_status, None
        except (asyncssh.Error, OSError) as exc:
            raise classify(self.node, exc) from None
        finally:
            if not finished:
                # Closing stdin makes the guard kill the remote process group.
                await asyncio.shield(self._abandon(process))
            sessions.release()

    @staticmethod
    async def _abandon(process: asyncssh.SSHClientProcess) -> None:
        with contextlib.suppress(Exception):
            process.stdin.write_eof()
        try:
            await asyncio.wait_for(process.wait_closed(), 3.0)
        except Exception:  # noqa: BLE001 - best effort; the guard has already fired
            process.close()

    async def put(self, local: Path, remote: str, *, mode: int | None = None) -> None:
        await self.connect()
        assert self._conn is not None
        path = remote[2:] if remote.startswith("~/") else remote
        part = path + ".saf-part"
        try:
            async with self._conn.start_sftp_client() as sftp:
                parent = path.rsplit("/", 1)[0] if "/" in path else ""
                if parent:
                    await sftp.makedirs(parent, exist_ok=True)
                await sftp.put(str(local), part)
                if mode is not None:
                    await sftp.chmod(part, mode)
                await sftp.posix_rename(part, path)
        except (asyncssh.Error, OSError) as exc:
            raise classify(self.node, exc) from None

    async def start(self, command: str, *, stdin: bool = True) -> RemoteProcess:
        process, sessions = await self._open(command if stdin else guarded(command))
        return SSHProcess(process, sessions)

    async def start_bytes(self, command: str) -> ByteProcess:
        process, sessions = await self._open(command, binary=True)
        return SSHByteProcess(process, sessions)

    async def forward(self, remote_port: int, remote_host: str = "127.0.0.1") -> Forward:
        await self.connect()
        assert self._conn is not None
        try:
            listener = await self._conn.forward_local_port("127.0.0.1", 0, remote_host,
                                                           remote_port)
        except (asyncssh.Error, OSError) as exc:
            raise classify(self.node, exc) from None

        async def close() -> None:
            listener.close()
            with contextlib.suppress(Exception):
                await listener.wait_closed()

        return Forward(listener.get_port(), remote_host, remote_port, close)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 3.0)
        for jump in reversed(self._jumps):
            await jump.close()
        self._jumps.clear()
