"""The SSH face of `saf serve` (`--ssh HOST:PORT`): every client that opens a session with a
terminal gets its own cockpit, fed from the hub, in a real pseudo-terminal.

- Public-key authentication only, against an authorized-keys file (saf.serve.authorized);
  passwords, keyboard-interactive and host-based are not offered. A key marked
  `environment="SAF_READONLY=1"` gets a session the hub treats as read-only.
- A session without a terminal, or asking for a command or a subsystem, is told why and closed
  with exit status 1; port forwarding (either way), agent and X11 forwarding are refused.
- Limits: `max_sessions` cockpits at once; `max_unauthenticated` connections still logging in,
  `max_per_source` of them from one address (the next is disconnected), `login_timeout`
  seconds to log in: a few silent connections cannot lock everyone out. Refusals are logged
  at most once per source per 10 s, with a count of the rest (saf.serve.client_limits).
- Whatever the client says (user name, TERM, forward addresses) reaches the log through
  `saf.untrusted.shown`; terminal sizes go through `client_limits.clamp_size` (at most
  500x200), at the pty request and at every window change.
- Each cockpit is `hub.cockpit_argv(token)` in a new session on the slave side of
  `pty.openpty()`, with the client's TERM (and its COLORTERM, LANG and LC_* when it sends them),
  sized from the pty request. The bytes are pumped here rather than with
  `process.redirect`: window-size changes are debounced (a tablet sends a burst when its
  keyboard appears or it turns) before the pty is resized, which sends the cockpit SIGWINCH;
  and the end of the pty (EIO once the cockpit exits) ends the session cleanly.
- A client that drops, the cockpit quitting, or `saf serve` stopping all end the session the
  same way: the cockpit's process group gets SIGTERM (SIGKILL after `GRACE` s), the pty is
  closed, the hub forgets the session's token, and the logout is logged with the key's
  fingerprint.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import pty
import re
import signal
import struct
import termios
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from saf.deadline import within
from saf.errors import SafError
from saf.serve.authorized import (
    AuthorizedKeys,
    KeyGrant,
    default_authorized_keys,
    ensure_host_key,
    load_authorized_keys,
)
from saf.serve.client_limits import RefusalLog, clamp_pixels, clamp_size
from saf.serve.faces import Bind
from saf.serve.hub import Hub
from saf.untrusted import shown

log = logging.getLogger("saf.serve.ssh")

DEBOUNCE = 0.15        # seconds of quiet before a window-size change reaches the cockpit
GRACE = 3.0            # seconds a cockpit has to leave after SIGTERM
LOGIN_TIMEOUT = 10.0
REFUSAL_WINDOW = 10.0  # seconds: one line per source for refused connections
DEFAULT_SIZE = (80, 24)
READ_SIZE = 65536
CLIENT_ENV = re.compile(r"^(COLORTERM|LANG|LC_[A-Z]+)$")
ENV_VALUE = re.compile(r"^[\w.@:+-]{0,64}$")
# The server's own environment that must not reach a client's cockpit: the client's say.
SERVER_ONLY_ENV = ("COLORTERM", "TERM", "COLUMNS", "LINES", "TEXTUAL_DRIVER", "TMUX",
                   "TMUX_PANE", "STY", "SSH_AUTH_SOCK", "SSH_CONNECTION", "SSH_CLIENT",
                   "SSH_TTY", "SAF_HUB_TOKEN")


def _peer(conn: asyncssh.SSHServerConnection) -> tuple[str, str]:
    """(address, 'address:port') of the client."""
    peer = conn.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return str(peer[0]), f"{peer[0]}:{peer[1]}"
    return str(peer), str(peer)


def set_winsize(fd: int, cols: int, rows: int, pixwidth: int = 0, pixheight: int = 0) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, pixwidth, pixheight))


def _take_terminal() -> None:
    """In the cockpit's process, after setsid: make the pty its controlling terminal, so a
    resize sends it SIGWINCH and the pty's end sends it SIGHUP."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@dataclass
class SessionInfo:
    who: str
    pid: int | None = None


class SSHFace:
    """The shared state of one SSH face: the hub, the keys, the limits, what is open."""

    def __init__(self, hub: Hub, keys: AuthorizedKeys, *, max_sessions: int,
                 max_unauthenticated: int, max_per_source: int | None = None,
                 debounce: float = DEBOUNCE) -> None:
        self.hub = hub
        self.keys = keys
        self.max_sessions = max_sessions
        self.max_unauthenticated = max_unauthenticated
        self.max_per_source = max_per_source or max_unauthenticated
        self.debounce = debounce
        self.unauthenticated = 0
        self.logging_in: dict[str, int] = {}  # address: its connections still logging in
        self.refused_connections = RefusalLog(log, window=REFUSAL_WINDOW, burst=1)
        self.refused_keys = RefusalLog(log, window=REFUSAL_WINDOW, burst=10)
        self.connections: set[asyncssh.SSHServerConnection] = set()
        self.sessions: dict[asyncio.Task[Any], SessionInfo] = {}
        self.stopping = False

    def server(self) -> _Server:
        return _Server(self)

    # -- one session --------------------------------------------------------------------------
    async def session(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        conn = process.get_extra_info("connection")
        owner = conn.get_owner() if conn is not None else None
        if not isinstance(owner, _Server) or owner.grant is None:
            process.exit(1)
            return
        if process.command is not None:
            self._refuse(process, "saf serve gives each client a cockpit, not a shell: "
                         "connect with `ssh -t` and no command.")
            return
        if process.subsystem is not None:
            self._refuse(process, f"saf serve offers no subsystem ({shown(process.subsystem)}): "
                         "connect with `ssh -t` for a cockpit.")
            return
        if process.term_type is None:
            self._refuse(process, "saf serve needs a terminal: connect with `ssh -t`.")
            return
        if self.stopping:
            self._refuse(process, "saf serve is stopping.")
            return
        if len(self.sessions) >= self.max_sessions:
            log.warning("refused a session of %s: %d sessions open (--max-sessions)",
                        owner.who, len(self.sessions))
            self._refuse(process, f"saf serve already has {len(self.sessions)} sessions open "
                         "(its --max-sessions); try again later.")
            return
        task = asyncio.current_task()
        assert task is not None
        info = SessionInfo(owner.who)
        self.sessions[task] = info
        try:
            await self._cockpit(process, owner, owner.grant, info)
        finally:
            self.sessions.pop(task, None)

    @staticmethod
    def _refuse(process: asyncssh.SSHServerProcess[bytes], message: str) -> None:
        process.stderr.write(f"saf serve: {message}\r\n".encode())
        process.exit(1)

    def _environment(self, process: asyncssh.SSHServerProcess[bytes],
                     token: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in SERVER_ONLY_ENV}
        for key, value in (process.env or {}).items():
            key = key.decode() if isinstance(key, bytes) else str(key)
            value = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            if CLIENT_ENV.match(key) and ENV_VALUE.match(value):
                env[key] = value
        term = process.term_type or "xterm"
        env["TERM"] = term if re.match(r"^[\w.+-]{1,64}$", term) else "xterm"
        env.update(self.hub.cockpit_env(token))
        return env

    async def _cockpit(self, process: asyncssh.SSHServerProcess[bytes], owner: _Server,
                       grant: KeyGrant, info: SessionInfo) -> None:
        asked_cols, asked_rows, pixwidth, pixheight = process.term_size
        size = clamp_size(asked_cols, asked_rows, DEFAULT_SIZE)
        cols, rows = size.cols, size.rows
        pixwidth, pixheight = clamp_pixels(pixwidth), clamp_pixels(pixheight)
        token = self.hub.grant(readonly=grant.readonly, who=owner.who)
        master, slave = pty.openpty()
        proc: asyncio.subprocess.Process | None = None
        started = time.monotonic()
        status = 0
        try:
            set_winsize(master, cols, rows, pixwidth, pixheight)
            os.set_blocking(master, False)
            proc = await asyncio.create_subprocess_exec(
                *self.hub.cockpit_argv(token), stdin=slave, stdout=slave, stderr=slave,
                env=self._environment(process, token), start_new_session=True,
                preexec_fn=_take_terminal, close_fds=True)
            info.pid = proc.pid
            os.close(slave)
            slave = -1
            log.info("session of %s: cockpit %d at %dx%d%s, TERM=%s", owner.who, proc.pid,
                     cols, rows, size.note(), shown(process.term_type))
            pump = _Pump(process, master, self.debounce, owner.who)
            status = await pump.run(proc)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                process.stderr.write(b"\r\nsaf serve: stopping; the session ends.\r\n")
            status = 1
            raise
        finally:
            if slave >= 0:
                os.close(slave)
            if proc is not None:
                await _end(proc)
            os.close(master)
            self.hub.revoke(token)
            log.info("session of %s ended after %.0f s", owner.who, time.monotonic() - started)
            with contextlib.suppress(Exception):
                process.exit(status)

    # -- the end --------------------------------------------------------------------------------
    async def close(self) -> None:
        """End every session (their cockpits too), then every connection."""
        self.stopping = True
        tasks = list(self.sessions)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for conn in list(self.connections):
            conn.close()
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await within(conn.wait_closed(), 2)


async def _end(proc: asyncio.subprocess.Process) -> None:
    """The cockpit's whole process group gone: SIGTERM, then SIGKILL after GRACE s."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await within(proc.wait(), GRACE)
        except TimeoutError:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything it left in its group
    if proc.returncode is None:
        await proc.wait()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Pump:
    """Bytes between the SSH channel and the pty's master side, with debounced resizes."""

    def __init__(self, process: asyncssh.SSHServerProcess[bytes], master: int,
                 debounce: float, who: str = "") -> None:
        self.process = process
        self.master = master
        self.debounce = debounce
        self.who = who
        self._resize: asyncio.TimerHandle | None = None
        self.resizes = 0

    async def run(self, proc: asyncio.subprocess.Process) -> int:
        """Until the cockpit exits or the client goes; the cockpit's exit status (or 0)."""
        tasks = [asyncio.create_task(self._output(), name="ssh-out"),
                 asyncio.create_task(self._input(), name="ssh-in"),
                 asyncio.create_task(proc.wait(), name="ssh-cockpit")]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if tasks[2] in done or tasks[0] in done:
                # The cockpit ended: let the last of its output reach the client.
                with contextlib.suppress(Exception):  # a timeout, or the channel gone
                    await within(asyncio.shield(tasks[0]), 1.0)
        finally:
            if self._resize is not None:
                self._resize.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return proc.returncode or 0

    async def _readable(self) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        loop.add_reader(self.master, _wake, future)
        try:
            await future
        finally:
            loop.remove_reader(self.master)

    async def _output(self) -> None:
        while True:
            try:
                data = os.read(self.master, READ_SIZE)
            except BlockingIOError:
                await self._readable()
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:  # every holder of the slave side is gone
                    return
                raise
            if not data:
                return
            self.process.stdout.write(data)
            await self.process.stdout.drain()

    async def _write(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.master, view)
                view = view[written:]
            except BlockingIOError:
                await self._writable(loop)

    async def _writable(self, loop: asyncio.AbstractEventLoop) -> None:
        future: asyncio.Future[None] = loop.create_future()
        loop.add_writer(self.master, _wake, future)
        try:
            await future
        finally:
            loop.remove_writer(self.master)

    async def _input(self) -> None:
        while True:
            try:
                data = await self.process.stdin.read(READ_SIZE)
            except asyncssh.TerminalSizeChanged as change:
                self._resize_later(change.width, change.height, change.pixwidth,
                                   change.pixheight)
                continue
            except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                continue
            if not data:
                return
            await self._write(data)

    def _resize_later(self, cols: int, rows: int, pixwidth: int, pixheight: int) -> None:
        if self._resize is not None:
            self._resize.cancel()
        if cols <= 0 or rows <= 0:
            return
        size = clamp_size(cols, rows)
        if size.clamped:
            log.warning("session of %s: a window change%s", self.who, size.note())
        cols, rows = size.cols, size.rows
        pixwidth, pixheight = clamp_pixels(pixwidth), clamp_pixels(pixheight)

        def apply() -> None:
            self._resize = None
            self.resizes += 1
            with contextlib.suppress(OSError):
                set_winsize(self.master, cols, rows, pixwidth, pixheight)

        self._resize = asyncio.get_running_loop().call_later(self.debounce, apply)


class _Server(asyncssh.SSHServer):
    """One SSH connection: who it is, what it may do; everything but a key is refused."""

    def __init__(self, face: SSHFace) -> None:
        self.face = face
        self.conn: asyncssh.SSHServerConnection | None = None
        self.username = ""
        self.address = "?"
        self.peer = "?"
        self.counted = False
        self.grant: KeyGrant | None = None
        self.authenticated = False
        self.since = time.monotonic()
        self._refused: set[str] = set()

    @property
    def who(self) -> str:
        key = self.grant.fingerprint if self.grant else "no key"
        mode = " read-only" if self.grant and self.grant.readonly else ""
        return f"{shown(self.username, 64)}@{self.peer} ({key}{mode})"

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        self.address, self.peer = _peer(conn)
        face = self.face
        face.connections.add(conn)
        from_here = face.logging_in.get(self.address, 0)
        if face.stopping:
            why = "saf serve is stopping"
        elif face.unauthenticated >= face.max_unauthenticated:
            why = f"{face.unauthenticated} connections logging in (--max-unauthenticated)"
        elif from_here >= face.max_per_source:
            why = (f"{from_here} connections logging in from {self.address} "
                   "(--max-unauthenticated-per-source)")
        else:
            self.counted = True
            face.unauthenticated += 1
            face.logging_in[self.address] = from_here + 1
            return
        face.refused_connections.refused(self.address, "refused a connection from %s: %s",
                                         self.peer, why)
        conn.disconnect(asyncssh.DISC_TOO_MANY_CONNECTIONS,
                        "too many connections logging in; try again later")

    def _uncount(self) -> None:
        if not self.counted:
            return
        self.counted = False
        face = self.face
        face.unauthenticated -= 1
        left = face.logging_in.get(self.address, 1) - 1
        if left > 0:
            face.logging_in[self.address] = left
        else:
            face.logging_in.pop(self.address, None)

    def connection_lost(self, exc: Exception | None) -> None:
        face = self.face
        if self.conn is not None:
            face.connections.discard(self.conn)
        if self.authenticated:
            log.info("logout: %s after %.0f s%s", self.who, time.monotonic() - self.since,
                     f" ({shown(exc)})" if exc else "")
        self._uncount()

    def begin_auth(self, username: str) -> bool:
        self.username = username
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        verdict = self.face.keys.check(key, self.address, self.address)
        if verdict.grant is None:
            fingerprint = key.get_fingerprint()
            if fingerprint not in self._refused:
                self._refused.add(fingerprint)
                self.face.refused_keys.refused(
                    self.address, "refused key %s for %s@%s: %s", fingerprint,
                    shown(username, 64), self.peer, verdict.why)
            return False
        self.grant = verdict.grant
        return True

    def auth_completed(self) -> None:
        self.authenticated = True
        self._uncount()
        self.since = time.monotonic()
        log.info("login: %s", self.who)

    # Forwarding of any kind: refused, and said so in the log.
    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str,
                             orig_port: int) -> bool:
        log.warning("refused a port forward to %s:%d from %s", shown(dest_host, 80), dest_port,
                    self.who)
        return False

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        log.warning("refused a remote port forward of %s:%d from %s", shown(listen_host, 80),
                    listen_port, self.who)
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        log.warning("refused a UNIX socket forward to %s from %s", shown(dest_path, 80),
                    self.who)
        return False

    def unix_server_requested(self, listen_path: str) -> bool:
        log.warning("refused a remote UNIX socket forward from %s", self.who)
        return False


async def run(hub: Hub, bind: Bind, *, authorized_keys: Path | None = None,
              host_key: Path | None = None, max_sessions: int = 16,
              max_unauthenticated: int = 32, max_per_source: int = 4,
              login_timeout: float = LOGIN_TIMEOUT, debounce: float = DEBOUNCE) -> None:
    """Serve cockpits over SSH on `bind` until cancelled; then end every session."""
    keys = load_authorized_keys(authorized_keys or default_authorized_keys())
    key = ensure_host_key(host_key)
    face = SSHFace(hub, keys, max_sessions=max_sessions,
                   max_unauthenticated=max_unauthenticated, max_per_source=max_per_source,
                   debounce=debounce)
    try:
        acceptor = await asyncssh.create_server(
            face.server, bind.host, bind.port, server_host_keys=[key],
            process_factory=face.session, encoding=None, line_editor=False, allow_pty=True,
            agent_forwarding=False, x11_forwarding=False, allow_scp=False, sftp_factory=None,
            gss_host=None, login_timeout=login_timeout, keepalive_interval=15,
            keepalive_count_max=4)
    except OSError as exc:
        raise SafError(f"--ssh {bind}: cannot listen: {exc.strerror or exc}") from None
    port = acceptor.sockets[0].getsockname()[1] if acceptor.sockets else bind.port
    log.info("ssh: listening on %s, host key %s, keys from %s", Bind(bind.host, port),
             key.get_fingerprint(), keys.path)
    try:
        await asyncio.Future()
    finally:
        acceptor.close()
        await face.close()
        with contextlib.suppress(Exception):
            await within(acceptor.wait_closed(), 2)
