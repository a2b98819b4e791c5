"""Ray kept by the node's init system (`ray_start` with `persist = true`, docs/ray.md).

The node's exact `ray start ...` (saf.ray.command) becomes `ray start --block ...`, run as
the service `ray` (unit `saf-ray`, restart on-failure) through saf.cluster's services: a
systemd unit, a launchd job, or where the node has neither saf's own supervisor (not kept
across reboots). `--block` keeps `ray start` in the foreground while Ray's processes live,
and ends it when one of them dies, so the init system sees Ray's end and starts it again.

Here, in the recipe layer, because saf.ray and saf.cluster sit side by side and import
neither the other; ray_start and ray_stop both build the service from here.
"""

from __future__ import annotations

import os
import re

from saf.cluster.units import ServiceSpec
from saf.inventory.model import Inventory, Node
from saf.ray import command as rc
from saf.ray.node_probe import MARKER  # ray-down finds every process of a Ray by it
from saf.shell import quote

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def service_name(inventory: Inventory, node: Node) -> str:
    """`ray`; a node that shares its machine with other nodes of the inventory (loopback
    clusters) `ray-NODE`, so each of them has its own unit."""
    if not rc.shares_machine(inventory, node):
        return "ray"
    return "ray-" + (re.sub(r"[^a-z0-9_.-]", "-", node.name.lower()) or "node")[:56]


def blocking(argv: list[str]) -> list[str]:
    """`ray start ...` as `ray start --block ...`."""
    at = argv.index("start") + 1 if "start" in argv else len(argv)
    return [*argv[:at], "--block", *argv[at:]]


def ray_spec(inventory: Inventory, node: Node, start: rc.StartPlan,
             node_dir: str, up: str | None = None) -> ServiceSpec:
    """The service that runs the node's `ray start --block`: the same environment as a
    detached start (the node's Python first on PATH, the marker ray-down finds its
    processes by, no usage stats); `up`: the cluster whose `saf up` installs it, its mark
    (saf.cluster.marked: not declared once saf.toml drops [ray])."""
    ray = start.argv[0]
    path = (os.path.dirname(ray) + ":" if ray.startswith("/") else "") + SYSTEM_PATH
    env = {"PATH": path, MARKER: node_dir, "RAY_USAGE_STATS_ENABLED": "0", **start.env}
    return ServiceSpec(name=service_name(inventory, node), argv=tuple(blocking(start.argv)),
                       env=env, restart="on-failure",
                       description=f"Ray {'head' if node.is_head else 'worker'} {node.name} "
                                   "(saf)", up=up)


def record_command(path: str, settings_json: str) -> str:
    """Write the record of the settings Ray runs with (as a detached start does)."""
    folder = path.rpartition("/")[0]
    return (f"mkdir -p {quote(folder)} && printf %s {quote(settings_json)} > "
            f"{quote(path + '.tmp')} && mv -f {quote(path + '.tmp')} {quote(path)}")
