"""One figure reads one way on every screen: a node's memory on the dashboard, in the node
screen's memory panel and in its NUMA panel (one definition of used, one format), read from
what the cockpit really draws."""

from __future__ import annotations

from pathlib import Path

from saf.screens.app import SafApp, replay_app
from saf.screens.node import NodeScreen
from saf.themes import THEMES_DIR

from saf.cockpit.context import CockpitContext
from saf.cockpit.settings import Settings
from saf.format import fmt_used
from saf.recording import load_recording

FRAMES = Path(__file__).parent / "fixtures" / "frames"


def cockpit(name: str) -> SafApp:
    recording = load_recording(FRAMES / name)
    setup = CockpitContext(cluster=recording.cluster, nodes=recording.nodes,
                           settings=Settings(), theme_folders=(THEMES_DIR,))
    return replay_app(setup, recording, instant=True)


def screen_lines(app: SafApp) -> list[str]:
    """The screen as the terminal gets it, line by line."""
    return ["".join(s.text for s in strip) for strip in app.screen._compositor.render_strips()]


async def test_a_nodes_memory_reads_the_same_on_the_dashboard_and_its_node_screen():
    """A one-NUMA-node box (its NUMA node's used is the machine's, as the agent reckons
    both): the dashboard's MEMORY cell, the memory panel and the NUMA panel say the same."""
    app = cockpit("node-nvidia-2x-rtx4090.jsonl")
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        view = app.view("gpu1")
        figure = fmt_used(view.mem_used, view.mem_total)
        assert figure == "50/128G"  # 48.8 GiB of 128: three figures
        (row,) = [line for line in screen_lines(app) if line.startswith("gpu1 ")]
        assert f" {figure} " in row, row
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, NodeScreen)
        lines = screen_lines(app)
        (memory,) = [line for line in lines if "│ memory " in line]
        (numa,) = [line for line in lines if "│      0 " in line]
        assert f" {figure} " in memory, memory
        assert f" {figure} " in numa, numa


async def test_a_filter_that_matches_nothing_says_so_on_a_clean_line():
    """The rows drawn before the filter must not show through the end of the message."""
    app = cockpit("healthy-3-nodes.jsonl")
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("slash", *"zzz")
        await pilot.pause()
        (line,) = [line for line in screen_lines(app) if "no node matches" in line]
        # Every cell of the line drawn: a short line leaves what was there before it.
        assert line == "  no node matches the filter".ljust(120), line
