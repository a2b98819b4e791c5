"""Functional tests of the cockpit with Pilot: navigation, filter, themes, key map, a node
lost and recovered, read-only, signalling a process, recording from the cockpit. Every app is
built by the factory on recorded frames (no cluster), or on a local node where an action must
really happen."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from saf.screens.app import SafApp, make_app, replay_app
from saf.screens.confirm import ConfirmScreen
from saf.screens.dashboard import DashboardScreen
from saf.screens.help import HelpScreen
from saf.screens.messages import NodesChanged
from saf.screens.node import NodeScreen
from saf.screens.node_table import NodeTable
from saf.themes import THEMES_DIR
from textual.geometry import Region

from saf.cockpit.actions import FleetActions
from saf.cockpit.context import READONLY_FLAG, CockpitContext
from saf.cockpit.settings import Settings, load_settings
from saf.fleet import Fleet
from saf.inventory.model import Cluster, Defaults, Inventory, Node
from saf.metrics.events import AgentFrameEvent
from saf.metrics.view import NodeStatus
from saf.recording import Recording, Replayer, load_recording

FRAMES = Path(__file__).parent / "fixtures" / "frames"


def context(recording: Recording, *, readonly: bool = False, **fields) -> CockpitContext:
    fields.setdefault("settings", Settings())
    fields.setdefault("theme_folders", (THEMES_DIR,))
    return CockpitContext(cluster=recording.cluster, nodes=recording.nodes,
                          readonly_because=READONLY_FLAG if readonly else None, **fields)


def cockpit(name: str, until: float | None = None, **fields) -> SafApp:
    recording = load_recording(FRAMES / name)
    return replay_app(context(recording, **fields), recording, instant=True, until=until)


async def ready(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def table(app: SafApp) -> NodeTable:
    return app.screen.query_one(NodeTable)


async def test_navigation_enter_escape_help():
    app = cockpit("healthy-3-nodes.jsonl")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        assert isinstance(app.screen, DashboardScreen)
        assert table(app).rows == ["alpha", "beta", "gamma"]
        await pilot.press("down", "down")
        assert table(app).selected == "gamma"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, NodeScreen)
        assert app.screen.node == "gamma"
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, NodeScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("up")
        assert table(app).selected == "beta"


async def test_palette_reaches_nodes_and_actions():
    app = cockpit("healthy-3-nodes.jsonl")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Open node beta" in titles
        assert any(t.startswith("Filter") for t in titles)
        assert any(t.startswith("Help") for t in titles)
        assert "Go to Dashboard" in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Open node beta")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, NodeScreen)
        assert app.screen.node == "beta"


async def test_filter_and_clear():
    app = cockpit("healthy-3-nodes.jsonl")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("slash", *"work")
        assert table(app).rows == ["beta", "gamma"]
        await pilot.press("enter")
        assert table(app).has_focus
        assert table(app).rows == ["beta", "gamma"]
        await pilot.press("escape")
        assert table(app).rows == ["alpha", "beta", "gamma"]
        await pilot.press("slash", *"nothing-like-this")
        assert table(app).rows == []


async def test_theme_switch_is_remembered(tmp_path, monkeypatch):
    monkeypatch.setenv("SAF_CONFIG_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.theme is None
    app = cockpit("healthy-3-nodes.jsonl", settings=settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        assert app.theme == "saf-dark"
        await pilot.press("t")
        assert app.theme == "saf-light"
    assert load_settings().theme == "saf-light"
    again = cockpit("healthy-3-nodes.jsonl", settings=load_settings())
    async with again.run_test(size=(80, 24)) as pilot:
        assert again.theme == "saf-light"


async def test_bad_theme_file_falls_back_with_a_notification(tmp_path):
    folder = tmp_path / "themes"
    folder.mkdir()
    (folder / "broken.toml").write_text('name = "broken"\nprimary = "not-a-colour"\n')
    app = cockpit("healthy-3-nodes.jsonl", settings=Settings(theme="broken"),
                  theme_folders=(THEMES_DIR, folder))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        assert app.theme == "saf-dark"
        messages = [n.message for n in app._notifications]
        assert any("broken.toml" in m and "not a colour" in m for m in messages)
        assert any("no theme 'broken'" in m for m in messages)


async def test_user_keymap_is_applied(tmp_path, monkeypatch):
    monkeypatch.setenv("SAF_CONFIG_DIR", str(tmp_path))
    (tmp_path / "cockpit.toml").write_text('[keymap]\n"dashboard.filter" = "f"\n')
    app = cockpit("healthy-3-nodes.jsonl", settings=load_settings(remember=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("f", *"alp")
        assert table(app).rows == ["alpha"]


def test_bad_settings_name_the_line(tmp_path):
    from saf.errors import ConfigError

    path = tmp_path / "cockpit.toml"
    path.write_text('theme = "saf-dark"\n\n[thresholds]\ngpu_temp_alrt = 80\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert f"{path}:4:" in str(info.value)
    assert "gpu_temp_alrt" in str(info.value)


async def header_shows(pilot, *words: str, seconds: float = 2.0) -> str:
    """The dashboard header's text once it shows every word (it is drawn when the app hands
    the change on, within a fraction of a second), or as it is after `seconds`."""
    header = pilot.app.screen.query_one("#cluster-header")
    for _ in range(int(seconds / 0.05)):
        text = str(header.render())
        if all(word in text for word in words):
            break
        await pilot.pause(0.05)
    return text


async def test_node_lost_and_recovered():
    """gamma's agent exits at 30 s and is back at 45 s (recorded); seeking through the replay
    shows it lost, with the reason, then up again."""
    app = cockpit("lost-node.jsonl", until=20)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        assert app.view("gamma").status is NodeStatus.UP
        assert "gamma lost" not in await header_shows(pilot, "3/3 up")
        app.replayer.seek(35)
        await pilot.pause()
        view = app.view("gamma")
        assert (view.status, view.reason) == (NodeStatus.LOST, "exited")
        assert view.cpu is not None  # last values kept
        header = await header_shows(pilot, "gamma lost", "2/3 up")
        assert "gamma lost (exited · retrying)" in header
        assert "2/3 up" in header
        app.replayer.seek(55)
        await pilot.pause()
        assert app.view("gamma").status is NodeStatus.UP
        assert "3/3 up" in await header_shows(pilot, "3/3 up")
        app.replayer.seek(33)  # back again: the store is rebuilt as it was then
        await pilot.pause()
        assert app.view("gamma").status is NodeStatus.LOST


async def test_replay_plays_pauses_and_seeks():
    recording = load_recording(FRAMES / "healthy-3-nodes.jsonl")
    app = replay_app(context(recording), recording, speed=20.0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)
        assert app.replayer.position > 2
        await pilot.press("space")
        paused_at = app.replayer.position
        await pilot.pause(0.3)
        assert app.replayer.position == paused_at
        await pilot.press("right")
        assert app.replayer.position == pytest.approx(min(paused_at + 10,
                                                          recording.duration))
        samples = app.store.node("alpha").samples
        await pilot.press("left", "left", "left", "left", "left", "left")
        assert app.replayer.position == 0
        assert app.store.node("alpha").samples < samples


async def test_samples_reach_the_screen_once_a_second_each_node_named_once():
    """Samples are handed to the screen on view with the clock's tick, all nodes in one
    message, not a message a sample (64 nodes at 1 Hz would be 64 a second)."""
    recording = load_recording(FRAMES / "healthy-3-nodes.jsonl")
    app = replay_app(context(recording), recording)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        for _ in range(100):  # every node up with a sample (each shown at once)
            if all(app.store.node(n).sample for n in app.store.nodes):
                break
            await pilot.pause(0.05)
        await pilot.pause(0.1)
        screen = app.screen
        heard: list[frozenset[str]] = []
        post = screen.post_message

        def spy(message):
            if isinstance(message, NodesChanged):
                heard.append(message.nodes)
            return post(message)

        screen.post_message = spy  # type: ignore[method-assign]
        before = sum(app.store.node(n).samples for n in app.store.nodes)
        await pilot.pause(3.1)
        samples = sum(app.store.node(n).samples for n in app.store.nodes) - before
        del screen.post_message  # Textual's own again, to close
    assert samples >= 6  # three nodes at 1 Hz for three seconds
    assert 2 <= len(heard) <= 4  # once a second, not once a sample
    assert set().union(*heard) == {"alpha", "beta", "gamma"}


async def test_the_table_given_padding_by_css_is_drawn_with_it():
    """The table draws its own lines (no styles cache); CSS that gives it a gutter or an
    effect sends it back through Textual's usual drawing, padding and all."""
    app = cockpit("healthy-3-nodes.jsonl")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        nodes = table(app)
        plain = [strip.text for strip in nodes.render_lines(Region(0, 0, 120, 3))]
        nodes.styles.padding = (0, 3)
        await pilot.pause()
        padded = [strip.text for strip in nodes.render_lines(Region(0, 0, 120, 3))]
    assert plain[0].startswith("NODE")
    assert plain[1].startswith("alpha")
    assert padded[0].startswith("   NODE")
    assert padded[1].startswith("   alpha")
    assert all(len(line) == 120 for line in plain + padded)


async def test_readonly_refuses_node_actions():
    app = cockpit("node-nvidia-2x-rtx4090.jsonl", readonly=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("disabled" in n.message and "--readonly" in n.message
                   for n in app._notifications)


def _with_pid(recording: Recording, old: int, new: int) -> Recording:
    events = []
    for event in recording.events:
        if isinstance(event, AgentFrameEvent) and event.frame.get("gpus"):
            frame = json.loads(json.dumps(event.frame).replace(str(old), str(new)))
            # typed=None: the event checks the new frame again (the screens read its Struct)
            event = dataclasses.replace(event, frame=frame, raw=json.dumps(frame), typed=None)
        events.append(event)
    return dataclasses.replace(recording, events=tuple(events))


@contextlib.asynccontextmanager
async def gpu_process_on_the_node_screen() -> AsyncIterator[tuple[SafApp, Any, subprocess.Popen]]:
    """The node screen of a recorded NVIDIA node whose GPU process is a real local process
    (the victim), open; the victim and the fleet are gone afterwards, passed or failed."""
    victim = await asyncio.to_thread(subprocess.Popen,
                                     [sys.executable, "-c", "import time; time.sleep(60)"])
    local = Node("gpu1", "localhost", connection="local")
    fleet = Fleet(Inventory(Cluster(), Defaults(), (local,)))
    try:
        recording = _with_pid(load_recording(FRAMES / "node-nvidia-2x-rtx4090.jsonl"),
                              31337, victim.pid)
        setup = CockpitContext(cluster="saf", nodes=(local,), settings=Settings(),
                               theme_folders=(THEMES_DIR,), actions=FleetActions(fleet))
        app = make_app(setup, lambda emit: Replayer(recording, emit, instant=True))
        async with app.run_test(size=(120, 40)) as pilot:
            await ready(pilot)
            await pilot.press("enter")
            await pilot.pause()
            yield app, pilot, victim
    finally:
        await fleet.close()
        victim.kill()
        victim.wait()


async def test_signal_a_gpu_process_asks_then_sends_term():
    """The GPU process list of a recorded NVIDIA node, pointed at a real local process: `s`
    shows the exact command, Cancel does nothing, Send TERM ends the process."""
    async with gpu_process_on_the_node_screen() as (app, pilot, victim):
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.command == f"gpu1$ kill -TERM {victim.pid}"
        await pilot.press("escape")
        assert victim.poll() is None
        await pilot.press("s")
        await pilot.pause()
        await pilot.click("#term")
        await app.workers.wait_for_complete()
        assert victim.wait(timeout=10) == -15


async def test_signal_a_gpu_process_asks_twice_then_sends_kill():
    """KILL… asks again with the exact KILL command; only its Send KILL ends the process."""
    async with gpu_process_on_the_node_screen() as (app, pilot, victim):
        await pilot.press("s")
        await pilot.pause()
        await pilot.click("#kill")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.command == f"gpu1$ kill -KILL {victim.pid}"
        await pilot.press("escape")
        await app.workers.wait_for_complete()
        assert victim.poll() is None
        await pilot.press("s")
        await pilot.pause()
        await pilot.click("#kill")
        await pilot.pause()
        await pilot.click("#kill")
        await app.workers.wait_for_complete()
        assert victim.wait(timeout=10) == -9


async def test_record_from_the_cockpit(tmp_path):
    app = cockpit("healthy-3-nodes.jsonl", until=10, record_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("R")
        assert app.recorder is not None
        path = app.recorder.path
        app.replayer.seek(20)
        await pilot.pause()
        await pilot.press("R")
        assert app.recorder is None
    saved = load_recording(path)
    assert [n.name for n in saved.nodes] == ["alpha", "beta", "gamma"]
    assert len(saved.events) >= 30
    assert {e.node for e in saved.events} == {"alpha", "beta", "gamma"}


async def test_top_level_screens_are_modes_and_escape_goes_back():
    """4 and 5 switch to screens that keep their state while others show; escape goes back
    the way it came; 1 is the dashboard itself, even from a node opened on it."""
    from saf.screens.recipes import RecipesScreen
    from saf.screens.signals import SignalsScreen

    from tests.snapshot_apps._signals import make_signals_app

    app = make_signals_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("5")
        signals = app.screen
        assert isinstance(signals, SignalsScreen)
        assert app.current_mode == "signals"
        await pilot.press("4")
        assert isinstance(app.screen, RecipesScreen)
        assert app.current_mode == "recipes"
        await pilot.press("escape")
        assert app.screen is signals
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, NodeScreen)
        await pilot.press("5")
        assert app.screen is signals
        await pilot.press("1")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)
        assert len(app.screen_stack) == 1


class _Opened:
    """Every file opened (Python's `open` audit event) whose path is being watched."""

    hook_added = False
    watched: set[Path] = set()
    seen: list[Path] = []

    @classmethod
    def hook(cls, event: str, args: tuple[object, ...]) -> None:
        if event == "open" and cls.watched and isinstance(args[0], (str, Path)):
            path = Path(args[0]).absolute()
            if path in cls.watched:
                cls.seen.append(path)

    @classmethod
    def watch(cls, path: Path) -> list[Path]:
        if not cls.hook_added:  # an audit hook cannot be removed: one for the session
            sys.addaudithook(cls.hook)
            cls.hook_added = True
        cls.watched, cls.seen = {path.absolute()}, []
        return cls.seen


async def test_replay_with_an_inventory_never_reads_the_working_folder(
        asyncssh_cluster, tmp_path, monkeypatch):
    """`saf --inventory X replay FILE` in a folder holding another saf.toml: a recipe check
    runs on X's nodes, the Signals screen subscribes to X's endpoint, and the saf.toml in the
    working folder is never opened."""
    from saf.screens.recipes import RecipesScreen

    from saf.commands.replay import replay_cockpit, replay_inventory
    from saf.signals.config import signals_config

    decoy = tmp_path / "saf.toml"
    decoy.write_text('[[nodes]]\nname = "decoy"\nhost = "127.0.0.1"\nroles = ["head"]\n\n'
                     '[signals]\nendpoint = "tcp://127.0.0.1:9"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAF_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SAF_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("SAF_INVENTORY", raising=False)
    opened = _Opened.watch(decoy)
    try:
        inventory = replay_inventory(str(asyncssh_cluster.inventory))
        assert inventory is not None
        app = replay_cockpit(FRAMES / "healthy-3-nodes.jsonl", inventory)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("4")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, RecipesScreen)
            options = screen.query_one("#recipes-list")
            names = [options.get_option_at_index(i).id for i in range(options.option_count)]
            options.highlighted = names.index("hello")
            await pilot.pause()
            await pilot.press("c")
            await pilot.pause()
            await screen.workers.wait_for_complete()
            state = screen.state
            assert state is not None
            assert state.status == "ok"
            assert sorted(state.nodes) == sorted(n.name for n in inventory.nodes)
            await pilot.press("5")
            await pilot.pause()
            assert app.signal_feed().label == " ".join(signals_config(inventory).endpoints)
            assert "127.0.0.1:9" not in app.signal_feed().label
    finally:
        _Opened.watched = set()
    assert opened == []


async def test_a_cockpit_without_an_inventory_refuses_recipes(tmp_path, monkeypatch):
    """A replay opened with no inventory anywhere says why it cannot run a recipe (check or
    run), and runs nothing."""
    from saf.screens.recipes import RecipesScreen

    from saf.commands.replay import replay_inventory
    from saf.recipe.log import list_runs

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAF_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SAF_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("SAF_INVENTORY", raising=False)
    assert replay_inventory(None) is None
    app = cockpit("healthy-3-nodes.jsonl")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("4")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RecipesScreen)
        for key in ("c", "enter"):
            app.clear_notifications()
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is screen
            assert screen.state is None
            assert any("without an inventory" in n.message and "--inventory" in n.message
                       for n in app._notifications)
    assert list_runs(tmp_path / "state" / "runs") == []


async def test_a_dead_node_shows_at_once_and_counts_down_to_its_next_try(asyncssh_cluster,
                                                                         tmp_path):
    """A refused port is shown lost within a second of the cockpit's start (`saf nodes`
    reports it at once too); while it retries its row stays `✖ refused` (never
    `connecting`) and the header's alert counts down to the next try."""
    import time
    import tomllib

    import tomli_w
    from saf.screens.cluster_header import ClusterHeader

    from saf.commands.tui import cockpit as live_cockpit
    from saf.inventory import load_inventory
    from tests.helpers.servers import free_port

    data = tomllib.loads(asyncssh_cluster.inventory.read_text())
    data["nodes"].append({"name": "dead", "host": "127.0.0.1", "port": free_port()})
    path = tmp_path / "saf.toml"
    path.write_text(tomli_w.dumps(data))
    app = live_cockpit(load_inventory(path))
    async with app.run_test(size=(120, 40)) as pilot:
        started = time.monotonic()
        header = app.screen.query_one(ClusterHeader)
        seen_alerts: list[str] = []
        seen_cells: set[str] = set()
        shown_at = None
        while time.monotonic() - started < 8:
            await pilot.pause(0.25)
            text = str(header.render())
            alert = next((p.strip() for p in text.split("▲") if "dead lost" in p), None)
            if alert:
                shown_at = shown_at or time.monotonic() - started
                seen_alerts.append(alert.split(")")[0] + ")")
            row = [line for line in _table_lines(app) if line.lstrip().startswith("dead")]
            if row:
                seen_cells.add(row[0].split()[1])
    assert shown_at is not None, shown_at
    assert shown_at < 2.0, shown_at
    print(f"\ndead node shown lost {shown_at:.2f} s after the cockpit started")
    assert all(a.startswith("dead lost (refused · ") for a in seen_alerts), seen_alerts
    assert len(set(seen_alerts)) >= 2  # the countdown moves
    assert seen_cells == {"✖"}, seen_cells  # the row's state cell never left "✖ refused"


def _table_lines(app: SafApp) -> list[str]:
    grid = table(app)
    return ["".join(segment.text for segment in grid.render_line(y))
            for y in range(grid.size.height)]
def help_text(app: SafApp) -> str:
    """The help on view, as plain text."""
    import io

    from rich.console import Console

    screen = app.screen
    assert isinstance(screen, HelpScreen)
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(screen._content())
    return console.export_text()


async def test_help_says_each_thing_once_and_explains_the_screen_underneath():
    """Issue 23: screens in key order, ^p once, [thresholds] shown as written, the columns
    of the screen underneath (the Signals screen's, not the dashboard's), and the units."""
    app = cockpit("healthy-3-nodes.jsonl")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("question_mark")
        text = help_text(app)
        assert text.count("^p") == 1
        assert "palette  " not in text
        keys = [line.split()[0] for line in text.splitlines()
                if any(f"  {t}  " in line for t in ("Dashboard", "Recipes", "Signals"))]
        assert keys[:3] == ["1", "4", "5"]
        assert "(cockpit.toml [thresholds])" in text
        assert "NET IN/OUT" in text
        assert "DIR" not in text
        assert "bits per second" in text
        assert "powers of 1024" in text
        await pilot.press("escape", "5")
        await pilot.pause()
        await pilot.press("question_mark")
        text = help_text(app)
        for column in ("DIR", "CONF", "SENT", "ANOM", "SCORE", "MODEL"):
            assert f"\n{column}" in text.replace(" ", "\n"), column
        assert "NET IN/OUT" not in text
        assert "Node states" not in text


async def test_palette_finds_recipes_and_lists_each_command_once():
    """Issue 24: a recipe by name opens the Recipes screen on it; Textual's "Theme" (every
    theme) and "Quit" stand for saf's bindings, "Go to" for the screen keys."""
    app = cockpit("healthy-3-nodes.jsonl")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert len(titles) == len(set(titles))
        assert [t for t in titles if t.startswith("Theme")] == ["Theme"]
        assert not any(t.startswith("Dashboard") for t in titles)
        recipes = [t for t in titles if t.startswith("Recipe ")]
        assert len(recipes) >= 2
        wanted = recipes[-1].removeprefix("Recipe ")
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*f"Recipe {wanted}")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.3)
        from saf.screens.recipe_list import RecipeList
        from saf.screens.recipes import RecipesScreen

        assert isinstance(app.screen, RecipesScreen)
        found = app.screen.query_one(RecipeList).current()
        assert found is not None
        assert found.name == wanted


async def test_every_notice_is_plain_text():
    """What a notice quotes (saf.toml's [up], a recipe's "ray[default]", a node's error) is
    shown as written: a screen's notify passes markup=True, and the app makes it plain."""
    app = cockpit("healthy-3-nodes.jsonl")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        app.screen.notify("saf.toml's [up] needs ray[default] and [b]x[/b]", title="[red]t")
        await pilot.pause()
        [notice] = list(app._notifications)
        assert notice.message == "saf.toml's [up] needs ray[default] and [b]x[/b]"
        assert not notice.markup
