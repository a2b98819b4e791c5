"""The Recipes screen: snapshots of the steps pane, the confirm dialog, and a run mid-way and
finished (replayed from recorded JSONL logs, so they are deterministic) at every snapshot
size, and real runs from the screen against the loopback fleet. SVGs live in tests/snapshots/;
update them with `pytest --snapshot-update` on Python 3.11 only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from saf.screens.confirm import ConfirmScreen
from textual.pilot import Pilot

from saf.inventory import load_inventory
from saf.recipe.events import NodeStepFinished, RunStarted
from saf.recipe.log import RunLog, list_runs, read_events
from tests.helpers import snapshots as snapshot_helpers
from tests.helpers.snapshots import screen_lines
from tests.snapshot_apps._recipes import make_recipes_app

APPS = Path(__file__).parent / "snapshot_apps"
SIZES = snapshot_helpers.SIZES
RUNS = Path(__file__).parent / "fixtures" / "recipes" / "runs"


async def open_recipes(pilot: Pilot) -> None:
    app = pilot.app
    app.animation_level = "none"
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.press("4")
    await pilot.pause()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_recipe_steps(snap_compare, size) -> None:
    """Recipes, before any run: the list (beside the steps, or above them under 80 columns),
    check-python's variables and steps with the nodes each runs on and what it does, a long
    command ending in "…" rather than squeezed."""
    assert snap_compare(str(APPS / "recipes_browse.py"), terminal_size=size,
                        run_before=open_recipes)


@pytest.mark.parametrize("size", SIZES)
def test_recipe_confirm(snap_compare, size) -> None:
    """Enter on check-python: the dialog names the nodes (alpha, beta, gamma), each step's
    nodes, and that Enter runs it; Run has the focus."""
    assert snap_compare(str(APPS / "recipes_browse.py"), terminal_size=size, press=["enter"],
                        run_before=open_recipes)


@pytest.mark.parametrize("size", SIZES)
def test_recipe_run_midway(snap_compare, size) -> None:
    """Recipes: the steps x nodes matrix mid-run: step 1 done everywhere, step 2 changed on
    alpha and running on beta and gamma, later steps pending; the log follows a running cell."""
    assert snap_compare(str(APPS / "recipes_midrun.py"), terminal_size=size,
                        run_before=open_recipes)


@pytest.mark.parametrize("size", SIZES)
def test_recipe_run_finished(snap_compare, size) -> None:
    """Recipes: a finished run: changed, skipped (marker on alpha) and failed (gamma's driver
    check, its stderr in the log pane); the last step runs on workers only."""
    assert snap_compare(str(APPS / "recipes_finished.py"), terminal_size=size,
                        run_before=open_recipes)


def past_run_of_lab(state: Path) -> None:
    """The recorded gpu-setup run (finished.jsonl) as a past run of the cluster `lab` (the
    snapshot apps' recording) in the state folder `state`."""
    runs = state / "runs"
    runs.mkdir(parents=True)
    lines = (RUNS / "finished.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["cluster"] = "lab"
    (runs / f"{first['run']}.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")


def steps_pane(app) -> str:  # type: ignore[no-untyped-def]
    box = app.screen.query_one("#recipes-detail-box")
    lines = screen_lines(app)[box.region.y + 1:box.region.bottom - 1]
    return " ".join(line[box.region.x + 1:box.region.right - 1].strip() for line in lines)


@pytest.mark.parametrize("keys", [
    pytest.param(["h"], id="history"),
    pytest.param(["h", "enter", "escape"], id="a-past-run-opened-then-closed"),
    pytest.param(["h", "1", "4"], id="away-and-back"),
    pytest.param(["h", "enter", "1", "4", "escape"], id="run-opened-away-back-closed"),
])
async def test_history_mode_never_shows_an_empty_steps_pane(tmp_path, monkeypatch, keys):
    """In history mode the steps pane shows the highlighted past run (its recipe, status,
    steps and nodes, and the keys for it), however the screen came back to it: Escape from a
    run opened there left it blank."""
    monkeypatch.setenv("SAF_STATE_DIR", str(tmp_path))
    past_run_of_lab(tmp_path)
    app = make_recipes_app(None)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_recipes(pilot)
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        await pilot.pause()
        if app.screen.has_class("running-view"):
            return  # the run's matrix is on view, not the steps pane
        pane = steps_pane(app)
        assert "gpu-setup" in pane, pane
        assert "20261123-191614-de96" in pane, pane
        assert "driver check" in pane, pane
        assert "r resumes it" in pane, pane


def test_recipe_history(snap_compare, tmp_path, monkeypatch) -> None:
    """Recipes in history mode, after opening a past run and closing it (Escape): the steps
    pane shows that run (gpu-setup: its status, steps and nodes, the keys), not a blank box."""
    monkeypatch.setenv("SAF_STATE_DIR", str(tmp_path))
    past_run_of_lab(tmp_path)
    assert snap_compare(str(APPS / "recipes_browse.py"), terminal_size=(80, 24),
                        press=["h", "enter", "escape"], run_before=open_recipes)


async def test_run_from_the_screen(asyncssh_cluster, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Enter on `hello` runs it on the fleet: the matrix fills in, and the run is logged where
    `saf runs` finds it."""
    monkeypatch.setenv("SAF_STATE_DIR", str(tmp_path))
    app = make_recipes_app(None, inventory=load_inventory(asyncssh_cluster.inventory))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        screen = app.screen
        options = screen.query_one("#recipes-list")
        names = [options.get_option_at_index(i).id for i in range(options.option_count)]
        options.highlighted = names.index("hello")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        # It asks first, naming the steps it will run and the nodes each runs on.
        assert isinstance(app.screen, ConfirmScreen)
        nodes = ", ".join(n.name for n in app.setup.nodes)
        assert f"1. say hello        on {nodes}" in app.screen.command
        assert f"on {nodes}, and may change" in app.screen.body
        assert screen.state is None  # nothing runs before the answer
        # Enter does what the dialog says it does: it runs, and says so.
        await pilot.press("enter")
        await pilot.pause()
        assert any(n.title == "hello started" for n in app._notifications)
        await screen.workers.wait_for_complete()
        await pilot.pause(0.3)
        state = screen.state
        assert state is not None
        assert state.status == "ok"
        assert {state.cells[(0, n)].status for n in state.nodes} == {"changed"}
        uname = os.uname()
        assert [line for _, line in state.cells[(0, "beta")].output] == [
            f"hello from beta ({uname.sysname} {uname.machine}) in cluster test"]
    runs = list_runs(tmp_path / "runs")
    assert [r.status for r in runs] == ["ok"]
    assert runs[0].started.recipe == "hello"


async def test_cancel_on_the_confirm_dialog_says_nothing_ran(
        asyncssh_cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Esc on the dialog closes it with a word that nothing ran, and nothing is logged."""
    monkeypatch.setenv("SAF_STATE_DIR", str(tmp_path))
    app = make_recipes_app(None, inventory=load_inventory(asyncssh_cluster.inventory))
    async with app.run_test(size=(60, 40)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        screen = app.screen
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "Enter: Run · Esc: Cancel" in str(app.screen.query_one("#confirm-keys").render())
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen
        assert screen.state is None
        assert any("was not run; nothing changed" in n.message for n in app._notifications)
    assert list_runs(tmp_path / "runs") == []


def _interrupted_run(runs: Path, run: str, recipe: Path, scratch: Path, started: float,
                     cluster: str = "test") -> None:
    """The log of a run of `recipe` on `cluster` whose saf died after step 1 changed every
    node."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True)
    nodes = ["alpha", "beta", "gamma"]
    log = RunLog.create(run, runs)
    log(RunStarted(run=run, recipe="two-steps", path=str(recipe), vars={"dir": str(scratch)},
                   cluster=cluster,
                   pid=int(dead.stdout), pid_started=1.0, time=started, nodes=nodes,
                   steps=[{"index": i, "name": name, "nodes": nodes, "on_failure": "stop"}
                          for i, name in enumerate(("count", "second"))]))
    for node in nodes:
        log(NodeStepFinished(step=0, node=node, status="changed", time=started + 1))
    log.close()


async def test_screen_runs_down_the_path_of_saf_run(asyncssh_cluster, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs whose saf died read as interrupted in the screen's history and in `saf runs`.
    One is resumed from the screen (r), the other with `saf run --resume`: both logs say the
    same (step 1 skipped as done, step 2 changed, resumed_from set), step 1 did not run again,
    and the CLI then finds nothing left to resume in the screen's run."""
    scratch = tmp_path / "nodes"
    scratch.mkdir()
    recipe = tmp_path / "two.toml"
    recipe.write_text('name = "two-steps"\n[vars]\ndir = "/nowhere"\n\n'
                      '[[steps]]\nname = "count"\nrun = "echo {node.name} >> {dir}/count"\n\n'
                      '[[steps]]\nname = "second"\nrun = "echo {node.name} >> {dir}/second"\n')
    state_dir = tmp_path / "state"
    runs = state_dir / "runs"
    _interrupted_run(runs, "r1", recipe, scratch, 1_700_000_000.0)
    _interrupted_run(runs, "r2", recipe, scratch, 1_700_000_100.0)
    _interrupted_run(runs, "other", recipe, scratch, 1_700_000_050.0, cluster="elsewhere")
    monkeypatch.setenv("SAF_INVENTORY", str(asyncssh_cluster.inventory))
    monkeypatch.setenv("SAF_STATE_DIR", str(state_dir))
    env = {"SAF_STATE_DIR": str(state_dir), "SAF_CONFIG_DIR": str(state_dir / "config")}

    app = make_recipes_app(None, inventory=load_inventory(asyncssh_cluster.inventory))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        screen = app.screen
        await pilot.press("h")
        await pilot.pause()
        options = screen.query_one("#recipes-list")
        listed = {options.get_option_at_index(i).id: str(options.get_option_at_index(i).prompt)
                  for i in range(options.option_count)}
        assert listed.keys() == {"r1", "r2"}
        assert all(prompt.endswith("interrupted") for prompt in listed.values())
        options.highlighted = list(listed).index("r1")
        await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        names = ", ".join(n.name for n in app.setup.nodes)
        assert app.screen.command == f"2. second  on {names}"
        await pilot.click("#run")
        await pilot.pause()
        await screen.workers.wait_for_complete()
        await pilot.pause(0.3)
        state = screen.state
        assert state is not None
        assert state.status == "ok"
        assert state.started is not None
        assert state.started.resumed_from == "r1"
        from_screen = state.started.run

    listed_by_cli = asyncssh_cluster.saf("runs", "--json", **env)
    assert {r["run"]: r["status"] for r in map(json.loads, listed_by_cli.stdout.splitlines())
            } == {"r1": "interrupted", "r2": "interrupted", from_screen: "ok"}
    every = asyncssh_cluster.saf("runs", "--json", "--all", **env)
    assert {r["run"]: r["cluster"] for r in map(json.loads, every.stdout.splitlines())} == \
        {"r1": "test", "r2": "test", "other": "elsewhere", from_screen: "test"}
    resumed = asyncssh_cluster.saf("run", "--resume", "r2", "--json", **env)
    assert resumed.returncode == 0, resumed.stderr
    from_cli = json.loads(resumed.stdout.splitlines()[0])["run"]

    def story(run: str) -> list[tuple[str, ...]]:
        # Sorted: the nodes of a step finish in any order.
        return sorted((e.kind, *(str(getattr(e, k)) for k in ("step", "node", "status",
                                                              "message", "resumed_from",
                                                              "start_step") if hasattr(e, k)))
                      for e in read_events(runs / f"{run}.jsonl")
                      if e.kind not in ("step_output", "node_step_started"))

    assert [tuple(x.replace("r2", "r1") for x in item) for item in story(from_cli)] == \
        story(from_screen)
    assert ("node_step_finished", "0", "beta", "skipped", "done in run r1") in \
        story(from_screen)
    assert not (scratch / "count").exists()  # step 1 ran in neither resume
    assert sorted((scratch / "second").read_text().split()) == sorted(
        ["alpha", "beta", "gamma"] * 2)
    again = asyncssh_cluster.saf("run", "--resume", from_screen, **env)
    assert again.returncode == 0
    assert "nothing left to do" in again.stdout
