"""A model declared with `replicas = 2` stays at 2 when one node is lost, end to end on three
nodes in their own network namespaces (tests/helpers/netns.py: each node its own address,
its own SSH server and home, so two replicas on one port never share a socket).

One llama.cpp model on the generated GGUF, `placement = "auto"`, `replicas = 2`: `saf up`
serves it on two nodes; one of them is cut off (its link taken down at the bridge: its SSH
server and the replica it serves keep running, unreachable, as behind a dead switch port);
`saf up` exits 3 and serves the lost node's replica on the third node; `saf status --json`
says where and from where it was re-placed. The link comes back: `saf up` keeps the
placement (docs/placement.md: "keep") and stops the copy still running on the node that came
back. `replicas` lowered to 1 in saf.toml: `saf up` stops one; raised to 3, it starts two;
to 4, it refuses (two replicas never share a node). `saf down` leaves nothing in any
namespace.

The evidence is the nodes' own: the processes inside each namespace, the supervisors'
records, completions asked from inside each node's namespace.

One cluster for the module; the tests run in order, each on what the one before left (the
first failure skips the rest). The cluster is torn down, and every process in its namespaces
killed, whatever happened."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import psutil
import pytest
import tomli_w

from tests.helpers import procs
from tests.helpers.servers import free_port
from tests.helpers.up_netns import NAMES, UpNetns, in_order, up_netns
from tests.helpers.waiting import until


class Replicas(UpNetns):
    """The stack, the model's port and declaration, and what the tests learn as they go
    (where the replicas ran first, the node lost, ...)."""

    port: int
    declared: dict
    base: str  # the inventory without the declaration
    seen: dict[str, object]

    def declare(self, replicas: int) -> None:
        self.declared["models"][0]["replicas"] = replicas
        self.net.inventory_path.write_text(self.base + "\n" + tomli_w.dumps(self.declared))

    def servers(self, node: str) -> list[psutil.Process]:
        """The model servers running in the node's namespace on the model's port."""
        return [p for p in self.in_namespace(node)
                if "llama_cpp.server" in procs.cmdline(p)
                and f"--port {self.port}" in procs.cmdline(p)]

    def serving(self) -> list[str]:
        """The nodes where a server of the model runs (the namespaces' own processes)."""
        return [n for n in NAMES if self.servers(n)]

    def recorded(self) -> list[str]:
        """The nodes whose records say they serve the model's port."""
        return [n for n in NAMES
                if (self.net.home(n) / ".saf" / "serve" / f"{self.port}.json").exists()]

    def serves(self, node: str) -> bool:
        """Whether the replica on `node` answers a completion, asked inside its namespace."""
        return isinstance(self.answers(node, self.port), str)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    from tests.helpers.tiny_gguf import write_tiny_llama

    root = tmp_path_factory.mktemp("replicas")
    with up_netns(root, Replicas, columns=200) as stack:
        model = write_tiny_llama(root / "tiny.gguf")
        stack.port = free_port()  # each node has its own ports: the same number on all three
        stack.declared = {"models": [{"name": "twice", "engine": "llama-cpp-python",
                                      "model": str(model), "placement": "auto", "replicas": 2,
                                      "port": stack.port, "ctx_size": 256}]}
        stack.base = stack.net.inventory_path.read_text()
        stack.seen = {}
        stack.declare(2)
        yield stack


@pytest.fixture(autouse=True)
def _in_order(stack: Replicas, request: pytest.FixtureRequest) -> Iterator[None]:
    yield from in_order(stack, request)


def test_up_serves_two_replicas_on_two_nodes(stack: Replicas) -> None:
    first = stack.saf("up")
    assert first.returncode == 0, first.stdout + first.stderr
    on = stack.serving()
    assert len(on) == 2, (first.stdout, {n: procs.describe(stack.in_namespace(n))
                                         for n in NAMES})
    assert stack.recorded() == on
    for node in on:
        assert len(stack.servers(node)) == 1, procs.describe(stack.in_namespace(node))
        assert stack.serves(node), node
    rows = sorted((m["node"], m["answers"], m["moved_from"]) for m in stack.status()["models"])
    assert rows == [(n, True, None) for n in on], rows
    stack.seen["first"] = on


def test_a_lost_node_s_replica_moves_to_the_third(stack: Replicas) -> None:
    first = stack.seen["first"]
    assert isinstance(first, list)
    gone = first[0]
    stays = first[1]
    third = next(n for n in NAMES if n not in first)
    copy = [p.pid for p in stack.servers(gone)]
    stack.net.link_down(gone)  # its server keeps running, out of reach

    again = stack.saf("up", "--wait", "1")
    assert again.returncode == 3, again.stdout + again.stderr
    assert re.search(rf"^{gone}: does not answer \(.*\): lost$", again.stdout, re.M), \
        again.stdout
    assert re.search(rf"model twice: replica moved from {gone} \(lost\) to {third}$",
                     again.stdout, re.M), again.stdout
    assert stack.serving() == sorted([gone, stays, third]), "the lost copy still runs"
    assert [p.pid for p in stack.servers(gone)] == copy  # nothing reached the lost node
    for node in (stays, third):
        assert len(stack.servers(node)) == 1, procs.describe(stack.in_namespace(node))
        assert stack.serves(node), node

    status = stack.status()
    assert not status["as_declared"]
    assert [(n["node"], n["verdict"]) for n in status["nodes"]
            if n["verdict"] != "as declared"] == [(gone, "unreachable")], status["nodes"]
    rows = sorted((m["node"], m["moved_from"], m["answers"]) for m in status["models"])
    assert rows == sorted([(stays, None, True), (third, gone, True)]), status["models"]
    shown = stack.saf("status")
    assert re.search(rf"twice\s+{third}\s.*re-placed from {gone} \(lost\)", shown.stdout), \
        shown.stdout

    # While the node stays lost, another `saf up` moves and starts nothing.
    pids = {n: [p.pid for p in stack.servers(n)] for n in (stays, third)}
    still = stack.saf("up", "--wait", "1")
    assert still.returncode == 3, still.stdout + still.stderr
    assert "replica moved" not in still.stdout, still.stdout
    assert not re.search(r"\bchanged\b", still.stdout), still.stdout
    assert {n: [p.pid for p in stack.servers(n)] for n in (stays, third)} == pids
    stack.seen.update(gone=gone, stays=stays, third=third, copy=copy)


def test_the_node_back_keeps_the_placement_and_its_copy_is_stopped(stack: Replicas) -> None:
    gone, stays, third = (str(stack.seen[k]) for k in ("gone", "stays", "third"))
    pids = {n: [p.pid for p in stack.servers(n)] for n in (stays, third)}
    stack.net.link_up(gone)
    # Before `saf up`: three run where two are declared; status names the one up would stop.
    assert until(lambda: sorted(m["node"] for m in stack.status()["models"]) == NAMES, 30), \
        stack.outputs[-1]
    status = stack.status()
    assert not status["as_declared"], json.dumps(status, indent=1)
    rows = {m["node"]: (m["verdict"], m["why"]) for m in status["models"]}
    assert rows == {gone: ("differs", "surplus: 3 replicas run, 2 declared"),
                    stays: ("not kept across reboots", ""),
                    third: ("not kept across reboots", f"re-placed from {gone} (lost)")}, rows
    assert stack.saf("status").returncode == 1

    back = stack.saf("up", "--wait", "30")
    assert back.returncode == 0, back.stdout + back.stderr
    assert re.search(rf"{gone}\s+model twice surplus: would", back.stdout), back.stdout
    # The copy that ran on the node while it was cut off is stopped, the others kept.
    assert until(lambda: not stack.servers(gone), 30), \
        procs.describe(stack.in_namespace(gone))
    assert not stack.in_namespace(gone), procs.describe(stack.in_namespace(gone))
    assert stack.serving() == sorted([stays, third])
    assert stack.recorded() == sorted([stays, third])
    for node in (stays, third):  # not restarted, not moved back
        assert [p.pid for p in stack.servers(node)] == pids[node], node
        assert stack.serves(node), node

    quiet = stack.saf("up", "--check")
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    status = stack.status()
    assert status["as_declared"], json.dumps(status, indent=1)
    rows = sorted((m["node"], m["moved_from"]) for m in status["models"])
    assert rows == sorted([(stays, None), (third, gone)]), status["models"]


def test_fewer_replicas_declared_stops_one(stack: Replicas) -> None:
    stays, third = str(stack.seen["stays"]), str(stack.seen["third"])
    before = {n: [p.pid for p in stack.servers(n)] for n in (stays, third)}
    stack.declare(1)
    check = stack.saf("up", "--check")
    assert check.returncode == 2, check.stdout + check.stderr
    assert len(re.findall(r"model twice surplus: would", check.stdout)) == 1, check.stdout
    assert stack.serving() == sorted([stays, third])  # --check changed nothing
    status = stack.status()
    assert not status["as_declared"], json.dumps(status, indent=1)
    surplus = [m["node"] for m in status["models"] if m["verdict"] == "differs"]
    assert len(surplus) == 1, status["models"]
    assert re.search(rf"^\s+{surplus[0]}\s+model twice surplus: would", check.stdout, re.M), \
        check.stdout  # the one status names is the one saf up stops
    assert [m["why"] for m in status["models"] if m["verdict"] == "differs"] == [
        "surplus: 2 replicas run, 1 declared"]

    fewer = stack.saf("up")
    assert fewer.returncode == 0, fewer.stdout + fewer.stderr
    assert until(lambda: len(stack.serving()) == 1, 30), stack.serving()
    left = stack.serving()[0]
    assert [p.pid for p in stack.servers(left)] == before[left]  # the one kept runs on
    assert stack.recorded() == [left]
    stopped = next(n for n in (stays, third) if n != left)
    assert not stack.in_namespace(stopped), procs.describe(stack.in_namespace(stopped))
    assert stack.serves(left)
    assert not stack.serves(stopped)
    status = stack.status()
    assert status["as_declared"], json.dumps(status, indent=1)
    assert [m["node"] for m in status["models"]] == [left], status["models"]
    assert stack.saf("up", "--check").returncode == 0


def test_more_replicas_declared_start_on_the_free_nodes(stack: Replicas) -> None:
    left = stack.serving()
    assert len(left) == 1, left
    pid = [p.pid for p in stack.servers(left[0])]
    stack.declare(3)
    more = stack.saf("up")
    assert more.returncode == 0, more.stdout + more.stderr
    assert stack.serving() == NAMES
    assert [p.pid for p in stack.servers(left[0])] == pid  # the one running is kept
    for node in NAMES:
        assert stack.serves(node), node
    # A fourth replica has no node of its own (two never share one): refused, nothing moved.
    pids = {n: [p.pid for p in stack.servers(n)] for n in NAMES}
    stack.declare(4)
    refused = stack.saf("up")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    assert "model twice: replica 4 of 4 fits on no node" in said, said
    assert "Traceback" not in said, said
    assert {n: [p.pid for p in stack.servers(n)] for n in NAMES} == pids
    stack.declare(3)
    assert stack.saf("up", "--check").returncode == 0


def test_down_leaves_nothing_in_any_namespace(stack: Replicas) -> None:
    down = stack.saf("down")
    assert down.returncode == 0, down.stdout + down.stderr
    for node in NAMES:  # only the node's SSH server is left in its namespace
        assert until(lambda n=node: not stack.in_namespace(n), 20), \
            (node, procs.describe(stack.in_namespace(node)))
    assert stack.recorded() == []
    status = stack.status()
    assert {m["verdict"] for m in status["models"]} == {"missing"}, status["models"]
