"""Every string field of every step kind, fed hostile text (hypothesis): quotes, `$(...)`,
backticks, line breaks, a leading `-`, sed and awk programs, NULs and lone surrogates.

Each example is refused cleanly (a SafError naming what is wrong, before anything runs) or
runs on a real node (asyncssh's server on loopback, its own home folder as HOME): in --check
for every kind, and for real for the kinds that are safe to run here (shell, wait, upload).
Either way nothing in the text runs: every hostile fragment would create a file in a
sentinel folder, which stays empty, and no node's step ends as a bug ("step broke")."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from saf.errors import SafError
from saf.events import Event
from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.recipe import load_recipe
from saf.recipe.events import NodeStepFinished, RunFinished
from saf.recipe.kinds import KINDS
from saf.recipe.model import STEP_FORMS
from saf.recipe.prepare import prepare
from saf.recipe.runner import Runner
from saf.recipe.values import COMMAND, GRAMMARS
from tests.helpers.servers import AsyncsshServers, ClientKeys, write_inventory

# A minimal step of each kind, and the string fields it takes a {var} in. `real`: safe to run
# for real here (it only writes under the node's HOME).
STEPS: dict[str, dict[str, Any]] = {
    "shell": {"run": "printf %s {v} > out.txt"},  # (written into HOME)
    "upload": {"src": "file.txt", "dest": "up/{v}"},
    "wait": {"command": "test -n {v}", "tries": 1, "interval": 0},
    "apt": {"packages": "htop", "ppa": "ppa:a/b"},
    "nvidia-driver": {"driver": "recommended", "headers": "true"},
    "sysctl": {"settings": {"vm.swappiness": "10"}},
    "reboot": {"allow": "false", "module": "loop", "cmdline": "quiet", "command": "true"},
    "gpu": {"vendor": "intel", "expect": "A770", "user": "nobody"},
    "model": {"engine": "auto", "model": "m", "port": "8000", "host": "127.0.0.1",
             "tensor_parallel": "1", "ray": "false", "bin": "bin", "args": "--x 1",
             "ready_timeout": "5"},
    "net_test": {"pairs": "all", "streams": "1", "duration": "1", "warmup": "0",
                 "tool": "saf"},
    "ray_stop": {"temp_dir": "/tmp/ray-saf-test"},
    "python_match": {"python": "3.11.2", "ray": "2.9.0", "tool": "uv", "venv": "v",
                     "packages": "x", "verify": True},
}
REAL = {"shell", "wait", "upload"}
# Each kind's fields that a hostile value goes into (with the step's own check and creates).
FIELDS = [(kind, key) for kind, params in STEPS.items() for key, value in params.items()
          if isinstance(value, (str, dict))] + [("shell", "check"), ("shell", "creates")]


def test_every_field_of_every_kind_has_a_form() -> None:
    """One substitution rule for every field: a kind cannot take a placeholder in a field
    whose form (command, or a grammar) it has not declared."""
    for kind in KINDS.values():
        for key, form in kind.forms.items():
            assert form == COMMAND or form in GRAMMARS, (kind.name, key)
    for key, form in STEP_FORMS.items():
        assert form == COMMAND or form in GRAMMARS, key
    for kind_name, params in STEPS.items():
        kind = KINDS[kind_name].from_keys(dict(params), lambda key, msg: AssertionError(msg))
        for key, _ in kind.templates():
            assert key in kind.forms, (kind_name, key)


class Node:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.keys = ClientKeys(root / "operator")
        self.servers = AsyncsshServers(root, self.keys, ["alpha"])
        self.home = self.servers.home("alpha")
        self.inventory = write_inventory(
            root / "saf.toml", self.keys,
            [{"name": "alpha", "host": "127.0.0.1", "port": self.servers.port("alpha"),
              "roles": ["head"]}])
        self.sentinel = root / "sentinel"
        self.sentinel.mkdir()
        (root / "file.txt").write_text("data\n")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    one = Node(tmp_path_factory.mktemp("hostile-fields"))
    try:
        yield one
    finally:
        one.servers.stop()


def fragments(sentinel: Path) -> list[str]:
    s = sentinel
    return [f"$(touch {s}/a)", f"`touch {s}/b`", f"'; touch {s}/c; '", f'"; touch {s}/d; "',
            "\n", f"\ntouch {s}/e\n", "-oAPT::Get::Simulate=true", "--help", "-",
            f"/;e touch {s}/f;#", f'" ; system("touch {s}/g") ; "', "{v}", "{{", "}", "\\",
            "\udcff", "\0", " ", "'", '"', "x", "2-3", "8000", "*", "&", "|", "%s", "~/"]


def hostile(sentinel: Path) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(fragments(sentinel)) | st.text(max_size=3),
                    min_size=1, max_size=5).map("".join)


def recipe_text(kind: str, key: str) -> dict[str, Any]:
    step: dict[str, Any] = {"name": "hostile", "kind": kind, **STEPS[kind]}
    if key in ("check", "creates"):
        step[key] = "test -e {v}" if key == "check" else "made/{v}"
    elif isinstance(step[key], dict):
        step[key] = {k: "{v}" for k in step[key]}
    elif "{v}" not in step[key]:
        step[key] = "{v}"
    return {"vars": {"v": "x"}, "steps": [step]}


async def _run(node: Node, path: Path, value: str, check: bool) -> list[Event]:
    events: list[Event] = []
    async with Fleet(load_inventory(node.inventory)) as fleet:
        prepared = await prepare(load_recipe(path), fleet, {"v": value})
        await Runner(prepared, fleet, events.append, run_id="h", check=check).run()
    return events


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hostile_text_in_any_field_runs_nothing(node: Node, data: st.DataObject) -> None:
    # Half the examples go to the kinds that run for real, whose command fields take anything.
    real = [f for f in FIELDS if f[0] in REAL]
    kind, key = data.draw(st.sampled_from(real) | st.sampled_from(FIELDS), label="field")
    value = data.draw(hostile(node.sentinel), label="value")
    for left in node.sentinel.iterdir():  # an earlier failing example's: blame only this one
        left.unlink()
    path = node.root / f"{kind}-{key}.toml"
    path.write_text(tomli_w.dumps(recipe_text(kind, key)))
    check = kind not in REAL or data.draw(st.booleans(), label="check")
    try:
        events = asyncio.run(_run(node, path, value, check))
    except SafError as exc:  # refused before anything runs: one line saying what and where
        said = str(exc)
        event("refused")
    else:
        said = None
        event("ran" + (" in --check" if check else " for real"))
        assert isinstance(events[-1], RunFinished), events[-1]
        for done in events:
            if isinstance(done, NodeStepFinished):
                assert done.status in ("ok", "changed", "skipped", "failed"), done
                assert "step broke" not in done.message, done.message
                if done.status == "failed":
                    assert done.message
    assert said is None or said.strip(), "refused without saying why"
    assert list(node.sentinel.iterdir()) == [], (kind, key, value)
