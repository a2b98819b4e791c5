"""One declared part brought up and taken down alone (saf.up.part), for real on loopback nodes
(saf's own SSH servers, no init system: a service runs under saf's supervisor): on the
cockpit's fleet, through a real `saf serve` hub (a read-only session refused, a malformed
request counted), and from the Cluster screen's keys with the run shown as the Recipes screen
shows one.

saf.toml declares service `beat` on alpha and beta and service `other` on alpha: bringing
`beat` up on alpha starts it there only, and `other` nowhere. Processes are stopped by the
pids saf's supervisor recorded in the test's own node homes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.recipe.events import RunFinished, RunStarted
from saf.up.part import PartRefused, bring_part
from tests.helpers.servers import AsyncsshServers, ClientKeys, write_inventory

BEAT = """import os, sys, time
while True:
    with open(sys.argv[1], "a") as f:
        f.write("%d\\n" % os.getpid())
    time.sleep(0.2)
"""


@dataclass
class Nodes:
    root: Path
    inventory: Path
    homes: dict[str, Path]
    marker: str

    def folder(self, node: str, service: str) -> Path:
        return self.homes[node] / ".saf" / "services" / service

    def pid(self, node: str, service: str) -> int | None:
        """The service's pid while saf's supervisor says it runs, else None."""
        try:
            state = json.loads((self.folder(node, service) / "state.json").read_text())
        except (OSError, ValueError):
            return None
        pid = state.get("pid")
        return pid if isinstance(pid, int) and self.ours(pid) else None

    def ours(self, pid: int) -> bool:
        """Whether `pid` runs a program of this test (its command line names its marker)."""
        try:
            return self.marker in Path(f"/proc/{pid}/cmdline").read_bytes().decode(
                errors="replace")
        except OSError:
            return False

    def stop_all(self) -> None:
        for node in self.homes:
            for service in ("beat", "other", "broken"):
                folder = self.folder(node, service)
                for pid in (self.pid(node, service), _read_pid(folder / "supervisor.pid")):
                    if pid is not None and (self.ours(pid) or _names(pid, folder)):
                        with contextlib.suppress(OSError):
                            os.kill(pid, signal.SIGKILL)


def _read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text())
    return None


def _names(pid: int, folder: Path) -> bool:
    """Whether process `pid` is this test's supervisor (its command line names `folder`)."""
    try:
        return str(folder) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


@pytest.fixture
def nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Nodes]:
    monkeypatch.setenv("SAF_STATE_DIR", str(tmp_path / "state"))
    keys = ClientKeys(tmp_path / "operator")
    (tmp_path / "facts").mkdir()  # no /run/systemd/system: saf's supervisor keeps services
    servers = AsyncsshServers(tmp_path, keys, ["alpha", "beta"],
                              env={"SAF_FACTS_ROOT": str(tmp_path / "facts")})
    marker = f"saf-part-{uuid.uuid4().hex[:10]}"
    (tmp_path / "beat.py").write_text(BEAT)
    inventory = write_inventory(tmp_path / "saf.toml", keys, [
        {"name": "alpha", "host": "127.0.0.1", "port": servers.port("alpha"),
         "roles": ["head"]},
        {"name": "beta", "host": "127.0.0.1", "port": servers.port("beta")}])
    beat = f"{sys.executable} {tmp_path}/beat.py {tmp_path}/beats {marker}"
    with inventory.open("a") as f:
        f.write(f'\n[[services]]\nname = "beat"\non = "alpha,beta"\nrestart = "no"\n'
                f'command = "{beat}"\n'
                f'\n[[services]]\nname = "other"\non = "alpha"\nrestart = "no"\n'
                f'command = "{sys.executable} {tmp_path}/beat.py {tmp_path}/other {marker}"\n'
                f'\n[[services]]\nname = "broken"\non = "alpha"\nrestart = "no"\n'
                f'command = "{sys.executable} -c \'import sys; sys.exit(3)\' {marker}"\n')
    made = Nodes(tmp_path, inventory, {n: servers.home(n) for n in ("alpha", "beta")}, marker)
    try:
        yield made
    finally:
        made.stop_all()
        servers.stop()


def _gone(nodes: Nodes, node: str, service: str) -> bool:
    return nodes.pid(node, service) is None


async def _until(predicate, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()


async def test_a_service_comes_up_and_goes_down_on_one_node_alone(nodes: Nodes) -> None:
    async with Fleet(load_inventory(nodes.inventory)) as fleet:
        seen: list[object] = []
        assert await bring_part(fleet, "up", "service", "alpha", "beat", seen.append) == "ok"
        started = next(e for e in seen if isinstance(e, RunStarted))
        assert started.recipe == "saf up"
        assert [s.name for s in started.steps] == ["beat"]
        assert list(started.nodes) == ["alpha"]
        assert await _until(lambda: (nodes.root / "beats").exists())
        assert nodes.pid("alpha", "beat") is not None
        assert _gone(nodes, "beta", "beat")  # declared there too: only the row's node
        assert _gone(nodes, "alpha", "other")  # another part: left alone

        seen.clear()
        assert await bring_part(fleet, "down", "service", "alpha", "beat", seen.append) == "ok"
        assert next(e for e in seen if isinstance(e, RunStarted)).recipe == "saf down"
        assert isinstance(seen[-1], RunFinished)
        assert await _until(lambda: _gone(nodes, "alpha", "beat"))

        with pytest.raises(PartRefused, match="declares no service 'nope'"):
            await bring_part(fleet, "up", "service", "alpha", "nope", seen.append)
        with pytest.raises(PartRefused, match="no node 'omega'"):
            await bring_part(fleet, "up", "service", "omega", "beat", seen.append)


async def test_a_part_run_that_failed_resumes_as_that_part_alone(nodes: Nodes) -> None:
    """A part's run is resumed (`saf run --resume`, the Recipes screen) by compiling that
    part again, not the whole declaration: its steps are the part's."""
    from saf.up.bring import resume

    inventory = load_inventory(nodes.inventory)
    async with Fleet(inventory) as fleet:
        seen: list[object] = []
        assert await bring_part(fleet, "up", "service", "alpha", "broken",
                                seen.append) == "failed"
    started = next(e for e in seen if isinstance(e, RunStarted))
    assert started.vars["part"] == "service:broken"
    plan = resume(started.run, inventory, check=False, selector=None)
    assert plan is not None
    again = plan()
    assert [s.name for s in again.recipe.steps] == ["broken"]
    assert (again.selector, again.start_step, again.resumed_from) == ("alpha", 0, started.run)


async def test_up_and_down_of_a_part_go_through_the_hub_and_obey_readonly(nodes: Nodes) -> None:
    from saf.serve import wire
    from saf.serve.client import HubError, HubLink
    from saf.serve.hub import Hub

    async with Hub(load_inventory(nodes.inventory), signals=False) as hub:
        token = hub.grant(readonly=True, who="tablet")
        ro = await asyncio.to_thread(HubLink.connect, hub.socket_path, token=token)
        rw = await asyncio.to_thread(HubLink.connect, hub.socket_path)
        await ro.start()
        await rw.start()
        try:
            seen: list[object] = []
            with pytest.raises(HubError, match="bringing service beat up on alpha is "
                                               "disabled: .*read-only"):
                await ro.actions().bring_part("up", "service", "alpha", "beat", seen.append)
            assert seen == []
            assert _gone(nodes, "alpha", "beat")

            assert await rw.actions().bring_part("up", "service", "alpha", "beat",
                                                 seen.append) == "ok"
            assert any(isinstance(e, RunFinished) and e.status == "ok" for e in seen)
            assert await _until(lambda: nodes.pid("alpha", "beat") is not None)
            assert _gone(nodes, "beta", "beat")

            with pytest.raises(HubError, match="bringing service beat down on alpha is "
                                               "disabled: .*read-only"):
                await ro.actions().bring_part("down", "service", "alpha", "beat", seen.append)
            assert nodes.pid("alpha", "beat") is not None
            assert await rw.actions().bring_part("down", "service", "alpha", "beat",
                                                 seen.append) == "ok"
            assert await _until(lambda: _gone(nodes, "alpha", "beat"))

            # A part request the hub cannot read is answered, counted, and the link stays.
            reader, writer = await asyncio.open_unix_connection(str(hub.socket_path))
            try:
                writer.write(wire.pack_json({"hello": wire.VERSION, "token": None}))
                writer.write(wire.pack_json({"op": "part", "req": 7, "verb": "sideways",
                                             "kind": "service", "node": "alpha",
                                             "name": "beat"}))
                reply: dict = {}
                async with asyncio.timeout(30):
                    while reply.get("msg") != "reply":
                        message = await wire.read_message(reader)
                        assert message is not None
                        if message[0] == wire.JSON:
                            reply = wire.decode_json(message[1])
            finally:
                writer.close()
            assert (reply["req"], reply["ok"]) == (7, False)
            assert "a part request not understood" in reply["message"]
            assert "$.verb" in reply["message"]
            assert hub.bad_requests == {"malformed": 1}
        finally:
            await ro.stop()
            await rw.stop()


async def test_the_cluster_screen_brings_a_part_up_and_down_and_shows_its_run(
        nodes: Nodes) -> None:
    """`u` on a service's row asks, then runs that part of `saf up` on the cockpit's fleet:
    the run's steps x nodes matrix and output replace the tables (as the Recipes screen shows
    a run), the tables are read again when it ends; `d` takes it down the same way."""
    from saf.screens.cluster import ClusterScreen, parts
    from saf.screens.confirm import ConfirmScreen
    from saf.screens.recipe_matrix import RunMatrix

    from tests.snapshot_apps._common import cockpit

    made = cockpit("healthy-3-nodes.jsonl", inventory=load_inventory(nodes.inventory))
    async with made.run_test(size=(120, 40)) as pilot:
        await pilot.press("7")
        screen = made.screen
        assert isinstance(screen, ClusterScreen)
        assert await _until(lambda: screen.status is not None, 60), screen.problem
        labels = [p.label for p in parts(screen.status)]
        for _ in range(labels.index("service beat on alpha")):
            await pilot.press("j")
        assert screen.current().label == "service beat on alpha"

        async def run(key: str) -> None:
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(made.screen, ConfirmScreen)
            assert "saf.toml" in made.screen.body
            await pilot.press("tab", "enter")  # from Cancel to the part's button
            await pilot.pause()
            assert screen.has_class("running-view")
            assert await _until(lambda: not screen.running, 120)
            await pilot.pause()

        await run("u")
        state = screen.run_state
        assert state is not None
        assert state.status == "ok"
        assert state.started is not None
        assert (state.started.recipe, state.nodes) == ("saf up", ["alpha"])
        assert screen.query_one(RunMatrix).border_title.startswith("saf up · run ")
        assert nodes.pid("alpha", "beat") is not None
        assert _gone(nodes, "beta", "beat")
        assert any("service beat up on alpha: ok" in n.message for n in made._notifications)

        def beat_on_alpha() -> str:
            assert screen.status is not None
            return next(s.state for s in screen.status.services
                        if (s.service, s.node) == ("beat", "alpha"))

        assert await _until(lambda: beat_on_alpha() == "active")  # read again after the run

        await pilot.press("escape")  # back to the tables, the part still highlighted
        assert not screen.has_class("running-view")
        assert screen.current().label == "service beat on alpha"
        await run("d")
        assert screen.run_state is not None
        assert screen.run_state.status == "ok"
        assert await _until(lambda: _gone(nodes, "alpha", "beat"))
        assert await _until(lambda: beat_on_alpha() == "absent")
