"""What `saf nodes` reports about a node: OS, arch, kernel, CPUs, memory, Python, latency.

One POSIX sh script gathers everything in a single round trip, on Linux and macOS alike.
"""

from __future__ import annotations

import dataclasses
import time
from typing import ClassVar, TypedDict

from saf.connect.base import Connector
from saf.events import Event
from saf.shell import program

_SCRIPT = """\
echo "os=$(uname -s)"
echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
echo "hostname=$(hostname 2>/dev/null || uname -n)"
echo "cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null)"
if [ -r /proc/meminfo ]; then
  echo "memory=$(awk '/^MemTotal:/ {printf "%.0f", $2 * 1024}' /proc/meminfo)"
else
  echo "memory=$(sysctl -n hw.memsize 2>/dev/null)"
fi
echo "python=$({python} -c 'import platform; print(platform.python_version())' 2>&1 | tail -n 1)"
"""

OS_NAMES = {"Linux": "linux", "Darwin": "macos"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class NodeFacts(Event):
    kind: ClassVar[str] = "node_facts"
    node: str
    reachable: bool
    reason: str | None = None
    message: str | None = None
    os: str | None = None
    arch: str | None = None
    kernel: str | None = None
    hostname: str | None = None
    cpus: int | None = None
    memory: int | None = None
    python: str | None = None
    python_error: str | None = None
    latency_ms: float | None = None
    jump: str | None = None  # the jump hosts saf reaches it through (saf.inventory.jumps.route)


class Parsed(TypedDict, total=False):
    """What the script's output says: NodeFacts' fields of the same names."""

    os: str | None
    arch: str | None
    kernel: str | None
    hostname: str | None
    cpus: int | None
    memory: int | None
    python: str
    python_error: str


def parse(node: str, text: str) -> Parsed:
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    facts: Parsed = {
        "os": OS_NAMES.get(values.get("os", ""), values.get("os") or None),
        "arch": values.get("arch") or None,
        "kernel": values.get("kernel") or None,
        "hostname": values.get("hostname") or None,
    }
    cpus = values.get("cpus", "")
    facts["cpus"] = int(cpus) if cpus.isdigit() else None
    memory = values.get("memory", "")
    facts["memory"] = int(memory) if memory.isdigit() else None
    python = values.get("python", "")
    if python[:1].isdigit() and python.count(".") >= 1 and " " not in python:
        facts["python"] = python
    else:
        facts["python_error"] = python or "no output"
    return facts


async def gather_facts(conn: Connector) -> NodeFacts:
    """Connect, time a no-op round trip, and read the node's facts."""
    await conn.connect()
    started = time.monotonic()
    await conn.run(":")
    latency = (time.monotonic() - started) * 1000
    result = await conn.run(_SCRIPT.replace("{python}", program(conn.node.python)),
                            timeout=conn.node.connect_timeout * 3)
    return NodeFacts(node=conn.node.name, reachable=True, latency_ms=round(latency, 1),
                     **parse(conn.node.name, result.stdout))
