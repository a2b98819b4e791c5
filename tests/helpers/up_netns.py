"""What the end-to-end tests of `saf up` on namespaced nodes stand on (tests/test_up_netns.py,
tests/test_up_replicas_netns.py): three nodes (tests/helpers/netns.py), no init system saf
may use on them (SAF_FACTS_ROOT points at an empty tree, so saf's own supervisor keeps what
they declare), the saf CLI run as a user would with its outputs kept, and the nodes' own
evidence: the processes inside each namespace, completions asked from inside it.

    with up_netns(tmp_path_factory.mktemp("x"), UpNetns, own_machine=True) as stack:
        stack.net.inventory_path   # append the declaration to it
        stack.saf("up"); stack.status(); stack.in_namespace("beta"); stack.answers(...)

The module's autouse fixture runs its tests in order, each on what the one before left:

    @pytest.fixture(autouse=True)
    def _in_order(stack, request):
        yield from in_order(stack, request)

Whatever happens, `saf down` runs (every node's link up first) and then the cluster is torn
down with every process left in its namespaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

from tests.helpers import procs
from tests.helpers.netns import NetnsCluster, netns_skip_reason
from tests.helpers.own_machine import own_machine_skip_reason

NAMES = ["alpha", "beta", "gamma"]


def ask_source(port: int) -> str:
    """A completion asked from the server on 127.0.0.1:port (run inside a namespace)."""
    return ("import json, urllib.request\n"
            f"request = urllib.request.Request('http://127.0.0.1:{port}/v1/completions',\n"
            "    data=json.dumps({'prompt': 'hello', 'max_tokens': 4}).encode(),\n"
            "    headers={'Content-Type': 'application/json'})\n"
            "answer = json.load(urllib.request.urlopen(request, timeout=60))\n"
            "print(json.dumps(answer['choices'][0]['text']))\n")


class UpNetns:
    """The cluster, the environment the saf CLI runs in, what it said, and the tests that
    failed so far (the rest of the module skips after the first)."""

    def __init__(self, net: NetnsCluster, root: Path, env: dict[str, str]) -> None:
        self.net = net
        self.root = root
        self.env = env
        self.outputs: list[str] = []
        self.failed: list[str] = []

    def saf(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run([sys.executable, "-m", "saf", *args], env=self.env,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:  # what it said so far is the evidence
            said = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) \
                else (exc.stdout or "")
            raise AssertionError(f"saf {' '.join(args)}: no end in {timeout} s:\n"
                                 f"{said[-4000:]}") from None
        self.outputs.append(f"$ saf {' '.join(args)}\n{done.stdout}{done.stderr}")
        return done

    def status(self) -> dict:
        done = self.saf("status", "--json")
        assert done.returncode in (0, 1), done.stdout + done.stderr
        return json.loads(done.stdout)

    def in_namespace(self, node: str) -> list[psutil.Process]:
        """The processes in the node's namespace, the test rig's own (its SSH server and
        what wraps it) left out."""
        rig = self.net.rig_pids(node)
        found = []
        for pid in self.net.pids(node):
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if pid not in rig and procs.alive(proc):
                    found.append(proc)
        return found

    def running(self, node: str, needle: str) -> list[psutil.Process]:
        """The processes in the node's namespace whose command line holds `needle`."""
        return [p for p in self.in_namespace(node) if needle in procs.cmdline(p)]

    def answers(self, node: str, port: int) -> str | None:
        """A completion asked from inside the node's namespace, or None (no answer)."""
        done = self.net.exec(node, [sys.executable, "-c", ask_source(port)],
                             check=False, timeout=90)
        if done.returncode != 0:
            return None
        return json.loads(done.stdout.strip().splitlines()[-1])


S = TypeVar("S", bound=UpNetns)


@contextlib.contextmanager
def up_netns(root: Path, kind: type[S], *, own_machine: bool = False, columns: int = 160,
             node_env: dict[str, str] | None = None) -> Iterator[S]:
    """Three namespaced nodes (each on a machine of its own with `own_machine`: its own
    process table, /tmp and /dev/shm, `root` still seen by all) with saf's SSH server, and
    the environment to run the saf CLI against them, as a `kind` (UpNetns or a test's own
    kind of it); skips where namespaces cannot be made."""
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    reason = netns_skip_reason() or (own_machine_skip_reason() if own_machine else None)
    if reason:
        pytest.skip(reason)
    (root / "facts").mkdir()  # no init system saf may use: saf's supervisor keeps the parts
    net = NetnsCluster(root / "cluster", NAMES, server="asyncssh", own_machine=own_machine,
                       keep=[root], node_env={"SAF_FACTS_ROOT": str(root / "facts"),
                                              **(node_env or {})})
    stack = None
    try:
        env = {**os.environ, "SAF_INVENTORY": str(net.inventory_path),
               "SAF_STATE_DIR": str(root / "state"), "SAF_CACHE_DIR": str(root / "cache"),
               "SAF_CONFIG_DIR": str(root / "config"), "NO_COLOR": "1",
               "COLUMNS": str(columns), "RAY_USAGE_STATS_ENABLED": "0"}
        stack = kind(net, root, env)
        yield stack
    finally:
        if stack is not None:
            (root / "outputs.txt").write_text("\n".join(stack.outputs))
            for node in NAMES:  # a node cut off by a test is reachable again for down
                with contextlib.suppress(Exception):
                    net.link_up(node)
            with contextlib.suppress(Exception):
                stack.saf("down", "--wait", "2", timeout=180)
        net.close()  # kills whatever still runs in the namespaces


def in_order(stack: UpNetns, request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test stands on what the one before left: after a failure the rest are skipped."""
    if stack.failed:
        pytest.skip(f"{stack.failed[0]} failed first")
    before = request.session.testsfailed
    yield
    if request.session.testsfailed != before:  # counted when the call's report was logged
        stack.failed.append(request.node.name)
