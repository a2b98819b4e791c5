"""Tables that fit their width by leaving columns out, never by squeezing cells.

Rich squeezes every column of a table that is too wide until `CPU` reads `C…` and two headers
read alike. saf measures each column instead (its title and its widest cell) and leaves out
whole columns, highest `priority` first, so that the rest fit; columns of one priority go
together (a pair such as IN and OUT is not split). A cell still too wide for the one column
left ends in "…". `saf top`, the node screen's NUMA table and the Signals table use it.

A screen's header line fits the same way (`fitted_line`): its parts are left out, highest
priority first, rather than the line wrapping or a figure being cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import JustifyMethod
from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class Column:
    title: str
    justify: JustifyMethod = "right"
    priority: int = 0  # 0 always stays; the highest priority is left out first


def fit(columns: Sequence[Column], rows: Sequence[Sequence[Text]], width: int | None,
        gap: int = 2) -> list[int]:
    """The indexes of the columns to show, each as wide as its title and widest cell (see
    `choose`). `gap`: cells between columns."""
    if width is None:
        return list(range(len(columns)))
    natural = [max([Text(c.title).cell_len] + [row[i].cell_len for row in rows])
               for i, c in enumerate(columns)]
    return choose([c.priority for c in columns], natural, width, gap)


def choose(priorities: Sequence[int], widths: Sequence[int], width: int, gap: int, *,
           fill: bool = True) -> list[int]:
    """The indexes of the columns of these `widths` to show in `width`: all when they fit,
    else those of priority 0 and then each priority's columns, most wanted first, while they
    fit. `fill`: go on past a priority that does not fit, so that a narrower, less wanted
    column can use the room a wide one could not."""
    def needed(chosen: list[int]) -> int:
        return sum(widths[i] for i in chosen) + gap * (len(chosen) - 1)

    keep = list(range(len(widths)))
    if needed(keep) <= width:
        return keep
    keep = [i for i, p in enumerate(priorities) if p == 0]
    for priority in sorted({p for p in priorities if p > 0}):
        more = sorted(keep + [i for i, p in enumerate(priorities) if p == priority])
        if needed(more) <= width:
            keep = more
        elif not fill:
            break
    return keep


def fitted_table(columns: Sequence[Column], rows: Sequence[Sequence[Text]], width: int | None,
                 *, padding: int = 1, pad_edge: bool = False,
                 **options: Any) -> tuple[Table, int]:
    """A borderless table of the columns of `rows` that fit `width`, and how many were left
    out. `padding`: cells either side of a cell (so columns are 2 x padding apart);
    `options`: more `rich.table.Table` arguments (header_style, expand, ...)."""
    room = None if width is None else width - (2 * padding if pad_edge else 0)
    shown = fit(columns, rows, room, gap=2 * padding)
    table = Table(box=None, padding=(0, padding), pad_edge=pad_edge, **options)
    for i in shown:
        table.add_column(columns[i].title, justify=columns[i].justify, no_wrap=True,
                         overflow="ellipsis")
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    return table, len(columns) - len(shown)


def fitted_line(parts: Sequence[tuple[Text, int]], width: int | None) -> Text:
    """One line of `parts` (each a text and its priority, 0 always stays) that fits `width`:
    the parts that fit, in their order, leaving out the highest priorities first (a part's
    text carries its own spacing). What still does not fit ends in "…"."""
    shown = list(range(len(parts)))
    if width is not None:
        shown = choose([p for _, p in parts], [t.cell_len for t, _ in parts], width, 0)
    line = Text(no_wrap=True, overflow="ellipsis", end="")
    for i in shown:
        line.append_text(parts[i][0])
    if width is not None and line.cell_len > width:
        line.truncate(width, overflow="ellipsis")
    return line


def left_out_words(count: int) -> str:
    """What a table's title says of the columns it had to leave out ("" when none)."""
    if not count:
        return ""
    return f"{count} column left out" if count == 1 else f"{count} columns left out"
