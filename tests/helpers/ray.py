"""Ray in tests: free ports for a head and its nodes, and stopping only the Ray processes a
test started (every Ray process of its own temp folder), never anyone else's (`ray stop` is
machine-wide, and other test runs share this machine)."""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess
import sys
from pathlib import Path

import saf.ray

PROBE = Path(saf.ray.__file__).parent / "node_probe.py"


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


def ray_processes(temp_dir: Path) -> list[str]:
    """Command lines of the processes of Ray's temp folder `temp_dir` and the node folders in
    it (`temp_dir/n<i>`: workers sharing a machine, saf.ray.command.node_temp_dir)."""
    marker = re.compile(re.escape(str(temp_dir).rstrip("/")) + r"/(n\d+/)?session_")
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker.search(cmd):
                out.append(cmd)
    return out


def stop_ray(temp_dir: Path) -> None:
    """End every process of `temp_dir`'s Ray (and their children), as ray-down's head does."""
    subprocess.run([sys.executable, str(PROBE), "stop",
                    json.dumps({"temp_dir": str(temp_dir), "sweep": True, "grace": 3})],
                   capture_output=True, timeout=60, check=False)
