"""The runner against real SSH servers (asyncssh's and OpenSSH's): statuses, retries,
timeouts, on_failure, serial, --check, upload, wait, quoting and become.

On the OpenSSH cluster the three nodes share one home folder, so every test works in its own
scratch folder passed as {dir} and keeps each node's files under {dir}/{node.name}.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from saf.events import Event
from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.recipe import load_recipe
from saf.recipe.events import NodeStepFinished, NodeStepStarted, RunFinished, StepOutput
from saf.recipe.prepare import prepare
from saf.recipe.runner import Runner
from saf.shell import quote
from tests.helpers import procs

FIXTURES = Path(__file__).parent / "fixtures" / "recipes"
NODES = ["alpha", "beta", "gamma"]


class Outcome:
    def __init__(self, status: str, events: list[Event]) -> None:
        self.status = status
        self.events = events

    def results(self, step: int) -> dict[str, NodeStepFinished]:
        return {e.node: e for e in self.events
                if isinstance(e, NodeStepFinished) and e.step == step}

    def statuses(self, step: int) -> dict[str, str]:
        return {n: r.status for n, r in self.results(step).items()}


async def run_recipe(cluster, recipe_path: Path, *, check: bool = False, selector=None,
                     **variables: str) -> Outcome:
    recipe = load_recipe(recipe_path)
    events: list[Event] = []
    async with Fleet(load_inventory(cluster.inventory)) as fleet:
        prepared = await prepare(recipe, fleet, variables, selector)
        status = await Runner(prepared, fleet, events.append, run_id="test", check=check).run()
    return Outcome(status, events)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.toml"
    path.write_text('[vars]\ndir = "' + str(tmp_path / "nodes") + '"\n\n' + text)
    (tmp_path / "nodes").mkdir(exist_ok=True)
    for node in NODES:
        (tmp_path / "nodes" / node).mkdir(exist_ok=True)
    return path


async def test_statuses_and_rerun(cluster, tmp_path: Path) -> None:
    """A five-step recipe: first run changes, the rerun skips what is done; the wait ends ok."""
    recipe = tmp_path / "five.toml"
    shutil.copy(FIXTURES / "five_steps.toml", recipe)
    shutil.copytree(FIXTURES / "payload", tmp_path / "payload")
    scratch = tmp_path / "nodes"
    first = await run_recipe(cluster, recipe, dir=str(scratch))
    assert first.status == "ok"
    assert [first.statuses(i) for i in range(5)] == [
        dict.fromkeys(NODES, s) for s in ("changed", "changed", "changed", "changed", "ok")]
    assert {e.line for e in first.events if isinstance(e, StepOutput) and e.step == 0} == {
        f"hello from {n}" for n in NODES}
    assert (scratch / "beta" / "payload" / "sub" / "b.txt").read_text() == "nested\n"
    assert (scratch / "gamma" / "built").read_text() == "alpha-file\n"

    second = await run_recipe(cluster, recipe, dir=str(scratch))
    assert [second.statuses(i) for i in range(5)] == [
        dict.fromkeys(NODES, s) for s in ("changed", "skipped", "skipped", "skipped", "ok")]
    assert "up to date (2 files)" in second.results(1)["alpha"].message

    # Only what changed is sent again.
    (tmp_path / "payload" / "a.txt").write_text("edited\n")
    third = await run_recipe(cluster, recipe, dir=str(scratch))
    assert third.results(1)["alpha"].message.startswith("sent 1 files")
    assert (scratch / "alpha" / "payload" / "a.txt").read_text() == "edited\n"


async def test_failure_output_and_on_failure_stop(cluster, tmp_path: Path) -> None:
    recipe = write(tmp_path, """
[[steps]]
name = "fail on beta"
run = "echo first line; echo 'it broke' >&2; test {node.name} != beta || exit 3"

[[steps]]
name = "never"
run = "touch {dir}/{node.name}/never"
""")
    out = await run_recipe(cluster, recipe)
    assert out.status == "failed"
    assert out.statuses(0) == {"alpha": "changed", "beta": "failed", "gamma": "changed"}
    beta = out.results(0)["beta"]
    assert beta.exit_status == 3
    assert beta.message == "exit status 3"
    assert beta.tail == ["it broke"]
    assert out.results(1) == {}
    assert not any((tmp_path / "nodes" / n / "never").exists() for n in NODES)
    assert out.events[-1].status == "failed"


async def test_on_failure_continue(cluster, tmp_path: Path) -> None:
    recipe = write(tmp_path, """
[[steps]]
name = "fails"
run = "exit 1"
on_failure = "continue"
on = "gamma"

[[steps]]
name = "still runs"
run = "touch {dir}/{node.name}/ran"
""")
    out = await run_recipe(cluster, recipe)
    assert out.status == "ok"
    assert out.statuses(0) == {"gamma": "failed"}
    assert out.statuses(1) == dict.fromkeys(NODES, "changed")
    assert all((tmp_path / "nodes" / n / "ran").exists() for n in NODES)


async def test_retries(cluster, tmp_path: Path) -> None:
    """A command that succeeds on its third try: two retries are enough, one is not."""
    body = """
[[steps]]
name = "flaky"
run = "f={dir}/{node.name}/count; n=$(cat $f 2>/dev/null || echo 0); n=$((n+1)); echo $n > $f; test $n -ge 3"
retries = RETRIES
delay = 0.05
on = "alpha,beta"
"""  # noqa: E501 - a recipe's command line, kept whole
    (tmp_path / "a").mkdir()
    out = await run_recipe(cluster, write(tmp_path / "a", body.replace("RETRIES", "2")))
    assert out.statuses(0) == {"alpha": "changed", "beta": "changed"}
    assert out.results(0)["alpha"].attempts == 3
    assert [e.attempt for e in out.events
            if isinstance(e, NodeStepStarted) and e.node == "alpha"] == [1, 2, 3]
    (tmp_path / "b").mkdir()
    out = await run_recipe(cluster, write(tmp_path / "b", body.replace("RETRIES", "1")))
    assert out.statuses(0) == {"alpha": "failed", "beta": "failed"}
    assert out.results(0)["beta"].attempts == 2


def _pgrep(marker: str) -> list[str]:
    """The processes of this test's own tree that carry `marker`."""
    return procs.describe(procs.matching(re.escape(marker)))


def _gone(marker: str, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _pgrep(marker):
            return True
        time.sleep(0.1)
    return False


async def test_timeout_stops_remote_command(cluster, tmp_path: Path, marker: str) -> None:
    recipe = write(tmp_path, f"""
[[steps]]
name = "too slow"
run = "sleep 30 # {marker}"
timeout = 0.5
on = "beta"
""")
    out = await run_recipe(cluster, recipe)
    assert out.status == "failed"
    assert out.results(0)["beta"].message == "timed out after 0.5 s"
    assert _gone(marker), "the timed-out command is still running on the node"


async def test_serial_goes_one_node_at_a_time(cluster, tmp_path: Path) -> None:
    recipe = write(tmp_path, """
[[steps]]
name = "one by one"
serial = true
run = "echo start {node.name} >> {dir}/order; sleep 0.2; echo end {node.name} >> {dir}/order"
""")
    out = await run_recipe(cluster, recipe)
    assert out.statuses(0) == dict.fromkeys(NODES, "changed")
    lines = (tmp_path / "nodes" / "order").read_text().split("\n")[:-1]
    assert lines == [f"{what} {n}" for n in NODES for what in ("start", "end")]
    kinds = [(type(e).__name__, e.node) for e in out.events
             if isinstance(e, (NodeStepStarted, NodeStepFinished))]
    assert kinds == [(k, n) for n in NODES for k in ("NodeStepStarted", "NodeStepFinished")]


async def test_serial_stops_at_first_failure(cluster, tmp_path: Path) -> None:
    recipe = write(tmp_path, """
[[steps]]
name = "one by one"
serial = true
run = "test {node.name} != alpha"
""")
    out = await run_recipe(cluster, recipe)
    assert out.statuses(0) == {"alpha": "failed"}


async def test_check_changes_nothing(cluster, tmp_path: Path) -> None:
    """--check runs the checks only: the file the step would create is not there after it."""
    shutil.copytree(FIXTURES / "payload", tmp_path / "payload")
    recipe = write(tmp_path, """
[[steps]]
name = "create"
creates = "{dir}/{node.name}/made"
run = "echo made > {dir}/{node.name}/made"

[[steps]]
name = "send"
kind = "upload"
src = "payload"
dest = "{dir}/{node.name}/payload"

[[steps]]
name = "probe"
kind = "wait"
command = "test -f {dir}/{node.name}/made"
tries = 2
interval = 0.1
""")
    dry = await run_recipe(cluster, recipe, check=True)
    assert dry.status == "ok"
    assert dry.statuses(0) == dict.fromkeys(NODES, "changed")
    assert dry.results(0)["alpha"].would == [
        f"echo made > {quote(str(tmp_path / 'nodes'))}/alpha/made"]
    assert dry.results(1)["beta"].message.startswith("would send 2 of 2 files")
    # The wait only reads: under --check it is not run, and never "would change".
    assert dry.statuses(2) == dict.fromkeys(NODES, "skipped")
    assert not any((tmp_path / "nodes" / n / "made").exists() for n in NODES)
    assert not any((tmp_path / "nodes" / n / "payload").exists() for n in NODES)

    await run_recipe(cluster, recipe)
    again = await run_recipe(cluster, recipe, check=True)
    assert [again.statuses(i) for i in range(3)] == [
        dict.fromkeys(NODES, "skipped"), dict.fromkeys(NODES, "skipped"),
        dict.fromkeys(NODES, "ok")]


async def test_values_arrive_literally(cluster, tmp_path: Path) -> None:
    """A value with spaces, quotes and $(...) reaches the node as written, in run, check,
    creates and wait commands alike; nothing in it is executed."""
    pwned = tmp_path / "pwned"
    nasty = f"""a  b "c" $(touch {pwned}) `touch {pwned}` 'd' ; echo x & {{node.name}}"""
    recipe = write(tmp_path, """
[vars.msg]
default = "placeholder"

[[steps]]
name = "write"
check = "test -f {dir}/{node.name}/{msg}"
run = "printf '%s' {msg} > {dir}/{node.name}/out"

[[steps]]
name = "wait"
kind = "wait"
command = "test {msg} = \\"$(cat {dir}/{node.name}/out)\\""
tries = 1
""")
    out = await run_recipe(cluster, recipe, msg=nasty)
    assert out.status == "ok", out.events
    for node in NODES:
        assert (tmp_path / "nodes" / node / "out").read_text() == nasty
    assert not pwned.exists()


async def test_on_limits_nodes(cluster, tmp_path: Path) -> None:
    recipe = write(tmp_path, """
[[steps]]
name = "workers only"
on = "workers"
run = "true"

[[steps]]
name = "everyone"
run = "true"
""")
    out = await run_recipe(cluster, recipe, selector="beta,alpha")
    assert out.statuses(0) == {"beta": "changed"}
    assert out.statuses(1) == {"alpha": "changed", "beta": "changed"}


@pytest.mark.skipif(os.geteuid() != 0, reason="become without sudo needs root here")
async def test_become_as_root(cluster, tmp_path: Path) -> None:
    """Where saf already logs in as root, become runs the command as is."""
    recipe = write(tmp_path, """
[[steps]]
name = "root"
become = true
run = "id -u"
""")
    out = await run_recipe(cluster, recipe, selector="alpha")
    assert out.statuses(0) == {"alpha": "changed"}
    assert [e.line for e in out.events if isinstance(e, StepOutput)] == ["0"]
    assert isinstance(out.events[-1], RunFinished)


async def test_a_kind_that_breaks_fails_its_node_only(cluster, tmp_path: Path,
                                                      monkeypatch) -> None:
    """A step kind that raises on one node's output (a bug, or output it cannot read) fails
    that node with the kind's name and the error; the others and the run go on."""
    from saf.recipe.kinds import KINDS
    from saf.recipe.kinds.base import Kind, Plan

    class Fragile(Kind):
        name = "fragile"

        @classmethod
        def parse(cls, params, fail):
            return cls()

        def describe(self):
            return "reads something"

        async def plan(self, ctx):
            if ctx.node.name == "beta":
                raise ValueError("odd output: 'x'")
            return Plan(False, "fine", done_status="ok")

        async def apply(self, ctx, plan):
            raise AssertionError("not needed")

    monkeypatch.setitem(KINDS, "fragile", Fragile)
    recipe = write(tmp_path, '[[steps]]\nname = "fragile"\nkind = "fragile"\n\n'
                             '[[steps]]\nname = "after"\nrun = "true"\n')
    out = await run_recipe(cluster, recipe)
    assert out.statuses(0) == {"alpha": "ok", "beta": "failed", "gamma": "ok"}
    message = out.results(0)["beta"].message
    assert "fragile step broke" in message
    assert "ValueError: odd output" in message
    assert out.status == "failed"
