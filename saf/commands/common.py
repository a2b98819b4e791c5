"""What every command needs: the inventory from the context, and running the core's coroutines."""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import click

from saf import collector
from saf.errors import SafError

if TYPE_CHECKING:
    from saf.inventory import Inventory

T = TypeVar("T")


def inventory(ctx: click.Context) -> Inventory:
    from saf.inventory import load_inventory

    root = ctx.find_root()
    explicit = (root.obj or {}).get("inventory") if root.obj else None
    return load_inventory(explicit)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end. Ctrl-C cancels it (its cleanup runs: remote commands are
    stopped) and then surfaces as KeyboardInterrupt, which the CLI turns into exit 130. The
    command's work begins here: the collector is on again (saf.collector)."""
    import asyncio

    collector.back_on()

    return asyncio.run(coro)


def read_stdin_password() -> str:
    """The password for --password-stdin: the first line of stdin, never echoed or stored."""
    password = sys.stdin.readline().rstrip("\n").rstrip("\r")
    if not password:
        raise SafError("--password-stdin: the first line of stdin is empty")
    return password
