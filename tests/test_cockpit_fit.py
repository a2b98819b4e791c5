"""Every screen read as a person reads it at the sizes saf supports, above all a tablet held
upright (60x40): a header is one line (parts left out, never wrapped), and a table's cells
are whole (columns left out, never a figure cut). The snapshots show the same pictures; these
say in words what must hold, so a regression fails with its reason."""

from __future__ import annotations

import pytest
from textual.pilot import Pilot

from tests.helpers.snapshots import screen_lines
from tests.snapshot_apps._common import cockpit
from tests.snapshot_apps._ray import make_ray_app
from tests.snapshot_apps.network_demo import RESULTS as DEMO_NET

SIZES = [(60, 40), (80, 24), (100, 30), (120, 40)]


async def settle(pilot: Pilot, *keys: str) -> list[str]:
    """Press `keys` with the replay applied and every worker done; the screen's lines."""
    app = pilot.app
    app.animation_level = "none"
    await app.workers.wait_for_complete()
    await pilot.pause()
    for key in keys:
        await pilot.press(key)
        await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()
    return screen_lines(app)


@pytest.mark.parametrize("size", SIZES)
async def test_a_lost_nodes_title_is_one_line(size: tuple[int, int]) -> None:
    """The node screen of a lost node (the longest title: state, reason, the agent's message,
    address, role, age): one line, its name and state always there, then the rule."""
    app = cockpit("lost-node.jsonl", until=40)
    async with app.run_test(size=size) as pilot:
        lines = await settle(pilot, "end", "enter")
        assert lines[0].startswith(" gamma   lost: exited"), lines[:2]
        assert set(lines[1]) == {"─"}, lines[:2]


@pytest.mark.parametrize("size", SIZES)
async def test_the_ray_summary_is_one_line(size: tuple[int, int]) -> None:
    """The Ray screen's totals: one line, the nodes alive and CPUs always there; what does
    not fit is left out whole (no "object st…")."""
    app = make_ray_app(running=True)
    async with app.run_test(size=size) as pilot:
        lines = await settle(pilot, "2")
        assert lines[0].startswith(" 3/3 nodes alive  CPU 0/6"), lines[:2]
        assert set(lines[1]) == {"─"}, lines[:2]
        assert "…" not in lines[0]


def box_lines(app, lines: list[str], ident: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The lines inside a panel's border, without it."""
    region = app.screen.query_one(ident).region
    return [line[region.x + 1:region.right - 1] for line in lines[region.y + 1:region.bottom - 1]]


@pytest.mark.parametrize("size", SIZES)
async def test_the_network_screen_cuts_no_figure(size: tuple[int, int]) -> None:
    """The Network screen after a speed test on the demo (path MTU 65535): its header one line;
    no cell of the matrix or of the interfaces cut (`6553…`, `ERRO…`): a column that does
    not fit is left out whole and the title says so."""
    app = cockpit("demo-recorded.jsonl", net_dir=DEMO_NET)
    async with app.run_test(size=size) as pilot:
        lines = await settle(pilot, "3")
        assert lines[0].startswith(" Network ok"), lines[:2]
        assert set(lines[1]) == {"─"}, lines[:2]
        matrix = box_lines(app, lines, "#net-matrix-box")
        table = [line for line in matrix if not line.lstrip().startswith(("⚠", "(and"))]
        assert not any("…" in line for line in table), table
        assert all(line.count("65535✓") == line.count("✓") for line in table), table
        ifaces = box_lines(app, lines, "#net-ifaces-box")
        assert "ERRORS" in ifaces[0], ifaces[0]
        assert "DROPS" in ifaces[0], ifaces[0]
        assert not any("…" in line for line in ifaces), ifaces
        shown = sum(row.count("65535✓") for row in table)
        title = app.screen.query_one("#net-matrix-box").border_title or ""
        assert shown == 6 or "column left out" in title, (title, table)


@pytest.mark.parametrize(("size", "shown"), [((120, 40), 12), ((100, 30), 4), ((80, 24), 3)])
async def test_link_warnings_use_the_room_there_is(size: tuple[int, int], shown: int) -> None:
    """The demo's twelve warnings: every one where the screen has room for them and the
    interfaces below (120x40), else as many as the matrix's box holds and how many more."""
    app = cockpit("demo-recorded.jsonl", net_dir=DEMO_NET)
    async with app.run_test(size=size) as pilot:
        lines = await settle(pilot, "3")
        matrix = box_lines(app, lines, "#net-matrix-box")
        warnings = [line for line in matrix if line.lstrip().startswith("⚠")]
        assert len(warnings) == shown, matrix
        more = [line for line in matrix if "more: saf net show" in line]
        assert more == ([] if shown == 12 else [more[0]]), matrix
        if more:
            assert f"(and {12 - shown} more" in more[0]
        ifaces = box_lines(app, lines, "#net-ifaces-box")
        if shown == 12:  # all of them, and still every interface below
            assert sum(1 for line in ifaces if "65536" in line or "1400" in line) == 6, ifaces


async def test_the_last_check_panel_is_never_blank() -> None:
    """Models with no model server yet: its Last check panel says what it shows and how to
    get one (the key, and the command)."""
    from tests.snapshot_apps._models import make_empty_models_app

    app = make_empty_models_app()
    async with app.run_test(size=(80, 24)) as pilot:
        lines = await settle(pilot, "6")
        panel = " ".join(line.strip() for line in box_lines(app, lines, "#models-detail-box"))
        assert "time to first token" in panel, panel
        assert "press c" in panel, panel
        assert "saf models check" in panel, panel
