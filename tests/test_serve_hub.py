"""saf serve's hub on the demo cluster (real SSH servers, real agents, the real demo signal
stream): cockpits' ends (HubLink) connect over its UNIX socket and get the same frames; node
actions go through the hub and obey read-only, per server and per session."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import time
import uuid

import pytest

from saf.demo.cluster import DemoCluster
from saf.inventory import load_inventory
from saf.metrics.events import NodeStatus
from saf.serve import wire
from saf.serve.client import HubError, HubLink, _parse_hello
from saf.serve.hub import KEY_READONLY, Hub
from tests.helpers.procs import sleepers


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    with DemoCluster(homes=tmp_path_factory.mktemp("homes")) as cluster:
        yield cluster


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("SAF_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


async def _until(predicate, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()


def _all_up(store, names) -> bool:
    return all(store.node(n).status == NodeStatus.UP and store.node(n).sample is not None
               for n in names)


async def test_a_cockpit_end_gets_the_hubs_frames_and_signals(demo, state):
    inventory = load_inventory(demo.inventory_path)
    names = [n.name for n in inventory.nodes]
    async with Hub(inventory) as hub:
        path = hub.socket_path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert await _until(lambda: _all_up(hub.store, names)), "the hub's agents never came up"
        link = await asyncio.to_thread(HubLink.connect, path)
        assert link.hello.cluster == "saf-demo"
        assert [n.name for n in link.hello.nodes] == names
        assert link.hello.readonly is None
        seen: list[str] = []
        source = link.source(lambda e: seen.append(e.kind))
        feed = link.signal_feed()
        await source.start()
        feeder = asyncio.create_task(feed.run())
        try:
            # The backlog: a late cockpit has every node up with samples at once.
            assert await _until(lambda: _all_up(link.store, names), 10), seen
            before = {n: link.store.node(n).samples for n in names}
            assert await _until(lambda: all(link.store.node(n).samples > before[n]
                                            for n in names), 15), "no live samples after"
            assert await _until(lambda: feed.book.total_count() > 0, 20), feed.state
        finally:
            feeder.cancel()
            await source.stop()
        assert len(hub.clients) <= 1
    assert not path.exists()  # the socket is removed when the hub stops


async def test_actions_go_through_the_hub_and_obey_readonly(demo, state):
    inventory = load_inventory(demo.inventory_path)
    tag = f"{os.getpid()}.{uuid.uuid4().int % 10**6}"
    sleeper = await asyncio.to_thread(subprocess.Popen, ["sleep", tag])
    try:
        async with Hub(inventory, signals=False) as hub:
            readonly_token = hub.grant(readonly=True, who="tablet")
            ro = await asyncio.to_thread(HubLink.connect, hub.socket_path, token=readonly_token)
            assert ro.hello.readonly == KEY_READONLY
            rw = await asyncio.to_thread(HubLink.connect, hub.socket_path)
            await ro.start()
            await rw.start()
            with pytest.raises(HubError, match="read-only"):
                await ro.actions().signal("alpha", sleeper.pid, "TERM")
            assert sleeper.poll() is None
            with pytest.raises(HubError, match="signal must be one of"):
                await rw.actions().signal("alpha", sleeper.pid, "HUP")
            message = await rw.actions().signal("alpha", sleeper.pid, "TERM")
            assert f"kill -TERM {sleeper.pid}" in message
            assert sleeper.wait(timeout=10) == -15
            assert not sleepers(tag)
            hub.revoke(readonly_token)
            with pytest.raises(HubError, match="unknown session token"):
                await asyncio.to_thread(HubLink.connect, hub.socket_path, token=readonly_token)
            await ro.stop()
            await rw.stop()
    finally:
        sleeper.kill()
        sleeper.wait()


async def test_messages_from_the_hub_not_understood_are_counted_and_the_link_stays(demo,
                                                                                    state):
    """The client's gate decodes each hub message into its type: an unknown `msg`, a field of
    the wrong type, a message with no tag and an agent event not understood are counted and
    passed over; the link stays up and the next reply is still matched to its request."""
    inventory = load_inventory(demo.inventory_path)
    async with Hub(inventory, signals=False) as hub:
        link = await asyncio.to_thread(HubLink.connect, hub.socket_path)
        await link.start()
        try:
            assert await _until(lambda: len(hub.clients) == 1, 10)
            (client,) = hub.clients
            for bad in ({"msg": "reboot"}, {"msg": "reply", "req": "x", "ok": True},
                        {"reply": 1, "ok": True}, {"msg": "signal_state", "endpoint": 5},
                        {"msg": "signal_state", "endpoint": "tcp://x:1", "state": "exploded"},
                        {"msg": "agent", "event": {"event": "agent_status"}}):
                client.send(wire.pack_json(bad))
            with pytest.raises(HubError, match="signal must be one of"):
                await link.actions().signal("alpha", 1, "HUP")
            assert link.bad_messages == {"malformed": 5, "event": 1}
            assert not link.closed
        finally:
            await link.stop()


async def test_a_readonly_server_refuses_every_session(demo, state):
    inventory = load_inventory(demo.inventory_path)
    async with Hub(inventory, readonly=True, signals=False) as hub:
        link = await asyncio.to_thread(HubLink.connect, hub.socket_path)
        assert link.hello.readonly == "started with --readonly"
        await link.start()
        with pytest.raises(HubError, match="started with --readonly"):
            await link.actions().signal("alpha", 1, "TERM")
        seen: list[object] = []
        with pytest.raises(HubError, match="bringing node alpha up is disabled: started "
                                           "with --readonly"):
            await link.actions().bring_part("up", "node", "alpha", "alpha", seen.append)
        assert seen == []  # refused before anything ran
        await link.stop()


async def test_a_client_speaking_nonsense_is_dropped_and_others_carry_on(demo, state):
    inventory = load_inventory(demo.inventory_path)
    async with Hub(inventory, signals=False) as hub:
        reader, writer = await asyncio.open_unix_connection(str(hub.socket_path))
        writer.write(b"X\x00\x00\x00\x01!")
        assert await reader.read() == b""  # closed on us
        writer.close()
        reader, writer = await asyncio.open_unix_connection(str(hub.socket_path))
        writer.write(wire.HEADER.pack(wire.JSON, wire.MAX_PAYLOAD + 1))
        assert await reader.read() == b""
        writer.close()
        link = await asyncio.to_thread(HubLink.connect, hub.socket_path)
        assert link.hello.cluster == "saf-demo"
        await link.stop()


async def test_a_link_whose_hub_stops_marks_every_node_lost(demo, state):
    inventory = load_inventory(demo.inventory_path)
    hub = Hub(inventory, signals=False)
    await hub.start()
    link = await asyncio.to_thread(HubLink.connect, hub.socket_path)
    await link.start()
    await hub.stop()
    assert await _until(lambda: all(link.store.node(n.name).status == "lost"
                                    for n in inventory.nodes), 10)
    assert link.store.node("alpha").reason == "hub"
    await link.stop()


def test_no_hub_is_a_clear_error(tmp_path):
    with pytest.raises(HubError, match="cannot reach saf serve's hub"):
        HubLink.connect(tmp_path / "nothing.sock")


RECIPE = '''name = "hub-hello"
description = "a run through the hub"

[vars]
marker = { default = "x", description = "the file each node leaves" }

[[steps]]
name = "say"
run = "echo hello from {node.name}"

[[steps]]
name = "leave"
run = "echo done > {marker}-{node.name}"
'''


async def test_a_recipe_runs_on_the_hubs_fleet_and_obeys_readonly(demo, state, tmp_path):
    from saf.recipe.events import RunFinished, StepOutput
    from saf.recipe.parse import load_recipe
    from saf.recipe.run import RunPlan

    path = tmp_path / "hub-hello.toml"
    path.write_text(RECIPE)
    marker = tmp_path / "marker"
    plan = RunPlan(load_recipe(path), {"marker": str(marker)})
    inventory = load_inventory(demo.inventory_path)
    async with Hub(inventory, signals=False) as hub:
        link = await asyncio.to_thread(HubLink.connect, hub.socket_path)
        await link.start()
        seen = []
        assert await link.run_recipe(plan, seen.append) == "ok"
        lines = sorted(e.line for e in seen if isinstance(e, StepOutput))
        assert lines == [f"hello from {n}" for n in ("alpha", "beta", "gamma")]
        assert isinstance(seen[-1], RunFinished)
        assert seen[-1].status == "ok"
        assert sorted(p.name for p in tmp_path.glob("marker-*")) == [
            "marker-alpha", "marker-beta", "marker-gamma"]
        # A read-only session may check, never run.
        token = hub.grant(readonly=True, who="tablet")
        ro = await asyncio.to_thread(HubLink.connect, hub.socket_path, token=token)
        await ro.start()
        with pytest.raises(HubError, match="running a recipe is disabled"):
            await ro.run_recipe(RunPlan(plan.recipe, plan.overrides), seen.append)
        checked = []
        assert await ro.run_recipe(RunPlan(plan.recipe, plan.overrides, check=True),
                                   checked.append) == "ok"
        assert any(isinstance(e, RunFinished) for e in checked)
        await ro.stop()
        await link.stop()


async def _replies(reader: asyncio.StreamReader, count: int) -> list[dict]:
    """The next `count` replies the hub sends (agent events in between are passed over)."""
    replies: list[dict] = []
    try:
        async with asyncio.timeout(30):  # events keep coming: a missing reply must end it
            while len(replies) < count:
                message = await wire.read_message(reader)
                assert message is not None, f"the hub closed the connection after {replies}"
                data = wire.decode_json(message[1]) if message[0] == wire.JSON else {}
                if data.get("msg") == "reply":
                    replies.append(data)
    except TimeoutError:
        pytest.fail(f"{count} replies asked, {len(replies)} came: {replies}")
    return replies


async def test_requests_not_understood_are_answered_and_counted_and_the_client_stays(demo,
                                                                                     state):
    """The hub's gate decodes each request into its type: an unknown op, a missing op and a
    field of the wrong type (in every kind of request) get an error reply naming the request
    and are counted by reason; the connection stays, and the next good request is served."""
    inventory = load_inventory(demo.inventory_path)
    bad = [{"op": "reboot", "req": 1}, {"req": 2},
           {"op": "signal", "req": 3, "node": "alpha", "pid": "12", "signal": "TERM"},
           {"op": "recipe", "req": 4, "recipe": "x", "start_step": -1},
           {"op": "password", "req": 5, "ask": "one", "password": 3},
           {"op": "cancel", "req": "x"}]
    async with Hub(inventory, signals=False) as hub:
        reader, writer = await asyncio.open_unix_connection(str(hub.socket_path))
        try:
            writer.write(wire.pack_json({"hello": wire.VERSION, "token": None}))
            for request in bad:
                writer.write(wire.pack_json(request))
            writer.write(wire.pack_json({"op": "signal", "req": 9, "node": "alpha", "pid": 1,
                                         "signal": "HUP"}))
            replies = await _replies(reader, len(bad) + 1)
        finally:
            writer.close()
        assert [(r["req"], r["ok"]) for r in replies] == [
            (1, False), (2, False), (3, False), (4, False), (5, False), (None, False),
            (9, False)]
        messages = [r["message"] for r in replies]
        assert messages[:2] == ["unknown request 'reboot'", "unknown request None"]
        assert messages[2].startswith("a signal request not understood: ")
        assert "$.pid" in messages[2]
        assert "$.start_step" in messages[3]
        assert "$.ask" in messages[4]
        assert "$.req" in messages[5]
        assert "signal must be one of" in messages[6]  # understood, and refused by the hub
        assert hub.bad_requests == {"unknown_op": 2, "malformed": 4}


def test_a_hello_whose_node_is_malformed_is_refused_with_the_field() -> None:
    """The hello's nodes are the recording header's NodeHeader, checked at the client's gate:
    a node without its name is refused naming where, not read as a KeyError."""
    good = {"saf_hub": wire.VERSION, "cluster": "lab",
            "nodes": [{"name": "alpha", "host": "", "roles": ["head"], "tags": [], "os": None}]}
    hello = _parse_hello(good)
    assert [(n.name, n.host, n.roles) for n in hello.nodes] == [("alpha", "alpha", ("head",))]
    with pytest.raises(HubError, match=r"^the hub's hello is not understood: Object missing "
                                       r"required field `name` - at `\$\.nodes\[0\]`$"):
        _parse_hello({**good, "nodes": [{"host": "10.0.0.1"}]})
    with pytest.raises(HubError, match=r"not understood: Expected `str`, got `int` - at "
                                       r"`\$\.nodes\[0\]\.name`"):
        _parse_hello({**good, "nodes": [{"name": 5}]})


async def test_restarting_a_declared_part_goes_through_the_hub_and_obeys_readonly(demo, state):
    """The Cluster screen's restart key: a read-only session is refused by the hub itself;
    a read-write one reaches the node (whose service is not installed: it says to run saf
    up), and a node the cluster does not have is refused."""
    inventory = load_inventory(demo.inventory_path)
    async with Hub(inventory, signals=False) as hub:
        token = hub.grant(readonly=True, who="tablet")
        ro = await asyncio.to_thread(HubLink.connect, hub.socket_path, token=token)
        rw = await asyncio.to_thread(HubLink.connect, hub.socket_path)
        await ro.start()
        await rw.start()
        with pytest.raises(HubError, match="restarting service beat is disabled: .*read-only"):
            await ro.actions().restart_part("alpha", "service", "beat")
        with pytest.raises(HubError, match="service beat is not installed here: run `saf up`"):
            await rw.actions().restart_part("alpha", "service", "beat")
        with pytest.raises(HubError, match="no node 'omega'"):
            await rw.actions().restart_part("omega", "service", "beat")
        await ro.stop()
        await rw.stop()
