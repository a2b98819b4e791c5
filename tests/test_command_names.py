"""saf.commands' naming rule (its docstring): each command's module is named for the command,
with `_cmd` only where the name is a Python keyword, so a command's code is found by its name."""

from __future__ import annotations

import importlib
import keyword
import pkgutil

import click

import saf.commands
from saf.cli import COMMANDS

HELPERS = {"common"}  # modules of saf.commands that are no command


def test_every_command_lives_in_the_module_named_for_it() -> None:
    for name, target in COMMANDS.items():
        module, _, attr = target.partition(":")
        expected = f"{name}_cmd" if keyword.iskeyword(name) else name
        assert module == f"saf.commands.{expected}", f"saf {name} lives in {module}"
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        assert command.name == name


def test_every_module_of_saf_commands_is_a_command_or_a_helper() -> None:
    modules = {m.name for m in pkgutil.iter_modules(saf.commands.__path__)}
    commands = {target.partition(":")[0].rpartition(".")[2] for target in COMMANDS.values()}
    assert sorted(modules - HELPERS) == sorted(commands)
