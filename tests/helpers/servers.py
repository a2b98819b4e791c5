"""Real SSH servers for tests: asyncssh's (saf's NodeServer) and OpenSSH's sshd, on loopback.

Both are started on a free port with throwaway keys, and an inventory is written that reaches
them with host keys verified, exactly as a user's would.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import asyncssh
import tomli_w

from saf.demo.node_server import NodeServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_has_ipv6() -> bool:
    """Whether ::1 can be listened on here (containers may have IPv6 switched off)."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


class LoopThread:
    """An event loop on a background thread, for servers that must outlive one test's loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro: Any, timeout: float = 60) -> Any:
        future: Future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class ClientKeys:
    """A throwaway operator key pair and known_hosts in `folder`."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.key = asyncssh.generate_private_key("ssh-ed25519", comment="saf-test")
        self.identity = folder / "id_ed25519"
        self.key.write_private_key(self.identity)
        os.chmod(self.identity, 0o600)  # asyncssh writes 0644; OpenSSH refuses such keys
        self.key.write_public_key(folder / "id_ed25519.pub")
        self.known_hosts = folder / "known_hosts"
        self.known_hosts.write_text("")
        self.ssh_config = folder / "ssh_config"
        self.ssh_config.write_text("")

    def trust(self, port: int, host_key_line: str, host: str = "127.0.0.1") -> None:
        with self.known_hosts.open("a") as f:
            f.write(f"[{host}]:{port} {host_key_line}\n")

    def public_line(self) -> str:
        return self.key.export_public_key("openssh").decode().strip()


def write_inventory(path: Path, keys: ClientKeys, nodes: list[dict[str, Any]],
                    user: str | None = None, **defaults: Any) -> Path:
    data = {
        "cluster": {"name": "test"},
        "defaults": {
            "user": user or getpass.getuser(),
            "python": sys.executable,
            "identity": str(keys.identity),
            "known_hosts": str(keys.known_hosts),
            "ssh_config": str(keys.ssh_config),
            "connect_timeout": 5,
            **defaults,
        },
        "nodes": nodes,
    }
    path.write_text(tomli_w.dumps(data))
    return path


class AsyncsshServers:
    """N NodeServers (one per node name) on a background loop, listening on `host`."""

    def __init__(self, root: Path, keys: ClientKeys, names: list[str],
                 password: str | None = None, host: str = "127.0.0.1",
                 env: dict[str, str] | None = None) -> None:
        self.loop = LoopThread()
        self.servers: dict[str, NodeServer] = {}
        for name in names:
            server = NodeServer(name, root / "homes" / name, host=host,
                                authorized_keys=[keys.key], password=password, env=env)
            self.loop.call(server.start())
            self.servers[name] = server
            keys.trust(server.port, server.host_key.export_public_key("openssh").decode().strip(),
                       host)

    def port(self, name: str) -> int:
        return self.servers[name].port

    def home(self, name: str) -> Path:
        return self.servers[name].home

    def stop(self) -> None:
        for server in self.servers.values():
            self.loop.call(server.stop())
        self.loop.close()


SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)


def write_sshd_folder(folder: Path, keys: ClientKeys, port: int, address: str,
                      extra_config: str = "") -> asyncssh.SSHKey:
    """An sshd's own folder: a new host key, `keys` authorized, and an `sshd_config` that
    listens on address:port with keys only (the loopback servers and the namespaced test
    hosts both start sshd on one). Returns the host key, for known_hosts."""
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key.write_private_key(folder / "host_key")
    os.chmod(folder / "host_key", 0o600)
    (folder / "authorized_keys").write_text(keys.public_line() + "\n")
    os.chmod(folder / "authorized_keys", 0o600)
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation folder
    (folder / "sshd_config").write_text(f"""\
Port {port}
ListenAddress {address}
HostKey {folder / 'host_key'}
PidFile {folder / 'sshd.pid'}
AuthorizedKeysFile {folder / 'authorized_keys'}
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
Subsystem sftp internal-sftp
LogLevel ERROR
{extra_config}
""")
    return host_key


class OpenSSHServer:
    """OpenSSH's sshd on 127.0.0.1 with its own config, host key and authorized_keys."""

    def __init__(self, root: Path, keys: ClientKeys, extra_config: str = "") -> None:
        assert SSHD, "sshd is not installed"
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = free_port()
        host_key = write_sshd_folder(root, keys, self.port, "127.0.0.1", extra_config)
        config = root / "sshd_config"
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                                     stderr=open(root / "sshd.log", "wb"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(root / 'sshd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        keys.trust(self.port, host_key.export_public_key("openssh").decode().strip())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
