"""Nodes that are recorded machines: a real SSH server on loopback (saf.demo's NodeServer)
whose PATH holds recorded-output players for the machine's tools (tests/fixtures/machines/
player.py) and whose $SAF_FACTS_ROOT is the machine's recorded files (/proc, /sys, /etc, the
dpkg database). Everything else on PATH is a fixed list of this machine's ordinary tools, so
a tool the machine does not have (nvidia-smi before the driver) is "not found" here too, and
a tool that would change the machine (apt-get, usermod, systemctl...) is a player that has no
recording: called, it fails and the call is in the log.

`restart(name, machine)` stops a node's SSH server (dropping its connections) and starts it
again on the same port with the same host key, as another recorded machine: a reboot.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

from saf.demo.node_server import NodeServer
from tests.helpers.servers import ClientKeys, LoopThread, write_inventory

MACHINES = Path(__file__).parent.parent / "fixtures" / "machines"
PLAYER = MACHINES / "player.py"

# Tools that change a machine: always players, so a --check run that called one is caught.
CHANGERS = ("apt-get", "add-apt-repository", "usermod", "systemctl", "update-grub", "exportfs",
            "mount", "automount", "sysctl")
# This machine's ordinary tools the recipes' shell snippets use.
ORDINARY = ("sh", "cat", "grep", "tr", "head", "tail", "awk", "sed", "sort", "uniq", "date",
            "id", "mkdir", "mv", "cp", "rm", "ls", "env", "printf", "echo", "test", "true",
            "false", "dirname", "basename", "wc", "cut", "find", "sha256sum", "dpkg-query",
            "mountpoint", "chown", "sleep", "tee", "uname")


def bin_folder(folder: Path, machine: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    recorded = json.loads((machine / "commands.json").read_text())
    for tool in set(CHANGERS) | set(recorded):
        (folder / tool).symlink_to(PLAYER)
    # python3: the interpreter itself (a pyenv shim would need bash), for the players too.
    (folder / "python3").symlink_to(Path(sys.executable).resolve())
    for tool in ORDINARY:
        real = shutil.which(tool)
        if real and not (folder / tool).exists():
            (folder / tool).symlink_to(real)
    return folder


class RecordedNodes:
    """One node per (name, machine), on a background loop; `inventory` lists them."""

    def __init__(self, root: Path, nodes: dict[str, str], *, os_of: dict[str, str] | None = None,
                 head: str | None = None) -> None:
        self.root = root
        self.keys = ClientKeys(root / "keys")
        self.loop = LoopThread()
        self.servers: dict[str, NodeServer] = {}
        self.machines: dict[str, str] = {}
        self.log = root / "player.log"
        self.log.write_text("")
        for name, machine in nodes.items():
            self.servers[name] = self._start(name, machine, port=0)
            server = self.servers[name]
            self.keys.trust(server.port,
                            server.host_key.export_public_key("openssh").decode().strip())
        os_of = os_of or {}
        self.inventory = write_inventory(root / "saf.toml", self.keys, [
            {"name": name, "host": "127.0.0.1", "port": s.port,
             **({"os": os_of[name]} if name in os_of else {}),
             **({"roles": ["head"]} if name == head else {"roles": ["worker"]} if head else {})}
            for name, s in self.servers.items()], python=sys.executable)

    def _start(self, name: str, machine: str, *, port: int, host_key=None) -> NodeServer:
        folder = MACHINES / machine
        bins = bin_folder(self.root / "bin" / f"{name}-{machine}", folder)
        env = {"PATH": str(bins), "SAF_MACHINE": str(folder),
               "SAF_FACTS_ROOT": str(self._facts_root(name, machine)),
               "SAF_PLAYER_LOG": str(self.log)}
        server = NodeServer(name, self.root / "homes" / name, port=port, host_key=host_key,
                            authorized_keys=[self.keys.key], env=env)
        self.loop.call(server.start())
        self.machines[name] = machine
        return server

    def _facts_root(self, name: str, machine: str) -> Path:
        """A copy of the machine's recorded files, so a test may change them."""
        copy = self.root / "facts" / f"{name}-{machine}"
        if not copy.exists():
            shutil.copytree(MACHINES / machine / "root", copy)
        return copy

    def facts_root(self, name: str) -> Path:
        return self._facts_root(name, self.machines[name])

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()

    def restart(self, name: str, machine: str, *, down_for: float = 0.5) -> None:
        old = self.servers[name]
        self.loop.call(old.stop())
        self.loop.call(asyncio.sleep(down_for))
        self.servers[name] = self._start(name, machine, port=old.port, host_key=old.host_key)

    def close(self) -> None:
        for server in self.servers.values():
            self.loop.call(server.stop())
        self.loop.close()


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SAF_")}
