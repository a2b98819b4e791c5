"""Ray in tests: free ports for a head and its nodes, and stopping only the Ray processes a
test started (every Ray process of its own temp folder), never anyone else's (`ray stop` is
machine-wide, and other test runs share this machine)."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
from pathlib import Path

from saf.ray.facts import probe_source


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_ray_port(nodes: int = 3) -> int:
    """A GCS port below the ephemeral range (32768+) whose derived node ports
    (saf.ray.command: port + 1 .. + 10 * nodes + 7, worker ports port + 200 .. + 100 * nodes
    + 299) and dashboard (port + 99) are free."""
    for _ in range(200):
        port = random.randrange(20000, 31000, 10)
        wanted = [port, port + 99, *range(port + 1, port + 10 * nodes + 8),
                  *range(port + 200, port + 300 + 100 * nodes)]
        if all(_free(p) for p in wanted):
            return port
    raise RuntimeError("no free block of ports for Ray")


def _table() -> dict[int, tuple[int, str]]:
    """pid -> (process group, command line) of every live process readable here (not
    zombies: ended, waiting for a parent to read their status)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                state, pgid = fields[0], int(fields[2])
            except (OSError, ValueError, IndexError):
                continue
            if state != "Z":
                out[int(entry.name)] = (pgid, cmd)
    return out


def ray_groups(temp_dir: Path) -> set[int]:
    """The process groups of the processes of Ray's temp folder `temp_dir` (each `ray
    start` saf runs is a session, so a group, of its own; never this test's own group)."""
    marker = re.compile(re.escape(str(temp_dir).rstrip("/")) + r"/(n\d+/)?session_")
    return {pgid for pgid, cmd in _table().values() if marker.search(cmd)} - {os.getpgid(0)}


def ray_processes(temp_dir: Path, groups: set[int] | None = None) -> list[str]:
    """Command lines of the processes of Ray's temp folder `temp_dir` and the node folders in
    it (`temp_dir/n<i>`: workers sharing a machine, saf.ray.command.node_temp_dir), and of
    every process in their process groups or in `groups` (Ray's client server names no
    session folder on its command line)."""
    marker = re.compile(re.escape(str(temp_dir).rstrip("/")) + r"/(n\d+/)?session_")
    table = _table()
    groups = (groups or set()) | {pgid for pgid, cmd in table.values() if marker.search(cmd)}
    groups -= {os.getpgid(0)}
    return [cmd for pgid, cmd in table.values() if pgid in groups or marker.search(cmd)]


def stop_ray(temp_dir: Path) -> None:
    """End every process of `temp_dir`'s Ray (and their children), as ray-down's head does."""
    subprocess.run([sys.executable, "-c", probe_source(), "stop",
                    json.dumps({"temp_dir": str(temp_dir), "sweep": True, "grace": 3})],
                   capture_output=True, timeout=60, check=False)


def minimal_ray_python(folder: Path) -> Path:
    """A `python` whose Ray is as a bare `pip install ray` leaves it: this Python, with a
    folder first on its path whose `grpc` does not import (the dashboard's and Ray Client's
    common need), as on a node without `ray[default]`."""
    stubs = folder / "no-grpc"
    (stubs / "grpc").mkdir(parents=True)
    (stubs / "grpc" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'grpc'\", name='grpc')\n")
    wrapper = folder / "python-minimal-ray"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={stubs} exec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper
