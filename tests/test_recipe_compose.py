"""Recipes that run recipes (kind `recipe`): the other recipe's steps run in its place, named
`INCLUDE › step`, with its variables and within the step's `on`; --check, a rerun and the
log see them as ordinary steps; a recipe that runs itself is refused before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from saf.errors import ConfigError
from saf.inventory import load_inventory
from saf.recipe import load_recipe
from saf.recipe.compose import expand
from saf.recipe.kinds.include import Include
from saf.recipe.prepare import load_included

CHILD = """
name = "child"
[vars]
dir = { description = "where to write" }
word = "plain"

[[steps]]
name = "write the word"
run = "echo {word} > {dir}/{node.name}.word"
creates = "{dir}/{node.name}.word"

[[steps]]
name = "show it"
run = "cat {dir}/{node.name}.word"
check = "false"
"""

PARENT = """
name = "parent"
[vars]
dir = "@DIR@"

[[steps]]
name = "before"
run = "echo before {node.name}"

[[steps]]
recipe = "child.toml"
on = "alpha"
vars = { dir = "{dir}", word = "fancy {dir}" }

[[steps]]
name = "after"
run = "echo after {node.name}"
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture
def inventory(tmp_path: Path):
    path = write(tmp_path, "saf.toml", '[[nodes]]\nname = "alpha"\nhost = "127.0.0.1"\n'
                 '[[nodes]]\nname = "beta"\nhost = "127.0.0.2"\n')
    return load_inventory(path)


def test_a_recipe_key_makes_a_recipe_step(tmp_path: Path) -> None:
    write(tmp_path, "child.toml", CHILD)
    recipe = load_recipe(write(tmp_path, "p.toml", PARENT.replace("@DIR@", str(tmp_path))))
    step = recipe.steps[1]
    assert isinstance(step.kind, Include)
    assert step.name == "child"
    assert step.kind.values == {"dir": "{dir}", "word": "fancy {dir}"}


def test_a_recipe_step_refuses_keys_that_belong_on_its_steps(tmp_path: Path) -> None:
    path = write(tmp_path, "p.toml", 'name = "p"\n[[steps]]\nrecipe = "hello"\n'
                 'retries = 2\n')
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    assert f"{path}:4:" in str(info.value)
    assert "'retries' belongs on those" in str(info.value)


def test_expanded_steps_are_named_scoped_and_limited(tmp_path: Path, inventory) -> None:
    write(tmp_path, "child.toml", CHILD)
    recipe = load_recipe(write(tmp_path, "p.toml", PARENT.replace("@DIR@", str(tmp_path))))
    flat = expand(recipe, {"dir": str(tmp_path)}, inventory, load_included)
    assert [s.name for s in flat.steps] == ["before", "child › write the word",
                                            "child › show it", "after"]
    assert [s.index for s in flat.steps] == [0, 1, 2, 3]
    inner = flat.steps[1]
    assert inner.variables == {"dir": str(tmp_path), "word": f"fancy {tmp_path}"}
    assert inner.within == ("alpha",)
    assert inner.scope == ("child",)
    assert inner.origin is not None
    assert inner.origin.path == tmp_path / "child.toml"
    assert flat.steps[3].within == ()


def test_a_ring_is_refused_with_its_chain_and_line(tmp_path: Path, inventory) -> None:
    write(tmp_path, "a.toml", 'name = "a"\n[[steps]]\nrun = "true"\n[[steps]]\n'
          'recipe = "b.toml"\n')
    write(tmp_path, "b.toml", 'name = "b"\n[[steps]]\nname = "again"\nrecipe = "a.toml"\n')
    with pytest.raises(ConfigError) as info:
        expand(load_recipe(tmp_path / "a.toml"), {}, inventory, load_included)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'b.toml'}:2:"), message
    assert "a recipe that runs itself: a -> b -> a" in message


def test_a_recipe_that_runs_itself_directly(tmp_path: Path, inventory) -> None:
    write(tmp_path, "a.toml", 'name = "a"\n[[steps]]\nrecipe = "a.toml"\n')
    with pytest.raises(ConfigError, match="a -> a"):
        expand(load_recipe(tmp_path / "a.toml"), {}, inventory, load_included)


@pytest.mark.parametrize(("vars_text", "words"), [
    ('{ nope = "1" }', "recipe 'child' has no variable 'nope' (its [vars]: dir, word)"),
    ('{ word = "x" }', "recipe 'child' needs variable 'dir' (where to write)"),
    ('{ dir = "{node.name}" }', "vars.dir may only use this recipe's variables"),
])
def test_the_other_recipes_variables_are_checked(tmp_path: Path, inventory, vars_text: str,
                                                 words: str) -> None:
    write(tmp_path, "child.toml", CHILD)
    path = write(tmp_path, "p.toml", f'name = "p"\n[[steps]]\nrecipe = "child.toml"\n'
                 f'vars = {vars_text}\n')
    with pytest.raises(ConfigError) as info:
        expand(load_recipe(path), {}, inventory, load_included)
    assert f"{path}:2:" in str(info.value)
    assert words in str(info.value)


def test_a_missing_recipe_names_the_step(tmp_path: Path, inventory) -> None:
    path = write(tmp_path, "p.toml", 'name = "p"\n[[steps]]\nrecipe = "no-such-one"\n')
    with pytest.raises(ConfigError) as info:
        expand(load_recipe(path), {}, inventory, load_included)
    assert f"{path}:2:" in str(info.value)
    assert "no recipe 'no-such-one'" in str(info.value)


# -- for real, on the loopback nodes ------------------------------------------------------

def _run(cluster, state: Path, *args: str):
    return cluster.saf("run", *args, SAF_STATE_DIR=str(state),
                       SAF_CONFIG_DIR=str(state / "config"))


def _finished(stdout: str) -> dict[tuple[str, str], str]:
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    names = {s["index"]: s["name"] for s in events[0]["steps"]}
    return {(names[e["step"]], e["node"]): e["status"] for e in events
            if e["event"] == "node_step_finished"}


def test_an_included_recipe_runs_checks_and_reruns(asyncssh_cluster, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    write(tmp_path, "child.toml", CHILD)
    parent = write(tmp_path, "parent.toml", PARENT.replace("@DIR@", str(scratch)))
    state = tmp_path / "state"

    check = _run(asyncssh_cluster, state, str(parent), "--check")
    assert check.returncode == 0, check.stderr + check.stdout
    assert "child › write the word" in check.stdout
    assert "would run: echo 'fancy " in check.stdout
    assert not list(scratch.iterdir())  # --check changed nothing

    first = _run(asyncssh_cluster, state, str(parent), "--json")
    assert first.returncode == 0, first.stderr + first.stdout
    done = _finished(first.stdout)
    assert done[("child › write the word", "alpha")] == "changed"
    assert ("child › write the word", "beta") not in done  # within the step's on = alpha
    assert done[("after", "beta")] == "changed"
    assert (scratch / "alpha.word").read_text() == f"fancy {scratch}\n"
    assert not (scratch / "beta.word").exists()

    again = _run(asyncssh_cluster, state, str(parent), "--json")
    assert again.returncode == 0, again.stderr
    assert _finished(again.stdout)[("child › write the word", "alpha")] == "skipped"
    assert json.loads(again.stdout.splitlines()[-1])["status"] == "ok"


def test_a_ring_stops_saf_run_before_anything_runs(asyncssh_cluster, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    write(tmp_path, "a.toml", f'name = "a"\n[[steps]]\nrun = "touch {marker}"\n'
          '[[steps]]\nrecipe = "b.toml"\n')
    write(tmp_path, "b.toml", 'name = "b"\n[[steps]]\nrecipe = "a.toml"\n')
    state = tmp_path / "state"
    done = _run(asyncssh_cluster, state, str(tmp_path / "a.toml"))
    assert done.returncode == 2
    assert f"{tmp_path / 'b.toml'}:2:" in done.stderr
    assert "a -> b -> a" in done.stderr
    assert not marker.exists()
    assert not list((state / "runs").glob("*.jsonl")) if (state / "runs").exists() else True


def test_resume_starts_at_the_included_step_that_failed(asyncssh_cluster, tmp_path: Path
                                                        ) -> None:
    flag = tmp_path / "fixed"
    out = tmp_path / "out"
    out.mkdir()
    # The step that fails is the third of the run, and the parent has two steps: a resume
    # counts the steps that run, not the parent's own.
    write(tmp_path, "child.toml", f'name = "child"\n[[steps]]\nname = "ready"\nrun = "true"\n'
          f'[[steps]]\nname = "needs the fix"\n'
          f'run = "test -e {flag}"\n[[steps]]\nname = "then"\nrun = "touch {out}/then"\n')
    parent = write(tmp_path, "parent.toml", f'name = "parent"\n[[steps]]\nname = "first"\n'
                   f'run = "touch {out}/first-$$"\n[[steps]]\nrecipe = "child.toml"\n'
                   'on = "alpha"\n')
    state = tmp_path / "state"
    failed = _run(asyncssh_cluster, state, str(parent), "--json")
    assert failed.returncode == 1
    assert _finished(failed.stdout)[("child › needs the fix", "alpha")] == "failed"
    flag.touch()
    resumed = _run(asyncssh_cluster, state, "--resume", "last", "--json")
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    done = _finished(resumed.stdout)
    assert done[("first", "alpha")] == "skipped"  # done in the first run
    assert done[("child › ready", "alpha")] == "skipped"
    assert done[("child › needs the fix", "alpha")] == "changed"
    assert (out / "then").exists()
    assert len(list(out.glob("first-*"))) == 3  # the first step ran once, on 3 nodes


def test_a_node_left_out_of_an_included_recipe_goes_on_with_the_rest(asyncssh_cluster,
                                                                     tmp_path: Path) -> None:
    """driver-nvidia's kind leaves a node without an NVIDIA device out of the rest of its
    recipe; inside a recipe step that is the rest of the included recipe only."""
    if any(p.read_text().strip() == "0x10de" for p in Path("/sys/bus/pci/devices").glob(
            "*/vendor")):
        pytest.skip("this machine has an NVIDIA device: its nodes would not be left out")
    out = tmp_path / "out"
    out.mkdir()
    write(tmp_path, "child.toml", f'name = "gpu"\n[[steps]]\nkind = "nvidia-driver"\n'
          f'[[steps]]\nname = "use it"\nrun = "touch {out}/child-{{node.name}}"\n')
    parent = write(tmp_path, "parent.toml", 'name = "parent"\n[[steps]]\nrecipe = '
                   f'"child.toml"\non = "alpha"\n[[steps]]\nname = "after"\n'
                   f'run = "touch {out}/after-{{node.name}}"\non = "alpha"\n')
    done = _run(asyncssh_cluster, tmp_path / "state", str(parent), "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    finished = _finished(done.stdout)
    assert finished[("child › use it", "alpha")] == "skipped"
    assert finished[("after", "alpha")] == "changed"
    assert not (out / "child-alpha").exists()
    assert (out / "after-alpha").exists()


def test_the_cockpits_run_dialog_lists_the_steps_that_run(tmp_path: Path, inventory) -> None:
    """The Recipes screen asks before a run or resume, listing the steps from the resume's
    step on: those are counted as the run counts them, a recipe step's one by one."""
    from saf.screens.recipes import _steps_that_run

    from saf.recipe.run import RunPlan

    write(tmp_path, "child.toml", CHILD)
    recipe = load_recipe(write(tmp_path, "p.toml", PARENT.replace("@DIR@", str(tmp_path))))
    names = [s.name for s in _steps_that_run(RunPlan(recipe, start_step=2), inventory)]
    assert names == ["before", "child › write the word", "child › show it", "after"]
    plain = load_recipe(write(tmp_path, "c.toml", CHILD))
    assert _steps_that_run(RunPlan(plain, {"dir": "/x"}), inventory) == plain.steps
