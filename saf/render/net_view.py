"""Speed-test results as Rich renderables: the matrix (Gbit/s and % of line rate, coloured by
saf.net.results.grade), each node's link, RTT and MTU, the warnings; a comparison of two
runs; the list of saved runs. Used by `saf net` (and the same words as the Network screen)."""

from __future__ import annotations

import datetime

from rich.console import Group, JustifyMethod, RenderableType
from rich.table import Table
from rich.text import Text

from saf.format import MISSING, fmt_gbps, fmt_link, fmt_ms, fmt_percent
from saf.net.results import Change, NetResult, grade

GRADE_STYLE = {"good": "green", "fair": "yellow", "poor": "bold red", None: ""}


def cell(result: NetResult, sender: str, receiver: str, streams: int) -> Text:
    """'9.41 94%' coloured by its fraction of line rate; '✗' for a failed test."""
    if sender == receiver:
        return Text("·", style="dim")
    m = result.find(sender, receiver, streams)
    if m is None:
        return Text(MISSING, style="dim")
    if not m.ok:
        return Text("✗ failed", style="bold red")
    frac = result.fraction(m)
    text = fmt_gbps(m.bits_per_second) + ("" if frac is None else f" {fmt_percent(frac, 0)}")
    if m.retransmits_much:
        text += " ↻"
    return Text(text, style=GRADE_STYLE[grade(frac)])


def matrix(result: NetResult, streams: int) -> Table:
    title = f"Gbit/s, {streams} stream{'s' * (streams > 1)} (row sends to column)"
    table = Table(title=title, title_justify="left", box=None, header_style="bold",
                  pad_edge=False)
    table.add_column("from \\ to")
    for n in result.nodes:
        table.add_column(n, justify="right")
    for s in result.nodes:
        table.add_row(s, *(cell(result, s, r, streams) for r in result.nodes))
    return table


def rtt_matrix(result: NetResult) -> Table:
    table = Table(title="RTT and path MTU (✓ carried at full size)", title_justify="left",
                  box=None, header_style="bold", pad_edge=False)
    table.add_column("")
    for n in result.nodes:
        table.add_column(n, justify="right")
    for a in result.nodes:
        row: list[RenderableType] = [a]
        for b in result.nodes:
            if a == b:
                row.append(Text("·", style="dim"))
                continue
            verified = result.mtu_verified(a, b)
            mtu = result.path_mtu(a, b)
            mark = {True: " ✓", False: " ✗", None: ""}[verified]
            row.append(Text(f"{fmt_ms(result.pair_rtt_ms(a, b))}  {mtu or MISSING}{mark}",
                            style="red" if verified is False else ""))
        table.add_row(*row)
    return table


def links_table(result: NetResult) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("NODE", "ADDRESS", "INTERFACE", "MTU", "LINK", "IPERF3"):
        table.add_column(column)
    for n in result.nodes:
        link = result.links.get(n)
        if link is None:
            table.add_row(n, MISSING, MISSING, MISSING, MISSING, MISSING)
            continue
        if link.error:
            table.add_row(n, link.address, Text(link.error, style="red"), "", "", "")
            continue
        table.add_row(n, link.address, link.interface or MISSING,
                      str(link.mtu) if link.mtu else MISSING, fmt_link(link.speed_mbps),
                      "yes" if link.iperf3 else "no")
    return table


def result_view(result: NetResult) -> RenderableType:
    when = datetime.datetime.fromtimestamp(result.started).strftime("%Y-%m-%d %H:%M:%S")
    style = {"ok": "green", "failed": "bold red"}.get(result.status, "yellow")
    head = Text.assemble(("speed test ", "bold"), (result.run, "bold"),
                         f"  {when}  {result.tool}, {result.pairs} pairs, "
                         f"{result.duration:g} s per test  ", (result.status, style))
    parts: list[RenderableType] = [head, links_table(result), Text("")]
    for n in sorted(result.stream_counts(), reverse=True):
        parts += [matrix(result, n), Text("")]
    parts.append(rtt_matrix(result))
    warnings = result.warnings()
    if warnings:
        parts.append(Text(""))
        parts += [Text(f"⚠ {w}", style="yellow") for w in warnings]
    return Group(*parts)


def compare_view(before: NetResult, after: NetResult, changes: list[Change]) -> RenderableType:
    table = Table(title=f"{before.run} → {after.run}", title_justify="left", box=None,
                  header_style="bold", pad_edge=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("LINK", "left"), ("STREAMS", "right"), ("BEFORE", "right"), ("AFTER", "right"),
        ("CHANGE", "right"))
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for c in changes:
        ratio = c.ratio
        change = Text(MISSING if ratio is None else fmt_percent(ratio - 1, 0).replace(" ", ""),
                      style="" if ratio is None else ("green" if ratio >= 1.05 else
                                                      "red" if ratio <= 0.95 else ""))
        if ratio is not None and ratio >= 1:
            change = Text("+", style=change.style) + change
        table.add_row(f"{c.sender} → {c.receiver}", str(c.streams),
                      MISSING if c.before is None else fmt_gbps(c.before * 1e9),
                      MISSING if c.after is None else fmt_gbps(c.after * 1e9), change)
    return table


def runs_view(results: list[NetResult]) -> RenderableType:
    if not results:
        return Text("no speed tests yet (try `saf net test`)")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("RUN", "STARTED", "STATUS", "TOOL", "PAIRS", "NODES", "SLOWEST"):
        table.add_column(column)
    for r in results:
        when = datetime.datetime.fromtimestamp(r.started).strftime("%Y-%m-%d %H:%M:%S")
        ok = [m for m in r.measurements if m.ok and m.streams == r.streams]
        slow = min(ok, key=lambda m: m.bits_per_second or 0) if ok else None
        table.add_row(r.run, when, r.status, r.tool, r.pairs, str(len(r.nodes)),
                      f"{fmt_gbps(slow.bits_per_second)} Gbit/s" if slow else MISSING)
    return table
