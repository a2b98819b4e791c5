"""`saf nodes` as a table."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from saf.agentlink.deploy import python_fix, too_old
from saf.format import MISSING, fmt_bytes
from saf.node_facts import NodeFacts
from saf.render.console import console


def nodes_table(rows: list[NodeFacts], roles: dict[str, str]) -> None:
    table = Table(box=None, header_style="bold")
    # JUMP only where some node is reached through a jump host: no empty column otherwise.
    jumps = any(f.jump for f in rows)
    for column in ("NODE", "ROLE", *(("JUMP",) if jumps else ()), "STATE", "OS", "ARCH",
                   "KERNEL", "CPUS", "MEMORY", "PYTHON", "LATENCY"):
        # Only the kernel gives way on a narrow terminal; names and states never do.
        squeezable = column == "KERNEL"
        table.add_column(column, justify="right" if column in ("CPUS", "LATENCY") else "left",
                         no_wrap=True, overflow="ellipsis" if squeezable else "fold",
                         min_width=None if squeezable else len(column),
                         max_width=24 if squeezable else None)
    for f in rows:
        head = [f.node, roles.get(f.node, ""), *([f.jump or ""] if jumps else [])]
        if not f.reachable:
            table.add_row(*head, Text(f.reason or "down", style="red"),
                          "", "", "", "", "", "", "")
            continue
        if not f.python:
            python = Text(f"error: {f.python_error}", style="yellow")
        elif too_old(f.python):
            python = Text(f"{f.python} (too old)", style="yellow")
        else:
            python = Text(f.python)
        table.add_row(*head, Text("ok", style="green"), f.os or "?",
                      f.arch or "?", f.kernel or "?", str(f.cpus or "?"),
                      fmt_bytes(f.memory), python,
                      f"{f.latency_ms:.1f} ms" if f.latency_ms is not None else MISSING)
    out = console()
    out.print(table)
    for f in rows:
        if not f.reachable:
            out.print(Text(f"{f.node}: {f.message}", style="red"))
        elif f.python and too_old(f.python):
            out.print(Text(f"{f.node}: Python {f.python} is too old for the saf agent: "
                           f"{python_fix(f.node)}", style="yellow"))
