"""The live cockpit's agents start before the cockpit (saf.commands.tui.run_cockpit: the
links connect while Textual loads), on the demo cluster's real SSH servers and agents. What
the links reported before the app mounted reaches it, and so does every event after: each
node's first sample is handed to the dashboard at once (the app's gather timer), not a second
later with the clock's tick, which is switched off here so only the hand-on can tell it."""

from __future__ import annotations

import asyncio
import time

import pytest
from saf.screens.app import SafApp
from saf.screens.dashboard import DashboardScreen
from saf.screens.messages import NodesChanged

from saf.commands.tui import cockpit, live_source
from saf.demo.cluster import DemoCluster
from saf.fleet import Fleet
from saf.inventory import load_inventory


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    with DemoCluster(homes=tmp_path_factory.mktemp("homes")) as cluster:
        yield cluster


async def _until(predicate, seconds: float = 60.0) -> bool:
    """A deadline so a broken hand-on fails, not hangs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return bool(predicate())


@pytest.mark.parametrize("early", [True, False], ids=["started-before-the-app", "by-the-app"])
async def test_every_first_sample_is_handed_to_the_dashboard(
        demo: DemoCluster, tmp_path, monkeypatch: pytest.MonkeyPatch, early: bool) -> None:
    monkeypatch.setenv("SAF_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SAF_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setattr(SafApp, "_tick", lambda self: None)  # no once-a-second catch-up
    told: set[str] = set()  # nodes the dashboard heard of while they had a sample
    heard = DashboardScreen.on_nodes_changed

    def on_nodes_changed(screen: DashboardScreen, message: NodesChanged) -> None:
        store = screen.app.store  # type: ignore[attr-defined]
        told.update(n for n in message.nodes if store.node(n).sample is not None)
        heard(screen, message)

    monkeypatch.setattr(DashboardScreen, "on_nodes_changed", on_nodes_changed)
    inventory = load_inventory(demo.inventory_path)
    source = live_source(Fleet(inventory), inventory, 1.0)
    try:
        if early:
            await source.start()
            # Some events come before the app exists: they are held for it.
            assert await _until(lambda: len(source._held) >= 3)
        app = cockpit(inventory, source=source)
        async with app.run_test(size=(120, 40)):
            assert await _until(lambda: told == {"alpha", "beta", "gamma"}), told
    finally:
        await source.stop()
