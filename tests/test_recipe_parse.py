"""A bad recipe is refused before anything runs, naming the file, the line and the problem;
substitution puts values in quoted."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from saf.errors import ConfigError, SafError
from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.recipe import library, load_recipe
from saf.recipe.prepare import check_templates, parse_assignments, prepare, resolve_vars
from saf.recipe.substitute import Facts, names_in, render
from tests.helpers.servers import ClientKeys, write_inventory

FIXTURES = Path(__file__).parent / "fixtures" / "recipes"


@pytest.fixture(scope="module")
def inventory_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An inventory of three nodes that are never contacted (no step runs in these tests)."""
    root = tmp_path_factory.mktemp("inv")
    keys = ClientKeys(root / "keys")
    nodes = [{"name": n, "host": "127.0.0.1", "port": 1, "roles": [r], "tags": [t]}
             for n, r, t in (("alpha", "head", "mac"), ("beta", "worker", "mac"),
                             ("gamma", "worker", "nvidia"))]
    return write_inventory(root / "saf.toml", keys, nodes)


def _prepare(path: Path, inventory_path: Path, **overrides: str):
    recipe = load_recipe(path)

    async def go():
        async with Fleet(load_inventory(inventory_path)) as fleet:
            return await prepare(recipe, fleet, overrides)
    return asyncio.run(go())


@pytest.mark.parametrize(("name", "line", "words"), [
    ("syntax.toml", 5, "TOML syntax error"),
    ("unknown_key.toml", 6, "unknown key 'retry' in step 1"),
    ("unknown_top.toml", 2, "unknown key 'descripton'"),
    ("unknown_kind.toml", 9, "unknown kind 'teleport'"),
    ("no_action.toml", 3, "needs `run"),
    ("bad_on_failure.toml", 6,
     "step 1: 'on_failure' must be one of continue, stop, not 'explode'"),
])
def test_bad_recipe_names_file_and_line(name: str, line: int, words: str) -> None:
    """Each mistake in the file itself is a ConfigError: file:line: what."""
    with pytest.raises(ConfigError) as info:
        load_recipe(FIXTURES / name)
    text = str(info.value)
    assert text.startswith(f"{FIXTURES / name}:{line}: "), text
    assert words in text
    assert info.value.exit_code == 2


@pytest.mark.parametrize(("name", "line", "words"), [
    ("bad_selector.toml", 9, "step 2 (two): bad selector: unknown role in 'role:boss'"),
    ("missing_var.toml", 5, "missing variable 'model' (the model to serve)"),
    ("unknown_placeholder.toml", 12, "unknown variable {greting}"),
    ("missing_upload.toml", 6, "upload source 'does-not-exist.txt' not found"),
])
def test_recipe_wrong_for_inventory_or_vars(name: str, line: int, words: str,
                                           inventory_path: Path) -> None:
    """Mistakes found against the inventory and the variables, before anything runs."""
    with pytest.raises(ConfigError) as info:
        _prepare(FIXTURES / name, inventory_path)
    text = str(info.value)
    assert text.startswith(f"{FIXTURES / name}:{line}: "), text
    assert words in text


def test_a_step_whose_own_selector_matches_nothing_has_no_nodes_and_a_reason(
        tmp_path: Path, inventory_path: Path) -> None:
    """A recipe's `on` that is valid but matches no node here (a tag this cluster lacks) is
    not an error: the step has no nodes, and says why."""
    path = tmp_path / "r.toml"
    path.write_text('[[steps]]\nname = "x"\non = "tag:nonexistent"\nrun = "echo hi"\n')
    prepared = _prepare(path, inventory_path)
    assert prepared.targets[0] == []
    assert prepared.empty == {0: "no node matches tag:nonexistent"}


def test_missing_var_given_is_fine(inventory_path: Path) -> None:
    prepared = _prepare(FIXTURES / "missing_var.toml", inventory_path, model="llama")
    assert prepared.variables == {"greeting": "hi", "model": "llama"}
    assert [n.name for n in prepared.targets[0]] == ["alpha", "beta", "gamma"]


def test_unknown_var_on_command_line() -> None:
    recipe = load_recipe(FIXTURES / "missing_var.toml")
    with pytest.raises(SafError, match="has no variable 'modle'"):
        resolve_vars(recipe, {"modle": "x", "model": "y"})
    with pytest.raises(SafError, match="NAME=VALUE"):
        parse_assignments(["novalue"])
    assert parse_assignments(["a=b=c", "e="]) == {"a": "b=c", "e": ""}


def test_head_needed(tmp_path: Path, inventory_path: Path) -> None:
    """{node.x} facts are checked too; an unknown fact is an error."""
    path = tmp_path / "r.toml"
    path.write_text('[[steps]]\nname = "x"\nrun = "echo {node.colour}"\n')
    with pytest.raises(ConfigError, match=r"r.toml:3: step 1 \(x\): unknown name \{node.colour\}"):
        check_templates(load_recipe(path), load_inventory(inventory_path))


def test_substitution_quotes_every_value(inventory_path: Path) -> None:
    inventory = load_inventory(inventory_path)
    nasty = """a b "c" $(touch /tmp/pwned) 'd' ; echo x"""
    facts = Facts({"msg": nasty}, inventory.nodes[1], inventory)
    command = render("printf %s {msg} > {node.name}.out # {{msg}} ${HOME} {head.host}",
                     facts, shell=True)
    out = subprocess.run(["sh", "-c", command.split(">")[0]], capture_output=True, text=True)
    assert out.stdout == nasty
    assert command.endswith("beta.out # {msg} ${HOME} 127.0.0.1")
    assert render("{msg}", facts, shell=False) == nasty
    assert names_in("{a} {{b}} ${c} {node.name} { d } {cluster.name}") == [
        "a", "node.name", "cluster.name"]


def test_shipped_recipes_load() -> None:
    """Every recipe that ships with saf is valid, and is found by name."""
    shipped = [f for f in library.available() if f.origin == "shipped"]
    assert {"hello", "check-python"} <= {f.name for f in shipped}
    for found in shipped:
        recipe = load_recipe(found.path)
        assert recipe.description
        check_templates(recipe, None)
    assert library.find("hello").name == "hello.toml"


def test_the_old_kind_serve_loads_as_model_with_a_notice(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A user's recipe written with `kind = "serve"` (model serving's old name) still loads,
    as a `model` step, and stderr names its file and line and the new name."""
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\n\n[[steps]]\nname = "start"\nkind = "serve"\n'
                    'model = "m.gguf"\nport = 8000\n')
    recipe = load_recipe(path)
    assert recipe.steps[0].kind.name == "model"
    assert recipe.steps[0].kind.describe() == "serve m.gguf with auto on port 8000"
    assert capsys.readouterr().err == (f"saf: {path}:5: kind 'serve' is now 'model'; the old "
                                       "name will go\n")


def test_the_old_recipe_name_serve_finds_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert library.find("serve") == library.find("models")
    assert capsys.readouterr().err == ("saf: recipe 'serve' is now 'models'; the old name will "
                                       "go\n")


SHELL = 'name = "r"\n\n[[steps]]\nname = "one"\nrun = "echo hi"\n'
WAIT = 'name = "r"\n\n[[steps]]\nname = "one"\nkind = "wait"\ncommand = "true"\n'


@pytest.mark.parametrize(("text", "words"), [
    (SHELL + "timeout = nan", "'timeout' must be a number from 0 to 604800, not nan"),
    (SHELL + "delay = inf", "'delay' must be a number from 0 to 86400, not inf"),
    (SHELL + "retries = 1.5", "'retries' must be a whole number from 0 to 1000, not 1.5"),
    (SHELL + "retries = -1", "'retries' must be a whole number from 0 to 1000, not -1"),
    (WAIT + "interval = nan", "'interval' must be a number from 0 to 3600, not nan"),
    (WAIT + "tries = -inf", "'tries' must be a whole number from 1 to 100000, not -inf"),
    ('name = "r"\nvars = ' + "[" * 50 + "]" * 50, "nested too deeply"),
    ('name = "r"\nvars = ' + "[" * 5000 + "]" * 5000, "nested too deeply"),
])
def test_numbers_and_nesting_are_checked_where_read(tmp_path: Path, text: str,
                                                    words: str) -> None:
    """NaN and the infinities pass a plain `< 0`; a file nested thousands deep would end in
    a RecursionError inside tomllib. Each is one ConfigError naming the file."""
    path = tmp_path / "r.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    assert str(info.value).startswith(f"{path}:"), info.value
    assert words in str(info.value)
    assert info.value.exit_code == 2


def test_cli_exit_2_for_invalid_recipe(inventory_path: Path, tmp_path: Path) -> None:
    """`saf run` exits 2 with file:line for a bad recipe and never connects."""
    result = subprocess.run(
        [sys.executable, "-m", "saf", "-i", str(inventory_path), "run",
         str(FIXTURES / "unknown_kind.toml")], capture_output=True, text=True,
        env={"SAF_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "unknown_kind.toml:9: unknown kind 'teleport'" in result.stderr
    assert "Traceback" not in result.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "saf", "-i", str(inventory_path), "run", "no-such-recipe"],
        capture_output=True, text=True, env={"SAF_STATE_DIR": str(tmp_path)})
    assert missing.returncode == 2
    assert "no recipe 'no-such-recipe'" in missing.stderr


@pytest.mark.parametrize(("text", "line", "words"), [
    (SHELL + 'become = "yes"', 6, "step 1: 'become' must be true or false, not 'yes'"),
    (SHELL + 'on = " "', 6, "step 1: 'on' must be a non-empty string, not ' '"),
    (SHELL + "retyr = 2", 6, "unknown key 'retyr' in step 1, a shell step (known keys: "
     "become, check, creates, delay, description, kind, name, on, on_failure, readonly, "
     "retries, run, serial, timeout)"),
    (WAIT + "retyr = 2", 7, "unknown key 'retyr' in step 1, a wait step (known keys: "
     "become, check, command, creates, delay, description, interval, kind, name, on, "
     "on_failure, retries, run, serial, timeout, tries)"),
    ('name = "r"\nsteps = [1]', 2, "step 1 must be a table, not 1"),
    ('name = "r"\n[vars]\na = { defalt = 1 }\n' + SHELL[11:], 3,
     "unknown key 'defalt' in variable 'a' (known keys: default, description, type)"),
    ('name = "r"\n[vars]\na = [1]\n' + SHELL[11:], 3, "variable 'a' must be a string, number, "
     "boolean, or a table with default and description, not [1]"),
])
def test_every_mistake_says_the_key_what_it_must_be_and_what_was_written(
        tmp_path: Path, text: str, line: int, words: str) -> None:
    """The declared model (saf.recipe.schema) words each mistake alike: the step, the key,
    what it must be and the value written; an unknown key lists the keys that step knows."""
    path = tmp_path / "r.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    assert str(info.value) == f"{path}:{line}: {words}"


STEP = 'name = "r"\n\n[[steps]]\nname = "one"\n'  # a kind's keys follow, from line 5


@pytest.mark.parametrize(("keys", "line", "words"), [
    ('run = "true"\nreadonly = "yes"', 6, "step 1: 'readonly' must be true or false, not 'yes'"),
    ('kind = "shell"\nrun = " "', 6, "step 1: 'run' must be a non-empty string, not ' '"),
    ('kind = "wait"\ncommand = "true"\ntries = "5"', 7,
     "step 1: 'tries' must be a whole number from 1 to 100000, not '5'"),
    ('kind = "wait"\ncommand = "true"\ninterval = 3601', 7,
     "step 1: 'interval' must be a number from 0 to 3600, not 3601"),
    ('kind = "wait"', 3, "step 1, a wait step has no command"),
    ('kind = "upload"\nsrc = "a"\ndest = "b"\nmode = true', 8,
     "step 1: 'mode' must be octal like \"0644\", not True"),
    ('kind = "upload"\nsrc = "a"\ndest = "b"\nmode = "0999"', 8,
     "step 1: 'mode' must be octal like \"0644\", not '0999'"),
    ('kind = "upload"\nsrc = "a"\ndest = ["b"]', 7,
     "step 1: 'dest' must be a non-empty string, not ['b']"),
    ('kind = "apt"\npackages = 3', 6, "step 1: 'packages' must be a non-empty string, not 3"),
    ('kind = "apt"\npkgs = "jq"', 6, "unknown key 'pkgs' in step 1, an apt step (known keys: "
     "become, check, creates, delay, description, kind, name, on, on_failure, packages, ppa, "
     "retries, run, serial, timeout)"),
    ('kind = "apt"\npackages = "jq"\nppa = "jq"', 7,
     "step 1: 'ppa' must look like ppa:OWNER/NAME, not 'jq'"),
    ('kind = "ray_stop"\ntemp_dir = ""', 6,
     "step 1: 'temp_dir' must be a non-empty string, not ''"),
    ('kind = "python_match"\nverify = 1', 6, "step 1: 'verify' must be true or false, not 1"),
    ('kind = "python_match"\npython = 3.11', 6, "step 1: 'python' must be a string, not 3.11"),
    ('kind = "nvidia-driver"\nheaders = ""', 6,
     "step 1: 'headers' must be a non-empty string, not ''"),
    ('kind = "nvidia-driver"\ndriver = "nvidia"', 6, "step 1: driver must be 'recommended', a "
     "number like 570 or a package like nvidia-driver-570, not 'nvidia'"),
    ('kind = "reboot"\nwait = 0', 6, "step 1: 'wait' must be a number from 1 to 7200, not 0"),
    ('kind = "reboot"\nchecks = "flag, moon"', 6,
     "step 1: unknown check 'moon' (checks: flag, secure-boot, module, cmdline)"),
    ('kind = "gpu"\nvendor = "amd"', 6,
     "step 1: 'vendor' must be one of apple, intel, nvidia, not 'amd'"),
    ('kind = "gpu"\nvendor = "nvidia"\nagent = "no"', 7,
     "step 1: 'agent' must be true or false, not 'no'"),
    ('kind = "gpu"\nvendor = "nvidia"\nuser = "ai"', 7, "step 1: 'user' is for vendor 'intel'"),
    ('kind = "sysctl"\nsettings = { "vm.swappiness" = true }', 6,
     "step 1: 'settings'.'vm.swappiness' must be a string or a whole number, not True"),
    ('kind = "sysctl"\nsettings = { "vm.swappiness" = 1 }\nfile = "/etc/x.conf"', 7,
     "step 1: 'file' must be /etc/sysctl.d/NAME.conf"),
    ('kind = "mtu"\nmtu = " "', 6, "step 1: 'mtu' must be a value or a {var}, not ' '"),
    ('kind = "mtu"\npersist = [true]', 6,
     "step 1: 'persist' must be a value or a {var}, not [True]"),
    ('kind = "model"\nport = 8000', 3, "step 1, a model step has no model"),
    ('kind = "model"\nmodel = "m"\nport = 8000\nargs = ["-v"]', 8,
     "step 1: 'args' must be a value or a {var}, not ['-v']"),
    ('kind = "net_test"\nstreams = true', 6,
     "step 1: 'streams' must be a string or a number, not True"),
    ('kind = "net_test"\nstreams = 0', 6,
     "step 1: streams must be a whole number from 1 to 128, not 0"),
    ('kind = "ray_start"\nport = 6380.5', 6,
     "step 1: 'port' must be a string, a whole number or true/false, not 6380.5"),
    ('kind = "ray_start"\njoin_timeout = 0', 6,
     "step 1: 'join_timeout' must be a number from 1 to 3600, not 0"),
])
def test_a_kinds_own_keys_are_checked_by_the_step_model(tmp_path: Path, keys: str, line: int,
                                                        words: str) -> None:
    """A kind declares its keys (its Params: type, range, default) and the step is decoded
    with them, so a wrong value is worded like the step's own keys: file:line, the step,
    the key, what it must be and what was written."""
    path = tmp_path / "r.toml"
    path.write_text(STEP + keys + "\n")
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    assert str(info.value) == f"{path}:{line}: {words}"
