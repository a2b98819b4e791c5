"""The user's guide stays true: the command reference is what `saf doc` prints today, every
command is explained in the guide's own pages, and every command line the guide shows names
commands and options the CLI has."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from textual.binding import Binding
from textual.keys import format_key

from saf.cli import COMMANDS, cli
from saf.commands.doc import render

DOCS = Path(__file__).resolve().parent.parent / "docs"
REFERENCE = DOCS / "commands.md"  # generated; the guide is every other page
INLINE = re.compile(r"`(saf(?: [^`]*)?)`")


def guide_pages() -> list[Path]:
    return sorted(p for p in DOCS.glob("*.md") if p != REFERENCE)


def command_lines() -> Iterator[tuple[str, str]]:
    """(page:line, command line) for each `saf ...` in a code span or a code block."""
    for page in guide_pages():
        block = False
        for number, line in enumerate(page.read_text().splitlines(), 1):
            where = f"{page.name}:{number}"
            if line.lstrip().startswith("```"):
                block = not block
            elif block or line.startswith("    "):
                text = line.strip()
                if text.startswith("saf ") or text == "saf":
                    yield where, re.split(r"\s+#", text)[0]  # less its comment
            else:
                for match in INLINE.finditer(line):
                    yield where, match.group(1)


def words_of(line: str) -> list[str]:
    """The words of a command line, less shell redirections and a synopsis's brackets and
    ellipses (`[--to ENDPOINT [--wait S]]`, `[ENDPOINT]...`)."""
    words = (w.lstrip("[").rstrip("].") for w in shlex.split(line))
    return [w for w in words if w and not w.startswith(("<", ">"))]


def unknown(words: list[str]) -> list[str]:
    """The commands and options in `saf ...` words that the CLI does not have."""
    command: click.Command = cli
    path = "saf"
    rest = iter(words[1:])
    for word in rest:
        if word == "--":
            break  # the end of options: what follows is handed on (`saf ray submit -- CMD`)
        if word.startswith("-"):
            name = word.partition("=")[0]
            if name in ("-h", "--help"):
                continue
            option = next((p for p in command.params if isinstance(p, click.Option)
                           and name in p.opts + p.secondary_opts), None)
            if option is None:
                return [f"{path} {name}"]
            if not (option.is_flag or option.count or "=" in word):
                next(rest, None)  # the option's value
        elif word.isupper():
            continue  # a placeholder, as in a synopsis: `saf keys push SELECTOR`
        elif isinstance(command, click.Group) and "/" in word:
            # Alternatives in prose (`saf signals tail/record`): each must exist.
            ctx = click.Context(command)
            return [f"{path} {alt}" for alt in word.split("/")
                    if command.get_command(ctx, alt) is None]
        elif isinstance(command, click.Group):
            sub = command.get_command(click.Context(command), word)
            if sub is None:
                return [f"{path} {word}"]
            command, path = sub, f"{path} {word}"
        elif command.context_settings.get("ignore_unknown_options"):
            # It hands the rest on as a saf command line (`saf demo --headless exec uptime`).
            return unknown(["saf", word, *rest])
    return []


def test_command_reference_is_generated_from_the_cli():
    """If this fails, run `saf doc > docs/commands.md` and commit the result."""
    assert REFERENCE.read_text() == render(cli)


def test_the_guide_explains_every_command():
    """Each command is shown in the guide's own pages, not only in the generated reference."""
    shown = {words_of(line)[1] for _, line in command_lines() if len(words_of(line)) > 1}
    assert sorted(set(COMMANDS) - shown) == []


def test_the_guide_shows_only_commands_and_options_that_exist():
    """A renamed or removed command or option fails here until the guide says it too."""
    lines = list(command_lines())
    assert len(lines) > 50  # the guide's examples were found
    wrong = [f"{where}: {line!r} has no {bad}" for where, line in lines
             for bad in unknown(words_of(line))]
    assert wrong == []


@pytest.mark.parametrize(("line", "bad"), [
    ("saf top --once --bogus", ["saf top --bogus"]),
    ("saf signals tail [ENDPOINT]... [--sybmol TEXT]", ["saf signals tail --sybmol"]),
    ("saf demo --headless exec --no-such uptime", ["saf exec --no-such"]),
    ("saf runs shwo last", ["saf runs shwo"]),
    ("saf signals tail/record/replay/publish", []),
    ("saf signals tail/listen", ["saf signals listen"]),
    ("saf run hello --var model=llama3 --on workers", []),
    ("saf signals replay FILE [--to ENDPOINT [--wait S]] [--json]", []),
])
def test_the_check_itself(line: str, bad: list[str]) -> None:
    """What the guide test reports, on lines written to be right or wrong."""
    assert unknown(words_of(line)) == bad


def keys_table() -> list[tuple[set[str], set[str]]]:
    """(keys, ids) of each row of docs/cockpit.md's Keys table: the words in its backticks."""
    section = (DOCS / "cockpit.md").read_text().split("\n## Keys\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = line.strip().strip("|").split("|")
        if line.startswith("|") and len(cells) == 3 and "`" in cells[1] + cells[0]:
            words = [{w.lower() for span in re.findall(r"`([^`]+)`", cell) for w in span.split()}
                     for cell in cells[:2]]
            rows.append((words[0], words[1]))
    return rows


def cockpit_bindings() -> list[Binding]:
    """Every binding with an id that saf's screens, widgets and app declare."""
    import saf.screens
    found = []
    for info in pkgutil.iter_modules(saf.screens.__path__):
        module = importlib.import_module(f"saf.screens.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                found += [b for b in cls.__dict__.get("BINDINGS", [])
                          if isinstance(b, Binding) and b.id]
    return found


def test_the_keys_table_has_every_key_of_every_screen():
    """Each binding's id is in docs/cockpit.md's Keys table, on a row that names its keys as
    Textual shows them (`Esc`, `↑`, `PgUp`; `Enter` for ⏎): a key added to a screen (or a
    screen's key, like `3` for Network) fails here until the table says it."""
    rows = keys_table()
    bindings = cockpit_bindings()
    assert len(bindings) > 40
    assert any(b.id == "screen.network" for b in bindings)
    missing = []
    for b in bindings:
        keys = {{"⏎": "enter"}.get(k, k).lower() for k in map(format_key, b.key.split(","))}
        if not any(b.id in ids and keys <= shown for shown, ids in rows):
            missing.append(f"{b.id} ({', '.join(sorted(keys))})")
    assert missing == []


def test_saf_demo_says_what_outlives_it_and_how_to_stop_each():
    """Model servers and a Ray cluster outlive the demo (as they outlive a session on real
    nodes): `saf demo --help`, the README and the cockpit page name both, each with the
    command that stops it, and those commands exist."""
    ctx = click.Context(cli)
    demo = cli.get_command(ctx, "demo")
    assert demo is not None
    help_text = " ".join(demo.get_help(click.Context(demo, info_name="demo",
                                                     parent=ctx)).split())
    stops = {"saf run models": "saf demo --headless models stop NODE:PORT",
             "saf run ray-up": "saf demo --headless run ray-down"}
    for where, text in (("saf demo --help", help_text),
                        ("README.md", (DOCS.parent / "README.md").read_text()),
                        ("cockpit.md", (DOCS / "cockpit.md").read_text())):
        text = " ".join(text.split())
        for started, stop in stops.items():
            assert started in text, (where, started, stop)
            assert stop in text, (where, started, stop)
    assert [bad for stop in stops.values() for bad in unknown(words_of(stop))] == []


def test_the_guide_says_what_a_node_needs_for_each_recipe():
    """docs/index.md's "What a node needs" names every shipped recipe (a new one fails here
    until the page says what it needs), and no page claims SSH and Python are all."""
    from saf.recipe import library
    index = (DOCS / "index.md").read_text()
    section = index.split("\n## What a node needs\n", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([a-z0-9-]+)`", section))
    folder = library.shipped_folder()
    assert folder is not None
    shipped = {path.stem for path in folder.glob("*.toml")}
    assert len(shipped) > 10
    assert sorted(shipped - named) == []
    for needs in ("ray[default]", "package index", "uv", "pyenv"):
        assert needs in section
    assert "need only" not in " ".join(index.split())
