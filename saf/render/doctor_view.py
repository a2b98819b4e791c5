"""`saf doctor` as a table: a row per node and check, pass / warn / fail, the evidence and
the fix."""

from __future__ import annotations

from rich.text import Text

from saf.ray.doctor import VERDICTS, Finding, Verdict
from saf.render.columns import Column, fitted_table
from saf.render.console import console

STYLES: dict[Verdict, str] = {"pass": "green", "warn": "yellow", "fail": "red"}
COLUMNS = (Column("NODE", "left"), Column("CHECK", "left"), Column("", "left"),
           Column("EVIDENCE", "left"), Column("FIX", "left", 1))


def doctor_table(found: list[Finding]) -> None:
    out = console()
    rows = [[Text(f.node), Text(f.check), Text(f.status, style=STYLES[f.status]),
             Text(f.evidence), Text(f.fix, style="dim")] for f in found]
    table, _ = fitted_table(COLUMNS, rows, out.width, header_style="bold")
    out.print(table)
    counts = {s: sum(1 for f in found if f.status == s) for s in VERDICTS}
    out.print(Text(f"{counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail",
                   style="red" if counts["fail"] else "yellow" if counts["warn"] else "green"))
