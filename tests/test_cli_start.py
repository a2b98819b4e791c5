"""The CLI starts at once: `saf --help` imports no command module, and `saf COMMAND --help`
(every command and subcommand) imports none of the libraries a command needs only when it runs
(asyncssh, Textual, Ray, msgspec, httpx, ZeroMQ, Rich, asyncio). What `saf --help` lists comes
from saf.cli.SUMMARIES, which must say word for word what each command's docstring does."""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest

from saf.cli import COMMANDS, SUMMARIES, cli
from tests.helpers import cli_lines

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("asyncssh", "cryptography", "textual", "ray", "msgspec", "httpx", "zmq", "rich", "yaml",
         "aiohttp", "psutil", "asyncio")

# Runs each command line's --help in one process, and says after each what it imported.
PROBE = """
import json, sys
from saf.cli import main
HEAVY = set(json.loads(sys.argv[1]))
lines = json.loads(sys.argv[2])
seen = {}
for words in lines:
    try:
        main([*words, "--help"])
    except SystemExit:
        pass
    seen[" ".join(words)] = sorted({m.split(".")[0] for m in sys.modules} & HEAVY)
    if not words:
        seen["saf.commands"] = sorted(m for m in sys.modules if m.startswith("saf.commands"))
print(json.dumps(seen), file=sys.stderr)
"""


def loaded_after_help(lines: list[list[str]]) -> dict[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HEAVY), json.dumps(lines)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stderr.strip().splitlines()[-1])


def real(name: str) -> click.Command:
    module, _, attr = COMMANDS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def command_lines() -> list[list[str]]:
    """Every command and subcommand, as the words before `--help`."""
    lines: list[list[str]] = []

    def walk(command: click.Command, words: list[str]) -> None:
        lines.append(words)
        if isinstance(command, click.Group):
            for sub, child in sorted(command.commands.items()):
                walk(child, [*words, sub])

    for name in sorted(COMMANDS):
        walk(real(name), [name])
    return lines


def test_saf_help_imports_no_command_and_no_heavy_library() -> None:
    seen = loaded_after_help([[]])
    assert seen[""] == []
    assert seen["saf.commands"] == []


def test_every_command_help_imports_no_heavy_library() -> None:
    seen = loaded_after_help(command_lines())
    assert len(seen) > len(COMMANDS)  # the subcommands were walked too
    assert {line: found for line, found in seen.items() if found} == {}


def test_every_command_has_its_summary() -> None:
    """A command added to COMMANDS needs its line in SUMMARIES (its docstring's first
    sentence), or `saf --help` imports its module to list it."""
    assert sorted(SUMMARIES) == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_summary_is_the_docstrings_first_sentence(name: str) -> None:
    first = click.Command(name, help=real(name).help).get_short_help_str(10**9)
    assert SUMMARIES[name] == first


@pytest.mark.parametrize("width", [30, 60, 80, 120, 250])
def test_the_listing_is_clicks_own_at_every_width(width: int) -> None:
    """What `saf --help` lists is what click lists from the imported commands."""
    ctx = click.Context(cli, info_name="saf")
    lazy, eager = click.HelpFormatter(width=width), click.HelpFormatter(width=width)
    cli.format_commands(ctx, lazy)
    loaded = click.Group("saf", commands={name: real(name) for name in COMMANDS})
    loaded.format_commands(click.Context(loaded, info_name="saf"), eager)
    assert lazy.getvalue() == eager.getvalue()
    assert "nodes" in lazy.getvalue()


def test_a_command_without_a_summary_is_still_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(SUMMARIES, "keys")
    ctx = click.Context(cli, info_name="saf")
    formatter = click.HelpFormatter(width=80)
    cli.format_commands(ctx, formatter)
    assert "keys     Manage the SSH keys saf logs in with." in formatter.getvalue()


# Runs saf's main as the program does (no argv) or as a caller would (argv), and says, once
# the process is leaving, whether the objects left were frozen away from the collector.
LEAVING = """
import atexit, gc, sys
from saf.cli import main
atexit.register(lambda: print("frozen", gc.get_freeze_count() > 0, flush=True))
sys.argv = ["saf", "--version"]
main() if "{how}" == "program" else main(["--version"])
"""


def test_the_program_spares_its_exit_the_garbage_collections() -> None:
    """The end of `saf` is the process's: its objects are frozen, so the interpreter's exit
    does not walk them all with the collector. A caller of main(argv) keeps its collector."""
    for how, frozen in (("program", True), ("caller", False)):
        done = subprocess.run([sys.executable, "-c", LEAVING.replace("{how}", how)], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == f"frozen {frozen}", how


# What no headless command needs before its first connection: the cockpit, Ray's library, Rich
# and Pygments (printing comes once nodes have answered), the web faces of `saf serve`, ZeroMQ,
# httpx (imported where a request is made, through a forward once the node answered), the
# importers' YAML, the declared cluster's compiler (saf.up: every part saf up brings) and psutil
# (a run log's lock, which saf up starts once its nodes answered). Each is a prefix of module
# names.
HEAVY_AT_CONNECTION = ("textual", "ray", "rich", "pygments", "aiohttp", "prometheus_client",
                       "jinja2", "aiohttp_jinja2", "zmq", "httpx", "yaml", "numpy",
                       "saf.up", "psutil")
# label -> what it may have imported by then, and why.
# The run's title and first step are printed, and its log's lock taken, before any dial.
_RUN_VIEW = frozenset({"rich", "psutil"})
_DECLARED = frozenset({"saf.up"})  # what saf.toml declares is read and compiled first
NEEDED_AT_CONNECTION: dict[str, frozenset[str]] = {
    "up": _DECLARED,
    "up --check": _DECLARED,
    "down": _DECLARED,
    "status": _DECLARED,
    "run hello": _RUN_VIEW,
    "run ray-up": _RUN_VIEW,
    "net test": _RUN_VIEW,  # a speed test is a run too, shown by the same view
    "models restart": _DECLARED,  # a model saf up keeps is restarted through what it kept
    "models fit": _DECLARED,  # each node's memory, read as saf up reads it to place models
    # The hub's signal feed (ZeroMQ), its actions (saf up's among them) and the faces asked
    # for are up while the nodes connect: a browser or an SSH client may come at once.
    "serve --metrics": frozenset({"zmq", "aiohttp", "prometheus_client", "saf.up"}),
}

# Runs `saf ARGS` up to its first connection (an audit hook sees the socket.connect: the nodes
# are a closed port on loopback), prints which of HEAVY it had imported by then, and ends
# there. A command that ends without connecting prints nothing.
AT_FIRST_CONNECTION = """
import json, os, sys
heavy = json.loads(sys.argv[1])
def hook(event, args):
    if event == "socket.connect":
        names = list(sys.modules)
        loaded = sorted(h for h in heavy if any(m == h or m.startswith(h + ".") for m in names))
        os.write(1, (json.dumps(loaded) + "\\n").encode())
        os._exit(0)
sys.addaudithook(hook)
from saf.cli import main
main(sys.argv[2:])
"""


@pytest.fixture
def made_up_cluster(tmp_path: Path) -> tuple[Path, int]:
    """The command lines' folder (saf.toml, a key, a model) and their nodes' closed port (each
    test its own: the module's tests stay free to run on any worker)."""
    folder = tmp_path
    with socket.socket() as sock:  # bound, never listening: a connection is refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        cli_lines.inventory(folder, port)
    return folder, port


@pytest.mark.parametrize("label", sorted(set(cli_lines.connecting(Path("."), 1))
                                         - cli_lines.THROUGH_ZMQ))
def test_each_command_connects_before_importing_what_waits(
        label: str, made_up_cluster: tuple[Path, int]) -> None:
    """Every headless command that connects reaches its first connection having imported none
    of HEAVY_AT_CONNECTION (but what NEEDED_AT_CONNECTION allows it): whatever only prints,
    serves or decodes answers is imported after, while the nodes answer."""
    folder, port = made_up_cluster
    words = cli_lines.connecting(folder, port)[label]
    env = {**os.environ, "SAF_CONFIG_DIR": str(folder / "config"),
           "SAF_STATE_DIR": str(folder / "state"), "SAF_CACHE_DIR": str(folder / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", AT_FIRST_CONNECTION, json.dumps(HEAVY_AT_CONNECTION),
         "-i", str(folder / "saf.toml"), *words],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=env, input="password\n")
    assert done.stdout.strip(), f"saf {label} ended without connecting: {done.stderr}"
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert loaded == NEEDED_AT_CONNECTION.get(label, frozenset())


# Runs the program (no argv) up to its first connection, and says then whether the collector
# is on and what the start made was frozen; or, as a caller of main(argv), the same.
COLLECTOR = """
import gc, os, sys
def hook(event, args):
    if event == "socket.connect":
        os.write(1, f"{gc.isenabled()} {gc.get_freeze_count() > 0}\\n".encode())
        os._exit(0)
sys.addaudithook(hook)
from saf.cli import main
sys.argv = ["saf", *sys.argv[2:]]
main() if sys.argv[1] == "program" else main(sys.argv[1:])
"""


@pytest.mark.parametrize(("how", "seen"), [("program", "True True"), ("caller", "True False")])
def test_the_program_starts_without_collections_until_its_work_begins(
        how: str, seen: str, made_up_cluster: tuple[Path, int]) -> None:
    """The program's start runs without the garbage collector (saf.collector): by its first
    connection the command's work has begun, the collector is on again and what the start
    made is frozen out of its way. A caller of main(argv) keeps its collector as it was."""
    folder, _ = made_up_cluster
    env = {**os.environ, "SAF_CONFIG_DIR": str(folder / "config"),
           "SAF_STATE_DIR": str(folder / "state"), "SAF_CACHE_DIR": str(folder / "cache")}
    script = COLLECTOR.replace('sys.argv[1] == "program"', f'"{how}" == "program"')
    done = subprocess.run([sys.executable, "-c", script, how, "-i", str(folder / "saf.toml"),
                           "nodes"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=env)
    assert done.stdout.strip() == seen, done.stderr


def test_the_collector_is_paused_only_until_its_work_begins() -> None:
    """Paused, the collector is off; back on, it is on with the start's objects frozen; and
    back_on() leaves alone a collector that pause() did not turn off."""
    script = """
import gc
from saf import collector
collector.back_on()
gc.disable()
collector.back_on()
print(gc.isenabled())
gc.enable()
collector.pause()
print(gc.isenabled())
collector.back_on()
print(gc.isenabled(), gc.get_freeze_count() > 0)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.split("\n")[:3] == ["False", "False", "True True"], done.stderr
