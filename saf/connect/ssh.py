"""The SSH connector (asyncssh): one pooled connection per node, many channels on it."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
from collections import deque
from pathlib import Path
from typing import Any, AnyStr, Generic

import asyncssh

from saf.connect import hostkeys, jumps
from saf.connect.base import (
    ByteProcess,
    Connector,
    Forward,
    NodeProcess,
    OutputCollector,
    RemoteProcess,
    pump_lines,
)
from saf.connect.failures import classify
from saf.connect.handshakes import SHARED, HandshakeGate
from saf.deadline import within
from saf.errors import ConnectError, Failure
from saf.inventory.model import Node
from saf.shell import guarded

# OpenSSH's MaxSessions (default 10) caps the channels one connection may have open.
SESSIONS_PER_CONNECTION = 8
KEEPALIVE_INTERVAL = 15
KEEPALIVE_COUNT_MAX = 3
# The nodes whose connection this task is dialling, outermost first: a ProxyJump of the
# OpenSSH config that leads back to one of them would wait on itself for ever.
_DIALLING: contextvars.ContextVar[tuple[Node, ...]] = contextvars.ContextVar(
    "saf_dialling", default=())


class _Client(asyncssh.SSHClient):
    def __init__(self, owner: SSHConnector) -> None:
        self.owner = owner

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._lost(exc)


STDERR_KEEP = 64 * 1024  # the last bytes of a long-lived process's stderr worth keeping


class SSHChannelProcess(NodeProcess, Generic[AnyStr]):
    """A process on an SSH channel; what text (AnyStr str) and byte (bytes) processes share.
    Holds one of the connection's session slots until it ends."""

    def __init__(self, process: asyncssh.SSHClientProcess[AnyStr],
                 release: asyncio.Semaphore) -> None:
        self.process: asyncssh.SSHClientProcess[AnyStr] = process
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
            await within(self.process.wait_closed(), grace)
        except (TimeoutError, asyncssh.Error, OSError):
            with contextlib.suppress(Exception):
                self.process.terminate()
            self.process.close()
        finally:
            self._done()

    async def stderr_text(self) -> str:
        """What the process wrote to stderr (its last 64 KiB), once the stream has ended or
        a second has passed."""
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
            await within(asyncio.shield(self._stderr_task), 1.0)
        parts = [p.decode("utf-8", errors="replace") if isinstance(p, bytes) else p
                 for p in self._stderr]
        return "".join(parts)


class SSHProcess(SSHChannelProcess[str], RemoteProcess):
    async def readline(self) -> str:
        try:
            return await self.process.stdout.readline()
        except (asyncssh.Error, OSError, asyncio.IncompleteReadError):
            return ""

    def write(self, text: str) -> None:
        self.process.stdin.write(text)


class SSHByteProcess(SSHChannelProcess[bytes], ByteProcess):
    """A process opened without an encoding: its streams carry bytes."""

    async def read(self, size: int = 65536) -> bytes:
        try:
            return await self.process.stdout.read(size)
        except (asyncssh.Error, OSError):
            return b""

    async def write(self, data: bytes) -> None:
        self.process.stdin.write(data)
        await self.process.stdin.drain()

    def write_eof(self) -> None:
        with contextlib.suppress(Exception):
            self.process.stdin.write_eof()



class SSHConnector(Connector):
    kind = "ssh"

    def __init__(self, node: Node, *, password: str | None = None,
                 client_keys: list[str] | None = None,
                 extra_options: dict[str, Any] | None = None,
                 handshakes: HandshakeGate = SHARED,
                 pool: jumps.Jumps | None = None) -> None:
        super().__init__(node)
        self._extra = dict(extra_options or {})  # more asyncssh options, applied last
        self._password = password
        self._client_keys = client_keys
        self._handshakes = handshakes
        # The jump hosts' connections: the fleet's pool, shared by every node behind the same
        # jump host; without a fleet (saf keys push), this connector's own.
        self._own_jumps = pool is None
        self._jumps = pool or _private_pool(client_keys, handshakes)
        self._conn: asyncssh.SSHClientConnection | None = None
        # The attempt in flight: callers that ask meanwhile share it, and its outcome.
        self._attempt: asyncio.Task[None] | None = None
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

    def _options(self, tunnel: asyncssh.SSHClientConnection | None = None,
                 known: asyncssh.SSHKnownHosts | None = None) -> dict[str, Any]:
        node = self.node
        opts: dict[str, Any] = dict(  # asyncssh.connect's keyword arguments
            host=node.host, config=hostkeys.config_paths(node),
            connect_timeout=node.connect_timeout,
            keepalive_interval=KEEPALIVE_INTERVAL, keepalive_count_max=KEEPALIVE_COUNT_MAX,
        )
        if node.port:
            opts["port"] = node.port
        if node.user:
            opts["username"] = node.user
        if known is not None:
            opts["known_hosts"] = known
        elif node.known_hosts:
            opts["known_hosts"] = os.path.expanduser(node.known_hosts)
        if self._client_keys is not None:
            opts["client_keys"] = self._client_keys
        elif node.identity:
            opts["client_keys"] = [os.path.expanduser(node.identity)]
        # Always said: left out, asyncssh would follow the OpenSSH config's ProxyJump itself,
        # and that hop's host key would be checked against its defaults, not saf's.
        opts["tunnel"] = tunnel
        if self._password is not None:
            opts["password"] = self._password
            opts.setdefault("client_keys", None)
            opts["agent_path"] = None
        opts.update(self._extra)
        return opts

    async def connect(self) -> None:
        """Try once to connect (callers that ask while a try is in flight share it). Waiting
        between tries is the caller's: it is the one that shows when the next one is."""
        if self._conn is not None:
            return
        if self._attempt is None or self._attempt.done():
            self._attempt = asyncio.create_task(self._connect_now())
            # Retrieved here too, so an attempt whose callers were all cancelled is quiet.
            self._attempt.add_done_callback(
                lambda task: task.cancelled() or task.exception())
        await asyncio.shield(self._attempt)

    async def connection(self) -> asyncssh.SSHClientConnection:
        """The open connection (connecting first if need be): a jump host's, to tunnel
        through."""
        await self.connect()
        assert self._conn is not None
        return self._conn

    async def _tunnel(self) -> tuple[asyncssh.SSHClientConnection | None, Node | None]:
        """The connection to the node's last jump host (and that host), or (None, None)."""
        hops = jumps.hops_of(self.node)
        if not hops:
            return None, None
        dialling = _DIALLING.get() + (self.node,)
        ring = next((hop for hop in hops if hop in dialling), None)
        if ring is not None:
            names = " -> ".join(n.name for n in dialling[dialling.index(ring):])
            raise ConnectError(self.node.name, Failure.CONFIG, "the ProxyJump of its OpenSSH "
                               f"config goes round in a ring ({names} -> {ring.name})")
        _DIALLING.set(dialling)  # this attempt's own task: the hops' attempts inherit it
        try:
            return await self._jumps.tunnel(hops), hops[-1]
        except jumps.JumpFailed as failed:
            raise jumps.failure(self.node, failed) from None

    async def _connect_now(self) -> None:
        known = await self._check_local_files()
        end = hostkeys.resolve(self.node)
        tunnel, last_hop = await self._tunnel()
        try:
            conn, _ = await self._handshakes.dial(
                end.host, end.port,
                lambda: asyncssh.create_connection(lambda: _Client(self),
                                                   **self._options(tunnel, known)))
        except asyncssh.HostKeyNotVerifiable:
            raise await hostkeys.diagnose(self.node, tunnel) from None
        except asyncssh.ChannelOpenError as exc:
            # Only a tunnel opens a channel to dial: the jump host could not reach the node.
            hop = last_hop.name if last_hop else "?"
            raise ConnectError(self.node.name, Failure.UNREACHABLE,
                               f"jump host {hop} cannot reach {self.node.address}: "
                               f"{exc.reason}") from None
        except Exception as exc:  # noqa: BLE001 - classified by type, code and errno
            raise classify(self.node, exc) from None
        self._conn = conn
        self.lost_reason = None
        self._sessions = asyncio.Semaphore(SESSIONS_PER_CONNECTION)

    async def _check_local_files(self) -> asyncssh.SSHKnownHosts | None:
        """The files the inventory names must be usable before any dial: asyncssh would say
        only 'No such file or directory' or 'Is a directory', not which file. Returns the
        inventory's known_hosts parsed (hostkeys.parsed: once for every node that shares it),
        or None where the inventory names none."""
        node = self.node
        # In a thread: a home folder on a network filesystem can hang a stat.
        problem, known = await asyncio.to_thread(_local_files, node, self._client_keys is None)
        if problem is _NO_KNOWN_HOSTS:
            # A new cluster's own known_hosts: the same answer as an unknown key.
            raise await hostkeys.diagnose(node)
        if problem is not None:
            raise ConnectError(node.name, Failure.CONFIG, problem)
        return known

    async def _open(self, command: str, *, binary: bool = False,
                    ) -> tuple[asyncssh.SSHClientProcess[Any], asyncio.Semaphore]:
        await self.connect()
        assert self._conn is not None
        assert self._sessions is not None
        sessions = self._sessions
        await sessions.acquire()
        opening = asyncio.ensure_future(self._conn.create_process(
            command, encoding=None if binary else "utf-8", errors="replace"))
        try:
            process = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The command may already be running on the node (the exec request went out):
            # let the opening finish and close what it started, so a caller cancelled at this
            # moment (saf stopping while an agent starts) leaves no process behind.
            opening.add_done_callback(_close_opened)
            sessions.release()
            raise
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
    async def _abandon(process: asyncssh.SSHClientProcess[Any]) -> None:
        with contextlib.suppress(Exception):
            process.stdin.write_eof()
        try:
            await within(process.wait_closed(), 3.0)
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
        attempt, self._attempt = self._attempt, None
        if attempt is not None and not attempt.done():
            attempt.cancel()
            await asyncio.wait([attempt])  # its end, without raising its error here
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await within(conn.wait_closed(), 3.0)
        if self._own_jumps:
            await self._jumps.close()


def _private_pool(client_keys: list[str] | None, handshakes: HandshakeGate) -> jumps.Jumps:
    """A pool for one connector's hops; the hops share it, so a chain of them opens each
    hop once."""
    def make(hop: Node) -> SSHConnector:
        return SSHConnector(hop, client_keys=client_keys, handshakes=handshakes, pool=pool)
    pool = jumps.Jumps(make)
    return pool


_NO_KNOWN_HOSTS = "no known_hosts file"


def _local_files_problem(node: Node, check_identity: bool) -> str | None:
    """What is wrong with the local files `node` names (its identity when `check_identity`,
    its known_hosts), _NO_KNOWN_HOSTS when its known_hosts does not exist yet, or None."""
    if check_identity and node.identity:
        path = Path(node.identity).expanduser()
        if not path.is_file():
            why = "is a directory" if path.is_dir() else "does not exist"
            return f"identity file {path} {why} (the inventory's identity)"
    if node.known_hosts:
        path = Path(node.known_hosts).expanduser()
        if path.is_dir():
            return f"known_hosts {path} is a directory, not a file"
        if not path.exists():
            return _NO_KNOWN_HOSTS
    return None


def _local_files(node: Node, check_identity: bool,
                 ) -> tuple[str | None, asyncssh.SSHKnownHosts | None]:
    """`_local_files_problem`, and the node's known_hosts parsed when there is none."""
    problem = _local_files_problem(node, check_identity)
    if problem is not None or not node.known_hosts:
        return problem, None
    path = os.path.expanduser(node.known_hosts)
    try:
        return None, hostkeys.parsed(path)
    except FileNotFoundError:  # removed since the check: as if it never was
        return _NO_KNOWN_HOSTS, None
    except (OSError, ValueError) as exc:  # unreadable: asyncssh's own answer would be vaguer
        return f"cannot read known_hosts {path}: {exc}", None


def _close_opened(opening: asyncio.Future[asyncssh.SSHClientProcess[Any]]) -> None:
    """Close a process whose opener was cancelled: its stdin's EOF ends the remote command
    (saf's agent, or the guard around any other command)."""
    if opening.cancelled() or opening.exception() is not None:
        return
    process = opening.result()
    with contextlib.suppress(Exception):
        process.stdin.write_eof()
    process.close()
