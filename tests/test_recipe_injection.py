"""Recipe injection (issue 22, items 4, 5, 6, 18, 19, 22, 23, 26): what a hostile value did,
each reproduced as found, against one real node (asyncssh's server on loopback, its own home
folder as HOME) or the real tool (sed, apt-get -s)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from saf.errors import ConfigError, InventoryError, UsageError
from saf.events import Event
from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.recipe import load_recipe
from saf.recipe.events import NodeStepFinished, RunFinished
from saf.recipe.kinds.apt import install_commands
from saf.recipe.prepare import prepare
from saf.recipe.runner import Runner
from saf.recipe.values import value_problem
from saf.shell import quote
from tests.helpers.servers import AsyncsshServers, ClientKeys, write_inventory

SHIPPED = Path(__file__).parent.parent / "recipes"


class Node:
    """One node behind asyncssh's server: its inventory, and its home folder (HOME)."""

    def __init__(self, root: Path) -> None:
        self.keys = ClientKeys(root / "operator")
        self.servers = AsyncsshServers(root, self.keys, ["alpha"])
        self.home = self.servers.home("alpha")
        self.state = root / "state"
        self.inventory = write_inventory(
            root / "saf.toml", self.keys,
            [{"name": "alpha", "host": "127.0.0.1", "port": self.servers.port("alpha"),
              "roles": ["head"]}])

    def env(self) -> dict[str, str]:
        return {**os.environ, "SAF_INVENTORY": str(self.inventory),
                "SAF_STATE_DIR": str(self.state)}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    one = Node(tmp_path_factory.mktemp("injection"))
    try:
        yield one
    finally:
        one.servers.stop()


def run(node: Node, recipe: Path, *, check: bool = False, **variables: str) -> list[Event]:
    async def go() -> list[Event]:
        events: list[Event] = []
        async with Fleet(load_inventory(node.inventory)) as fleet:
            prepared = await prepare(load_recipe(recipe), fleet, variables)
            await Runner(prepared, fleet, events.append, run_id="t", check=check).run()
        return events
    return asyncio.run(go())


def saf(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "saf", *args], env=node.env(),
                          capture_output=True, text=True, timeout=120)


def finished(events: list[Event]) -> list[NodeStepFinished]:
    return [e for e in events if isinstance(e, NodeStepFinished)]


def write(tmp_path: Path, text: str, name: str = "recipe.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- (4) shell quoting is not sed quoting ----------------------------------------------------

def test_isolcpus_is_a_cpu_list_not_a_sed_program(node: Node, tmp_path: Path) -> None:
    """`isolcpus=2-3/;e touch F;#` is one quoted shell word, and a sed program that runs a
    command (as root, on a node): the shipped step, run by real sed against a copy of a grub
    file, shows it; saf now refuses the value as not a CPU list before anything runs."""
    pwned = tmp_path / "pwned"
    hostile = f"2-3/;e touch {pwned};#"
    recipe = load_recipe(SHIPPED / "linux-tuning.toml")
    grub = tmp_path / "grub"
    grub.write_text('GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n')
    step = recipe.step("isolated cores on the kernel command line")
    script = (step.kind.command.replace("{isolcpus}", quote(hostile))  # type: ignore[attr-defined]
              .replace("/etc/default/grub", str(grub)).replace("update-grub", "true"))
    if shutil.which("sed") and subprocess.run(["sed", "--version"], capture_output=True,
                                              text=True).stdout.startswith("sed (GNU"):
        subprocess.run(["sh", "-c", script], capture_output=True, timeout=30)
        assert pwned.exists(), "GNU sed's e command ran the value (the bug as found)"
        pwned.unlink()
    with pytest.raises(UsageError, match=r"--var isolcpus: the value is not a CPU list"):
        run(node, SHIPPED / "linux-tuning.toml", check=True, isolcpus=hostile)
    assert not pwned.exists()


@pytest.mark.parametrize("value", ["2-15", "2,4,6-7", "0-63:2/4", "nohz,domain,2-7", "all",
                                   ""])
def test_cpu_lists_the_kernel_reads_are_taken(value: str) -> None:
    assert value_problem("cpulist", value) is None


@pytest.mark.parametrize("value", ["2-3/;e touch x;#", "2 3", "2-3\n", "-1", "2-3\"", "$(id)"])
def test_what_is_not_a_cpu_list_is_refused(value: str) -> None:
    assert value_problem("cpulist", value)


# -- (5) every field of every kind goes through one substitution rule ------------------------

def test_reboot_command_quotes_its_values(node: Node, tmp_path: Path) -> None:
    """kind = "reboot" rendered `command` without quoting {var}: `why=x; touch F` ran."""
    pwned = tmp_path / "pwned"
    recipe = write(tmp_path, f"""
[vars]
why = "x"

[[steps]]
kind = "reboot"
checks = "cmdline"
cmdline = "saf_not_on_this_kernel"
allow = "true"
command = "echo rebooting because {{why}} > {tmp_path}/said"
wait = 1
""")
    events = run(node, recipe, why=f"x; touch {pwned}")
    assert not pwned.exists()
    assert (tmp_path / "said").read_text() == f"rebooting because x; touch {pwned}\n"
    assert finished(events)[0].status == "failed"  # no new boot id: it did not reboot


# -- (6) option injection: names are names ---------------------------------------------------

def test_apt_packages_are_package_names(node: Node, tmp_path: Path) -> None:
    """`packages = "htop -oAPT::Get::Simulate=true"` reached apt-get as an option."""
    recipe = write(tmp_path, """
[[steps]]
kind = "apt"
packages = "htop -oAPT::Get::Simulate=true"
become = true
""")
    with pytest.raises(ConfigError, match=r"packages: the value is not a Debian package name: "
                                          r"'-oAPT::Get::Simulate=true'"):
        run(node, recipe, check=True)


@pytest.mark.skipif(not shutil.which("apt-get"), reason="no apt-get here")
def test_apt_get_reads_every_name_as_a_package() -> None:
    """The install command ends apt-get's options with `--`: real `apt-get -s` (simulate, no
    root) reads `-oAPT::Get::Show-Versions=true` as a package it cannot find, not an option."""
    command = install_commands(["-oAPT::Get::Show-Versions=true"], None)[-1]
    command = command.replace("apt-get install", "apt-get -s install")
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "Unable to locate package -oAPT::Get::Show-Versions" in out.stdout + out.stderr


# -- (18) the shipped recipes against hostile values -----------------------------------------

def test_hello_marker_with_spaces_makes_no_stray_folders(node: Node) -> None:
    """`$(dirname {marker})` unquoted: `marker=my dir/m` made folders `my` and `dir`."""
    events = run(node, SHIPPED / "hello.toml", marker="my dir/m")
    assert [e.status for e in finished(events)] == ["changed"] * 3
    assert (node.home / "my dir" / "m").is_file()
    assert not (node.home / "my").exists()
    assert not (node.home / "dir").exists()
    again = run(node, SHIPPED / "hello.toml", marker="my dir/m")
    assert finished(again)[1].status == "skipped"


def hostile(sentinel: Path) -> list[str]:
    return [f"x y'$(touch {sentinel}/a)`touch {sentinel}/b`;touch {sentinel}/c\"",
            f"-x\ntouch {sentinel}/d\n/;e touch {sentinel}/e;#"]


@pytest.mark.parametrize("recipe", sorted(p.stem for p in SHIPPED.glob("*.toml")))
def test_shipped_recipe_variables_with_hostile_values(node: Node, tmp_path: Path,
                                                      recipe: str) -> None:
    """Every variable of every shipped recipe, given hostile values: refused before anything
    runs with the variable named, or run in --check (the fact-gathering commands for real),
    and nothing in the values runs."""
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    path = SHIPPED / f"{recipe}.toml"
    for name in load_recipe(path).vars:
        for value in hostile(sentinel):
            try:
                events = run(node, path, check=True, **{name: value})
            except (UsageError, ConfigError) as exc:
                said = str(exc)
            else:
                said = None
            if said is not None:
                assert name in said
                continue
            assert isinstance(events[-1], RunFinished)
            assert not any("step broke" in e.message for e in finished(events)), events
            for event in events:  # every command it would run has the value quoted
                for command in getattr(event, "would", []):
                    assert f"touch {sentinel}" not in command.replace(quote(value), "")
    assert list(sentinel.iterdir()) == []


# -- (19) ports are ports --------------------------------------------------------------------

@pytest.mark.parametrize("port", ["8000;id", "inf", "8000.0000001", "0", "65536", "8e3"])
def test_model_check_refuses_a_port_that_is_not_one(node: Node, port: str) -> None:
    out = saf(node, "run", "models", "--check", "--var", f"port={port}", "--var", "model=m")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "--var port: the value must be a port" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_port_written_in_a_step_is_checked_too(node: Node, tmp_path: Path) -> None:
    recipe = write(tmp_path, """
[[steps]]
kind = "model"
model = "m"
port = "8000.0000001"
""")
    with pytest.raises(ConfigError, match=r"step 1 \(.*\): port: the value must be a port"):
        run(node, recipe, check=True)


# -- (22) an upload destination with a line break --------------------------------------------

def test_upload_to_a_name_with_a_newline_is_skipped_on_rerun(node: Node, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "two\nlines").write_text("folder\n")
    (tmp_path / "one").write_text("file\n")
    recipe = write(tmp_path, """
[vars]
where = "x"

[[steps]]
name = "file"
kind = "upload"
src = "one"
dest = "{where}/one"

[[steps]]
name = "folder"
kind = "upload"
src = "src"
dest = "{where}/folder"
""")
    where = "up\nload"
    first = run(node, recipe, where=where)
    assert [e.status for e in finished(first)] == ["changed", "changed"], first
    assert (node.home / where / "one").read_text() == "file\n"
    assert (node.home / where / "folder" / "two\nlines").read_text() == "folder\n"
    again = run(node, recipe, where=where)
    assert [e.status for e in finished(again)] == ["skipped", "skipped"], again


# -- (23) unbalanced quoting is refused where it is written ----------------------------------

def test_inventory_python_with_unbalanced_quote(tmp_path: Path) -> None:
    path = tmp_path / "saf.toml"
    path.write_text('[defaults]\npython = "/opt/it\'s/python3"\n\n[[nodes]]\nname = "a"\n'
                    'host = "127.0.0.1"\n')
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert str(info.value).startswith(f"{path}:2:")
    assert "unbalanced quoting" in str(info.value)
    path.write_text('[defaults]\npython = "\\"/opt/it\'s/python3\\""\n\n[[nodes]]\n'
                    'name = "a"\nhost = "127.0.0.1"\n')
    assert load_inventory(path).nodes[0].python == "\"/opt/it's/python3\""


def test_serve_args_with_unbalanced_quote(node: Node) -> None:
    out = saf(node, "run", "models", "--check", "--var", "args=--alias 'x", "--var", "model=m")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "--var args: the value has unbalanced quoting" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


# -- (26) one size limit, before anything runs -----------------------------------------------

def test_a_command_too_big_is_refused_before_anything_runs(node: Node, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    big = "x" * 70_000
    recipe = write(tmp_path, f"""
[vars]
blob = "{big}"

[[steps]]
name = "first"
run = "touch {ran}"

[[steps]]
name = "big one"
run = "echo {{blob}} {{blob}} {{blob}}"
""")
    with pytest.raises(ConfigError, match=r"step 2 \(big one\): run is 205.1K once its "
                                          r"values are put in; a command line may be at most "
                                          r"128K"):
        run(node, recipe)
    assert not ran.exists()
