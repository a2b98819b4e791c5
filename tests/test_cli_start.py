"""The CLI starts at once: `saf --help` imports no command module, and `saf COMMAND --help`
(every command and subcommand) imports none of the libraries a command needs only when it runs
(asyncssh, Textual, Ray, msgspec, httpx, ZeroMQ, Rich, asyncio). What `saf --help` lists comes
from saf.cli.SUMMARIES, which must say word for word what each command's docstring does."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from saf.cli import COMMANDS, SUMMARIES, cli

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
