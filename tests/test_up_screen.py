"""A `saf up` run resumed from the cockpit's Recipes screen (r on a past run), as `saf run
--resume` does: saf.toml is compiled again (it is no recipe file to load), and the run goes on
at the step that did not finish, against the loopback fleet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from saf.screens.confirm import ConfirmScreen

from saf.inventory import load_inventory
from saf.recipe.events import NodeStepFinished, RunStarted
from saf.recipe.log import RunLog
from tests.snapshot_apps._recipes import make_recipes_app

TWO = """name = "two"
description = "two steps"
[vars]
dir = { default = "/nowhere", description = "where" }
[[steps]]
name = "count"
run = "echo {node.name} >> {dir}/count"
[[steps]]
name = "second"
run = "echo {node.name} >> {dir}/second"
"""


def _interrupted_up_run(runs: Path, inventory: Path) -> None:
    """The log of an up run whose saf died after its first step changed every node."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True)
    nodes = ["alpha", "beta", "gamma"]
    log = RunLog.create("u1", runs)
    log(RunStarted(run="u1", recipe="saf up", path=str(inventory),
                   vars={"inventory": str(inventory)}, cluster="test",
                   pid=int(dead.stdout), pid_started=1.0, time=1_700_000_000.0, nodes=nodes,
                   steps=[{"index": i, "name": name, "nodes": nodes, "on_failure": "stop"}
                          for i, name in enumerate(("two › count", "two › second"))]))
    for node in nodes:
        log(NodeStepFinished(step=0, node=node, status="changed", time=1_700_000_001.0))
    log.close()


async def test_an_up_run_resumes_from_the_screen(asyncssh_cluster, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "nodes"
    scratch.mkdir()
    (tmp_path / "two.toml").write_text(TWO)
    inventory = tmp_path / "saf.toml"
    inventory.write_text(asyncssh_cluster.inventory.read_text()
                         + f'\n[[up.steps]]\nrecipe = "two.toml"\nvars = {{ dir = "{scratch}" }}\n')
    state_dir = tmp_path / "state"
    monkeypatch.setenv("SAF_INVENTORY", str(inventory))
    monkeypatch.setenv("SAF_STATE_DIR", str(state_dir))
    _interrupted_up_run(state_dir / "runs", inventory)

    app = make_recipes_app(None, inventory=load_inventory(inventory))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        screen = app.screen
        await pilot.press("h")
        await pilot.pause()
        options = screen.query_one("#recipes-list")
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        options.highlighted = ids.index("u1")
        await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen), [n.message for n in app._notifications]
        await pilot.click("#run")
        await pilot.pause()
        await screen.workers.wait_for_complete()
        await pilot.pause(0.3)
        state = screen.state
        assert state is not None
        assert state.status == "ok"
        assert state.started is not None
        assert state.started.resumed_from == "u1"
        assert state.started.recipe == "saf up"
    assert not (scratch / "count").exists()  # the first step is not run again
    assert sorted((scratch / "second").read_text().split()) == ["alpha", "beta", "gamma"]
