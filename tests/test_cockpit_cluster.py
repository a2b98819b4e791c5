"""The Cluster screen's keys: a read-only cockpit refuses restart, up and down before
anything is asked or sent; a read-write one asks first and hands the highlighted part to the
context's node actions (saf serve's hub in a served cockpit, which refuses read-only sessions
itself: tests/test_serve_hub.py, tests/test_up_part.py; the restart done for real:
tests/test_status_live.py; up and down for real: tests/test_up_part.py)."""

from __future__ import annotations

from saf.screens.cluster import ClusterScreen
from saf.screens.confirm import ConfirmScreen

from saf.up.status import ClusterStatus
from tests.snapshot_apps._cluster import recorded_status
from tests.snapshot_apps._common import cockpit


class Recorded:
    """The node actions' interface, recording what the screen asks of it."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str, int]] = []

    async def signal(self, node: str, pid: int, signal: str) -> str:
        raise AssertionError("the Cluster screen sends no signals")

    async def restart_part(self, node: str, kind: str, name: str, port: int = 0) -> str:
        self.asked.append((node, kind, name, port))
        return f"{node}: restarted {name}"

    async def bring_part(self, verb, kind, node, name, show, ask_password=None) -> str:
        self.asked.append((verb, kind, node, name))
        return "ok"


def app(*, readonly: bool, actions: Recorded | None = None):
    async def source() -> ClusterStatus:
        return recorded_status()
    return cockpit("healthy-3-nodes.jsonl", cluster_status=source, readonly=readonly,
                   actions=actions)


async def open_cluster(pilot) -> ClusterScreen:
    await pilot.press("7")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, ClusterScreen)
    return screen


async def test_readonly_refuses_restart_up_and_down():
    actions = Recorded()
    made = app(readonly=True, actions=actions)
    async with made.run_test(size=(120, 40)) as pilot:
        screen = await open_cluster(pilot)
        for _ in range(6):  # the first service
            await pilot.press("down")
        assert screen.current().label == "service publisher on alpha"
        for key in ("r", "u", "d"):
            await pilot.press(key)
            await pilot.pause()
            assert not isinstance(made.screen, ConfirmScreen)
        refused = [n.message for n in made._notifications if "disabled" in n.message]
        assert len(refused) == 3, refused
        assert all("--readonly" in m for m in refused)
    assert actions.asked == []


async def test_restart_asks_then_sends_the_highlighted_part():
    actions = Recorded()
    made = app(readonly=False, actions=actions)
    async with made.run_test(size=(120, 40)) as pilot:
        screen = await open_cluster(pilot)
        for _ in range(10):  # the second model: llama-3b on alpha, port 8001
            await pilot.press("j")
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(made.screen, ConfirmScreen)
        assert "model llama-3b on alpha" in made.screen.body
        await pilot.press("tab", "enter")
        await made.workers.wait_for_complete()
        await pilot.pause()
        assert actions.asked == [("alpha", "model", "llama-3b", 8001)]
        assert isinstance(made.screen, ClusterScreen)
        assert screen.current().label == "model llama-3b on alpha"
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(made.screen, ConfirmScreen)
        assert "Take model llama-3b on alpha down" in made.screen.body
        assert made.screen.command.startswith("saf down --on alpha")
        await pilot.press("escape")  # not confirmed: nothing asked
        await pilot.pause()
        assert actions.asked == [("alpha", "model", "llama-3b", 8001)]
        await pilot.press("u")
        await pilot.pause()
        assert "Bring model llama-3b on alpha up" in made.screen.body
        await pilot.press("tab", "enter")
        await made.workers.wait_for_complete()
        await pilot.pause()
        assert actions.asked[1:] == [("up", "model", "alpha", "llama-3b")]


async def test_the_screen_reads_the_nodes_for_real(tmp_path):
    """No fixed view: the screen gathers saf status itself over the inventory (a fleet of
    its own, as in a replay or a served cockpit), a loopback node that answers and one that
    does not."""
    from saf.inventory import load_inventory
    from tests.helpers.servers import AsyncsshServers, ClientKeys, free_port, write_inventory

    keys = ClientKeys(tmp_path / "operator")
    servers = AsyncsshServers(tmp_path, keys, ["alpha"])
    try:
        path = write_inventory(tmp_path / "saf.toml", keys, [
            {"name": "alpha", "host": "127.0.0.1", "port": servers.port("alpha")},
            {"name": "omega", "host": "127.0.0.1", "port": free_port()}])
        made = cockpit("healthy-3-nodes.jsonl", inventory=load_inventory(path))
        async with made.run_test(size=(120, 40)) as pilot:
            screen = await open_cluster(pilot)
            for _ in range(100):
                if screen.status is not None:
                    break
                await pilot.pause(0.1)
            assert screen.status is not None, screen.problem
            verdicts = {n.node: n.judged.verdict for n in screen.status.nodes}
            assert verdicts == {"alpha": "as declared", "omega": "unreachable"}
    finally:
        servers.stop()


async def test_the_declaration_is_read_again_only_when_saf_toml_changes(tmp_path, monkeypatch):
    """Each poll gathers the nodes again, but works out saf.toml's declaration only when the
    file changed (its mtime or size): polls on an unchanged file check it once; an edit is
    seen at the next poll, and a mistake in it is shown with its line, not a crash."""
    import saf.up.declared as up_declared
    from saf.inventory import load_inventory
    from tests.helpers.servers import AsyncsshServers, ClientKeys, write_inventory

    worked_out: list[object] = []
    real = up_declared._check_after

    def counted(declared, file, source):
        worked_out.append(declared)
        return real(declared, file, source)

    monkeypatch.setattr(up_declared, "_check_after", counted)
    keys = ClientKeys(tmp_path / "operator")
    (tmp_path / "facts").mkdir()  # no init system: saf's supervisor would keep services
    servers = AsyncsshServers(tmp_path, keys, ["alpha"],
                              env={"SAF_FACTS_ROOT": str(tmp_path / "facts")})
    try:
        path = write_inventory(tmp_path / "saf.toml", keys, [
            {"name": "alpha", "host": "127.0.0.1", "port": servers.port("alpha")}])
        with path.open("a") as f:
            f.write('\n[[services]]\nname = "one"\non = "alpha"\ncommand = "sleep 1000"\n')
        made = cockpit("healthy-3-nodes.jsonl", inventory=load_inventory(path))
        async with made.run_test(size=(120, 40)) as pilot:
            screen = await open_cluster(pilot)

            async def poll() -> None:
                await pilot.press("f")
                await made.workers.wait_for_complete()
                await pilot.pause()

            for _ in range(3):
                await poll()
            assert screen.status is not None, screen.problem
            assert [s.service for s in screen.status.services] == ["one"]
            assert len(worked_out) == 1
            with path.open("a") as f:
                f.write('\n[[services]]\nname = "two"\non = "alpha"\ncommand = "sleep 1"\n')
            await poll()
            await poll()
            assert [s.service for s in screen.status.services] == ["one", "two"]
            assert len(worked_out) == 2
            with path.open("a") as f:
                f.write('\n[[services]]\nname = "two"\non = "alpha"\ncommand = "true"\n')
            await poll()
            assert "saf.toml:" in screen.problem, screen.problem
            assert "two" in screen.problem, screen.problem
    finally:
        servers.stop()


async def test_a_part_refused_before_it_runs_is_said_whole_and_the_tables_come_back():
    """An up the core refuses (saf.toml declares nothing) is told with saf.toml's [tables]
    named as written (not read as markup), and the tables are on view again."""
    from saf.up.part import PartRefused

    class Refusing(Recorded):
        async def bring_part(self, verb, kind, node, name, show, ask_password=None) -> str:
            raise PartRefused("saf.toml declares no [up], [ray], [[services]] or [[models]]")

    made = app(readonly=False, actions=Refusing())
    async with made.run_test(size=(120, 40)) as pilot:
        screen = await open_cluster(pilot)
        await pilot.press("u")
        await pilot.pause()
        await pilot.press("tab", "enter")
        await made.workers.wait_for_complete()
        await pilot.pause()
        said = [n for n in made._notifications if n.title.endswith("not run")]
        assert [n.message for n in said] == [
            "saf.toml declares no [up], [ray], [[services]] or [[models]]"]
        assert not said[0].markup
        assert not screen.has_class("running-view")
        assert not screen.running
