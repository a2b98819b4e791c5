"""A real `saf serve` in a subprocess, and SSH clients of it that see what a person would see
(a pyte VT100 screen fed with the session's bytes). Used by tests/test_serve_ssh.py and
tests/perf/bench_serve.py."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import psutil
import pyte

from tests.helpers import procs

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"ssh: listening on 127\.0\.0\.1:(\d+)")
COCKPIT = re.compile(r"session of \S+@127\.0\.0\.1:(\d+) .*: cockpit (\d+) at")
AGENT = re.compile(r"\.pyz --interval")


@dataclass
class Keys:
    """Client keys: `good` may log in, `readonly` may log in read-only, `stranger` may not."""

    folder: Path
    good: asyncssh.SSHKey
    readonly: asyncssh.SSHKey
    stranger: asyncssh.SSHKey
    authorized: Path = field(init=False)

    def __post_init__(self) -> None:
        for name in ("good", "readonly", "stranger"):
            key: asyncssh.SSHKey = getattr(self, name)
            key.write_private_key(self.folder / name)
            os.chmod(self.folder / name, 0o600)
        self.authorized = self.folder / "authorized_keys"
        self.authorized.write_text(
            self.good.export_public_key().decode()
            + 'environment="SAF_READONLY=1" ' + self.readonly.export_public_key().decode())

    @classmethod
    def make(cls, folder: Path) -> Keys:
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder, *(asyncssh.generate_private_key("ssh-ed25519") for _ in range(3)))


class Served:
    """`saf serve --ssh 127.0.0.1:0` on an inventory, its stderr collected line by line."""

    def __init__(self, inventory: Path, keys: Keys, state: Path, *extra: str,
                 cwd: Path | None = None) -> None:
        """From the checkout by default; with `cwd`, the installed `saf` command run there
        (as a user runs it, with no PYTHONPATH)."""
        self.keys = keys
        self.state = state
        self.log: list[str] = []
        env = dict(os.environ, SAF_STATE_DIR=str(state), SAF_CONFIG_DIR=str(state / "config"),
                   SAF_INVENTORY=str(inventory), PYTHONPATH=str(ROOT))
        argv = [sys.executable, "-m", "saf"]
        if cwd is not None:
            del env["PYTHONPATH"]
            argv = [str(Path(sys.executable).parent / "saf")]
        self.proc = subprocess.Popen(
            [*argv, "serve", "--ssh", "127.0.0.1:0",
             "--authorized-keys", str(keys.authorized), *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, env=env, cwd=cwd or ROOT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = int(self.wait_log(LISTENING, 60).group(1))
        pub = (state / "serve" / "ssh_host_ed25519_key.pub").read_text().strip()
        self.known_hosts_line = f"[127.0.0.1]:{self.port} {pub}"
        self.known_hosts = state / "known_hosts"
        self.known_hosts.write_text(f"[localhost]:{self.port},{self.known_hosts_line}\n")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line.rstrip("\n"))

    def wait_log(self, pattern: re.Pattern[str] | str, seconds: float = 30,
                 start: int = 0) -> re.Match[str]:
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + seconds
        while True:
            for line in self.log[start:]:
                found = regex.search(line)
                if found:
                    return found
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"no {regex.pattern!r} in saf serve's log:\n"
                                     + "\n".join(self.log))
            time.sleep(0.05)

    def cockpit_pid(self, client_port: int, seconds: float = 30) -> int:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for line in self.log:
                found = COCKPIT.search(line)
                if found and int(found.group(1)) == client_port:
                    return int(found.group(2))
            time.sleep(0.05)
        raise AssertionError(f"no cockpit for client port {client_port}:\n" + "\n".join(self.log))

    def cockpits(self) -> list[psutil.Process]:
        """The cockpit processes saf serve runs now."""
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        found = []
        for child in children:
            try:
                if "--hub" in child.cmdline():
                    found.append(child)
            except psutil.Error:
                continue
        return found

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode


class TermClient:
    """An asyncssh client with a pty, and the screen it would show."""

    def __init__(self, conn: asyncssh.SSHClientConnection,
                 process: asyncssh.SSHClientProcess[bytes], cols: int, rows: int) -> None:
        self.conn = conn
        self.process = process
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.received = 0
        self.raw = bytearray()  # every byte the session sent, to look for what it printed
        self.changed = asyncio.Event()
        self.ended = asyncio.Event()
        self.local_port = int(conn.get_extra_info("sockname")[1])
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, served: Served, key: asyncssh.SSHKey | None = None, *,
                   cols: int = 100, rows: int = 30, term: str = "xterm-256color",
                   env: dict[str, str] | None = None) -> TermClient:
        conn = await asyncssh.connect(
            "127.0.0.1", served.port, username="tablet",
            client_keys=[key or served.keys.good],
            known_hosts=asyncssh.import_known_hosts(served.known_hosts_line),
            agent_path=None, password=None, kbdint_auth=False, connect_timeout=20)
        process = await conn.create_process(term_type=term, term_size=(cols, rows),
                                            encoding=None, env=env or {})
        return cls(conn, process, cols, rows)

    async def _read(self) -> None:
        try:
            while True:
                data = await self.process.stdout.read(65536)
                if not data:
                    break
                self.received += len(data)
                self.raw += data
                self.stream.feed(data)
                self.changed.set()
        except (asyncssh.Error, OSError):
            pass
        finally:
            self.ended.set()

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    async def wait_for(self, predicate, seconds: float = 60) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if predicate(self.text()):
                return True
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 0.2)
            except TimeoutError:
                pass
        return bool(predicate(self.text()))

    def press(self, keys: str) -> None:
        self.process.stdin.write(keys.encode())

    def resize(self, cols: int, rows: int) -> None:
        self.screen.resize(rows, cols)
        self.process.change_terminal_size(cols, rows)

    async def close(self) -> None:
        self.conn.close()
        await self.conn.wait_closed()
        self._task.cancel()

    async def drop(self) -> None:
        """Drop the connection without a word, as a tablet losing Wi-Fi does."""
        self.conn.abort()
        self._task.cancel()
        await asyncio.sleep(0.1)  # the socket is closed on the loop's next turn


def dashboard_up(text: str) -> bool:
    return all(re.search(rf"^{name}\s+● up", text, re.M) for name in ("alpha", "beta", "gamma"))


def agents(homes: Path) -> list[str]:
    """The agents of the demo cluster whose node homes are `homes` (its SSH servers run in
    this process, so they are its children; the agent's path is under its node's home): a
    leftover cluster of an earlier test, a child of this process too, is not counted."""
    return procs.describe(procs.under(homes, AGENT.pattern))


def wait_gone(pids: list[int], seconds: float = 15) -> list[int]:
    """The pids still alive after `seconds`."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=seconds)
    return [p.pid for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


async def gone(pids: list[int], seconds: float = 15) -> list[int]:
    """`wait_gone` without blocking the event loop (the clients' ends live on it)."""
    return await asyncio.to_thread(wait_gone, pids, seconds)
