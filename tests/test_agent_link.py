"""The real agent through real SSH servers: frames checked against psutil's own figures, a
killed agent or SSH server marks the node lost and it comes back, bad frames are counted."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import re
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from saf.agentlink import deploy
from saf.agentlink.build import AgentBundle, build
from saf.agentlink.lines import LineFramer
from saf.agentlink.link import AgentLink
from saf.agentlink.node_links import NodeLinks
from saf.connect.backoff import Backoff
from saf.connect.ssh import SSHConnector
from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.metrics import events as mev
from tests.helpers import procs
from tests.helpers.servers import (
    SSHD,
    AsyncsshServers,
    ClientKeys,
    OpenSSHServer,
    free_port,
    write_inventory,
)

# Seconds wait_for gives a condition: a safety limit, not a timing assertion. A reconnection
# after a killed server (the longest wait here) can take a backoff or two on a loaded machine.
WAIT_LIMIT = 60.0


async def wait_for(predicate, what: str = "condition") -> None:
    """Poll until predicate() is true, at most WAIT_LIMIT seconds."""
    deadline = time.monotonic() + WAIT_LIMIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


def whole_disks(names) -> set[str]:
    """The whole disks among `names`, as /sys/block lists them, less loop and ram devices."""
    return {d for d in names
            if os.path.isdir(f"/sys/block/{d}") and not d.startswith(("loop", "ram"))}


class Recorder:
    def __init__(self) -> None:
        self.events: list[mev.Event] = []

    def __call__(self, event) -> None:
        self.events.append(event)

    def of(self, cls, node: str | None = None) -> list:
        return [e for e in self.events if isinstance(e, cls) and (node is None or e.node == node)]

    def statuses(self, node: str) -> list[str]:
        return [e.status for e in self.of(mev.AgentStatus, node)]


async def run_fake_agent(cluster, tmp_path: Path, program: str, until, what: str
                         ) -> tuple[NodeLinks, Recorder]:
    """Run `program` as alpha's agent (a script in place of the zipapp) until `until(hub)`."""
    script = tmp_path / "fake_agent.py"
    script.write_text(program)
    bundle = AgentBundle(script, f"fake{os.getpid()}{tmp_path.name}")
    inv = load_inventory(cluster.inventory)
    rec = Recorder()
    try:
        async with Fleet(inv) as fleet:
            hub = NodeLinks(fleet, [inv.node("alpha")], rec, interval=0.3, bundle=bundle)
            await hub.start()
            try:
                await wait_for(lambda: until(hub), what=what)
            finally:
                await hub.stop()
    finally:
        # What saf could not end (a hung fake agent gives no pid to kill it by), found by
        # its unique bundle name in this test's own process tree, ends with the test.
        left = procs.matching(re.escape(bundle.name))
        procs.kill_tree(left)
    return hub, rec


async def test_agent_figures_match_psutil(cluster):
    """Every node streams samples whose figures agree with psutil on this machine."""
    inv = load_inventory(cluster.inventory)
    rec = Recorder()
    async with Fleet(inv) as fleet:
        hub = NodeLinks(fleet, inv.nodes, rec, interval=0.3)
        await hub.start()
        try:
            await wait_for(lambda: all(hub.store.node(n).samples >= 3 for n in inv.names),
                           what="three samples from every node")
        finally:
            await hub.stop()
    store = hub.store
    vm = psutil.virtual_memory()
    for name in inv.names:
        state = store.node(name)
        hello = state.hello_sent
        assert hello["protocol"] == 1
        assert hello["python"] == ".".join(map(str, sys.version_info[:3]))
        assert hello["collectors"]["cpu"]["ok"]
        assert hello["collectors"]["nics"]["ok"]
        assert not hello["collectors"]["apple"]["ok"]
        assert hello["collectors"]["apple"]["reason"]
        sample = state.sample_sent
        assert sample["cpu"]["count"] == psutil.cpu_count()
        assert len(sample["cpu"]["per_core"]) == psutil.cpu_count()
        assert 0.0 <= sample["cpu"]["percent"] <= 100.0
        assert sample["memory"]["total"] == vm.total
        assert sample["memory"]["swap_total"] == psutil.swap_memory().total
        assert abs(sample["memory"]["percent"] - psutil.virtual_memory().percent) < 10
        assert sample["cpu"]["load"] == pytest.approx(list(os.getloadavg()), abs=1.5)
        nics = {n["name"]: n for n in sample["nics"]}
        stats = psutil.net_if_stats()
        assert set(nics) == set(stats)
        for nic, st in stats.items():
            assert nics[nic]["mtu"] == st.mtu
            # The frame's "up" is the interface's administrative flag, IFF_UP, which psutil
            # lists among its flags (psutil's isup is IFF_RUNNING, a link with carrier).
            assert nics[nic]["up"] is ("up" in st.flags.split(",")), nic
        io = psutil.net_io_counters(pernic=True)
        assert nics["lo"]["rx_bytes"] <= io["lo"].bytes_recv
        assert nics["lo"]["cluster"] is True  # the inventory reaches every node on 127.0.0.1
        # Whole disks, as /sys/block lists them, less loop and ram devices: the same set
        # the agent reports, and none missing (psutil also counts partitions).
        perdisk = psutil.disk_io_counters(perdisk=True) or {}
        whole = whole_disks(perdisk)
        disks = {d["name"]: d for d in sample["disks"]}
        assert set(disks) == whole
        for disk, counters in disks.items():
            assert counters["read_bytes"] <= perdisk[disk].read_bytes
        # The store derived rates from the counters, and kept a history.
        assert store.value(name, "nic.lo.rx_bytes/s") is not None
        assert store.value(name, "nic.lo.rx_bytes/s") >= 0
        assert len(store.values(name, "cpu.percent")) >= 3
        assert not state.bad_frames
    samples = rec.of(mev.SampleReceived)
    assert samples
    assert all(s.raw.startswith('{"type":"sample"') for s in samples)
    assert rec.statuses("alpha")[-1] == mev.NodeStatus.STOPPED


async def test_deploys_once_by_hash(cluster, tmp_path: Path):
    """The zipapp is uploaded when the node lacks this build, and not again."""
    inv = load_inventory(cluster.inventory)
    bundle = build(cache=tmp_path)
    assert bundle.path.name == f"agent-{bundle.digest}.pyz"
    assert build(cache=tmp_path).digest == bundle.digest  # deterministic
    async with Fleet(inv) as fleet:
        conn = fleet.connector("beta")
        await conn.run(f"rm -f {deploy.remote_path_expr(bundle)}")
        assert await deploy.ensure(conn, bundle) is True
        assert await deploy.ensure(conn, bundle) is False
        result = await conn.run(f"{sys.executable} {deploy.remote_path_expr(bundle)} --help")
        assert result.ok
        assert "--interval" in result.stdout
        # A copy damaged on the node (cut short, edited) is found by its hash and replaced.
        for damage in ("truncate -s 100", "printf 'x' >>"):
            await conn.run(f"{damage} {deploy.remote_path_expr(bundle)}")
            assert await deploy.ensure(conn, bundle) is True
            assert await deploy.ensure(conn, bundle) is False
        result = await conn.run(f"{sys.executable} {deploy.remote_path_expr(bundle)} --help")
        assert result.ok
        assert "--interval" in result.stdout


async def test_killed_agent_is_lost_then_recovers(cluster):
    """Killing the agent marks the node lost with a reason; the link starts a new agent."""
    inv = load_inventory(cluster.inventory)
    rec = Recorder()
    async with Fleet(inv) as fleet:
        hub = NodeLinks(fleet, [inv.node("gamma")], rec, interval=0.3)
        await hub.start()
        try:
            await wait_for(lambda: hub.store.node("gamma").samples >= 1, what="first sample")
            pid = hub.store.node("gamma").hello.pid
            os.kill(pid, signal.SIGKILL)
            await wait_for(lambda: mev.NodeStatus.LOST in rec.statuses("gamma"), what="lost")
            lost = [e for e in rec.of(mev.AgentStatus, "gamma")
                    if e.status == mev.NodeStatus.LOST][0]
            assert lost.reason in ("exited", "lost")
            assert lost.retry_in is not None
            assert hub.store.node("gamma").stale()
            await wait_for(lambda: len(rec.of(mev.HelloReceived, "gamma")) >= 2
                           and hub.store.node("gamma").samples >= 3, what="recovery")
            assert hub.store.node("gamma").hello.pid != pid
            assert hub.store.node("gamma").status == mev.NodeStatus.UP
        finally:
            await hub.stop()


async def test_lost_says_when_the_next_attempt_starts(asyncssh_cluster, tmp_path: Path):
    """Against a refused port, each `lost` says `retry in N s` and the next attempt starts N s
    after it: nothing underneath (the connector used to back off again) waits longer."""
    node = dataclasses.replace(load_inventory(asyncssh_cluster.inventory).node("alpha"),
                               port=free_port())
    rec = Recorder()
    link = AgentLink(SSHConnector(node), build(cache=tmp_path), rec,
                     backoff=Backoff(initial=0.2, maximum=0.8))
    task = asyncio.create_task(link.run())

    def losts() -> list[mev.AgentStatus]:
        return [e for e in rec.of(mev.AgentStatus) if e.status == mev.NodeStatus.LOST]

    try:
        await wait_for(lambda: len(losts()) >= 6, what="six failed attempts")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    statuses = rec.of(mev.AgentStatus)
    for lost, after in itertools.pairwise(statuses):
        if lost.status == mev.NodeStatus.LOST and after.status != mev.NodeStatus.STOPPED:
            assert lost.reason == "refused"
            assert lost.retry_in is not None
            assert after.status == mev.NodeStatus.CONNECTING
            # Event times are wall-clock; the sleep is monotonic: allow for the difference.
            assert after.time - lost.time >= lost.retry_in - 0.05, "retried sooner than shown"
    shown = losts()[:6]
    for lost, following in itertools.pairwise(shown):
        # A refused attempt takes milliseconds; the old hidden backoff added 1.5 s and more by
        # the fifth attempt. The slack is for a loaded machine, not for a second wait.
        late = following.time - lost.time - lost.retry_in
        assert late < 1.5, f"the next try came {late:.2f} s later than `retry in` said"
    assert shown[-1].retry_in > shown[0].retry_in  # it does back off


def _asyncssh_node(root: Path):
    keys = ClientKeys(root / "op")
    servers = AsyncsshServers(root, keys, ["delta"])
    inv = write_inventory(root / "saf.toml", keys, [
        {"name": "delta", "host": "127.0.0.1", "port": servers.port("delta")}])
    return servers, inv


async def test_killed_asyncssh_server_is_lost_then_recovers(tmp_path: Path):
    """The node's SSH server stops mid-stream (connections dropped, children killed) and
    comes back on the same port: the node goes lost, then up, with no exception escaping."""
    servers, inv_path = _asyncssh_node(tmp_path)
    try:
        inv = load_inventory(inv_path)
        rec = Recorder()
        async with Fleet(inv) as fleet:
            hub = NodeLinks(fleet, inv.nodes, rec, interval=0.3)
            await hub.start()
            try:
                await wait_for(lambda: hub.store.node("delta").samples >= 2, what="samples")
                server = servers.servers["delta"]
                await asyncio.to_thread(servers.loop.call, server.stop())
                await wait_for(lambda: hub.store.lost("delta"), what="lost")
                await asyncio.sleep(1.0)  # a few failed reconnects while it is down
                await asyncio.to_thread(servers.loop.call, server.start())
                before = len(rec.of(mev.HelloReceived, "delta"))
                await wait_for(lambda: len(rec.of(mev.HelloReceived, "delta")) > before
                               and hub.store.node("delta").status == mev.NodeStatus.UP,
                               what="recovery")
            finally:
                await hub.stop()
        lost = [e for e in rec.of(mev.AgentStatus) if e.status == mev.NodeStatus.LOST]
        assert lost
        assert all(e.reason and e.message for e in lost)
        assert any(e.reason in ("refused", "lost") for e in lost)
    finally:
        servers.stop()


@pytest.mark.skipif(not SSHD, reason="OpenSSH sshd is not installed")
async def test_killed_openssh_session_is_lost_then_recovers(tmp_path: Path):
    """Killing the sshd process that serves the agent's connection drops it mid-stream."""
    keys = ClientKeys(tmp_path / "op")
    server = OpenSSHServer(tmp_path / "sshd", keys)
    try:
        inv = load_inventory(write_inventory(tmp_path / "saf.toml", keys, [
            {"name": "delta", "host": "127.0.0.1", "port": server.port}]))
        rec = Recorder()
        async with Fleet(inv) as fleet:
            hub = NodeLinks(fleet, inv.nodes, rec, interval=0.3)
            await hub.start()
            try:
                await wait_for(lambda: hub.store.node("delta").samples >= 2, what="samples")
                agent = psutil.Process(hub.store.node("delta").hello.pid)
                session = [p for p in agent.parents() if p.name().startswith("sshd")
                           and p.pid != server.proc.pid][0]
                session.kill()
                await wait_for(lambda: hub.store.lost("delta"), what="lost")
                await wait_for(lambda: hub.store.node("delta").status == mev.NodeStatus.UP
                               and len(rec.of(mev.HelloReceived)) >= 2,
                               what="recovery")
            finally:
                await hub.stop()
    finally:
        server.stop()


BAD_AGENT = r'''
import json, sys
w = sys.stdout.write
w(json.dumps({"type": "hello", "protocol": 1, "agent": "x", "collectors": {}}) + "\n")
w("{not json\n")
w(json.dumps({"type": "hello", "protocol": 99}) + "\n")
w(json.dumps({"type": "gossip"}) + "\n")
w("[1, 2]\n")
w(json.dumps({"type": "sample", "seq": 0, "time": 1.0, "interval": 0.3,
              "cpu": {"percent": 5.0}}) + "\n")
w('{"type": "sample", "seq": 1')
sys.stdout.flush()
'''


async def test_malformed_frames_are_counted_not_fatal(cluster, tmp_path: Path):
    """Bad JSON, an unknown protocol version, an unknown type and a truncated line are each
    reported with their reason; the good frames around them still arrive."""
    hub, rec = await run_fake_agent(cluster, tmp_path, BAD_AGENT,
                                    lambda hub: hub.store.lost("alpha"), "the bad agent to end")
    state = hub.store.node("alpha")
    assert dict(state.bad_frames) == {"bad_json": 1, "version": 1, "unknown_type": 1,
                                      "not_object": 1, "truncated": 1}
    assert state.samples == 1
    assert hub.store.value("alpha", "cpu.percent") == 5.0
    bad = rec.of(mev.FrameRejected)
    assert bad[0].raw == "{not json"
    lost = [e for e in rec.of(mev.AgentStatus) if e.status == mev.NodeStatus.LOST][0]
    assert lost.reason == "exited"


async def test_silent_agent_is_lost_within_two_intervals(cluster):
    """An agent that stops talking without dying (SIGSTOP) is lost as `silent` two intervals
    and half a second after its last frame, as docs/agent.md says (the old agent is ended in
    the background, not before `lost` is shown); the stopped agent is killed on the node, and
    a fresh agent takes its place."""
    inv = load_inventory(cluster.inventory)
    rec = Recorder()
    pid = None
    interval = 0.3
    async with Fleet(inv) as fleet:
        hub = NodeLinks(fleet, [inv.node("beta")], rec, interval=interval)
        await hub.start()
        try:
            await wait_for(lambda: hub.store.node("beta").samples >= 1, what="first sample")
            pid = hub.store.node("beta").hello.pid
            stopped = psutil.Process(pid)
            os.kill(pid, signal.SIGSTOP)
            await wait_for(lambda: hub.store.lost("beta"), what="lost")
            lost = [e for e in rec.of(mev.AgentStatus) if e.status == mev.NodeStatus.LOST][0]
            last = [e for e in rec.of(mev.SampleReceived) if e.time < lost.time][-1]
            assert lost.reason == "silent"
            late = lost.time - last.time
            print(f"\nlost {late:.2f} s after the last frame (2 intervals + 0.5 s = "
                  f"{2 * interval + 0.5:.1f} s)")
            assert 2 * interval + 0.5 <= late < 2 * interval + 0.5 + 1.0
            await wait_for(lambda: len(rec.of(mev.HelloReceived)) >= 2
                           and hub.store.node("beta").status == mev.NodeStatus.UP, what="recovery")
            gone, _ = psutil.wait_procs([stopped], timeout=10)
            assert gone, "the stopped agent was left on the node"
        finally:
            await hub.stop()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    os.kill(pid, signal.SIGCONT)


BIG_LINES_AGENT = r'''
import json, sys, time
w = sys.stdout.write
def sample(seq, **extra):
    frame = {"type": "sample", "seq": seq, "time": time.time(), "interval": 0.3,
             "cpu": {"percent": 5.0}}
    frame.update(extra)
    w(json.dumps(frame) + "\n")
    sys.stdout.flush()
w(json.dumps({"type": "hello", "protocol": 1, "agent": "x", "collectors": {}}) + "\n")
sample(0)
sample(1, padding="x" * (3 * 1024 * 1024))       # 3 MB: under the 4 MB limit, a sample
w('{"type": "sample", "junk": "' + "y" * (8 * 1024 * 1024) + '"}\n')   # 8 MB: too long
sys.stdout.flush()
for seq in range(2, 400):
    sample(seq)
    time.sleep(0.1)
'''


async def test_oversize_lines_are_counted_and_skipped_not_fatal(cluster, tmp_path: Path):
    """A 3 MB frame (under the 4 MB limit) is a frame; an 8 MB one is counted `too_long` and
    skipped, and the link stays up (asyncssh hands such lines over in parts)."""
    hub, rec = await run_fake_agent(cluster, tmp_path, BIG_LINES_AGENT,
                                    lambda hub: hub.store.node("alpha").samples >= 6,
                                    "samples after the big lines")
    state = hub.store.node("alpha")
    assert dict(state.bad_frames) == {"too_long": 1}
    [bad] = rec.of(mev.FrameRejected)
    assert bad.message == f"a line of {8 * 1024 * 1024 + 31:,} characters (the limit is 4,194,304)"
    assert [s.frame["seq"] for s in rec.of(mev.SampleReceived)][:3] == [0, 1, 2]
    assert mev.NodeStatus.LOST not in rec.statuses("alpha")


HOSTILE_AGENT = r'''
import json, sys, time
w = sys.stdout.write
def frame(**fields):
    w(json.dumps(dict({"type": "sample", "seq": 0, "time": time.time(), "interval": 0.3},
                      **fields)) + "\n")
    sys.stdout.flush()
w(json.dumps({"type": "hello", "protocol": 1, "agent": "x", "collectors": {}}) + "\n")
frame(cpu={"percent": 42.0}, memory={"total": 1000, "used": 500, "percent": 50.0})
frame(cpu="high")                                    # a string where an object belongs
frame(memory=[1, 2, 3])                              # a list where an object belongs
frame(cpu={"percent": "12"})                         # a number as text
frame(cpu={"percent": 250.0})                        # a percentage past 100
for bad in (1e308, 0, -5, float("nan"), float("inf")):
    frame(interval=bad)                              # would switch off hang detection
frame(nics=[{"name": "eth0", "rx_bytes": -1}])       # a counter below zero
frame(gpus=[{"index": 0, "util": True}])             # true is not a number
w(json.dumps({"type": "hello", "protocol": 1, "pid": "me"}) + "\n")
sys.stdout.flush()
time.sleep(600)                                      # then silence: hang detection must work
'''


async def test_hostile_frames_are_counted_and_the_node_keeps_its_good_values(cluster,
                                                                             tmp_path: Path):
    """A fake agent sends one good sample and then every kind of wrongly typed or out-of-range
    frame: each is counted by its reason, the link stays up, the node keeps the good values,
    and since no frame could change the interval the hang is still found (as `silent`)."""
    hub, rec = await run_fake_agent(cluster, tmp_path, HOSTILE_AGENT,
                                    lambda hub: hub.store.lost("alpha"), "the hang to be found")
    state = hub.store.node("alpha")
    assert dict(state.bad_frames) == {"bad_type": 5, "out_of_range": 7}
    assert state.samples == 1
    assert hub.store.value("alpha", "cpu.percent") == 42.0
    messages = [e.message for e in rec.of(mev.FrameRejected)]
    assert messages[:3] == ["sample.cpu: expected an object, got 'high'",
                            "sample.memory: expected an object, got [1, 2, 3]",
                            "sample.cpu.percent: expected a number, got '12'"]
    assert "sample.interval: 1e+308 is outside 0.05 to 3600" in messages
    assert "sample.interval: nan is outside 0.05 to 3600" in messages
    assert "hello.pid: expected a whole number, got 'me'" in messages
    lost = [e for e in rec.of(mev.AgentStatus) if e.status == mev.NodeStatus.LOST]
    assert [e.reason for e in lost][:1] == ["silent"]


async def test_a_cancel_that_meets_a_ready_frame_still_ends_the_link(cluster, monkeypatch):
    """The link's cancel lands at the moment a frame is ready (here: the framer itself cancels
    the link's task as it hands the third line over, the two being due in the same loop
    turn). With asyncio.wait_for around the read, Python 3.11 returned the line and dropped
    the cancel, and the link read frames for ever: `saf serve`'s hub hung in a test's
    teardown that way. The link must end, cancelled, with its agent stopped."""
    inv = load_inventory(cluster.inventory)
    rec = Recorder()
    handed: list[str] = []
    task: asyncio.Task[None] | None = None
    real_next = LineFramer.next

    async def next_then_cancel(self: LineFramer):
        line = await real_next(self)
        handed.append(line.text)
        if len(handed) == 3 and task is not None:
            task.cancel()  # the cancel and the line are now due together
        return line

    monkeypatch.setattr(LineFramer, "next", next_then_cancel)
    async with Fleet(inv) as fleet:
        link = AgentLink(fleet.connector(inv.node("beta")), build(), rec, interval=0.2)
        task = asyncio.create_task(link.run())
        done, _ = await asyncio.wait({task}, timeout=WAIT_LIMIT)
        if not done:
            task.cancel()  # clean-up only; the failure is below
        assert task in done, f"the link went on after its cancel: {len(handed)} lines read"
        assert task.cancelled()
        assert rec.statuses("beta")[-1] == mev.NodeStatus.STOPPED
