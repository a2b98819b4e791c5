"""Real links for tests: N network namespaces joined by veth pairs through a bridge.

    from tests.helpers.netns import NetnsCluster, netns_skip_reason

    with NetnsCluster(tmp_path, ["alpha", "beta", "gamma"]) as net:
        net.saf("exec", "--on", "all", "ip -4 -o addr show dev eth0")  # the saf CLI
        net.address("beta")            # '10.123.45.2': beta's own veth address
        net.exec("beta", ["ip", "link"])   # a command inside beta's namespace
        net.set_mtu("beta", 9000)      # both ends of beta's veth (end="node" | "bridge")
        net.link_down("gamma"); net.link_up("gamma")

or, in a test module, the `netns_cluster` fixture (tests/conftest.py: one cluster per module).

The picture, for nodes alpha, beta, gamma and this test process ("the operator"):

    operator (this namespace)          bridge namespace               node namespaces
    sfNNNNNo  10.X.Y.254/24 ── veth ── sfNNNNNO ─┐
                                                 br0 ── sfNNNNN0b ── veth ── eth0 10.X.Y.1 (alpha)
                                                     ── sfNNNNN1b ── veth ── eth0 10.X.Y.2 (beta)
                                                     ── sfNNNNN2b ── veth ── eth0 10.X.Y.3 (gamma)

Each node namespace runs its own SSH server listening on its eth0 address only (OpenSSH's sshd
when installed, else saf's asyncssh NodeServer, run by `ip netns exec` as
`python -m tests.helpers.netns`), so everything saf does on a node (exec, recipes, the agent,
a speed test between two nodes) goes over that node's veth and sees only its interfaces
(`ip netns exec` mounts the namespace's own /sys). `inventory_path` is an inventory reaching
the nodes by address with host keys verified (tests/helpers/servers.py's ClientKeys and
write_inventory); the node's `python` is this interpreter, so the agent runs there as is.

Names carry this process's id (namespaces `saft<pid>c<k>-<node>`, links `sf<pid><k>...`) and
the /24 is one no route here uses yet, so sessions sharing the machine never collide. `close()`
(also on `with` exit and in the fixture's teardown, whether the test failed or not) kills
every process left in the node namespaces (servers, agents, speed testers, revert timers),
deletes the namespaces and the operator's link. Namespaces left by a process that died
without cleaning up (SIGKILL) are removed by the next cluster made on the machine.

Needs root and `ip` (iproute2): `netns_skip_reason()` says why not, for pytest.skip.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.helpers.own_machine import enter, inner_pid, own_machine_skip_reason, wrap
from tests.helpers.procs import stop, subreaper
from tests.helpers.servers import SSHD, ClientKeys, write_inventory, write_sshd_folder

IP = shutil.which("ip") or ("/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else None)
NODE_IF = "eth0"          # the node's end of its veth, inside its namespace
PREFIX = "saft"           # namespace names: saft<pid>c<k>-<node> / saft<pid>c<k>-br
_counter = itertools.count()


def netns_skip_reason() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    if IP is None:
        return "needs `ip` (iproute2) to make network namespaces"
    if os.geteuid() != 0:
        return "needs root to make network namespaces and veth pairs"
    probe = f"{PREFIX}{os.getpid()}probe"
    made = subprocess.run([IP, "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` refused here: {made.stderr.strip()}"
    subprocess.run([IP, "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    assert IP is not None
    argv = [IP, "-n", ns, *args] if ns else [IP, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _children(pid: int) -> list[int]:
    """The pids of `pid`'s children (Linux' own list of them)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list", check=False).stdout.splitlines()
            if line.strip()]


def _kill_namespace_processes(ns: str) -> None:
    """SIGKILL whatever still runs in namespace `ns` (servers, agents, testers, timers)."""
    for _ in range(5):
        pids = [int(p) for p in _ip("netns", "pids", ns, check=False).stdout.split()
                if p.isdigit()]
        pids = [p for p in pids if p != os.getpid()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def sweep_stale() -> None:
    """Delete namespaces this helper made in processes that no longer exist."""
    for ns in _namespaces():
        found = re.fullmatch(rf"{PREFIX}(\d+)c\d+-.+", ns)
        if found and not _pid_alive(int(found.group(1))):
            _kill_namespace_processes(ns)
            _ip("netns", "del", ns, check=False)


def _free_subnet(seed: int) -> ipaddress.IPv4Network:
    """A 10.x.y.0/24 that no route or address of this namespace overlaps."""
    used = []
    for line in _ip("-4", "route", "show", "table", "all", check=False).stdout.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast", "unreachable", "blackhole", "prohibit"):
            word = line.split()[1]
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_network(word if word != "default" else "0.0.0.0/32",
                                             strict=False))
    for step in range(4096):
        n = (seed + step * 7919) % (100 * 256)
        net = ipaddress.ip_network(f"10.{100 + n // 256}.{n % 256}.0/24")
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return net
    raise RuntimeError("no free 10.x.y.0/24 for the test namespaces")


class NetnsCluster:
    """N nodes, each in its own network namespace with an SSH server on its veth address.

    Attributes: `nodes` (names, in order), `inventory_path`, `keys` (ClientKeys), `subnet`,
    `operator_address` (this process's end, .254), `server` ("openssh" or "asyncssh").

    `node_env`: more environment for the commands run on the asyncssh nodes (their server
    passes its own to them; e.g. SAF_FACTS_ROOT, so no init system is seen). With "asyncssh"
    every node has a home of its own (`home(node)`); OpenSSH's nodes share this user's.

    `own_machine`: each node's server runs as on a machine of its own (tests/helpers/
    own_machine.py: its own process table, /tmp and /dev/shm; `keep`, default the cluster's
    root, stays visible under /tmp); `exec` and `popen` then run inside those namespaces too,
    and the pids saf's records name on a node are its own (`host_pid` finds them here)."""

    def __init__(self, root: Path, nodes: list[str] | None = None, *,
                 server: str | None = None, roles: dict[str, list[str]] | None = None,
                 tags: dict[str, list[str]] | None = None, cluster_name: str = "netns",
                 node_env: dict[str, str] | None = None, own_machine: bool = False,
                 keep: list[Path] | None = None, **inventory_defaults: Any) -> None:
        reason = netns_skip_reason() or (own_machine_skip_reason() if own_machine else None)
        if reason:
            raise RuntimeError(reason)
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.nodes = list(nodes or ["alpha", "beta", "gamma"])
        if not 1 <= len(self.nodes) <= 200:
            raise ValueError("between 1 and 200 nodes")
        self.server = server or ("openssh" if SSHD else "asyncssh")
        k = next(_counter)
        pid = os.getpid()
        self.tag = f"{pid}c{k}"
        self.link_tag = f"sf{pid}{chr(ord('a') + k % 26)}"  # 15-char interface name limit
        self.bridge_ns = f"{PREFIX}{self.tag}-br"
        self._procs: list[subprocess.Popen] = []
        self._made: list[str] = []
        self._operator_if = f"{self.link_tag}o"
        self.subnet = _free_subnet(pid * 31 + k)
        hosts = list(self.subnet.hosts())
        self.operator_address = str(hosts[253])
        self._addresses = {n: str(hosts[i]) for i, n in enumerate(self.nodes)}
        self.ports: dict[str, int] = {}
        self.server_pid: dict[str, int] = {}  # the node's SSH server (in its namespace)
        self.node_env = dict(node_env or {})
        self.own_machine = own_machine
        self.keep = [Path(p) for p in (keep or [self.root])]
        self.init_pid: dict[str, int] = {}  # own_machine: the node's PID 1, its pid here
        self._rig: dict[str, set[int]] = {}  # the pids of the node's server and its wrappers
        self.keys = ClientKeys(self.root / "operator")
        sweep_stale()
        try:
            self._build()
            for node in self.nodes:
                self._start_server(node)
            roles = roles or {self.nodes[0]: ["head"], **{n: ["worker"] for n in self.nodes[1:]}}
            entries = [{"name": n, "host": self._addresses[n], "port": self.ports[n],
                        "roles": roles.get(n, []), "tags": (tags or {}).get(n, [])}
                       for n in self.nodes]
            self.inventory_path = write_inventory(self.root / "saf.toml", self.keys, entries,
                                                  **inventory_defaults)
            text = self.inventory_path.read_text()
            self.inventory_path.write_text(text.replace('name = "test"',
                                                        f'name = "{cluster_name}"', 1))
        except BaseException:
            self.close()
            raise

    # -- building ---------------------------------------------------------------------------
    def namespace(self, node: str) -> str:
        return f"{PREFIX}{self.tag}-{node}"

    def address(self, node: str) -> str:
        return self._addresses[node]

    def home(self, node: str) -> Path:
        """The node's HOME (its own folder with the asyncssh server)."""
        if self.server != "asyncssh":
            raise ValueError("only the asyncssh nodes have homes of their own")
        return self.root / "nodes" / node / "home"

    def pids(self, node: str) -> list[int]:
        """Every process in the node's namespace (its SSH server included)."""
        return [int(p) for p in _ip("netns", "pids", self.namespace(node), check=False)
                .stdout.split() if p.isdigit()]

    def rig_pids(self, node: str) -> set[int]:
        """The test rig's own processes in the node's namespace: its SSH server and, with
        own_machine, the wrappers that made its namespaces (unshare, the node's PID 1)."""
        return set(self._rig.get(node, ()))

    def host_pid(self, node: str, pid: int) -> int | None:
        """The pid here of the node's process `pid` (as the node sees it: saf's records on
        the node name such pids), or None when no such process runs in its namespace."""
        if not self.own_machine:
            return pid if pid in self.pids(node) else None
        for here in self.pids(node):
            if here not in self._rig[node] and inner_pid(here) == pid:
                return here
        return None

    def _node_argv(self, node: str, argv: list[str]) -> list[str]:
        """argv run inside the node: its network namespace, and with own_machine its mount
        and PID namespaces too."""
        assert IP is not None
        if self.own_machine and node in self.init_pid:
            return enter(self.init_pid[node], argv)
        return [IP, "netns", "exec", self.namespace(node), *argv]

    def bridge_port(self, node: str) -> str:
        """The bridge's end of the node's veth (in the bridge namespace)."""
        return f"{self.link_tag}{self.nodes.index(node)}b"

    def _add_ns(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._made.append(ns)
        _ip("link", "set", "lo", "up", ns=ns)

    def _build(self) -> None:
        prefix = self.subnet.prefixlen
        self._add_ns(self.bridge_ns)
        _ip("link", "add", "br0", "type", "bridge", ns=self.bridge_ns)
        _ip("link", "set", "br0", "up", ns=self.bridge_ns)
        # The operator's link: this namespace <-> the bridge.
        _ip("link", "add", self._operator_if, "type", "veth", "peer", "name",
            f"{self.link_tag}O", "netns", self.bridge_ns)
        _ip("link", "set", f"{self.link_tag}O", "master", "br0", "up", ns=self.bridge_ns)
        _ip("addr", "add", f"{self.operator_address}/{prefix}", "dev", self._operator_if)
        _ip("link", "set", self._operator_if, "up")
        for node in self.nodes:
            ns = self.namespace(node)
            self._add_ns(ns)
            port = self.bridge_port(node)
            _ip("link", "add", port, "netns", self.bridge_ns, "type", "veth",
                "peer", "name", NODE_IF, "netns", ns)
            _ip("link", "set", port, "master", "br0", "up", ns=self.bridge_ns)
            _ip("addr", "add", f"{self._addresses[node]}/{prefix}", "dev", NODE_IF, ns=ns)
            _ip("link", "set", NODE_IF, "up", ns=ns)

    def _start_server(self, node: str) -> None:
        folder = self.root / "nodes" / node
        folder.mkdir(parents=True, exist_ok=True)
        address = self._addresses[node]
        ns = self.namespace(node)
        if self.server == "openssh":
            port = 22
            host_key = write_sshd_folder(folder, self.keys, port, address)
            proc = subprocess.Popen(  # a subreaper, as tests/helpers/servers.py says why
                [IP, "netns", "exec", ns, *self._wrapped(subreaper(
                    [SSHD, "-D", "-e", "-f", str(folder / "sshd_config")]))],
                stderr=open(folder / "sshd.log", "wb"), stdin=subprocess.DEVNULL,
                cwd=Path(__file__).resolve().parents[2])
            self._procs.append(proc)
            self._note_rig(node, proc)
            key_line = host_key.export_public_key("openssh").decode().strip()
            self._wait_listening(node, port, proc, folder / "sshd.log")
        else:
            proc = subprocess.Popen(
                [IP, "netns", "exec", ns, *self._wrapped(
                    [sys.executable, "-m", "tests.helpers.netns",
                     "--name", node, "--home", str(folder / "home"), "--host", address,
                     "--authorized", str(self.keys.identity) + ".pub"])],
                stdout=subprocess.PIPE, stderr=open(folder / "server.log", "wb"),
                stdin=subprocess.DEVNULL, text=True, cwd=Path(__file__).resolve().parents[2],
                env={**os.environ, **self.node_env})
            self._procs.append(proc)
            assert proc.stdout is not None
            first = proc.stdout.readline().split(maxsplit=1)  # "PORT host-key-line"
            if len(first) != 2:
                raise RuntimeError(f"{node}'s SSH server did not start: "
                                   f"{(folder / 'server.log').read_text()}")
            port, key_line = int(first[0]), first[1].strip()
            self._note_rig(node, proc)
        self.ports[node] = port
        with self.keys.known_hosts.open("a") as f:  # port 22 is written without [host]:port
            f.write(f"{address if port == 22 else f'[{address}]:{port}'} {key_line}\n")

    def _wrapped(self, argv: list[str]) -> list[str]:
        return wrap(argv, self.keep) if self.own_machine else argv

    def _note_rig(self, node: str, proc: subprocess.Popen) -> None:
        """Learn the node's server pid (and with own_machine its init's): the server is
        proc itself, or under own_machine unshare's child's child."""
        self._rig[node] = {proc.pid}
        self.server_pid[node] = proc.pid
        if not self.own_machine:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                init = _children(proc.pid)
                server = _children(init[0]) if init else []
                if init and server:
                    self.init_pid[node] = init[0]
                    self.server_pid[node] = server[0]
                    self._rig[node] |= {init[0], server[0]}
                    return
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{node}'s server did not start under its own init")

    def _wait_listening(self, node: str, port: int, proc: subprocess.Popen, log: Path) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{node}'s sshd exited: {log.read_text()}")
            probe = self.exec(node, [sys.executable, "-c",
                                     "import socket,sys; socket.create_connection("
                                     f"({self._addresses[node]!r}, {port}), 0.5).close()"],
                              check=False)
            if probe.returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{node}'s sshd did not listen within 10 s: {log.read_text()}")

    # -- using ------------------------------------------------------------------------------
    def exec(self, node: str, argv: list[str], *, check: bool = True, timeout: float = 60,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run argv inside the node's namespace (not over SSH); its output as text."""
        done = subprocess.run(self._node_argv(node, argv), input=input,
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{node}: {' '.join(argv)}: exit {done.returncode}: "
                               f"{done.stderr.strip()}")
        return done

    def popen(self, node: str, argv: list[str], **kwargs: Any) -> subprocess.Popen:
        """Start argv inside the node's namespace; killed by close() if still running."""
        proc = subprocess.Popen(self._node_argv(node, argv), **kwargs)
        self._procs.append(proc)
        return proc

    def set_mtu(self, node: str, mtu: int, end: str = "both") -> None:
        """Set the MTU of the node's veth: its own end ("node", eth0), the bridge's end
        ("bridge"), or both. Frames bigger than the bridge end's MTU never cross it."""
        if end not in ("node", "bridge", "both"):
            raise ValueError("end is node, bridge or both")
        if end in ("bridge", "both"):
            _ip("link", "set", self.bridge_port(node), "mtu", str(mtu), ns=self.bridge_ns)
        if end in ("node", "both"):
            _ip("link", "set", NODE_IF, "mtu", str(mtu), ns=self.namespace(node))

    def mtu(self, node: str, end: str = "node") -> int:
        dev, ns = ((NODE_IF, self.namespace(node)) if end == "node"
                   else (self.bridge_port(node), self.bridge_ns))
        return int(_ip("-o", "link", "show", dev, ns=ns).stdout.split(" mtu ")[1].split()[0])

    def link_down(self, node: str, end: str = "bridge") -> None:
        """Cut the node off: the bridge's end of its veth goes down (the node's own eth0
        stays up, as a node behind a dead switch port would see it); end="node" takes the
        node's own eth0 down instead (a change on the node that cut it off)."""
        if end == "node":
            _ip("link", "set", NODE_IF, "down", ns=self.namespace(node))
        else:
            _ip("link", "set", self.bridge_port(node), "down", ns=self.bridge_ns)

    def link_is_up(self, node: str, end: str = "node") -> bool:
        dev, ns = ((NODE_IF, self.namespace(node)) if end == "node"
                   else (self.bridge_port(node), self.bridge_ns))
        flags = _ip("-o", "link", "show", dev, ns=ns).stdout.split("<", 1)[1].split(">")[0]
        return "UP" in flags.split(",")

    def link_up(self, node: str) -> None:
        _ip("link", "set", self.bridge_port(node), "up", ns=self.bridge_ns)

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"SAF_INVENTORY": str(self.inventory_path), **extra})
        return env

    def saf(self, *args: str, input: str | None = None, timeout: float = 120,
            **env: str) -> subprocess.CompletedProcess[str]:
        """Run the saf CLI as a user would, against these nodes."""
        return subprocess.run([sys.executable, "-m", "saf", *args], env=self.env(**env),
                              input=input, capture_output=True, text=True, timeout=timeout)

    # -- cleaning up ------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every server and process in the node namespaces, delete the namespaces and
        the operator's link. Safe to call twice, and after a half-built cluster."""
        for proc in self._procs:
            stop(proc, grace=3.0)  # with its children (an sshd's sessions and their commands)
        self._procs.clear()
        for ns in reversed(self._made):
            _kill_namespace_processes(ns)
            _ip("netns", "del", ns, check=False)
        self._made.clear()
        _ip("link", "del", self._operator_if, check=False)

    def __enter__(self) -> NetnsCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the asyncssh server, run inside a namespace by `ip netns exec` --------------------------
def _serve(argv: list[str] | None = None) -> None:
    import asyncssh

    from saf.demo.node_server import NodeServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--home", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--authorized", required=True)
    args = parser.parse_args(argv)

    async def main() -> None:
        key = asyncssh.read_public_key(args.authorized)
        server = NodeServer(args.name, Path(args.home), host=args.host, authorized_keys=[key])
        await server.start()
        line = server.host_key.export_public_key("openssh").decode().strip()
        print(server.port, line, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop()

    asyncio.run(main())


if __name__ == "__main__":
    _serve()
