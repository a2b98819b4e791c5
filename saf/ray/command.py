"""The exact `ray start` of each node, and the reasons to refuse one, decided from the
inventory, the recipe's settings and the facts every node gathered (saf.ray.facts). Pure
functions: `--check` shows what `apply` will run, and tests feed recorded facts.

Where several inventory nodes share a machine (the demo cluster: three nodes on loopback),
each node's own ports are derived from the GCS port (`port + 1 + 10 * i + k` for node i of
the inventory, and worker ports `port + 200 + 100 * i` to `+ 99`), so their raylets never
collide, and each worker keeps its Ray files in a folder of its own, `<temp_dir>/n<i>`
(Ray picks its socket and log names by looking at the folder, so two starts in one folder at
once would pick the same; in folders of their own they may start at once). On separate
machines Ray's defaults stand.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from saf.defaults import RAY_PORT, RAY_TEMP_DIR
from saf.inventory.model import Inventory, Node
from saf.numbers import number_problem
from saf.ray.facts import NodeFacts, RayRecord

OSX_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
DEFAULT_PORT = RAY_PORT
DEFAULT_DASHBOARD_PORT = 8265
DEFAULT_TEMP_DIR = RAY_TEMP_DIR
# Ports of one node, in the order they are derived on a shared machine.
NODE_PORTS = ("node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
              "metrics-export-port", "runtime-env-agent-port", "dashboard-agent-grpc-port",
              "ray-client-server-port")


@dataclass(frozen=True)
class RaySettings:
    """What the recipe asks of the whole cluster."""

    port: int = DEFAULT_PORT
    dashboard_host: str = ""  # "": loopback on one machine, the head's address on several
    dashboard_port: int = DEFAULT_DASHBOARD_PORT
    temp_dir: str = DEFAULT_TEMP_DIR
    restart: bool = False
    persist: bool = False  # kept by the node's init system (saf.recipe.kinds.ray_kept)

    def record_path(self, node: str) -> str:
        return f"{self.temp_dir.rstrip('/')}/saf/{node}.json"


@dataclass
class StartPlan:
    """One node's `ray start`: the environment, the arguments, and what was decided."""

    node: str
    argv: list[str]
    env: dict[str, str]
    node_ip: str
    head_address: str
    resources: dict[str, float] = field(default_factory=dict)

    @property
    def settings(self) -> dict[str, Any]:
        """What is recorded on the node (the probe writes it as JSON) and compared on the
        next run, read back as a RayRecord."""
        return {"argv": self.argv, "env": self.env, "head": self.head_address}

    @property
    def record(self) -> RayRecord:
        """`settings` as the next run reads them back."""
        return RayRecord(argv=tuple(self.argv), env=dict(self.env), head=self.head_address)

    def shell(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()))
        return (env + " " if env else "") + " ".join(shlex.quote(a) for a in self.argv)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def machines(inventory: Inventory) -> int:
    """How many machines the inventory's nodes are on (nodes on loopback are one)."""
    hosts = {("loopback" if is_loopback(n.host) or n.connection == "local" else n.host)
             for n in inventory.nodes}
    return len(hosts)


def shares_machine(inventory: Inventory, node: Node) -> bool:
    def key(n: Node) -> str:
        return "loopback" if is_loopback(n.host) or n.connection == "local" else n.host

    return sum(1 for n in inventory.nodes if key(n) == key(node)) > 1


def node_temp_dir(inventory: Inventory, node: Node, temp_dir: str) -> str:
    """Where the node's Ray keeps its files: the temp folder, or for a worker that shares its
    machine with other nodes a folder of its own in it, `n<i>` (i: its place in the
    inventory, as for its ports). Short: Ray's socket paths must stay under 108 bytes."""
    if node.is_head or not shares_machine(inventory, node):
        return temp_dir
    return f"{temp_dir.rstrip('/')}/n{inventory.names.index(node.name)}"


def python_of(node: Node) -> str:
    """The Python Ray runs from on `node`: the inventory's `vars.ray_python` (saf up puts
    [ray].python there), else the node's own python."""
    chosen = node.vars.get("ray_python")
    return chosen if isinstance(chosen, str) and chosen else node.python


def node_resources(node: Node, facts: NodeFacts) -> tuple[dict[str, float], str | None]:
    """The node's custom resources: the inventory's `vars.ray_resources`, else what the node
    is (Apple on Apple Silicon, CUDA on NVIDIA, Intel: N on a node with N Arc GPUs, so a
    task can ask for `resources={"Intel": 1}`). (resources, problem)."""
    raw = node.vars.get("ray_resources")
    if raw is None:
        if facts.apple_silicon:
            return {"Apple": 1.0}, None
        if facts.nvidia:
            return {"CUDA": 1.0}, None
        if facts.intel_arc:
            return {"Intel": float(facts.intel_arc)}, None
        return {}, None
    if not isinstance(raw, dict):
        return {}, "vars.ray_resources must be a table of name = number"
    out: dict[str, float] = {}
    for name, value in raw.items():
        problem = number_problem(value, low=0, high=1e12)
        if problem or not isinstance(name, str) or not name or name.startswith("node:"):
            return {}, f"vars.ray_resources.{name} {problem or 'is not a resource name'}"
        out[name] = float(value)
    return out, None


def _count(node: Node, key: str) -> tuple[int | None, str | None]:
    value = node.vars.get(key)
    if value is None:
        return None, None
    problem = number_problem(value, low=0, high=1_000_000, integer=True)
    return (None, f"vars.{key} {problem}") if problem else (int(value), None)


def node_ip(node: Node, facts: NodeFacts) -> tuple[str | None, str | None]:
    """The address the node's Ray advertises: `vars.ray_node_ip`, else the address its SSH
    connection arrived on (the interface that carries the inventory's address), else the
    inventory's host when it is one of the node's addresses. (address, problem)."""
    explicit = node.vars.get("ray_node_ip")
    if explicit is not None:
        if not isinstance(explicit, str):
            return None, "vars.ray_node_ip must be a string"
        if facts.addresses and explicit not in facts.addresses:
            return None, (f"vars.ray_node_ip {explicit} is not an address of this node "
                          f"(it has {', '.join(facts.addresses[:6])})")
        return explicit, None
    if facts.ssh_server_ip:
        return facts.ssh_server_ip, None
    if node.host in facts.addresses or is_loopback(node.host):
        return ("127.0.0.1" if node.host == "localhost" else node.host), None
    return None, (f"cannot tell which of its addresses carries {node.host} "
                  f"({', '.join(facts.addresses[:6]) or 'none read'}); set vars.ray_node_ip")


def known_ip(node: Node) -> str | None:
    """The address node_ip will give the node when it can be told from the inventory alone
    (`vars.ray_node_ip`, or a host that is an IP address), else None."""
    explicit = node.vars.get("ray_node_ip")
    if isinstance(explicit, str):
        return explicit
    try:
        return str(ipaddress.ip_address(node.host))
    except ValueError:
        return None


def dashboard_bind(settings: RaySettings, head_ip: str, several: bool) -> str:
    if settings.dashboard_host:
        return settings.dashboard_host
    return head_ip if several else "127.0.0.1"


def start_plan(inventory: Inventory, node: Node, facts: NodeFacts, settings: RaySettings,
               head_ip: str) -> tuple[StartPlan | None, str | None]:
    """The node's `ray start`, or why there is none."""
    ip, problem = node_ip(node, facts)
    if problem or ip is None:
        return None, problem
    several = machines(inventory) > 1
    if several and is_loopback(ip):
        return None, (f"its Ray would advertise {ip} on a cluster of {machines(inventory)} "
                      "machines; set vars.ray_node_ip to its cluster address")
    resources, problem = node_resources(node, facts)
    if problem:
        return None, problem
    ray = facts.ray_bin or "ray"
    argv = [ray, "start"]
    if node.is_head:
        argv += ["--head", f"--port={settings.port}",
                 f"--dashboard-host={dashboard_bind(settings, ip, several)}",
                 f"--dashboard-port={settings.dashboard_port}"]
    else:
        argv += [f"--address={head_ip}:{settings.port}"]
    argv += [f"--node-ip-address={ip}", f"--node-name={node.name}"]
    for key, flag in (("ray_num_cpus", "--num-cpus"), ("ray_num_gpus", "--num-gpus")):
        count, problem = _count(node, key)
        if problem:
            return None, problem
        if count is not None:
            argv.append(f"{flag}={count}")
    if resources:
        argv.append("--resources=" + json.dumps(resources, sort_keys=True,
                                                separators=(",", ":")))
    own = node_temp_dir(inventory, node, settings.temp_dir)
    if own != DEFAULT_TEMP_DIR:
        argv.append(f"--temp-dir={own}")
    if shares_machine(inventory, node):
        index = inventory.names.index(node.name)
        base = settings.port + 1 + 10 * index
        ports = NODE_PORTS if node.is_head else NODE_PORTS[:-1]
        argv += [f"--{name}={base + k}" for k, name in enumerate(ports)]
        low = settings.port + 200 + 100 * index
        argv += [f"--min-worker-port={low}", f"--max-worker-port={low + 99}"]
    env = {OSX_VAR: "1"} if facts.is_macos else {}
    return StartPlan(node.name, argv, env, ip, f"{head_ip}:{settings.port}", resources), None


def refusal(inventory: Inventory, node: Node, facts: NodeFacts, head: Node,
            head_facts: NodeFacts | None, settings: RaySettings) -> str | None:
    """Why this node must not start, before anything starts (None: it may)."""
    if facts.python is None:
        return "its Python did not answer"
    if facts.ray is None:
        return (f"Ray is not installed for {facts.executable or python_of(node)}; "
                "run `saf run python-match` to install the head's version")
    if head_facts is not None and node.name != head.name:
        if (facts.python, facts.ray) != (head_facts.python, head_facts.ray):
            return (f"Python {facts.python} / Ray {facts.ray} differ from the head "
                    f"{head.name}'s Python {head_facts.python} / Ray {head_facts.ray} (Ray "
                    "needs both equal to the patch version); run `saf run python-match`")
    if facts.ray_missing:
        # A minimal `pip install ray`: the head's `ray start` stops at once without Ray
        # Client, and without the dashboard nothing answers saf (nor runs jobs).
        return (f"{facts.ray_missing_text}, which saf's Ray needs; install them into the "
                f"node's Python: `{facts.ray_fix()}` (or run `saf run python-match`)")
    if node.is_head:
        several = machines(inventory) > 1
        if several and settings.dashboard_host and is_loopback(settings.dashboard_host):
            return (f"the dashboard host {settings.dashboard_host} is loopback on a cluster of "
                    f"{machines(inventory)} machines: the other nodes' agents cannot reach it; "
                    "leave dashboard_host empty or give the head's cluster address")
        ours = facts.gcs_running
        for port, what in ((settings.port, "the Ray port"),
                           (settings.dashboard_port, "the dashboard port")):
            owner = facts.listeners.get(port)
            if owner is not None and not (ours and "ray" in owner):
                return (f"{what} {port} is taken by {owner or 'another program'}"
                        + (" (6379 is Redis's port; Ray's default here is 6380)"
                           if port == 6379 else "") + "; pick another with --var port=...")
    return None


def differences(old: RayRecord | None, new: RayRecord) -> list[str]:
    """What differs between the recorded settings and the planned ones, flag by flag."""
    if old is None or old == RayRecord():
        return ["no record of the settings it runs with"]

    def flags(settings: RayRecord) -> dict[str, str]:
        out: dict[str, str] = {}
        for arg in settings.argv[2:]:
            key, _, value = arg.partition("=")
            out[key] = value
        for key, value in settings.env.items():
            out[f"env {key}"] = value
        return out

    before, after = flags(old), flags(new)
    out = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            out.append(f"{key} {before.get(key, '(none)')} -> {after.get(key, '(none)')}")
    if old.head != new.head and not out:
        out.append(f"head {old.head or None} -> {new.head or None}")
    return out
