"""An SSH server (asyncssh's) that makes a folder on this machine look like a node.

Commands run as the current user under /bin/sh with HOME set to the node's folder; SFTP paths
are relative to it; port forwards may reach loopback and the address the server listens on
(the node's own: Ray's dashboard listens on the head's cluster address, and saf reaches it
through a forward to there, as OpenSSH's sshd allows). Used by `saf demo` and the tests.
Every command runs in its own process group, which is killed when its channel closes or the
server stops, so nothing outlives the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import hmac
import os
import posixpath
import signal
from pathlib import Path

import asyncssh

from saf.deadline import within

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class _HomeSFTP(asyncssh.SFTPServer):
    """SFTP whose relative paths start in the node's home rather than saf's cwd."""

    home: bytes = b"."

    def map_path(self, path: bytes) -> bytes:
        return path if path.startswith(b"/") else posixpath.join(self.home, path)


class NodeServer:
    def __init__(self, name: str, home: Path, *, host: str = "127.0.0.1", port: int = 0,
                 host_key: asyncssh.SSHKey | None = None,
                 authorized_keys: list[asyncssh.SSHKey] | None = None,
                 password: str | None = None, username: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.home = Path(home)
        self.host = host
        self.port = port
        self.host_key = host_key or asyncssh.generate_private_key("ssh-ed25519")
        self.extra_keys = list(authorized_keys or [])
        self._password = password
        self.username = username or getpass.getuser()
        self.env = env or {}
        self._server: asyncssh.SSHAcceptor | None = None
        self._children: set[asyncio.subprocess.Process] = set()
        self._groups: set[int] = set()  # process groups started, killed on stop()
        self._conns: set[asyncssh.SSHServerConnection] = set()

    def __repr__(self) -> str:
        return f"NodeServer({self.name!r}, port={self.port})"

    # -- authentication -------------------------------------------------------------------
    def _authorized(self) -> list[asyncssh.SSHKey]:
        keys = list(self.extra_keys)
        path = self.home / ".ssh" / "authorized_keys"
        if path.is_file():
            for line in path.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    with contextlib.suppress(asyncssh.KeyImportError):
                        keys.append(asyncssh.import_public_key(line))
        return keys

    def _server_factory(self) -> asyncssh.SSHServer:
        owner = self

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                self.conn = conn
                owner._conns.add(conn)

            def connection_lost(self, exc: Exception | None) -> None:
                owner._conns.discard(self.conn)

            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return owner._password is not None

            def validate_password(self, username: str, password: str) -> bool:
                return (username == owner.username and owner._password is not None
                        and hmac.compare_digest(password.encode(), owner._password.encode()))

            def public_key_auth_supported(self) -> bool:
                return True

            def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
                if username != owner.username:
                    return False
                data = key.public_data
                return any(k.public_data == data for k in owner._authorized())

            def connection_requested(self, dest_host: str, dest_port: int, orig_host: str,
                                     orig_port: int) -> bool:
                return dest_host in LOOPBACK or dest_host == owner.host

        return Server()

    def _sftp_factory(self, chan: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
        server = _HomeSFTP(chan)
        server.home = os.fsencode(self.home)
        return server

    # -- commands -------------------------------------------------------------------------
    async def _handle(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        command = process.command
        if not command:
            process.stderr.write(b"this saf demo node has no interactive shell\n")
            process.exit(1)
            return
        env = {**os.environ, **self.env, "HOME": str(self.home), "USER": self.username,
               "SAF_NODE": self.name}
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", command, cwd=self.home, env=env, start_new_session=True,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        self._children.add(proc)
        self._groups.add(proc.pid)
        feeder = asyncio.create_task(self._feed(process, proc))
        try:
            await asyncio.gather(self._copy(proc.stdout, process.stdout),
                                 self._copy(proc.stderr, process.stderr))
            code = await proc.wait()
            if code < 0:
                process.exit_with_signal(signal.Signals(-code).name.removeprefix("SIG"))
            else:
                process.exit(code)
        except (asyncssh.Error, OSError, asyncio.CancelledError):
            pass
        finally:
            feeder.cancel()
            await _kill_group(proc)
            self._children.discard(proc)

    @staticmethod
    async def _copy(source: asyncio.StreamReader | None,
                    target: asyncssh.SSHWriter[bytes]) -> None:
        assert source is not None
        while data := await source.read(65536):
            try:
                target.write(data)
                await target.drain()
            except (asyncssh.Error, OSError, BrokenPipeError):
                return

    @staticmethod
    async def _feed(process: asyncssh.SSHServerProcess[bytes],
                    proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None
        try:
            while True:
                try:
                    data = await process.stdin.read(65536)
                except asyncssh.SignalReceived as sig:
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.killpg(proc.pid, getattr(signal, "SIG" + sig.signal))
                    continue
                except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged):
                    continue
                if not data:
                    break
                proc.stdin.write(data)
                await proc.stdin.drain()
        except (asyncssh.Error, OSError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                proc.stdin.close()
        # The channel is gone or at EOF. If the client went away entirely, end the command.
        with contextlib.suppress(Exception):
            await process.channel.wait_closed()
            await _kill_group(proc)

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> NodeServer:
        self.home.mkdir(parents=True, exist_ok=True)
        self._server = await asyncssh.create_server(
            self._server_factory, self.host, self.port, server_host_keys=[self.host_key],
            process_factory=self._handle, sftp_factory=self._sftp_factory, encoding=None,
            allow_scp=False, keepalive_interval=15)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        for conn in list(self._conns):
            conn.close()
        await asyncio.gather(*(_kill_group(p) for p in list(self._children)),
                             return_exceptions=True)
        self._children.clear()
        for group in self._groups:  # children that outlived their command (`cmd &`)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        self._groups.clear()

    async def __aenter__(self) -> NodeServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _kill_group(proc: asyncio.subprocess.Process, grace: float = 2.0) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await within(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
