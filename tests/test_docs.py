"""The user's guide stays true: the command reference is what `saf doc` prints today."""

from __future__ import annotations

from pathlib import Path

from saf.cli import COMMANDS, cli
from saf.commands.doc import render

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_command_reference_is_generated_from_the_cli():
    """If this fails, run `saf doc > docs/commands.md` and commit the result."""
    assert (DOCS / "commands.md").read_text() == render(cli)


def test_every_command_is_documented():
    text = render(cli)
    for name in COMMANDS:
        assert f"`saf {name}`" in text
