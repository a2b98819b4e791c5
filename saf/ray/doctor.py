"""`saf doctor`: every failure the Ray seeds' troubleshooting sections list, checked on every
node at once, each pass / warn / fail with one line of evidence and the fix.

Checks: SSH key login; the node's Python there (when it is missing, the checks that need
no particular Python still run, with python3); Python and Ray equal to the head's; Ray's
dashboard and client parts importable; the head's port free (or Ray's
own); each worker reaching the head's port (a TCP probe from the worker); no node advertising
127.0.0.1 on a cluster of several machines; the macOS variable on Macs; `mlx` importable on
Apple Silicon; clock skew against this machine. The decisions are pure functions of each
node's facts (saf.ray.facts), so recorded Mac facts test the macOS checks here.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, get_args

from saf.connect.base import Connector
from saf.errors import RayError
from saf.fleet import Fleet, error_reason
from saf.inventory.model import Inventory, Node
from saf.ray import command as rc
from saf.ray.answers import Probed
from saf.ray.facts import NodeFacts
from saf.ray.node_call import call, node_facts
from saf.ray.session import connector_run

CHECKS = ("ssh", "python", "versions", "ray parts", "head port", "head reachable", "address",
          "macOS variable", "mlx", "clock")
FALLBACK = "python3"  # reads what needs no particular Python when the node's is missing
SKEW_WARN, SKEW_FAIL = 1.0, 5.0  # seconds


Verdict = Literal["pass", "warn", "fail"]
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)


@dataclass(frozen=True)
class Finding:
    node: str
    check: str
    status: Verdict
    evidence: str
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Seen:
    """What one node told the doctor."""

    facts: NodeFacts | None = None
    error: str | None = None
    reason: str | None = None  # why SSH failed; "python": SSH worked, no Python ran
    skew: float | None = None  # node clock minus ours, seconds (round trip halved)
    probe: str | None = None  # the worker's TCP probe of the head's port


def _head_ip(inventory: Inventory, seen: dict[str, Seen]) -> str | None:
    head = inventory.head
    facts = seen[head.name].facts if head is not None and head.name in seen else None
    if head is None or facts is None:
        return None
    ip, _ = rc.node_ip(head, facts)
    return ip


def findings(inventory: Inventory, seen: dict[str, Seen], port: int) -> list[Finding]:
    """Every check on every node, from what the nodes said."""
    head = inventory.head
    head_facts = seen[head.name].facts if head and head.name in seen else None
    out: list[Finding] = []
    for node in inventory.nodes:
        if node.name in seen:
            out += _node_findings(inventory, node, seen[node.name], head_facts, port)
    return out


def _node_findings(inventory: Inventory, node: Node, one: Seen, head_facts: NodeFacts | None,
                   port: int) -> list[Finding]:
    """Every check on one node, in CHECKS order; only SSH and Python where no facts came."""
    out: list[Finding] = []
    login = f"key login as {node.user or 'the default user'} worked"
    make_it = (f"create it: `saf run python-match` makes a venv at {node.python}, or set "
               "the node's `python =` in the inventory to one that exists")
    if one.facts is None:
        return _unread(node, one, login, make_it)
    f = one.facts

    def add(check: str, status: Verdict, evidence: str, fix: str = "") -> None:
        out.append(Finding(node.name, check, status, evidence, fix))
    add("ssh", "pass", login)
    if f.fallback:
        # The node's Python is missing (a venv not made yet): what needs it is not
        # checked; the rest is read by python3.
        add("python", "fail", f"{node.python} does not exist on the node (the checks "
            f"below that need no particular Python ran with {FALLBACK})", make_it)
    else:
        add("python", "pass", f"Python {f.python} at {f.executable}")
        _ray_checks(add, node, inventory.head, f, head_facts)
    if node.is_head:
        _head_port(add, f, port)
    else:
        _head_reachable(add, one.probe, port)
    _address(add, inventory, node, f)
    _macos(add, f, rc.machines(inventory) > 1)
    _mlx(add, f)
    _clock(add, one.skew)
    return out


def _unread(node: Node, one: Seen, login: str, make_it: str) -> list[Finding]:
    """A node that gave no facts: SSH worked but no Python ran, or SSH failed."""
    if one.reason == "python":
        return [Finding(node.name, "ssh", "pass", login),
                Finding(node.name, "python", "fail", one.error or "no Python ran", make_it)]
    fix = {"auth": "run `saf keys push " + node.name + "`",
           "hostkey": "check it, then `saf trust " + node.name + "`"}.get(
               one.reason or "", "check the node is up and its address")
    return [Finding(node.name, "ssh", "fail", one.error or "not reached", fix)]


def _head_port(add: _Add, f: NodeFacts, port: int) -> None:
    """The head's port: free, or Ray's own."""
    owner = f.listeners.get(port)
    if owner is None:
        add("head port", "pass", f"port {port} is free")
    elif f.gcs_running and "ray" in owner:
        add("head port", "pass", f"port {port} is Ray's own ({owner[:60]})")
    else:
        add("head port", "fail", f"port {port} is taken by {owner or 'another program'}"
            + (" (Redis's port)" if port == 6379 else ""),
            "saf run ray-up --var port=6380 (or another free port)")


def _head_reachable(add: _Add, probe: str | None, port: int) -> None:
    """A worker reaching the head's port: its TCP probe's answer."""
    if probe is None:
        add("head reachable", "warn", "the head's address is not known")
    elif probe == "open":
        add("head reachable", "pass", f"the head's port {port} answers from here")
    elif probe == "refused":
        add("head reachable", "warn", f"the head answers but nothing listens on {port}",
            "saf run ray-up")
    else:
        add("head reachable", "fail", f"the head's port {port} from here: {probe}",
            "open the port in the head's firewall, or check the address")


def _address(add: _Add, inventory: Inventory, node: Node, f: NodeFacts) -> None:
    """The address Ray would advertise: none, or loopback on a cluster of several machines,
    fails."""
    ip, problem = rc.node_ip(node, f)
    if ip is None:
        add("address", "fail", problem or "no address", "set vars.ray_node_ip")
    elif rc.machines(inventory) > 1 and rc.is_loopback(ip):
        add("address", "fail", f"would advertise {ip} on a cluster of "
            f"{rc.machines(inventory)} machines", "set vars.ray_node_ip")
    else:
        add("address", "pass", f"advertises {ip}")


def _macos(add: _Add, f: NodeFacts, several: bool) -> None:
    """On a Mac, Ray's cluster variable set (in the shell or in the record of saf's start)."""
    if not f.is_macos:
        add("macOS variable", "pass", f"not macOS ({f.os_arch})")
        return
    recorded = f.record.env.get(rc.OSX_VAR) if f.record else None
    if f.osx_cluster_env == "1" or recorded == "1":
        add("macOS variable", "pass", f"{rc.OSX_VAR}=1")
    else:
        add("macOS variable", "fail" if several else "warn",
            f"{rc.OSX_VAR} is not set: Ray on this Mac would join as 127.0.0.1",
            "start Ray with saf run ray-up (it sets it)")


def _mlx(add: _Add, f: NodeFacts) -> None:
    """mlx importable on Apple Silicon, in the node's own Python (not checked without it)."""
    if not f.apple_silicon:
        add("mlx", "pass", "not Apple Silicon")
    elif f.fallback:
        pass  # mlx is wanted in the node's own Python, which is missing
    elif f.mlx:
        add("mlx", "pass", f"mlx imports in {f.executable}")
    else:
        add("mlx", "fail", f"mlx is not importable in {f.executable}",
            "saf run python-match --var packages=mlx")


def _clock(add: _Add, skew: float | None) -> None:
    """The node's clock against this machine's."""
    if skew is None:
        add("clock", "warn", "the node's clock was not read")
        return
    size = abs(skew)
    status: Verdict = "fail" if size > SKEW_FAIL else "warn" if size > SKEW_WARN else "pass"
    add("clock", status, f"{skew:+.2f} s from this machine",
        "" if status == "pass" else "run NTP (chrony, timesyncd) on the node")


class _Add(Protocol):
    def __call__(self, check: str, status: Verdict, evidence: str, fix: str = "") -> None: ...


def _ray_checks(add: _Add, node: Node, head: Node | None, f: NodeFacts,
                head_facts: NodeFacts | None) -> None:
    """Python and Ray against the head's, and Ray's parts, in the node's own Python."""
    if f.ray is None:
        add("versions", "fail", f"no Ray in {f.executable} (Python {f.python})",
            "saf run python-match")
    elif head_facts is not None and head_facts.fallback and node is not head:
        add("versions", "warn", f"Python {f.python} / Ray {f.ray}; the head's Python is "
            "missing, so they are not compared", "saf run python-match")
    elif head_facts is not None and node is not head and (
            f.python, f.ray) != (head_facts.python, head_facts.ray):
        add("versions", "fail", f"Python {f.python} / Ray {f.ray}, the head has "
            f"Python {head_facts.python} / Ray {head_facts.ray}", "saf run python-match")
    else:
        add("versions", "pass", f"Python {f.python} / Ray {f.ray}")
    if f.ray is None:
        return
    if f.ray_missing:
        add("ray parts", "fail", f.ray_missing_text, f.ray_fix())
    else:
        add("ray parts", "pass", "Ray's dashboard and Ray Client import")


async def examine(fleet: Fleet, *, port: int = rc.DEFAULT_PORT,
                  temp_dir: str = rc.DEFAULT_TEMP_DIR) -> list[Finding]:
    """Read every node at once, then each worker probes the head's port."""
    inventory = fleet.inventory

    async def read(conn: Connector) -> Seen:
        node = conn.node
        before = time.time()
        try:
            f = await node_facts(connector_run(conn), node.name, node.python,
                                 temp_dir=temp_dir, ports=[port] if node.is_head else [],
                                 record=rc.RaySettings(temp_dir=temp_dir).record_path(
                                     node.name), parts=True, fallback=FALLBACK)
        except RayError as exc:
            # The command ran (SSH worked) but no Python could run the probe.
            return Seen(error=str(exc), reason="python")
        after = time.time()
        skew = f.time - (before + after) / 2 if f.time is not None else None
        return Seen(f, skew=skew)

    found = await fleet.each(inventory.nodes, read)
    seen: dict[str, Seen] = {}
    for node in inventory.nodes:
        value = found[node.name]
        if isinstance(value, Seen):
            seen[node.name] = value
        else:
            reason, message = error_reason(value)
            seen[node.name] = Seen(error=f"{reason}: {message}", reason=reason)
    head_ip = _head_ip(inventory, seen)
    if head_ip is not None:
        target = f"{head_ip}:{port}"

        async def probe(node: Node) -> None:
            try:
                value, _ = await call(connector_run(fleet.connector(node)), node.name,
                                      node.python, Probed, {"targets": [target],
                                                            "timeout": 3},
                                      fallback=FALLBACK)
            except Exception as exc:  # noqa: BLE001 - one node's failure is its finding
                seen[node.name].probe = f"not probed ({exc})"
                return
            seen[node.name].probe = value.probes.get(target, "no answer")
        await asyncio.gather(*(probe(n) for n in inventory.nodes
                               if not n.is_head and seen[n.name].facts is not None))
    return findings(inventory, seen, port)
