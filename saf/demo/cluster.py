"""A three-node demo cluster on loopback: `alpha` (head), `beta` and `gamma` (workers).

Each node is a NodeServer with its own home folder, throwaway host keys recorded in a
throwaway known_hosts (so host keys are verified as for any node), and a throwaway client key.
`DemoCluster` runs the servers on a background thread with its own event loop, so any saf
command or the cockpit can run in the foreground against the inventory it writes. Leaving the
`with` block stops every server and every process they started, and deletes the folder.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import tomli_w

from saf import paths
from saf.demo.node_server import NodeServer
from saf.signals.demo import publish_demo

T = TypeVar("T")

@dataclass(frozen=True)
class DemoNode:
    name: str
    roles: tuple[str, ...]
    tags: tuple[str, ...]


DEMO_NODES = (
    DemoNode("alpha", ("head",), ("demo", "mac-studio")),
    DemoNode("beta", ("worker",), ("demo", "mac-studio")),
    DemoNode("gamma", ("worker",), ("demo", "nvidia")),
)


def demo_homes() -> Path:
    """Where the demo nodes' home folders live between runs, in saf's state folder: a recipe
    run twice in the demo finds what its first run left (hello's marker is `skipped`)."""
    return paths.state_dir() / "demo" / "nodes"


class DemoCluster:
    """The demo's servers, throwaway keys and inventory live in a temporary folder removed on
    stop; the nodes' home folders persist under `homes` (default: demo_homes())."""

    def __init__(self, nodes: tuple[DemoNode, ...] = DEMO_NODES, *,
                 homes: Path | None = None) -> None:
        self.spec = nodes
        self.homes = homes or demo_homes()
        self.root = Path(tempfile.mkdtemp(prefix="saf-demo-"))
        self.inventory_path = self.root / "saf.toml"
        self.servers: list[NodeServer] = []
        self.signals_endpoint = ""
        self._publisher: asyncio.Task[int] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="saf-demo",
                                        daemon=True)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=60)

    async def _start(self) -> None:
        key_dir = self.root / "operator"
        key_dir.mkdir(mode=0o700)
        client_key = asyncssh.generate_private_key("ssh-ed25519", comment="saf-demo")
        client_key.write_private_key(key_dir / "id_ed25519")
        os.chmod(key_dir / "id_ed25519", 0o600)  # a private key is nobody else's business
        client_key.write_public_key(key_dir / "id_ed25519.pub")
        # The cluster's signal stream: demo signals published on loopback for as long as the
        # cluster runs, for every face (the cockpit, `saf demo --headless signals tail`).
        self.signals_endpoint = f"tcp://127.0.0.1:{_free_port()}"
        self._publisher = asyncio.create_task(publish_demo(self.signals_endpoint))
        known_lines = []
        for spec in self.spec:
            server = NodeServer(spec.name, paths.private_dir(self.homes / spec.name),
                                authorized_keys=[client_key])
            await server.start()
            self.servers.append(server)
            key_text = server.host_key.export_public_key("openssh").decode().strip()
            known_lines.append(f"[127.0.0.1]:{server.port} {key_text}")
        (key_dir / "known_hosts").write_text("\n".join(known_lines) + "\n")
        # An empty OpenSSH config, so the operator's own ~/.ssh/config cannot redirect the demo.
        (key_dir / "ssh_config").write_text("")
        inventory = {
            "cluster": {"name": "saf-demo"},
            "defaults": {
                "user": getpass.getuser(),
                "python": sys.executable,
                "identity": str(key_dir / "id_ed25519"),
                "known_hosts": str(key_dir / "known_hosts"),
                "ssh_config": str(key_dir / "ssh_config"),
                "connect_timeout": 5,
            },
            "nodes": [
                {"name": s.name, "host": "127.0.0.1", "port": srv.port, "roles": list(s.roles),
                 "tags": list(s.tags)}
                for s, srv in zip(self.spec, self.servers, strict=True)
            ],
            "signals": {"endpoint": self.signals_endpoint},
        }
        self.inventory_path.write_text(tomli_w.dumps(inventory))

    async def _stop(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
        await asyncio.gather(*(s.stop() for s in self.servers),
                             *([self._publisher] if self._publisher else []),
                             return_exceptions=True)

    def start(self) -> DemoCluster:
        self._thread.start()
        try:
            self._call(self._start())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            try:
                self._call(self._stop())
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> DemoCluster:
        # SIGTERM (a closed terminal, `kill`, a service manager) ends Python without running
        # `finally` blocks, which would leave the throwaway keys and servers behind: turn it
        # into SystemExit so this `with` block stops the cluster and removes its folder.
        self._old_term = None
        if threading.current_thread() is threading.main_thread():
            self._old_term = signal.signal(signal.SIGTERM, _exit_on_term)
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            if self._old_term is not None:
                signal.signal(signal.SIGTERM, self._old_term)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _exit_on_term(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
