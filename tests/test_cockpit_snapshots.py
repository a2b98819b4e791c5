"""Snapshot tests of every cockpit screen, at a desktop size (120x40), a tablet held sideways
(100x30), a small laptop or phone held sideways (80x24) and a tablet held upright (60x40).

Each app is built by `screens.app.make_app` on a recorded frame stream replayed at once to a
fixed moment (tests/snapshot_apps/), with animations off and workers awaited, so the pictures
are the same on every run. Update them with `pytest --snapshot-update` on Python 3.11 only.
SVGs live in tests/snapshots/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tests.helpers import snapshots as snapshot_helpers
from tests.snapshot_apps import themed

APPS = Path(__file__).parent / "snapshot_apps"
SIZES = snapshot_helpers.SIZES


async def settle(pilot: Pilot) -> None:
    """No animation, no blinking cursor, the replay applied and every message handled."""
    app = pilot.app
    app.animation_level = "none"
    await app.workers.wait_for_complete()
    await pilot.pause()
    for box in app.screen.query(Input):
        box.cursor_blink = False
    await pilot.pause()


async def open_palette(pilot: Pilot) -> None:
    """Ctrl+P, then settle: run_before runs before snap_compare's `press`, so a palette opened
    there would keep its cursor blinking and the picture would depend on when it is taken."""
    await settle(pilot)
    await pilot.press("ctrl+p")
    await settle(pilot)


def app_path(name: str) -> str:
    return str(APPS / f"{name}.py")


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_healthy(snap_compare, size) -> None:
    """Dashboard: three healthy nodes, all up, no alerts, sparklines filled."""
    assert snap_compare(app_path("dashboard_healthy"), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_scrolled(snap_compare, size) -> None:
    """Dashboard: 48 nodes, scrolled to the last one (End): rows beside the scrollbar, none
    cut by it, the header row still on top."""
    assert snap_compare(app_path("dashboard_many"), terminal_size=size, press=["end"],
                        run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_lost_node(snap_compare, size) -> None:
    """Dashboard: gamma lost ('exited'), greyed with its last values, alert in the header,
    2/3 up."""
    assert snap_compare(app_path("dashboard_lost"), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_gpu_alert(snap_compare, size) -> None:
    """Dashboard: gamma's GPU over 90°C (red), beta's swap and alpha's NIC errors in the
    alerts line."""
    assert snap_compare(app_path("dashboard_gpu_alert"), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_readonly(snap_compare, size) -> None:
    """Dashboard of a read-only cockpit: the status line says read-only and why."""
    assert snap_compare(app_path("dashboard_readonly"), terminal_size=size, run_before=settle)


def test_dashboard_replay_end(snap_compare) -> None:
    """The end of a recording made with R in `saf demo` and ended by quitting it: the header
    (3/3 up, the memory in use) agrees with the rows (every node up with its figures)."""
    assert snap_compare(app_path("dashboard_demo_recorded"), terminal_size=(120, 40),
                        run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_node_nvidia(snap_compare, size) -> None:
    """Node screen of a Linux box with two RTX 4090s: per-core bars, NUMA, each GPU with its
    graph and process list, interfaces with in/out graphs, disks."""
    assert snap_compare(app_path("node_nvidia"), press=["enter"], terminal_size=size,
                        run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_node_apple(snap_compare, size) -> None:
    """Node screen of a Mac Studio: unified GPU memory, and what macOS cannot measure."""
    assert snap_compare(app_path("node_apple"), press=["enter"], terminal_size=size,
                        run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_node_intel(snap_compare, size) -> None:
    """Node screen of an Arc A770 box: the GPU's clock and memory from sysfs, and why its
    use and power are not measured (no intel_gpu_top), instead of a blank."""
    assert snap_compare(app_path("node_intel"), press=["enter"], terminal_size=size,
                        run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_node_amd(snap_compare, size) -> None:
    """Node screen of a Strix Point APU box: use, power, temp and clock from amdgpu's sysfs,
    its 512 MiB VRAM carve-out as GPU memory and the GTT it maps from system RAM beside it."""
    assert snap_compare(app_path("node_amd"), press=["enter"], terminal_size=size,
                        run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_node_numa(snap_compare, size) -> None:
    """Node screen of a two-socket Xeon (4 NUMA nodes): 56 cores and the NUMA table with
    hit/miss/foreign rates."""
    assert snap_compare(app_path("node_numa"), press=["enter"], terminal_size=size,
                        run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_node_behind_jump_hosts(snap_compare, size) -> None:
    """Node screen of a node reached through jump hosts: its title says "via" them, the one
    dialled first first, after its address (left out first where the line is short)."""
    assert snap_compare(app_path("node_jump"), press=["enter"], terminal_size=size,
                        run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_node_lost(snap_compare, size) -> None:
    """Node screen of gamma, lost ('exited'): its title on one line (the agent's message, the
    address and the role give way before it wraps), its last values under it."""
    assert snap_compare(app_path("dashboard_lost"), press=["end", "enter"], terminal_size=size,
                        run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, size) -> None:
    """`?` on the dashboard: every key of the screen, the screens, states and columns."""
    assert snap_compare(app_path("dashboard_healthy"), press=["question_mark"],
                        terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_command_palette(snap_compare, size) -> None:
    """Ctrl+P on the dashboard: screens, nodes and actions by name."""
    assert snap_compare(app_path("dashboard_healthy"), terminal_size=size,
                        run_before=open_palette)


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_filtered(snap_compare, size) -> None:
    """`/` then "work": only the worker nodes are listed, the filter box shows the text."""
    assert snap_compare(app_path("dashboard_healthy"), press=["slash", *"work"],
                        terminal_size=size, run_before=settle)


THEMES = sorted(t for t in themed.make("saf-dark").available_themes if t != "textual-ansi")


@pytest.mark.parametrize("theme", THEMES)
def test_theme(snap_compare, theme) -> None:
    """The dashboard (with alerts, so every colour shows) in each theme, saf's and Textual's."""
    sizes = [(120, 40)]
    assert snap_compare(themed.make(theme), terminal_size=sizes[0], run_before=settle)


@pytest.mark.parametrize("theme", ["saf-light"])
def test_theme_tablet(snap_compare, theme) -> None:
    """saf's light theme at the tablet size."""
    assert snap_compare(themed.make(theme), terminal_size=(80, 24), run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_models_endpoints(snap_compare, size) -> None:
    """Models: vLLM and MLX ready with their last checks, llama.cpp loading, one exited;
    the first endpoint highlighted with its check's percentiles."""
    assert snap_compare(app_path("models_endpoints"), press=["6"], terminal_size=size,
                        run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_models_log(snap_compare, size) -> None:
    """Models: the second endpoint highlighted (down) and its log's last lines (l)."""
    assert snap_compare(app_path("models_endpoints"), press=["6", "down", "l"],
                        terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", [pytest.param((120, 40), id="120x40"),
                                  pytest.param((60, 40), id="60x40")])
def test_models_empty(snap_compare, size) -> None:
    """Models before any model server: the Last check panel says what it will show and how
    to get it (c on an endpoint, or `saf models check`), not a blank box."""
    assert snap_compare(app_path("models_empty"), press=["6"], terminal_size=size,
                        run_before=settle)


@pytest.mark.parametrize("size", [pytest.param((120, 40), id="120x40"),
                                  pytest.param((80, 24), id="80x24"),
                                  pytest.param((60, 40), id="60x40")])
def test_cluster_status(snap_compare, size) -> None:
    """Cluster (7): nodes, Ray, services and models of saf.toml with their verdicts (one
    node unreachable, a Ray node short of a GPU, a killed service, a model down); the
    first service highlighted (three rows down from the nodes and Ray)."""
    assert snap_compare(app_path("cluster_status"), press=["7", *["down"] * 6],
                        terminal_size=size, run_before=settle)


async def part_run_midway(pilot: Pilot) -> None:
    """Cluster, the third service (heartbeat on alpha) highlighted, `u`, confirmed; then
    wait until the recorded run's events are shown (its run never ends: no settle)."""
    app = pilot.app
    app.animation_level = "none"
    await pilot.press("7")
    await app.workers.wait_for_complete()
    await pilot.press(*["down"] * 8, "u")
    await pilot.pause()
    await pilot.press("tab", "enter")
    await app.setup.actions.shown.wait()
    await pilot.pause()
    await pilot.pause()


@pytest.mark.parametrize("size", [pytest.param((120, 40), id="120x40"),
                                  pytest.param((80, 24), id="80x24")])
def test_cluster_part_run(snap_compare, size) -> None:
    """Cluster: a part brought up (`u`, confirmed) shows its run in place of the tables, as
    the Recipes screen shows one (steps x nodes, the cell's output); the header says what
    runs and the footer offers x to cancel it and Esc back to the tables."""
    assert snap_compare(app_path("cluster_part_run"), terminal_size=size,
                        run_before=part_run_midway)
