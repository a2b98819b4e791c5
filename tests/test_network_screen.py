"""The Network screen: snapshots of the full matrix at every size and of the screen before any
test; from the screen, a speed test on namespaced hosts fills the matrix in. SVGs live in
tests/snapshots/; update them with `pytest --snapshot-update` on Python 3.11 only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.helpers import snapshots as snapshot_helpers

APPS = Path(__file__).parent / "snapshot_apps"
SIZES = snapshot_helpers.SIZES


async def open_network(pilot: Pilot) -> None:
    """Open the Network screen (key 3) and settle: no animation, the replay applied."""
    app = pilot.app
    app.animation_level = "none"
    await app.workers.wait_for_complete()
    await pilot.press("3")
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_network_matrix(snap_compare, size) -> None:
    """Network: alpha ↔ beta green near line rate, alpha → gamma yellow at 61 % with ↻
    (retransmits), beta ↔ gamma red with a 1500 path MTU marked ✗; RTTs; the warnings; every
    node's interfaces with the cluster one marked ●."""
    assert snap_compare(str(APPS / "network_matrix.py"), terminal_size=size,
                        run_before=open_network)


@pytest.mark.parametrize("size", SIZES)
def test_network_demo(snap_compare, size) -> None:
    """Network after a speed test on `saf demo` (loopback, MTU 65536, four interfaces a node,
    twelve warnings): at 60x40 the gamma column is left out whole (the title says so) rather
    than an MTU cut to `6553…`; at 100x30 the interfaces keep ERRORS whole beside their
    scrollbar, with one address each and how many more; at 120x40 all twelve warnings show,
    the interfaces still whole below them."""
    assert snap_compare(str(APPS / "network_demo.py"), terminal_size=size,
                        run_before=open_network)


def test_network_before_any_test(snap_compare) -> None:
    """Network: no speed test yet: the header says `s` runs one; interfaces still live."""
    assert snap_compare(str(APPS / "network_empty.py"), terminal_size=(80, 24),
                        run_before=open_network)


async def test_a_speed_test_run_from_the_screen_fills_the_matrix_in(netns_cluster, tmp_path,
                                                                    monkeypatch):
    """`s` on the Network screen of a live cockpit on namespaced hosts runs the netperf recipe;
    the matrix is redrawn with each measurement (partial matrices on the way) and ends full."""
    from saf.screens.network import NetworkScreen

    from saf.commands.tui import cockpit
    from saf.inventory import load_inventory
    from saf.net.results import NetResult

    monkeypatch.setenv("SAF_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SAF_CONFIG_DIR", str(tmp_path / "config"))
    app = cockpit(load_inventory(netns_cluster.inventory_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, NetworkScreen)
        assert screen.result is None
        screen.overrides = {"duration": "0.3", "warmup": "0.1", "streams": "2"}
        await pilot.press("s")
        test_run = next(w for w in app.workers if w.group == "net-test")
        async with asyncio.timeout(120):
            await test_run.wait()
        await pilot.pause()
        assert screen.running is None
        assert screen.seen
        result = screen.result
        assert isinstance(result, NetResult)
        assert result.status == "ok"
        assert len(result.measurements) == 12
        assert all(m.ok and m.bits_per_second > 0 for m in result.measurements)
        assert any(0 < n < 12 for n in screen.seen), screen.seen  # it filled in
        assert screen.seen == sorted(screen.seen)
        header = str(screen.query_one("#net-header").render())
        assert "ok" in header
        assert result.run in header


async def test_the_matrix_prints_the_path_mtu_saf_net_show_prints(tmp_path):
    """Loopback: lo's MTU is 65536, the kernel's path MTU 65535. The screen's matrix prints
    the same figure as `saf net show` (NetResult.path_mtu), not the interfaces' MTU."""
    from rich.console import Console
    from textual.widgets import Static

    from saf.net import store
    from tests.snapshot_apps._common import cockpit
    from tests.test_net_results import loopback_result

    store.save(loopback_result(), tmp_path)
    app = cockpit("healthy-3-nodes.jsonl", net_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_network(pilot)
        console = Console(record=True, width=110, color_system=None)
        console.print(app.screen.query_one("#net-matrix", Static).content)
        matrix = console.export_text()
    assert "65535✓" in matrix.replace(" ", "")
    assert "65536" not in matrix
